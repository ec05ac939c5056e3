package locator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// DocumentID derives a DocumentReference id from its master identifier (the XDS uniqueId),
// so that sending the same document again updates it instead of registering it twice.
func DocumentID(master search.Identifier) string {
	sum := sha256.Sum256([]byte(master.Token()))
	return "d" + hex.EncodeToString(sum[:16])
}

func codeOf(c fhir.Coding) search.Code {
	return search.Code{System: c.System, Code: c.Code, Display: c.Display}
}

func codesOf(cc []fhir.CodeableConcept) []search.Code {
	var out []search.Code
	for _, c := range cc {
		for _, cd := range c.Coding {
			out = append(out, codeOf(cd))
		}
	}
	return out
}

func firstCode(cc *fhir.CodeableConcept) search.Code {
	if cc == nil || len(cc.Coding) == 0 {
		return search.Code{}
	}
	return codeOf(cc.Coding[0])
}

// parseInstant reads a FHIR date or dateTime (the precision it has) between the year
// command.MinDocumentYear and latest: a date such as 0001-01-01 is a data-entry error, not a
// document (and would read as "no date" further down, where the zero time means absent).
func parseInstant(field, v string, latest time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if len(v) > 64 {
		return time.Time{}, fhir.Invalid(field, "%s is not a FHIR date or dateTime", field)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, v); err == nil {
			t = t.UTC()
			if t.Year() < command.MinDocumentYear || t.After(latest) {
				return time.Time{}, fhir.Invalid(field, "%s %s is not a plausible date for a document (from %d to %s)", field, v, command.MinDocumentYear, latest.Format("2006-01-02"))
			}
			return t, nil
		}
	}
	return time.Time{}, fhir.Invalid(field, "%s %q is not a FHIR date or dateTime", field, clip(v))
}

// Document dates: the document's own date (its creation) cannot be later than the moment it
// is registered, give or take a day of time zones; a service period may be scheduled into
// the future, within the registry's range of dates.
var (
	lastServiceDate = time.Date(2199, 12, 31, 23, 59, 59, 0, time.UTC)
)

// checkDocumentReference holds the elements of a DocumentReference that reach the
// replicated state's keys and the document index to the limits of raft/model, naming the
// element at fault. (CheckBounds has already refused control and bidirectional-override
// characters anywhere in the resource.)
func checkDocumentReference(dr fhir.DocumentReference) error {
	check := func(err error) error {
		if err == nil {
			return nil
		}
		field, _ := model.FieldOf(err)
		return limitError(field, err)
	}
	identifier := func(elem string, id *fhir.Identifier) error {
		if id == nil {
			return nil
		}
		if err := check(model.CheckSystem(elem+".system", id.System)); err != nil {
			return err
		}
		return check(model.CheckText(elem+".value", id.Value, model.MaxIdentifierValueLength))
	}
	coding := func(elem string, c fhir.Coding) error {
		if err := check(model.CheckSystem(elem+".system", c.System)); err != nil {
			return err
		}
		if err := check(model.CheckText(elem+".code", c.Code, model.MaxCodeLength)); err != nil {
			return err
		}
		return check(model.CheckText(elem+".display", c.Display, model.MaxDisplayLength))
	}
	concept := func(elem string, cc *fhir.CodeableConcept) error {
		if cc == nil {
			return nil
		}
		if err := check(model.CheckCount(elem+".coding", len(cc.Coding), model.MaxListLength)); err != nil {
			return err
		}
		for i, c := range cc.Coding {
			if err := coding(fmt.Sprintf("%s.coding[%d]", elem, i), c); err != nil {
				return err
			}
		}
		return check(model.CheckText(elem+".text", cc.Text, model.MaxDisplayLength))
	}
	concepts := func(elem string, ccs []fhir.CodeableConcept) error {
		if err := check(model.CheckCount(elem, len(ccs), model.MaxListLength)); err != nil {
			return err
		}
		for i := range ccs {
			if err := concept(fmt.Sprintf("%s[%d]", elem, i), &ccs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	reference := func(elem string, r *fhir.Reference) error {
		if r == nil {
			return nil
		}
		if err := check(model.CheckText(elem+".reference", r.Reference, model.MaxURLLength)); err != nil {
			return err
		}
		if err := check(model.CheckText(elem+".display", r.Display, model.MaxDisplayLength)); err != nil {
			return err
		}
		return identifier(elem+".identifier", r.Identifier)
	}
	if err := identifier("DocumentReference.masterIdentifier", dr.MasterIdentifier); err != nil {
		return err
	}
	if err := check(model.CheckCount("DocumentReference.identifier", len(dr.Identifier), model.MaxListLength)); err != nil {
		return err
	}
	for i := range dr.Identifier {
		if err := identifier(fmt.Sprintf("DocumentReference.identifier[%d]", i), &dr.Identifier[i]); err != nil {
			return err
		}
	}
	if err := reference("DocumentReference.subject", dr.Subject); err != nil {
		return err
	}
	if err := concept("DocumentReference.type", dr.Type); err != nil {
		return err
	}
	if err := concepts("DocumentReference.category", dr.Category); err != nil {
		return err
	}
	if err := concepts("DocumentReference.securityLabel", dr.SecurityLabel); err != nil {
		return err
	}
	if err := check(model.CheckFreeText("DocumentReference.description", dr.Description, model.MaxTextLength)); err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"author", len(dr.Author)}, {"relatesTo", len(dr.RelatesTo)}, {"content", len(dr.Content)}, {"contained", len(dr.Contained)}} {
		if err := check(model.CheckCount("DocumentReference."+l.name, l.n, model.MaxListLength)); err != nil {
			return err
		}
	}
	for i := range dr.Author {
		if err := reference(fmt.Sprintf("DocumentReference.author[%d]", i), &dr.Author[i]); err != nil {
			return err
		}
	}
	for i := range dr.RelatesTo {
		if err := reference(fmt.Sprintf("DocumentReference.relatesTo[%d].target", i), &dr.RelatesTo[i].Target); err != nil {
			return err
		}
	}
	for i, c := range dr.Content {
		elem := fmt.Sprintf("DocumentReference.content[%d]", i)
		a := c.Attachment
		for _, f := range []struct {
			name, value string
			max         int
		}{{"url", a.URL, model.MaxURLLength}, {"title", a.Title, model.MaxDisplayLength}, {"contentType", a.ContentType, model.MaxCodeLength},
			{"language", a.Language, model.MaxCodeLength}, {"hash", a.Hash, model.MaxCodeLength}, {"creation", a.Creation, model.MaxCodeLength}} {
			if err := check(model.CheckText(elem+".attachment."+f.name, f.value, f.max)); err != nil {
				return err
			}
		}
		if c.Format != nil {
			if err := coding(elem+".format", *c.Format); err != nil {
				return err
			}
		}
	}
	if ctx := dr.Context; ctx != nil {
		if err := concept("DocumentReference.context.facilityType", ctx.FacilityType); err != nil {
			return err
		}
		if err := concept("DocumentReference.context.practiceSetting", ctx.PracticeSetting); err != nil {
			return err
		}
		if err := concepts("DocumentReference.context.event", ctx.Event); err != nil {
			return err
		}
	}
	return nil
}

// documentSubject resolves DocumentReference.subject to the record the document belongs
// to: Patient/{id}, a Patient reference by identifier, or Person/{euid} (the holder's own
// record of that person if it has one, else the person's first record).
func documentSubject(tx *state.Tx, ref *fhir.Reference, holder model.Participant) (record, euid string, err error) {
	if ref == nil {
		return "", "", fhir.Invalid("DocumentReference.subject", "DocumentReference.subject is required: the Patient (or Person) the document is about")
	}
	switch {
	case strings.HasPrefix(ref.Reference, "Patient/"):
		key, ok := tx.PatientKeyByID(strings.TrimPrefix(ref.Reference, "Patient/"))
		if !ok {
			return "", "", unknownSubject(ref)
		}
		return key, "", nil
	case strings.HasPrefix(ref.Reference, "Person/"):
		euid = strings.TrimPrefix(ref.Reference, "Person/")
		p, ok, err := tx.MPI().Person(euid)
		if err != nil {
			return "", "", err
		}
		if !ok || len(p.Records) == 0 {
			return "", "", unknownSubject(ref)
		}
		record = string(p.Records[0])
		for _, k := range p.Records {
			if sys, _ := k.Split(); sys == holder.IdentifierSystem {
				record = string(k)
				break
			}
		}
		return record, euid, nil
	case ref.Identifier != nil && ref.Reference == "":
		key := string(mpi.KeyOf(ref.Identifier.System, ref.Identifier.Value))
		if r, err := tx.MPI().Record(mpi.RecordKey(key)); err != nil {
			return "", "", err
		} else if r == nil {
			return "", "", unknownSubject(ref)
		}
		return key, "", nil
	}
	return "", "", fhir.Invalid("DocumentReference.subject", "subject must reference Patient/{id}, Person/{euid}, or a Patient by identifier")
}

// unknownSubject is the one answer for a document subject that is not registered, and,
// alike in status and body, for one the registering participant may not know of (see
// checkSubjectConsent).
func unknownSubject(ref *fhir.Reference) error {
	switch {
	case strings.HasPrefix(ref.Reference, "Patient/"):
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "DocumentReference.subject", "%s is not a registered Patient", ref.Reference)
	case strings.HasPrefix(ref.Reference, "Person/"):
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "DocumentReference.subject", "%s is not a registered person", ref.Reference)
	case ref.Identifier != nil:
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "DocumentReference.subject.identifier", "no Patient is registered with identifier %s", mpi.KeyOf(ref.Identifier.System, ref.Identifier.Value))
	}
	return fhir.Invalid("DocumentReference.subject", "subject must reference Patient/{id}, Person/{euid}, or a Patient by identifier")
}

// checkSubjectConsent applies the patient's directives to a registration: a participant the
// patient denied may not register documents about them, and a participant that holds no
// record of an opted-out patient is told what it would be told of a patient rls does not
// know (the registration itself would disclose that the patient is in the exchange). The
// admin registers for the exchange (bulk loads) and is held only to a denial that names it.
// The FSM repeats the rule (checkSubjectConsent in raft/fsm) against directives recorded since.
func checkSubjectConsent(tx *state.Tx, record string, ref *fhir.Reference, holder model.Participant) error {
	sr, err := tx.MPI().Record(mpi.RecordKey(record))
	if err != nil || sr == nil {
		return err
	}
	records, err := personRecords(tx, sr.EUID)
	if err != nil {
		return err
	}
	directives, err := tx.ConsentsOfRecords(records)
	if err != nil {
		return err
	}
	d := policy.Decide(policy.Access{Participant: holder.ID, Purpose: policy.Treat}, directives, false)
	if d.Disclose || (holder.IsAdmin() && d.Reason != policy.ReasonParticipantDeny) {
		return nil
	}
	holds := false
	for _, k := range records {
		owner, err := recordOwner(tx, k)
		if err != nil {
			return err
		}
		holds = holds || owner == holder.ID
	}
	switch {
	case !holds:
		return unknownSubject(ref)
	case d.Reason == policy.ReasonParticipantDeny:
		// It holds a record of the patient, so it knows of them; the patient named it.
		return fhir.Errorf(http.StatusForbidden, "forbidden", "DocumentReference.subject", "the patient's consent directives do not allow this participant to register documents about them")
	}
	return nil // an opted-out patient's own provider registers its own documents
}

// documentFromResource maps a DocumentReference to the registry's document, naming the
// element at fault in every error.
func documentFromResource(tx *state.Tx, dr fhir.DocumentReference, holder model.Participant) (search.Document, error) {
	var d search.Document
	now := time.Now().UTC()
	if err := checkDocumentReference(dr); err != nil {
		return d, err
	}
	if dr.MasterIdentifier == nil || dr.MasterIdentifier.Value == "" {
		return d, fhir.Invalid("DocumentReference.masterIdentifier", "masterIdentifier (the document's unique id) is required")
	}
	d.MasterIdentifier = search.Identifier{System: dr.MasterIdentifier.System, Value: dr.MasterIdentifier.Value}
	d.ID = DocumentID(d.MasterIdentifier)
	if dr.ID != "" && dr.ID != d.ID {
		return d, fhir.Invalid("DocumentReference.id", "id %q is not the id rls derives from the masterIdentifier (%s)", dr.ID, d.ID)
	}
	d.Status = search.Status(dr.Status)
	if dr.Status == "" {
		return d, fhir.Invalid("DocumentReference.status", "status is required (current, superseded or entered-in-error)")
	}
	if !d.Status.Valid() {
		return d, fhir.Invalid("DocumentReference.status", "status %q must be current, superseded or entered-in-error", dr.Status)
	}
	var err error
	if d.PatientRecord, d.PersonEUID, err = documentSubject(tx, dr.Subject, holder); err != nil {
		return d, err
	}
	if err := checkSubjectConsent(tx, d.PatientRecord, dr.Subject, holder); err != nil {
		return d, err
	}
	if len(dr.Content) == 0 || dr.Content[0].Attachment.URL == "" {
		return d, fhir.Invalid("DocumentReference.content[0].attachment.url", "content.attachment.url is required: where the holder serves the document")
	}
	if err := model.ValidateHTTPURL("content.attachment.url", dr.Content[0].Attachment.URL); err != nil {
		return d, fhir.Invalid("DocumentReference.content[0].attachment.url", "%v", err)
	}
	for i, c := range dr.Content {
		if c.Attachment.Data != "" {
			return d, fhir.Invalid(fmt.Sprintf("DocumentReference.content[%d].attachment.data", i), "rls registers where documents are, never their content: send attachment.url, not data")
		}
	}
	a := dr.Content[0].Attachment
	d.URL, d.MIMEType, d.Hash, d.Language, d.Title = a.URL, a.ContentType, a.Hash, a.Language, a.Title
	if a.Size != nil {
		d.Size = *a.Size
	}
	if dr.Content[0].Format != nil {
		d.Format = codeOf(*dr.Content[0].Format)
	}
	// The creation time of the content is the document's date; DocumentReference.date
	// (when the reference was made) stands in when the attachment has none.
	latest := now.Add(24 * time.Hour)
	date, err := parseInstant("DocumentReference.date", dr.Date, latest)
	if err != nil {
		return d, err
	}
	if d.Created, err = parseInstant("DocumentReference.content[0].attachment.creation", a.Creation, latest); err != nil {
		return d, err
	}
	if d.Created.IsZero() {
		d.Created = date
	}
	d.Type = firstCode(dr.Type)
	d.Category = codesOf(dr.Category)
	d.SecurityLabels = codesOf(dr.SecurityLabel)
	d.Description = dr.Description
	if c := dr.Context; c != nil {
		d.FacilityType, d.PracticeSetting, d.Events = firstCode(c.FacilityType), firstCode(c.PracticeSetting), codesOf(c.Event)
		if c.Period != nil {
			if d.ServicePeriod.Start, err = parseInstant("DocumentReference.context.period.start", c.Period.Start, lastServiceDate); err != nil {
				return d, err
			}
			if d.ServicePeriod.End, err = parseInstant("DocumentReference.context.period.end", c.Period.End, lastServiceDate); err != nil {
				return d, err
			}
		}
	}
	if d.Authors, err = documentAuthors(dr); err != nil {
		return d, err
	}
	for i, rel := range dr.RelatesTo {
		target, ok := strings.CutPrefix(rel.Target.Reference, "DocumentReference/")
		if !ok || target == "" {
			return d, fhir.Invalid(fmt.Sprintf("DocumentReference.relatesTo[%d].target", i), "target must reference DocumentReference/{id}")
		}
		switch rel.Code {
		case "replaces", "transforms", "signs", "appends":
		default:
			return d, fhir.Invalid(fmt.Sprintf("DocumentReference.relatesTo[%d].code", i), "relatesTo code %q must be replaces, transforms, signs or appends", rel.Code)
		}
		d.RelatesTo = append(d.RelatesTo, search.Relation{Code: rel.Code, Target: target})
	}
	d.Holder = holder.ID
	if err := d.Validate(); err != nil {
		var de *search.DocumentError
		if errors.As(err, &de) {
			return d, fhir.Invalid("DocumentReference", "%s: %s", de.Field, de.Reason)
		}
		return d, fhir.Invalid("DocumentReference", "%v", err)
	}
	// The check the FSM repeats; the elements were checked one by one above.
	if err := command.CheckDocumentLimits(&d, now); err != nil {
		return d, limitError("DocumentReference", err)
	}
	return d, nil
}

// documentAuthors reads the authors from contained Practitioner and Organization resources
// that DocumentReference.author references (#id), as MHD documents carry them.
func documentAuthors(dr fhir.DocumentReference) ([]search.Author, error) {
	contained := map[string]fhir.ContainedAuthor{}
	index := map[string]int{}
	for i, raw := range dr.Contained {
		var c fhir.ContainedAuthor
		if err := json.Unmarshal(raw, &c); err != nil || c.ID == "" {
			return nil, fhir.Invalid(fmt.Sprintf("DocumentReference.contained[%d]", i), "a contained resource needs a resourceType and an id")
		}
		contained[c.ID], index[c.ID] = c, i
	}
	checkName := func(elem, v string, max int) error {
		if err := model.CheckText(elem, v, max); err != nil {
			return limitError(elem, err)
		}
		return nil
	}
	var out []search.Author
	for _, ref := range dr.Author {
		id, ok := strings.CutPrefix(ref.Reference, "#")
		c, found := contained[id]
		if !ok || !found {
			if ref.Display != "" {
				out = append(out, search.Author{Family: ref.Display})
			}
			continue
		}
		elem := fmt.Sprintf("DocumentReference.contained[%d].name", index[id])
		switch c.ResourceType {
		case "Practitioner":
			var names []fhir.HumanName
			if len(c.Name) > 0 && json.Unmarshal(c.Name, &names) == nil && len(names) > 0 {
				if err := checkName(elem+"[0].family", names[0].Family, model.MaxNameLength); err != nil {
					return nil, err
				}
				if len(names[0].Given) > model.MaxNamePartCount {
					return nil, limitError(elem+"[0].given", model.CheckCount(elem+"[0].given", len(names[0].Given), model.MaxNamePartCount))
				}
				for j, g := range names[0].Given {
					if err := checkName(fmt.Sprintf("%s[0].given[%d]", elem, j), g, model.MaxNameLength); err != nil {
						return nil, err
					}
				}
				out = append(out, search.Author{Given: names[0].Given, Family: names[0].Family})
			}
		case "Organization":
			var name string
			if len(c.Name) > 0 && json.Unmarshal(c.Name, &name) == nil {
				if err := checkName(elem, name, model.MaxDisplayLength); err != nil {
					return nil, err
				}
				out = append(out, search.Author{Institution: name})
			}
		}
	}
	return out, nil
}

// storedDocumentResource renders a registered document: the resource as it came, with
// rls's id, meta and current status.
func storedDocumentResource(sd state.StoredDocument) (json.RawMessage, error) {
	var dr map[string]any
	if err := json.Unmarshal(sd.Resource, &dr); err != nil {
		return nil, fmt.Errorf("decode stored DocumentReference %s: %w", sd.Document.ID, err)
	}
	dr["resourceType"] = "DocumentReference"
	dr["id"] = sd.Document.ID
	dr["meta"] = fhir.Meta{VersionID: strconv.FormatUint(sd.Version, 10), LastUpdated: sd.Updated.UTC().Format(time.RFC3339Nano)}
	dr["status"] = string(sd.Document.Status)
	return json.Marshal(dr)
}

// registerDocuments validates and proposes documents, returning each outcome in order.
func (s *Server) registerDocuments(ctx context.Context, rq *request, raws [][]byte) ([]raft.DocumentRegistered, []error, uint64, error) {
	if err := s.node.SyncLocal(ctx); err != nil {
		return nil, nil, 0, err
	}
	errs := make([]error, len(raws))
	var regs []command.DocumentRegistration
	var slots []int
	var subjects []*fhir.Reference
	err := s.node.State().View(func(tx *state.Tx) error {
		for i, raw := range raws {
			var dr fhir.DocumentReference
			if err := fhir.Decode(bytes.NewReader(raw), "DocumentReference", &dr); err != nil {
				errs[i] = err
				continue
			}
			d, err := documentFromResource(tx, dr, rq.principal)
			if err != nil {
				errs[i] = err
				continue
			}
			dr.ID, dr.Meta = "", nil
			resource, err := json.Marshal(dr)
			if err != nil {
				return err
			}
			doc, err := json.Marshal(d)
			if err != nil {
				return err
			}
			regs = append(regs, command.DocumentRegistration{Document: doc, Resource: resource})
			slots = append(slots, i)
			subjects = append(subjects, dr.Subject)
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	out := make([]raft.DocumentRegistered, len(raws))
	if len(regs) == 0 {
		return out, errs, 0, nil
	}
	a, err := s.node.Apply(ctx, command.TypeDocumentRegister, header(rq), &command.DocumentRegister{Documents: regs})
	if err != nil {
		return nil, nil, 0, err
	}
	for k, res := range a.Value.([]raft.DocumentRegistered) {
		out[slots[k]] = res
		if res.Err != nil {
			errs[slots[k]] = res.Err
			if errors.Is(res.Err, raft.ErrUnknownSubject) {
				// Refused in Apply (a directive recorded since the check above, or the
				// record gone): the same answer as at the edge.
				errs[slots[k]] = unknownSubject(subjects[k])
			}
		}
	}
	return out, errs, a.Index, nil
}

// createDocument is POST /fhir/DocumentReference (and PUT /fhir/DocumentReference/{id}):
// the registering participant is the holder; a relatesTo "replaces" supersedes the older
// document.
func (s *Server) createDocument(w http.ResponseWriter, r *http.Request, rq *request) error {
	if id := r.PathValue("id"); id != "" {
		var probe struct {
			ID string `json:"id"`
		}
		json.Unmarshal(rq.body, &probe)
		if probe.ID != id {
			return fhir.Invalid("DocumentReference.id", "DocumentReference.id %q does not match the id in the URL %q", probe.ID, id)
		}
	}
	out, errs, index, err := s.registerDocuments(r.Context(), rq, [][]byte{rq.body})
	if err != nil {
		return err
	}
	if errs[0] != nil {
		return errs[0]
	}
	sd := out[0].Document
	s.discloseRecordKeys(rq, sd.Document.PatientRecord)
	body, err := storedDocumentResource(sd)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if sd.Version == 1 {
		status = http.StatusCreated
		w.Header().Set("Location", fmt.Sprintf("/fhir/DocumentReference/%s/_history/1", sd.Document.ID))
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, sd.Version))
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(index, 10))
	return writeFHIR(w, status, body)
}

func (s *Server) readDocument(w http.ResponseWriter, r *http.Request, rq *request) error {
	var sd state.StoredDocument
	var ok bool
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		if sd, ok, err = tx.Document(r.PathValue("id")); err != nil || !ok {
			return err
		}
		ok, err = rq.guard.document(tx, sd.Document)
		return err
	})
	if err != nil {
		return err
	}
	if !ok {
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "DocumentReference/%s is not registered", r.PathValue("id"))
	}
	s.discloseRecordKeys(rq, sd.Document.PatientRecord)
	body, err := storedDocumentResource(sd)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, sd.Version))
	return writeFHIR(w, http.StatusOK, body)
}
