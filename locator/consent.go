package locator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Consent directives (FHIR Consent, scope patient-privacy). A directive names the patient
// (Patient/{id}, or Person/{euid} for every record of that person) and says, in its
// provisions, one or more of:
//
//	provision.type deny, no actor, no securityLabel     the patient opts out of the exchange
//	a deny provision with actor Organization/{id}        those participants may not see the patient
//	a deny provision with securityLabel codings         documents so labelled are withheld
//
// The admin may record and read every directive. A participant records directives for
// patients it holds a record of (it collected the patient's form) and reads and changes
// the directives it recorded; any other directive is, to it, one that does not exist.
// Revoking is an update to status inactive. Every change is acknowledged only once the
// security fence holds (see fence), so "acknowledged" means "enforced on every node".

func newConsentID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("draw consent id: %w", err)
	}
	return "c" + hex.EncodeToString(b[:]), nil
}

// notYourPatient is the one answer for a patient a participant may not name in a
// directive, whether it exists or not.
func notYourPatient(ref string) error {
	return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Consent.patient",
		"%s is not a patient you hold a record of", ref)
}

// resolveConsentPatient turns Consent.patient into the records the directive is anchored
// to, checking that the caller may name that patient.
func resolveConsentPatient(tx *state.Tx, ref *fhir.Reference, p model.Participant) (records []string, euid string, err error) {
	if ref == nil || ref.Reference == "" {
		return nil, "", fhir.Invalid("Consent.patient", "Consent.patient is required: Patient/{id} or Person/{euid}")
	}
	switch {
	case strings.HasPrefix(ref.Reference, "Patient/"):
		key, ok := tx.PatientKeyByID(strings.TrimPrefix(ref.Reference, "Patient/"))
		if !ok {
			return nil, "", notYourPatient(ref.Reference)
		}
		sr, err := tx.MPI().Record(mpi.RecordKey(key))
		if err != nil || sr == nil {
			return nil, "", errOr(err, notYourPatient(ref.Reference))
		}
		records, euid = []string{key}, sr.EUID
	case strings.HasPrefix(ref.Reference, "Person/"):
		euid = strings.TrimPrefix(ref.Reference, "Person/")
		if records, err = personRecords(tx, euid); err != nil {
			return nil, "", err
		}
		if len(records) == 0 {
			return nil, "", notYourPatient(ref.Reference)
		}
	default:
		return nil, "", fhir.Invalid("Consent.patient", "Consent.patient must reference Patient/{id} or Person/{euid}")
	}
	if p.IsAdmin() {
		return records, euid, nil
	}
	// A participant names only a patient it holds a record of: the person's records.
	all, err := personRecords(tx, euid)
	if err != nil {
		return nil, "", err
	}
	for _, k := range all {
		if owner, err := recordOwner(tx, k); err != nil {
			return nil, "", err
		} else if owner == p.ID {
			return records, euid, nil
		}
	}
	return nil, "", notYourPatient(ref.Reference)
}

func (s *Server) createConsent(w http.ResponseWriter, r *http.Request, rq *request) error {
	var c fhir.Consent
	if err := fhir.Decode(bytes.NewReader(rq.body), "Consent", &c); err != nil {
		return err
	}
	if c.ID != "" {
		return fhir.Invalid("Consent.id", "rls assigns the id of a new Consent; use PUT /fhir/Consent/{id} to change one")
	}
	m, err := fhir.DirectiveOf(c)
	if err != nil {
		return err
	}
	if m.ID, err = newConsentID(); err != nil {
		return err
	}
	if err := s.node.SyncLocal(r.Context()); err != nil {
		return err
	}
	err = s.node.State().View(func(tx *state.Tx) error {
		var err error
		if m.Records, m.EUID, err = resolveConsentPatient(tx, c.Patient, rq.principal); err != nil {
			return err
		}
		return checkParticipantsExist(tx, m.DenyParticipants)
	})
	if err != nil {
		return err
	}
	return s.setConsent(w, r, rq, command.ConsentSet{Consent: m, Create: true}, http.StatusCreated)
}

func checkParticipantsExist(tx *state.Tx, ids []string) error {
	for _, id := range ids {
		if !tx.HasParticipant(id) {
			return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Consent.provision.actor", "Organization/%s is not a participant", id)
		}
	}
	return nil
}

func (s *Server) updateConsent(w http.ResponseWriter, r *http.Request, rq *request) error {
	var c fhir.Consent
	if err := fhir.Decode(bytes.NewReader(rq.body), "Consent", &c); err != nil {
		return err
	}
	id := r.PathValue("id")
	if c.ID != id {
		return fhir.Invalid("Consent.id", "Consent.id %q does not match the id in the URL %q", c.ID, id)
	}
	m, err := fhir.DirectiveOf(c)
	if err != nil {
		return err
	}
	expected, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := s.node.SyncLocal(r.Context()); err != nil {
		return err
	}
	err = s.node.State().View(func(tx *state.Tx) error {
		old, err := visibleConsent(tx, id, rq.principal)
		if err != nil {
			return err
		}
		// The patient of a directive never changes: another patient needs a directive of
		// its own, so that revoking one never touches the other.
		if c.Patient != nil && c.Patient.Reference != fhir.ConsentPatient(old).Reference {
			return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Consent.patient", "the patient of a directive cannot change (it is %s)", fhir.ConsentPatient(old).Reference)
		}
		m.ID, m.Records, m.EUID = old.ID, old.Records, old.EUID
		return checkParticipantsExist(tx, m.DenyParticipants)
	})
	if err != nil {
		return err
	}
	return s.setConsent(w, r, rq, command.ConsentSet{Consent: m, ExpectedVersion: expected}, http.StatusOK)
}

// setConsent proposes a directive and answers once the fence acknowledges it.
func (s *Server) setConsent(w http.ResponseWriter, r *http.Request, rq *request, cmd command.ConsentSet, status int) error {
	// The elements were checked as they were read; this is the check the FSM repeats.
	if err := cmd.Check(); err != nil {
		return fhir.LimitError("Consent", err)
	}
	a, err := s.node.Apply(r.Context(), command.TypeConsentSet, header(rq), &cmd)
	if errors.Is(err, raft.ErrConsentExists) {
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "consent id collision; retry"))
	}
	if err != nil {
		return err
	}
	if err := s.fence.Acknowledge(r.Context(), a.Index); err != nil {
		return err
	}
	m, ok := a.Value.(model.Consent)
	if !ok {
		return fmt.Errorf("consent: unexpected result %T", a.Value)
	}
	s.logger.Info("consent directive recorded", "consent", m.ID, "status", m.Status, "opt_out", m.OptOut,
		"denied_participants", len(m.DenyParticipants), "withheld_labels", len(m.WithholdLabels), "by", rq.principal.ID, "request_id", rq.id)
	rq.disclose([]string{m.EUID}, recordIDs(m.Records))
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, m.Version))
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(a.Index, 10))
	if status == http.StatusCreated {
		w.Header().Set("Location", fmt.Sprintf("/fhir/Consent/%s/_history/%d", m.ID, m.Version))
	}
	return writeFHIR(w, status, fhir.ConsentOf(m))
}

// visibleConsent returns a directive the caller may see: the admin and the data stewards
// any, a participant those it recorded. Any other answers as one that does not exist.
func visibleConsent(tx *state.Tx, id string, p model.Participant) (model.Consent, error) {
	m, ok, err := tx.Consent(id)
	if err != nil {
		return m, err
	}
	if !ok || (!p.IsSteward() && m.RecordedBy != p.ID) {
		return m, fhir.Errorf(http.StatusNotFound, "not-found", "", "Consent/%s does not exist", id)
	}
	return m, nil
}

func (s *Server) readConsent(w http.ResponseWriter, r *http.Request, rq *request) error {
	var m model.Consent
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		m, err = visibleConsent(tx, r.PathValue("id"), rq.principal)
		return err
	})
	if err != nil {
		return err
	}
	rq.disclose([]string{m.EUID}, recordIDs(m.Records))
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, m.Version))
	return writeFHIR(w, http.StatusOK, fhir.ConsentOf(m))
}

// searchConsents is GET /fhir/Consent?patient=Patient/{id}|Person/{euid}&status=: the
// directives that apply to the patient now (those of every record of its current person).
func (s *Server) searchConsents(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	for name := range q {
		switch name {
		case "patient", "status", "_count", "_offset", "consistency":
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "search parameter %q is not supported on Consent", name)
		}
	}
	count, offset, err := pageParams(q, defaultSearchCount, 0, maxSearchCount)
	if err != nil {
		return err
	}
	status := q.Get("status")
	if status != "" && status != model.ConsentActive && status != model.ConsentInactive {
		return fhir.Invalid("status", "status must be active or inactive")
	}
	var found []model.Consent
	err = s.node.State().View(func(tx *state.Tx) error {
		var all []model.Consent
		var err error
		if ref := q.Get("patient"); ref != "" {
			records, err := consentScope(tx, ref)
			if err != nil {
				return err
			}
			all, err = tx.ConsentsOfRecords(records)
			if err != nil {
				return err
			}
		} else if all, err = tx.Consents(); err != nil {
			return err
		}
		for _, m := range all {
			if (rq.principal.IsSteward() || m.RecordedBy == rq.principal.ID) && (status == "" || m.Status == status) {
				found = append(found, m)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(found, func(a, b model.Consent) int { return strings.Compare(a.ID, b.ID) })
	var entries []fhir.BundleEntry
	for i := offset; i < min(offset+count, len(found)); i++ {
		rq.disclose([]string{found[i].EUID}, recordIDs(found[i].Records))
		entries = append(entries, fhir.BundleEntry{FullURL: "Consent/" + found[i].ID, Resource: fhir.ConsentOf(found[i]), Search: &fhir.SearchInfo{Mode: "match"}})
	}
	return writeFHIR(w, http.StatusOK, searchset(r, entries, len(found), offset, count))
}

// consentScope is every record of the person a patient reference leads to now.
func consentScope(tx *state.Tx, ref string) ([]string, error) {
	euid, isPerson := strings.CutPrefix(ref, "Person/")
	if !isPerson {
		key, ok := tx.PatientKeyByID(strings.TrimPrefix(ref, "Patient/"))
		if !ok {
			return nil, nil
		}
		sr, err := tx.MPI().Record(mpi.RecordKey(key))
		if err != nil || sr == nil {
			return []string{key}, err
		}
		euid = sr.EUID
	}
	return personRecords(tx, euid)
}

// acknowledgeSecurity waits for the fence after a security-relevant participant change.
func (s *Server) acknowledgeSecurity(ctx context.Context, index uint64) error {
	return s.fence.Acknowledge(ctx, index)
}
