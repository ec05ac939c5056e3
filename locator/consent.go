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
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/fsm"
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

// consentFromResource reads a directive's contents (not its patient, which needs the
// state) out of a Consent, naming the element at fault.
func consentFromResource(c fhir.Consent) (model.Consent, error) {
	var m model.Consent
	switch c.Status {
	case model.ConsentActive, model.ConsentInactive:
		m.Status = c.Status
	case "":
		return m, fhir.Invalid("Consent.status", "Consent.status is required (active, or inactive to revoke)")
	default:
		return m, fhir.Invalid("Consent.status", "Consent.status %q is not supported (active or inactive)", c.Status)
	}
	if c.Scope != nil && !hasCoding(c.Scope.Coding, fhir.ConsentScopeSystem, fhir.ConsentScopePrivacy) {
		return m, fhir.Invalid("Consent.scope", "only privacy consent (%s %s) is supported", fhir.ConsentScopeSystem, fhir.ConsentScopePrivacy)
	}
	if c.Provision == nil {
		return m, fhir.Invalid("Consent.provision", "Consent.provision is required: type deny for an opt-out, or deny provisions naming participants (actor) or security labels")
	}
	if err := readProvision(&m, *c.Provision, "Consent.provision", true); err != nil {
		return m, err
	}
	if !m.OptOut && len(m.DenyParticipants) == 0 && len(m.WithholdLabels) == 0 {
		return m, fhir.Invalid("Consent.provision", "the directive restricts nothing: use type deny (opt-out), or deny provisions with actors or security labels")
	}
	slices.Sort(m.DenyParticipants)
	m.DenyParticipants = slices.Compact(m.DenyParticipants)
	slices.Sort(m.WithholdLabels)
	m.WithholdLabels = slices.Compact(m.WithholdLabels)
	return m, nil
}

func readProvision(m *model.Consent, p fhir.ConsentProvision, elem string, top bool) error {
	switch p.Type {
	case "deny":
	case "permit", "":
		if len(p.Actor) > 0 || len(p.SecurityLabel) > 0 {
			return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem, "permit provisions with actors or labels are not supported: rls records restrictions (deny)")
		}
		if !top {
			return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem+".type", "a nested provision must be type deny")
		}
	default:
		return fhir.Invalid(elem+".type", "provision type %q must be deny or permit", p.Type)
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"actor", len(p.Actor)}, {"securityLabel", len(p.SecurityLabel)}, {"provision", len(p.Provision)}} {
		if err := model.CheckCount(elem+"."+l.name, l.n, model.MaxListLength); err != nil {
			return limitError("", err)
		}
	}
	for i, l := range p.SecurityLabel {
		le := fmt.Sprintf("%s.securityLabel[%d]", elem, i)
		if err := model.CheckSystem(le+".system", l.System); err != nil {
			return limitError("", err)
		}
		if err := model.CheckText(le+".code", l.Code, model.MaxCodeLength); err != nil {
			return limitError("", err)
		}
	}
	if p.Type == "deny" {
		switch {
		case len(p.Actor) > 0 && len(p.SecurityLabel) > 0:
			return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem, "a deny provision names participants or security labels, not both")
		case len(p.Actor) > 0:
			for i, a := range p.Actor {
				id, ok := strings.CutPrefix(a.Reference.Reference, "Organization/")
				if !ok || model.ValidateID("participant", id) != nil {
					return fhir.Invalid(fmt.Sprintf("%s.actor[%d].reference", elem, i), "actor must reference Organization/{participant id}")
				}
				m.DenyParticipants = append(m.DenyParticipants, id)
			}
		case len(p.SecurityLabel) > 0:
			for i, l := range p.SecurityLabel {
				if l.Code == "" {
					return fhir.Invalid(fmt.Sprintf("%s.securityLabel[%d].code", elem, i), "a security label needs a code")
				}
				m.WithholdLabels = append(m.WithholdLabels, search2token(l))
			}
		case top:
			m.OptOut = true
		default:
			return fhir.Invalid(elem, "a nested deny provision needs actors or security labels")
		}
	}
	if !top && len(p.Provision) > 0 {
		return fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem+".provision", "provisions nest one level deep")
	}
	for i, sub := range p.Provision {
		if err := readProvision(m, sub, fmt.Sprintf("%s.provision[%d]", elem, i), false); err != nil {
			return err
		}
	}
	return nil
}

// search2token is a label as the document index holds it: "system|code", or the bare code.
func search2token(c fhir.Coding) string {
	if c.System == "" {
		return c.Code
	}
	return c.System + "|" + c.Code
}

func hasCoding(cs []fhir.Coding, system, code string) bool {
	for _, c := range cs {
		if c.System == system && c.Code == code {
			return true
		}
	}
	return false
}

// consentResource renders a directive.
func consentResource(m model.Consent) fhir.Consent {
	c := fhir.Consent{ResourceType: "Consent", ID: m.ID, Status: m.Status,
		Meta:     &fhir.Meta{VersionID: strconv.FormatUint(m.Version, 10), LastUpdated: m.Updated.UTC().Format(time.RFC3339Nano)},
		Scope:    &fhir.CodeableConcept{Coding: []fhir.Coding{{System: fhir.ConsentScopeSystem, Code: fhir.ConsentScopePrivacy}}},
		Category: []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: fhir.LOINCSystem, Code: fhir.ConsentCategoryLOINC}}}},
		Patient:  consentPatient(m), DateTime: m.Created.UTC().Format(time.RFC3339),
	}
	if m.RecordedBy != "" {
		c.Organization = []fhir.Reference{{Reference: "Organization/" + m.RecordedBy}}
	}
	top := fhir.ConsentProvision{Type: "permit"}
	if m.OptOut {
		top.Type = "deny"
	}
	if len(m.DenyParticipants) > 0 {
		sub := fhir.ConsentProvision{Type: "deny"}
		for _, id := range m.DenyParticipants {
			sub.Actor = append(sub.Actor, fhir.ConsentActor{Reference: fhir.Reference{Reference: "Organization/" + id}})
		}
		top.Provision = append(top.Provision, sub)
	}
	if len(m.WithholdLabels) > 0 {
		sub := fhir.ConsentProvision{Type: "deny"}
		for _, l := range m.WithholdLabels {
			sys, code, ok := strings.Cut(l, "|")
			if !ok {
				sys, code = "", l
			}
			sub.SecurityLabel = append(sub.SecurityLabel, fhir.Coding{System: sys, Code: code})
		}
		top.Provision = append(top.Provision, sub)
	}
	c.Provision = &top
	return c
}

// consentPatient is the patient a directive names: its one record, or its person.
func consentPatient(m model.Consent) *fhir.Reference {
	if len(m.Records) == 1 {
		return &fhir.Reference{Reference: "Patient/" + model.PatientID(m.Records[0])}
	}
	return &fhir.Reference{Reference: "Person/" + m.EUID}
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
	m, err := consentFromResource(c)
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
	m, err := consentFromResource(c)
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
		if c.Patient != nil && c.Patient.Reference != consentPatient(old).Reference {
			return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Consent.patient", "the patient of a directive cannot change (it is %s)", consentPatient(old).Reference)
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
		return limitError("Consent", err)
	}
	a, err := s.node.Apply(r.Context(), command.TypeConsentSet, header(rq), &cmd)
	if errors.Is(err, fsm.ErrConsentExists) {
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "consent id collision; retry"))
	}
	if err != nil {
		return err
	}
	if err := s.privacy.fence.acknowledge(r.Context(), a.Index); err != nil {
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
	return writeFHIR(w, status, consentResource(m))
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
	return writeFHIR(w, http.StatusOK, consentResource(m))
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
		entries = append(entries, fhir.BundleEntry{FullURL: "Consent/" + found[i].ID, Resource: consentResource(found[i]), Search: &fhir.SearchInfo{Mode: "match"}})
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
	return s.privacy.fence.acknowledge(ctx, index)
}
