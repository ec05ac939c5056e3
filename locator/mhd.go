package locator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// IHE MHD on the Document Responder side: ITI-65 (Provide Document Bundle) registers a
// submission, a SubmissionSet List and its DocumentReferences, in one replicated command,
// all or nothing; ITI-66 (Find Document Lists) searches the submission sets. rls is a
// registry: it keeps metadata and where each document lives, never content, so a bundle
// carrying Binary resources is refused.

// MHD terminology.
const (
	mhdListTypesSystem = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
	submissionSetCode  = "submissionset"
)

// transactionBundle is a FHIR transaction Bundle as ITI-65 sends it.
type transactionBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string              `json:"fullUrl"`
		Resource json.RawMessage     `json:"resource"`
		Request  *fhir.BundleRequest `json:"request"`
	} `json:"entry"`
}

// submissionSet is the part of a List rls reads.
type submissionSet struct {
	ResourceType string                          `json:"resourceType"`
	Identifier   []fhir.Identifier               `json:"identifier"`
	Status       string                          `json:"status"`
	Mode         string                          `json:"mode"`
	Code         *fhir.CodeableConcept           `json:"code"`
	Subject      *fhir.Reference                 `json:"subject"`
	Entry        []struct{ Item fhir.Reference } `json:"entry"`
}

// transactionResponse is a Bundle of type transaction-response (no total: R4 bdl-1).
type transactionResponse struct {
	ResourceType string             `json:"resourceType"`
	Type         string             `json:"type"`
	Entry        []fhir.BundleEntry `json:"entry"`
}

// ListID derives a List's id from the SubmissionSet's unique id (its official
// identifier), so that a submission sent again updates its list instead of adding one.
func ListID(uniqueID fhir.Identifier) string {
	sum := sha256.Sum256([]byte(uniqueID.System + "|" + uniqueID.Value))
	return "s" + hex.EncodeToString(sum[:16])
}

// entryError names the element of a bundle entry at fault: DocumentReference.date in entry
// 2 is Bundle.entry[2].resource.date.
func entryError(i int, err error) error {
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		return err
	}
	out := *fe
	out.Issue.Expression = nil
	for _, e := range fe.Issue.Expression {
		rest := ""
		if dot := strings.IndexByte(e, '.'); dot >= 0 {
			rest = e[dot:]
		}
		out.Issue.Expression = append(out.Issue.Expression, fmt.Sprintf("Bundle.entry[%d].resource%s", i, rest))
	}
	if len(out.Issue.Expression) == 0 {
		out.Issue.Expression = []string{fmt.Sprintf("Bundle.entry[%d]", i)}
	}
	return &out
}

// relativePatient turns an absolute reference to a Patient (a client's base) into Patient/id.
func relativePatient(ref *fhir.Reference) {
	if ref == nil {
		return
	}
	if i := strings.LastIndex(ref.Reference, "/Patient/"); i >= 0 && strings.Contains(ref.Reference, "://") {
		ref.Reference = ref.Reference[i+1:]
	}
}

// provideDocuments is POST /fhir with a transaction Bundle: MHD ITI-65.
func (s *Server) provideDocuments(w http.ResponseWriter, r *http.Request, rq *request) error {
	var b transactionBundle
	if err := fhir.Decode(bytes.NewReader(rq.body), "Bundle", &b); err != nil {
		return err
	}
	if b.Type != "transaction" {
		return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", "Bundle.type", "Bundle.type %q: rls takes transaction Bundles (MHD ITI-65 Provide Document Bundle) only", fhir.Clip(b.Type))
	}
	listAt := -1
	var docAt []int
	byFullURL := map[string]int{}
	for i, e := range b.Entry {
		elem := fmt.Sprintf("Bundle.entry[%d]", i)
		var probe struct {
			ResourceType string `json:"resourceType"`
		}
		json.Unmarshal(e.Resource, &probe)
		if e.Request == nil || e.Request.Method != http.MethodPost || strings.TrimPrefix(e.Request.URL, "/") != probe.ResourceType {
			return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem+".request", "every entry of a submission is created: request POST %s", probe.ResourceType)
		}
		if e.FullURL != "" {
			if _, dup := byFullURL[e.FullURL]; dup {
				return fhir.Invalid(elem+".fullUrl", "two entries have the fullUrl %s", fhir.Clip(e.FullURL))
			}
			byFullURL[e.FullURL] = i
		}
		switch probe.ResourceType {
		case "List":
			if listAt >= 0 {
				return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem, "a submission has one SubmissionSet List")
			}
			listAt = i
		case "DocumentReference":
			docAt = append(docAt, i)
		case "Binary":
			return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem+".resource", "rls is a registry and keeps no content: send DocumentReferences whose attachment.url says where the document is, without Binary")
		default:
			return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem+".resource", "a submission holds a SubmissionSet List and DocumentReferences, not %s", fhir.Clip(probe.ResourceType))
		}
	}
	if listAt < 0 || len(docAt) == 0 {
		return fhir.Invalid("Bundle.entry", "a submission needs a SubmissionSet List and at least one DocumentReference")
	}
	if err := model.CheckCount("Bundle.entry", len(docAt), model.MaxBatchEntries); err != nil {
		return fhir.LimitError("Bundle.entry", err)
	}

	// The SubmissionSet.
	listElem := fmt.Sprintf("Bundle.entry[%d].resource", listAt)
	var list submissionSet
	if err := fhir.Decode(bytes.NewReader(b.Entry[listAt].Resource), "List", &list); err != nil {
		return entryError(listAt, err)
	}
	if list.Code == nil || !slices.ContainsFunc(list.Code.Coding, func(c fhir.Coding) bool { return c.System == mhdListTypesSystem && c.Code == submissionSetCode }) {
		return fhir.Invalid(listElem+".code", "the List must be a SubmissionSet: code %s#%s", mhdListTypesSystem, submissionSetCode)
	}
	if list.Status != "current" {
		return fhir.Invalid(listElem+".status", "a SubmissionSet is current")
	}
	var uniqueID *fhir.Identifier
	for i := range list.Identifier {
		if list.Identifier[i].Use == "official" && list.Identifier[i].Value != "" {
			uniqueID = &list.Identifier[i]
		}
	}
	if uniqueID == nil {
		return fhir.Invalid(listElem+".identifier", "a SubmissionSet needs its uniqueId: an identifier with use official")
	}
	listID := ListID(*uniqueID)
	relativePatient(list.Subject)

	if err := s.node.SyncLocal(r.Context()); err != nil {
		return err
	}
	cmd := command.DocumentProvide{List: command.ListRegistration{ID: listID, Holder: rq.principal.ID}}
	docIDs := map[int]string{} // entry → document id
	submitted := map[string]bool{}
	err := s.node.State().View(func(tx *state.Tx) error {
		record, _, err := documentSubject(tx, list.Subject, rq.principal)
		if err != nil {
			return entryError(listAt, err)
		}
		if err := checkSubjectConsent(tx, record, list.Subject, rq.principal); err != nil {
			return entryError(listAt, err)
		}
		cmd.List.PatientRecord = record
		if old, ok, err := tx.List(listID); err != nil {
			return err
		} else if ok && old.Holder != rq.principal.ID {
			return fhir.Errorf(http.StatusForbidden, "forbidden", listElem+".identifier", "this SubmissionSet belongs to another participant")
		}
		for _, i := range docAt {
			var dr fhir.DocumentReference
			if err := fhir.Decode(bytes.NewReader(b.Entry[i].Resource), "DocumentReference", &dr); err != nil {
				return entryError(i, err)
			}
			relativePatient(dr.Subject)
			d, err := documentFromResource(tx, dr, rq.principal)
			if err != nil {
				return entryError(i, err)
			}
			if d.PatientRecord != record {
				return fhir.Invalid(fmt.Sprintf("Bundle.entry[%d].resource.subject", i), "every DocumentReference of a submission is about the SubmissionSet's patient")
			}
			if submitted[d.ID] {
				return fhir.Invalid(fmt.Sprintf("Bundle.entry[%d].resource.masterIdentifier", i), "two DocumentReferences of the submission have one masterIdentifier")
			}
			submitted[d.ID], docIDs[i] = true, d.ID
			reg, err := documentRegistration(dr, d)
			if err != nil {
				return err
			}
			cmd.Documents = append(cmd.Documents, reg)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The List as stored: its items point at the registered documents, not at the
	// bundle's temporary ids; every DocumentReference of the submission is one of them.
	listed := map[int]bool{}
	var raw map[string]any
	if err := json.Unmarshal(b.Entry[listAt].Resource, &raw); err != nil {
		return err
	}
	items, _ := raw["entry"].([]any)
	for j, it := range items {
		entry, _ := it.(map[string]any)
		item, _ := entry["item"].(map[string]any)
		ref, _ := item["reference"].(string)
		i, ok := byFullURL[ref]
		if !ok || docIDs[i] == "" {
			return fhir.Invalid(fmt.Sprintf("%s.entry[%d].item", listElem, j), "a SubmissionSet item must reference a DocumentReference of the bundle by its fullUrl")
		}
		item["reference"] = "DocumentReference/" + docIDs[i]
		listed[i] = true
	}
	for _, i := range docAt {
		if !listed[i] {
			return fhir.Invalid(listElem+".entry", "the SubmissionSet does not list the DocumentReference of entry %d", i)
		}
	}
	delete(raw, "id")
	if sent, ok := raw["meta"]; ok {
		delete(raw, "meta")
		var m fhir.Meta
		if data, err := json.Marshal(sent); err == nil && json.Unmarshal(data, &m) == nil {
			if kept := fhir.SenderMeta(&m); kept != nil {
				raw["meta"] = kept
			}
		}
	}
	if subj, ok := raw["subject"].(map[string]any); ok && list.Subject != nil {
		subj["reference"] = list.Subject.Reference
	}
	var err2 error
	if cmd.List.Resource, err2 = json.Marshal(raw); err2 != nil {
		return err2
	}
	if err := cmd.Check(); err != nil {
		return fhir.LimitError("Bundle", err)
	}
	a, err := s.node.Apply(r.Context(), command.TypeDocumentProvide, header(rq), &cmd)
	if err != nil {
		if errors.Is(err, raft.ErrUnknownSubject) {
			return entryError(listAt, unknownSubject(list.Subject))
		}
		return err
	}
	res, ok := a.Value.(raft.DocumentsProvided)
	if !ok {
		return fmt.Errorf("document-provide: unexpected result %T", a.Value)
	}
	s.discloseRecordKeys(rq, cmd.List.PatientRecord)
	out := transactionResponse{ResourceType: "Bundle", Type: "transaction-response", Entry: make([]fhir.BundleEntry, len(b.Entry))}
	response := func(kind, id string, version uint64, updated time.Time) *fhir.BundleResponse {
		status := "200 OK"
		if version == 1 {
			status = "201 Created"
		}
		return &fhir.BundleResponse{Status: status, Location: fmt.Sprintf("/fhir/%s/%s/_history/%d", kind, id, version),
			Etag: fmt.Sprintf(`W/"%d"`, version), LastModified: updated.UTC().Format(time.RFC3339Nano)}
	}
	out.Entry[listAt] = fhir.BundleEntry{Response: response("List", res.List.ID, res.List.Version, res.List.Updated)}
	for k, i := range docAt {
		d := res.Documents[k].Document
		out.Entry[i] = fhir.BundleEntry{Response: response("DocumentReference", d.Document.ID, d.Version, d.Updated)}
	}
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(a.Index, 10))
	return writeFHIR(w, http.StatusOK, out)
}

// storedList renders a registered List with rls's id and meta.
func storedList(l state.StoredList) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(l.Resource, &m); err != nil {
		return nil, fmt.Errorf("decode stored List %s: %w", l.ID, err)
	}
	var sent *fhir.Meta
	if raw, ok := m["meta"]; ok {
		sent = new(fhir.Meta)
		if data, err := json.Marshal(raw); err != nil || json.Unmarshal(data, sent) != nil {
			return nil, fmt.Errorf("decode the meta of stored List %s", l.ID)
		}
	}
	m["resourceType"], m["id"] = "List", l.ID
	m["meta"] = fhir.Stamped(sent, strconv.FormatUint(l.Version, 10), l.Updated.UTC().Format(time.RFC3339Nano))
	return json.Marshal(m)
}

// readList is GET /fhir/List/{id}.
func (s *Server) readList(w http.ResponseWriter, r *http.Request, rq *request) error {
	var l state.StoredList
	var visible bool
	err := s.node.State().View(func(tx *state.Tx) error {
		var ok bool
		var err error
		if l, ok, err = tx.List(r.PathValue("id")); err != nil || !ok {
			return err
		}
		d, err := rq.guard.Record(guardState{tx}, l.PatientRecord)
		visible = err == nil && d.Disclose
		return err
	})
	if err != nil {
		return err
	}
	if !visible {
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "List/%s is not registered", r.PathValue("id"))
	}
	s.discloseRecordKeys(rq, l.PatientRecord)
	body, err := storedList(l)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, l.Version))
	return writeFHIR(w, http.StatusOK, body)
}

// searchLists is ITI-66, Find Document Lists: GET /fhir/List?patient=…[&code=][&status=]
// [&identifier=]. The patient is required (as MHD requires of the consumer), given as
// Patient/{id} or {id}; :mdm widens it to every record of the patient's person.
func (s *Server) searchLists(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	var patient, code, status, identifier string
	mdm := false
	for name, values := range q {
		v := values[0]
		switch name {
		case "patient", "subject", "patient:mdm", "subject:mdm":
			patient, mdm = strings.TrimPrefix(v, "Patient/"), strings.HasSuffix(name, ":mdm")
		case "code":
			code = v
		case "status":
			status = v
		case "identifier":
			identifier = v
		case "_count", "_offset", "consistency":
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "search parameter %q is not supported on List", name)
		}
	}
	if patient == "" {
		return fhir.Errorf(http.StatusBadRequest, "too-costly", "patient", "a List search needs patient (Patient/{id})")
	}
	count, offset, err := pageParams(q, defaultPatientCount, 0, maxPatientCount)
	if err != nil {
		return err
	}
	var entries []fhir.BundleEntry
	total := 0
	err = s.node.State().View(func(tx *state.Tx) error {
		key, ok := tx.PatientKeyByID(patient)
		if !ok {
			return nil
		}
		records := []string{key}
		if mdm {
			if sr, err := tx.MPI().Record(mpi.RecordKey(key)); err == nil && sr != nil {
				if p, ok, err := tx.MPI().Person(sr.EUID); err == nil && ok {
					records = records[:0]
					for _, k := range p.Records {
						records = append(records, string(k))
					}
				}
			}
		}
		lists, err := tx.ListsOfRecords(records)
		if err != nil {
			return err
		}
		var hits []state.StoredList
		for _, l := range lists {
			if d, err := rq.guard.Record(guardState{tx}, l.PatientRecord); err != nil {
				return err
			} else if !d.Disclose {
				continue
			}
			var sl submissionSet
			if err := json.Unmarshal(l.Resource, &sl); err != nil {
				return fmt.Errorf("decode stored List %s: %w", l.ID, err)
			}
			if status != "" && sl.Status != status {
				continue
			}
			if code != "" && (sl.Code == nil || !slices.ContainsFunc(sl.Code.Coding, func(c fhir.Coding) bool { return c.Code == code || c.System+"|"+c.Code == code })) {
				continue
			}
			if identifier != "" && !slices.ContainsFunc(sl.Identifier, func(id fhir.Identifier) bool { return id.Value == identifier || id.System+"|"+id.Value == identifier }) {
				continue
			}
			hits = append(hits, l)
		}
		total = len(hits)
		for i := offset; i < min(offset+count, len(hits)); i++ {
			body, err := storedList(hits[i])
			if err != nil {
				return err
			}
			discloseRecordKeysTx(tx, rq, hits[i].PatientRecord)
			entries = append(entries, fhir.BundleEntry{FullURL: "List/" + hits[i].ID, Resource: body, Search: &fhir.SearchInfo{Mode: "match"}})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeFHIR(w, http.StatusOK, searchset(r, entries, total, offset, count))
}
