package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Business outcomes of patient registration and match configuration.
var (
	// ErrInvalidRecord: the record lacks a usable identifier.
	ErrInvalidRecord = errors.New("invalid patient record")
	// ErrUnknownSystem: no participant owns the record's identifier system.
	ErrUnknownSystem = errors.New("identifier system belongs to no participant")
	// ErrEUIDInUse: the EUID drawn for a new person already names one (draw again).
	ErrEUIDInUse = errors.New("EUID already in use")
	// ErrStaleConfig: the proposed match configuration is not newer than the current one.
	ErrStaleConfig = errors.New("match configuration is not newer than the current one")
	// ErrInvalidConfig: the proposed match configuration does not validate.
	ErrInvalidConfig = errors.New("invalid match configuration")
)

// Registered is the outcome of one record of a PatientRegister command: the matcher's
// decision and the record's registry entry, or the business error that refused the record
// (it then changed nothing).
type Registered struct {
	Decision mpi.Decision
	Patient  model.PatientMeta
	// Directives are the consent directives anchored to the records of the person the
	// record is in once the whole command is applied. The decision names that person, so
	// the node answering the registrant discloses it only as those directives allow
	// (policy.Decide): a participant a patient denied, or anybody after an opt-out, learns
	// that its own record was registered, not which person it joined.
	Directives []model.Consent
	Err        error
}

// PrepareProposal does, before a command is proposed, the part of applying it that depends
// on the command alone, and puts the result in the command: for a patient registration,
// each record's normalised form and blocking keys (mpi.Prepare), so that the nodes
// applying it, one after another on the same cores of a small cluster, do not each derive
// them again. Whatever bytes the payload held are replaced: an entry only ever carries
// what the proposing node derived from the very record it proposes.
func PrepareProposal(t command.Type, payload command.Payload) {
	prepareProposal(t, payload, nil)
}

// PrepareProposal is the package's PrepareProposal for a node that proposes to this FSM
// itself (the leader): it also remembers each prepared form with its record, so that when
// the entry comes back to be applied here the form is taken as it is, neither decoded
// from the entry nor verified against the record (proposals).
func (f *FSM) PrepareProposal(t command.Type, payload command.Payload) {
	prepareProposal(t, payload, &f.proposals)
}

func prepareProposal(t command.Type, payload command.Payload, remember *proposals) {
	c, ok := payload.(*command.PatientRegister)
	if !ok || t != command.TypePatientRegister {
		return
	}
	for i := range c.Registrations {
		r := &c.Registrations[i]
		rec := r.Record.MPIRecord()
		p := mpi.Prepare(rec)
		r.Prepared, _ = p.AppendBinary(nil) // appending never fails
		if remember != nil {
			remember.put(r.Prepared, rec, &p)
		}
	}
}

// proposals are the prepared forms this node derived for the registrations it proposed,
// by their bytes, until the entries holding them are applied. Applying an entry decodes
// and verifies every record's prepared form (preparedFor), which on the leader repeats
// what it did a moment before: a tenth of applying a registration. A form found here with
// the same record is the one its bytes decode to (the binary form round-trips exactly),
// derived from that record by this very process, so the leader decides exactly as the
// followers that decode and verify the bytes. Proposals that never come back (leadership
// lost, an entry refused) are dropped once maxProposals accumulate.
type proposals struct {
	mu sync.Mutex
	m  map[string]proposed
}

type proposed struct {
	record   mpi.Record
	prepared *mpi.Prepared
}

// maxProposals bounds the prepared forms remembered: several batches of 500 records in
// flight, and far more than any import keeps.
const maxProposals = 1 << 16

func (ps *proposals) put(data []byte, rec mpi.Record, p *mpi.Prepared) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil || len(ps.m) >= maxProposals {
		ps.m = make(map[string]proposed)
	}
	ps.m[string(data)] = proposed{record: rec, prepared: p}
}

// take returns, and forgets, the form this node prepared as data for rec, if any.
func (ps *proposals) take(data []byte, rec mpi.Record) *mpi.Prepared {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	got, ok := ps.m[string(data)]
	if !ok {
		return nil
	}
	delete(ps.m, string(data))
	if !sameRecord(&got.record, &rec) {
		return nil
	}
	return got.prepared
}

// sameRecord reports whether two records are equal field by field.
func sameRecord(a, b *mpi.Record) bool {
	return a.System == b.System && a.Value == b.Value && slices.Equal(a.Given, b.Given) && a.Family == b.Family &&
		a.Suffix == b.Suffix && a.BirthDate == b.BirthDate && a.Sex == b.Sex && slices.Equal(a.AddressLines, b.AddressLines) &&
		a.City == b.City && a.State == b.State && a.PostalCode == b.PostalCode && slices.Equal(a.Phones, b.Phones) &&
		a.Email == b.Email && a.SSN == b.SSN
}

// preparedFor decodes a registration's prepared record and verifies it against the record
// (mpi.Prepared.Verify), unless this node proposed it (proposals). It returns nil for an
// entry without one (entries of earlier releases: the matcher then prepares the record
// itself) and an error for bytes that do not decode or do not follow from the record,
// which refuses the record before anything is written for it; every node holds the same
// bytes and so refuses alike.
func (f *FSM) preparedFor(rec mpi.Record, data []byte) (*mpi.Prepared, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if p := f.proposals.take(data, rec); p != nil {
		return p, nil
	}
	var p mpi.Prepared
	if err := p.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	if err := p.Verify(rec); err != nil {
		return nil, err
	}
	return &p, nil
}

// applyPatientRegister registers each record in order through the matcher, against the
// replicated index, so that every node links alike and two hospitals registering one
// person at once cannot both create a new person. Every check that can refuse a record
// runs before the matcher writes anything for it.
func (f *FSM) applyPatientRegister(tx *state.Tx, h command.Header, c command.PatientRegister) (any, error) {
	store := tx.MPI()
	f.openRecords += len(c.Registrations)
	out := make([]Registered, len(c.Registrations))
	ours := &DecidedEntry{Decider: f.decider, Decisions: make([]*mpi.Decision, len(c.Registrations))}
	if l := f.applying; l != nil {
		ours.Index, ours.Term, ours.Sum = l.Index, l.Term, entrySum(l.Data)
	}
	given := f.decisionsFor(len(c.Registrations), ours.Sum)
	for i, r := range c.Registrations {
		if h.Limits >= 1 {
			if err := r.Check("", h.Time); err != nil {
				// The record's key may be what is too long: name the field, not the record.
				out[i].Err = business("register record %d: %w: %w", i, ErrInvalidRecord, err)
				continue
			}
		}
		rec := r.Record.MPIRecord()
		if err := rec.Validate(); err != nil {
			out[i].Err = business("register %s: %w: %v", rec.Key(), ErrInvalidRecord, err)
			continue
		}
		key := rec.Key()
		prep, err := f.preparedFor(rec, r.Prepared)
		if err != nil {
			out[i].Err = business("register %s: %w: prepared form: %v", key, ErrInvalidRecord, err)
			continue
		}
		if err := model.ValidateID("EUID", r.NewEUID); err != nil {
			out[i].Err = business("register %s: %w: %v", key, ErrInvalidRecord, err)
			continue
		}
		owner, ok := tx.ParticipantIDBySystem(rec.System)
		if !ok {
			out[i].Err = business("register %s: %w (%s)", key, ErrUnknownSystem, rec.System)
			continue
		}
		if r.ExpectedVersion != 0 {
			meta, ok, err := tx.PatientMeta(string(key))
			if err != nil {
				return nil, err
			}
			if !ok || meta.Version != r.ExpectedVersion {
				out[i].Err = business("register %s: %w: expected version %d, current %d", key, ErrVersionConflict, r.ExpectedVersion, meta.Version)
				continue
			}
		}
		if _, exists, err := store.Person(r.NewEUID); err != nil {
			return nil, err
		} else if exists {
			out[i].Err = business("register %s: %w: %s", key, ErrEUIDInUse, r.NewEUID)
			continue
		}
		// What the search index holds for the record's old version (nil when new): a decoded
		// copy, so Register replacing the record leaves it as it is.
		oldNorm, _ := tx.IndexedNorm(key)
		ruled, pin, err := storeFor(tx, key)
		if err != nil {
			return nil, err
		}
		d, err := f.register(ruled, rec, prep, r.NewEUID, given, i)
		if err != nil {
			return nil, err // storage failure: the node stops and replays
		}
		ours.Decisions[i] = keptDecision(&d) // as the matcher decided, before a pin moves the record
		if pin != "" && d.EUID != pin {
			// A steward put this record on pin: it stays there.
			if _, err := mpi.Relink(store, key, pin, false); err != nil {
				return nil, err
			}
			d.EUID, d.Outcome, d.Candidates = pin, mpi.OutcomeLinked, nil
		}
		var newNorm *mpi.Normalized
		if prep != nil && prep.Norm.Version == mpi.NormVersion {
			// What the matcher stored: it prepares the record again only without a form of
			// this release's rules (which preparedFor refuses anyway).
			newNorm = &prep.Norm
		}
		meta, err := registerPatient(tx, h, owner, oldNorm, newNorm, r, d)
		if err != nil {
			return nil, err
		}
		out[i].Decision, out[i].Patient = d, meta
	}
	if err := attachDirectives(tx, out); err != nil {
		return nil, err
	}
	if ours.Index != 0 {
		f.decided.put(ours)
	}
	return out, nil
}

// register registers one record through the matcher: with the decision another node made
// for it (given[i], see DecisionSource) when there is one and it fits this index, by
// matching otherwise.
func (f *FSM) register(s mpi.Store, rec mpi.Record, prep *mpi.Prepared, newEUID string, given []*mpi.Decision, i int) (mpi.Decision, error) {
	if given != nil && given[i] != nil {
		d, err := f.matcher.RegisterDecided(s, rec, prep, newEUID, *given[i])
		if err == nil {
			f.decisionsTaken.Add(1)
			return d, nil
		}
		if !errors.Is(err, mpi.ErrDecisionMismatch) {
			return mpi.Decision{}, err
		}
		// Nothing was written: match as if there had been no decision.
		// (The error names the record: not for the log.)
		f.logger.Warn("a decision from another node does not fit this index; matching the record here", "index", f.applying.Index, "registration", i)
	}
	f.decisionsMatched.Add(1)
	return f.matcher.RegisterPrepared(s, rec, prep, newEUID)
}

// attachDirectives fills each registered record's Directives from the state after the
// whole command (a later record of the same command may join the same person).
func attachDirectives(tx *state.Tx, out []Registered) error {
	if !tx.AnyConsent() {
		return nil
	}
	store := tx.MPI()
	for i := range out {
		if out[i].Err != nil {
			continue
		}
		p, ok, err := store.Person(out[i].Decision.EUID)
		if err != nil {
			return fmt.Errorf("person %s of a registration: %w", out[i].Decision.EUID, err)
		}
		if !ok {
			continue
		}
		records := make([]string, len(p.Records))
		for k, rk := range p.Records {
			records[k] = string(rk)
		}
		if out[i].Directives, err = tx.ConsentsOfRecords(records); err != nil {
			return fmt.Errorf("consent of person %s: %w", out[i].Decision.EUID, err)
		}
	}
	return nil
}

// registerPatient keeps the registry around the matcher in step with a decision: the
// record's FHIR id, version and resource, its search entries, and the link history of the
// persons it joined or left.
//
// newNorm is the record's normalised form as the matcher stored it, when the caller has it
// (the command's prepared form); nil reads it back from the match index.
func registerPatient(tx *state.Tx, h command.Header, owner string, oldNorm, newNorm *mpi.Normalized, r command.PatientRegistration, d mpi.Decision) (model.PatientMeta, error) {
	key := string(d.Record)
	norm := newNorm
	if norm == nil {
		// Decoding the whole record from the transaction instead cost a layer lookup and a
		// copy of every field, for every registration.
		var ok bool
		if norm, ok = tx.IndexedNorm(d.Record); !ok {
			return model.PatientMeta{}, fmt.Errorf("read back %s: %w", key, state.ErrNotFound)
		}
	}
	if err := tx.IndexPatient(d.Record, oldNorm, norm); err != nil {
		return model.PatientMeta{}, err
	}
	// A record the match index did not hold (oldNorm nil) has no registry entry either: the
	// entry is written only here, after the matcher stored the record, and records are
	// never taken out of the index. Not looking for one saves a read of a randomly placed
	// key through the layers and the state file for each new record of a bulk load.
	var meta model.PatientMeta
	existed := false
	if oldNorm != nil {
		var err error
		if meta, existed, err = tx.PatientMeta(key); err != nil {
			return meta, err
		}
	}
	if !existed {
		meta = model.PatientMeta{Key: key, ID: model.PatientID(key), Created: h.Time}
	}
	meta.Owner, meta.Version, meta.Updated, meta.Resource = owner, meta.Version+1, h.Time, r.Resource
	if err := tx.PutPatientMeta(meta); err != nil {
		return meta, err
	}
	if d.Updated && d.PreviousEUID != "" && d.PreviousEUID != d.EUID {
		if err := tx.AppendLinkEvent(model.LinkEvent{Time: h.Time, Action: "unlinked", EUID: d.PreviousEUID, Record: key, Other: d.EUID,
			Actor: h.Actor, Reason: "re-registration matched the record elsewhere"}); err != nil {
			return meta, err
		}
	}
	return meta, tx.AppendLinkEvent(model.LinkEvent{Time: h.Time, Action: "registered", EUID: d.EUID, Record: key,
		Outcome: string(d.Outcome), Score: d.Score, Actor: h.Actor, Reason: "automatic match"})
}

func applyMatchConfigSet(tx *state.Tx, h command.Header, c command.MatchConfigSet) (any, error) {
	var cfg mpi.Config
	if err := json.Unmarshal(c.Config, &cfg); err != nil {
		return nil, business("%w: %v", ErrInvalidConfig, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, business("%w: %v", ErrInvalidConfig, err)
	}
	store := tx.MPI()
	current, ok, err := store.Config()
	if err != nil {
		return nil, err
	}
	if !ok {
		current = mpi.DefaultConfig()
	}
	if cfg.Version <= current.Version {
		return nil, business("%w: proposed version %d, current %d", ErrStaleConfig, cfg.Version, current.Version)
	}
	if err := store.PutConfig(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}
