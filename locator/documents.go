package locator

import (
	"bytes"
	"context"
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

// documentFromResource maps a DocumentReference the participant holder registers to the
// registry's document: its subject must be a registered patient that the patient's
// directives let holder register documents about.
func documentFromResource(tx *state.Tx, dr fhir.DocumentReference, holder model.Participant) (search.Document, error) {
	return fhir.DocumentOf(dr, holder.ID, time.Now().UTC(), func(ref *fhir.Reference) (string, string, error) {
		record, euid, err := documentSubject(tx, ref, holder)
		if err != nil {
			return "", "", err
		}
		if err := checkSubjectConsent(tx, record, ref, holder); err != nil {
			return "", "", err
		}
		return record, euid, nil
	})
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
			reg, err := documentRegistration(dr, d)
			if err != nil {
				return err
			}
			regs = append(regs, reg)
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
	body, err := fhir.StoredDocument(sd.Resource, sd.Document, sd.Version, sd.Updated)
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
		ok, err = rq.guard.Document(guardState{tx}, sd.Document)
		return err
	})
	if err != nil {
		return err
	}
	if !ok {
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "DocumentReference/%s is not registered", r.PathValue("id"))
	}
	s.discloseRecordKeys(rq, sd.Document.PatientRecord)
	body, err := fhir.StoredDocument(sd.Resource, sd.Document, sd.Version, sd.Updated)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, sd.Version))
	return writeFHIR(w, http.StatusOK, body)
}

// documentRegistration is a document as a command carries it: the registry's document and
// the sender's resource, stored without the id and the version rls assigns.
func documentRegistration(dr fhir.DocumentReference, d search.Document) (command.DocumentRegistration, error) {
	dr.ID, dr.Meta = "", fhir.SenderMeta(dr.Meta)
	resource, err := json.Marshal(dr)
	if err != nil {
		return command.DocumentRegistration{}, fmt.Errorf("encode the DocumentReference: %w", err)
	}
	doc, err := json.Marshal(d)
	if err != nil {
		return command.DocumentRegistration{}, fmt.Errorf("encode the document: %w", err)
	}
	return command.DocumentRegistration{Document: doc, Resource: resource}, nil
}
