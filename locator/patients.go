package locator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// newEUID draws the enterprise id a registration uses if it founds a new person: "E" and a
// model.TimeOrderedID (the second of the draw, then 96 random bits), so that two leaders'
// draws never collide (the FSM still refuses a taken one) and new persons land together at
// the end of the state's B-trees keyed by EUID. The second a person was founded is all the
// id tells, and no more than the person's history does.
func newEUID() (string, error) {
	var random [12]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", fmt.Errorf("draw EUID: %w", err)
	}
	return "E" + model.TimeOrderedID(time.Now(), random), nil
}

// ownSystem returns the rule that picks the record identifier of a Patient sent by p: a
// participant registers only under its own assigning authority; an admin (bulk loads,
// corrections) under any participant's. The rule serves one request, which may apply it
// to hundreds of records: it reads the participants' systems once it first needs them and
// remembers what it read (a read of the state per record was a tenth of a bulk batch's
// handling), so a participant added while the request runs is not seen by it.
func (s *Server) ownSystem(ctx context.Context, p model.Participant) func(systems []string) (string, error) {
	var mu sync.Mutex
	synced := false
	owner := map[string]bool{} // system → whether a participant owns it, as read
	return func(systems []string) (string, error) {
		if len(systems) == 0 {
			return "", fhir.Invalid("Patient.identifier", "Patient.identifier is required: the record's identifier in the registering participant's system")
		}
		if !p.IsAdmin() {
			if p.IdentifierSystem == "" || !slices.Contains(systems, p.IdentifierSystem) {
				return "", fhir.Errorf(http.StatusForbidden, "forbidden", "Patient.identifier",
					"participant %q registers only under its own identifier system %q, which the Patient does not carry", p.ID, p.IdentifierSystem)
			}
			return p.IdentifierSystem, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if !synced {
			// Read what this leader acknowledged (a participant added an instant ago).
			if err := s.node.SyncLocal(ctx); err != nil {
				return "", err
			}
			synced = true
		}
		var unread []string
		for _, sys := range systems {
			if _, read := owner[sys]; !read {
				unread = append(unread, sys)
			}
		}
		if len(unread) > 0 {
			err := s.node.State().View(func(tx *state.Tx) error {
				for _, sys := range unread {
					_, owner[sys] = tx.ParticipantIDBySystem(sys)
				}
				return nil
			})
			if err != nil {
				return "", err
			}
		}
		var owned []string
		for _, sys := range systems {
			if owner[sys] && !slices.Contains(owned, sys) {
				owned = append(owned, sys)
			}
		}
		if len(owned) != 1 {
			return "", fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Patient.identifier",
				"the Patient must carry exactly one identifier in a participant's system; it carries %d", len(owned))
		}
		return owned[0], nil
	}
}

// registration is a decoded, checked Patient ready to propose.
type registration struct {
	patient  fhir.Patient
	record   command.PatientRecord
	resource []byte
	// replacedBy is the record this one is replaced by (Patient.link replaced-by, the PIXm
	// feed's merge), if any.
	replacedBy string
}

func (s *Server) decodePatient(ctx context.Context, rq *request) (registration, error) {
	var reg registration
	if err := fhir.Decode(bytes.NewReader(rq.body), "Patient", &reg.patient); err != nil {
		return reg, err
	}
	rec, err := fhir.RecordOf(reg.patient, s.ownSystem(ctx, rq.principal))
	if err != nil {
		return reg, err
	}
	reg.record = rec
	if reg.replacedBy, err = s.replacedBy(ctx, reg); err != nil {
		return reg, err
	}
	reg.resource, err = fhir.CanonicalPatient(reg.patient)
	return reg, err
}

// register proposes one registration and renders the result.
func (s *Server) register(w http.ResponseWriter, r *http.Request, rq *request, reg registration, expectedVersion uint64) error {
	euid, err := newEUID()
	if err != nil {
		return err
	}
	a, err := s.node.Apply(r.Context(), command.TypePatientRegister, header(rq), &command.PatientRegister{Registrations: []command.PatientRegistration{
		{Record: reg.record, NewEUID: euid, Resource: reg.resource, ExpectedVersion: expectedVersion},
	}})
	if err != nil {
		return err
	}
	out := a.Value.([]raft.Registered)[0]
	if out.Err != nil {
		return out.Err
	}
	var visible bool
	if reg.replacedBy == "" {
		visible = rq.answerGuard().PersonWith(out.Decision.EUID, out.Directives).Disclose
	} else {
		// The answer names the surviving person, whose directives the merge brought together.
		if out.Decision.EUID, err = s.mergeReplaced(r.Context(), rq, reg); err != nil {
			return err
		}
		if visible, err = s.personVisible(r.Context(), rq, out.Decision.EUID); err != nil {
			return err
		}
	}
	p, err := fhir.StoredPatient(out.Patient, &mpi.StoredRecord{EUID: out.Decision.EUID, Record: reg.record.MPIRecord()})
	if err != nil {
		return err
	}
	if visible {
		rq.disclose([]string{out.Decision.EUID}, []string{out.Patient.ID})
		p.Extension = append(p.Extension, mustJSON(fhir.DecisionExtension(out.Decision)))
	} else {
		// The record is the caller's own; the person it joined is not for it to know, not
		// even whether it joined anybody (see raft.Registered.Directives).
		rq.disclose(nil, []string{out.Patient.ID})
		p = fhir.WithoutEUID(p)
	}
	status := http.StatusOK
	if out.Patient.Version == 1 {
		status = http.StatusCreated
		w.Header().Set("Location", fmt.Sprintf("/fhir/Patient/%s/_history/1", out.Patient.ID))
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, out.Patient.Version))
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(a.Index, 10))
	s.logger.Info("patient registered", "patient", out.Patient.ID, "euid", out.Decision.EUID, "outcome", out.Decision.Outcome,
		"score", out.Decision.Score, "by", rq.principal.ID, "request_id", rq.id)
	return writeFHIR(w, status, p)
}

// createPatient is POST /fhir/Patient. The identifier in the caller's system is the
// record's key: posting a known identifier again updates that record (and re-decides its
// link) rather than creating a second one.
func (s *Server) createPatient(w http.ResponseWriter, r *http.Request, rq *request) error {
	reg, err := s.decodePatient(r.Context(), rq)
	if err != nil {
		return err
	}
	return s.register(w, r, rq, reg, 0)
}

// updatePatient is PUT /fhir/Patient/{id}: the id is derived from the record identifier,
// so the body's identifier must lead to the same id.
func (s *Server) updatePatient(w http.ResponseWriter, r *http.Request, rq *request) error {
	reg, err := s.decodePatient(r.Context(), rq)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if reg.patient.ID != id {
		return fhir.Invalid("Patient.id", "Patient.id %q does not match the id in the URL %q", reg.patient.ID, id)
	}
	key := string(mpi.KeyOf(reg.record.System, reg.record.Value))
	if model.PatientID(key) != id {
		return fhir.Invalid("Patient.identifier", "the Patient's identifier in system %s belongs to another record than %s", reg.record.System, id)
	}
	expected, err := ifMatch(r)
	if err != nil {
		return err
	}
	return s.register(w, r, rq, reg, expected)
}

// conditionalUpdatePatient is PUT /fhir/Patient?identifier=system|value (the PIXm feed,
// ITI-104): it creates or updates the record with that identifier.
func (s *Server) conditionalUpdatePatient(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	for name := range q {
		if name != "identifier" {
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "conditional update supports only the identifier parameter, not %q", name)
		}
	}
	system, value, ok := strings.Cut(q.Get("identifier"), "|")
	if !ok || system == "" || value == "" {
		return fhir.Invalid("identifier", "conditional update needs identifier=system|value")
	}
	reg, err := s.decodePatient(r.Context(), rq)
	if err != nil {
		return err
	}
	if reg.record.System != system || reg.record.Value != value {
		return fhir.Invalid("Patient.identifier", "the Patient's identifier %s|%s differs from the condition %s|%s", reg.record.System, reg.record.Value, system, value)
	}
	expected, err := ifMatch(r)
	if err != nil {
		return err
	}
	return s.register(w, r, rq, reg, expected)
}

// replacedBy reads Patient.link: a replaced-by link (the PIXm feed's way to say two records
// of the participant are one patient) names the surviving record, which must be registered
// in the same system. refer and seealso links are kept as sent.
func (s *Server) replacedBy(ctx context.Context, reg registration) (string, error) {
	target := ""
	for i, l := range reg.patient.Link {
		elem := fmt.Sprintf("Patient.link[%d]", i)
		switch l.Type {
		case "seealso", "refer":
			continue
		case "replaced-by":
		case "replaces":
			return "", fhir.Errorf(http.StatusUnprocessableEntity, "not-supported", elem, "send the merge on the record that is replaced (link type replaced-by)")
		default:
			return "", fhir.Invalid(elem+".type", "link type %q must be replaced-by, replaces, refer or seealso", l.Type)
		}
		if target != "" {
			return "", fhir.Invalid(elem, "a record is replaced by one other record")
		}
		if err := s.node.SyncLocal(ctx); err != nil {
			return "", err
		}
		err := s.node.State().View(func(tx *state.Tx) error {
			switch {
			case strings.HasPrefix(l.Other.Reference, "Patient/"):
				key, ok := tx.PatientKeyByID(strings.TrimPrefix(l.Other.Reference, "Patient/"))
				if !ok {
					return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", elem+".other", "%s is not a registered Patient", l.Other.Reference)
				}
				target = key
			case l.Other.Identifier != nil:
				target = string(mpi.KeyOf(l.Other.Identifier.System, l.Other.Identifier.Value))
				if sr, err := tx.MPI().Record(mpi.RecordKey(target)); err != nil {
					return err
				} else if sr == nil {
					return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", elem+".other", "no Patient is registered with identifier %s", target)
				}
			default:
				return fhir.Invalid(elem+".other", "other must reference Patient/{id} or carry the identifier")
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		if sys, _ := mpi.RecordKey(target).Split(); sys != reg.record.System {
			return "", fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", elem+".other", "a record is replaced by a record of the same system (%s), not %s", reg.record.System, sys)
		}
		if target == string(mpi.KeyOf(reg.record.System, reg.record.Value)) {
			return "", fhir.Invalid(elem+".other", "a record cannot be replaced by itself")
		}
	}
	return target, nil
}

// personVisible decides, over the state this node has applied, whether the caller may be
// told of a person.
func (s *Server) personVisible(ctx context.Context, rq *request, euid string) (bool, error) {
	if err := s.node.SyncLocalData(ctx); err != nil {
		return false, err
	}
	var visible bool
	err := s.node.State().View(func(tx *state.Tx) error {
		d, err := rq.answerGuard().Person(guardState{tx}, euid)
		visible = d.Disclose
		return err
	})
	return visible, err
}

// mergeReplaced applies a replaced-by link: the person of the replaced record is merged
// into the person of the surviving one. It returns the surviving person's EUID.
func (s *Server) mergeReplaced(ctx context.Context, rq *request, reg registration) (string, error) {
	if err := s.node.SyncLocal(ctx); err != nil {
		return "", err
	}
	var from, into string
	err := s.node.State().View(func(tx *state.Tx) error {
		a, err := tx.MPI().Record(mpi.KeyOf(reg.record.System, reg.record.Value))
		if err != nil || a == nil {
			return errOr(err, state.ErrNotFound)
		}
		b, err := tx.MPI().Record(mpi.RecordKey(reg.replacedBy))
		if err != nil || b == nil {
			return errOr(err, state.ErrNotFound)
		}
		from, into = a.EUID, b.EUID
		return nil
	})
	if err != nil || from == into {
		return into, err
	}
	_, err = s.node.Apply(ctx, command.TypePersonMerge, header(rq), &command.PersonMerge{From: from, Into: into,
		Reason: fmt.Sprintf("PIXm feed: %s|%s replaced by %s", reg.record.System, reg.record.Value, reg.replacedBy)})
	return into, err
}

// readPatient is GET /fhir/Patient/{id}.
func (s *Server) readPatient(w http.ResponseWriter, r *http.Request, rq *request) error {
	if fhir.IsEUID(r.PathValue("id")) {
		return s.readGoldenPatient(w, r, rq)
	}
	var p fhir.Patient
	err := s.node.State().View(func(tx *state.Tx) error {
		id := r.PathValue("id")
		if key, ok := tx.PatientKeyByID(id); ok {
			if d, err := rq.guard.Record(guardState{tx}, key); err != nil {
				return err
			} else if !d.Disclose {
				return patientNotFound(id)
			}
		}
		var err error
		p, err = loadPatient(tx, rq.guard, id)
		return err
	})
	if err != nil {
		return err
	}
	rq.disclosePatient(p)
	w.Header().Set("ETag", fmt.Sprintf(`W/"%s"`, p.Meta.VersionID))
	return writeFHIR(w, http.StatusOK, p)
}

func loadPatient(tx *state.Tx, g *policy.Guard, id string) (fhir.Patient, error) {
	key, ok := tx.PatientKeyByID(id)
	if !ok {
		return fhir.Patient{}, patientNotFound(id)
	}
	return loadPatientByKey(tx, g, key)
}

// loadPatientByKey loads a registered Patient as the caller of guard g sees it. The caller
// has been let see the record (its own, or one of a person it may see); the EUID
// identifier names the record's person, which it carries only when g discloses that
// person: a participant a patient denied, or anybody after an opt-out, reads its own
// record without learning which person holds it.
func loadPatientByKey(tx *state.Tx, g *policy.Guard, key string) (fhir.Patient, error) {
	meta, ok, err := tx.PatientMeta(key)
	if err != nil {
		return fhir.Patient{}, err
	}
	sr, err := tx.MPI().Record(mpi.RecordKey(key))
	if err != nil {
		return fhir.Patient{}, err
	}
	if !ok || sr == nil {
		return fhir.Patient{}, fmt.Errorf("record %s: %w", key, state.ErrNotFound)
	}
	p, err := fhir.StoredPatient(meta, sr)
	if err != nil {
		return p, err
	}
	d, err := g.Person(guardState{tx}, sr.EUID)
	if err != nil {
		return p, err
	}
	if !d.Disclose {
		p = fhir.WithoutEUID(p)
	}
	return p, nil
}

// readPerson is GET /fhir/Person/{euid}: the enterprise identity with a link to each of
// its source records and the golden view of its demographics.
func (s *Server) readPerson(w http.ResponseWriter, r *http.Request, rq *request) error {
	var person fhir.Person
	err := s.node.State().View(func(tx *state.Tx) error {
		euid := r.PathValue("euid")
		if _, ok, err := tx.MPI().Person(euid); err != nil {
			return err
		} else if ok {
			if d, err := rq.guard.Person(guardState{tx}, euid); err != nil {
				return err
			} else if !d.Disclose {
				return personNotFound(euid)
			}
		}
		var err error
		person, err = loadPerson(tx, euid)
		return err
	})
	if err != nil {
		return err
	}
	rq.disclosePerson(person)
	return writeFHIR(w, http.StatusOK, person)
}

// readGoldenPatient is GET /fhir/Patient/{euid}: the person as a Patient (the golden view
// $match answers), under the same guard as the Person.
func (s *Server) readGoldenPatient(w http.ResponseWriter, r *http.Request, rq *request) error {
	var person fhir.Person
	euid := r.PathValue("id")
	err := s.node.State().View(func(tx *state.Tx) error {
		if _, ok, err := tx.MPI().Person(euid); err != nil {
			return err
		} else if !ok {
			return patientNotFound(euid)
		}
		if d, err := rq.guard.Person(guardState{tx}, euid); err != nil {
			return err
		} else if !d.Disclose {
			return patientNotFound(euid)
		}
		var err error
		person, err = loadPerson(tx, euid)
		return err
	})
	if err != nil {
		return err
	}
	rq.disclosePerson(person)
	return writeFHIR(w, http.StatusOK, fhir.GoldenPatient(person))
}

func loadPerson(tx *state.Tx, euid string) (fhir.Person, error) {
	mp, ok, err := tx.MPI().Person(euid)
	if err != nil {
		return fhir.Person{}, err
	}
	if !ok {
		return fhir.Person{}, personNotFound(euid)
	}
	var records []fhir.PersonRecord
	for _, key := range mp.Records {
		meta, _, err := tx.PatientMeta(string(key))
		if err != nil {
			return fhir.Person{}, err
		}
		sr, err := tx.MPI().Record(key)
		if err != nil {
			return fhir.Person{}, err
		}
		if sr != nil {
			records = append(records, fhir.PersonRecord{Meta: meta, Record: sr.Record})
		}
	}
	return fhir.PersonOf(euid, records), nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only for values built here from known types
	}
	return b
}
