package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// poisonLog builds a log in which ordinary commands alternate with entries no node can
// apply: undecodable bodies, and commands stamped with the rules of before the input limits
// (Header.Limits 0) whose 40 KB names and identifiers reach bbolt's key limit, as an old
// client or a forged entry could have committed them. It returns the log and the indexes of
// the poison entries.
func poisonLog(t *testing.T, seed uint64, n int) ([]*hraft.Log, map[uint64]bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var logs []*hraft.Log
	poison := map[uint64]bool{}
	add := func(typ command.Type, limits uint16, payload command.Payload) {
		i := len(logs)
		h := command.Header{Time: base.Add(time.Duration(i) * time.Second), Actor: "admin", Limits: limits}
		data, err := command.Encode(typ, h, payload)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &hraft.Log{Index: uint64(i + 1), Term: 1, Type: hraft.LogCommand, Data: data})
	}
	huge := strings.Repeat("x", 40<<10)
	for k := range 3 {
		add(command.TypeParticipantAdd, model.LimitsVersion, &command.ParticipantAdd{Participant: testParticipant(k)})
	}
	for len(logs) < n {
		k := rng.IntN(3)
		system := testParticipant(k).IdentifierSystem
		switch rng.IntN(6) {
		case 0, 1:
			rec := command.PatientRecord{System: system, Value: fmt.Sprintf("MRN-%d", rng.IntN(50)), Family: fmt.Sprintf("Family%d", rng.IntN(20)),
				Given: []string{"Ann"}, BirthDate: "1970-01-02"}
			add(command.TypePatientRegister, model.LimitsVersion, &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: rec, NewEUID: fmt.Sprintf("E%d", len(logs))}}})
		case 2:
			add(command.TypeParticipantRotateToken, model.LimitsVersion, &command.ParticipantRotateToken{ID: fmt.Sprintf("p%d", k), TokenHash: hashOf(fmt.Sprint(rng.Int()))})
		case 3:
			// A 40 KB identifier under the old rules. It overflowed bbolt's key limit
			// while records were stored by key; stored by slot, it is applied alike on
			// every node (a unique family name keeps it out of the review queue, which is
			// keyed by record). A 40 KB name no longer fails either: the blocking and
			// search indexes are kept in memory.
			rec := command.PatientRecord{System: system, Value: fmt.Sprintf("MRN-P%d-%s", len(logs), huge), Family: fmt.Sprintf("Zed%d", len(logs)), Given: []string{"Ann"}}
			add(command.TypePatientRegister, 0, &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: rec, NewEUID: fmt.Sprintf("E%d", len(logs))}}})
		case 4:
			// A 40 KB participant id in an audit entry: the audit index key overflows.
			add(command.TypeAuditAppend, 0, &command.AuditAppend{Entries: []model.AuditEntry{{ID: fmt.Sprintf("a%d", len(logs)), Participant: huge, Action: "x"}}})
			poison[uint64(len(logs))] = true
		case 5:
			// A known type whose body does not decode.
			logs = append(logs, &hraft.Log{Index: uint64(len(logs) + 1), Term: 1, Type: hraft.LogCommand, Data: []byte{byte(command.TypeParticipantAdd), command.FormatMsgpack, 0x81, 0xc1}})
			poison[uint64(len(logs))] = true
		}
	}
	return logs, poison
}

// TestPoisonEntriesAreSkippedAlikeOnEveryNode applies a log with poison entries to fresh
// FSMs entry by entry, in random batches and in one batch (an entry then fails in the middle
// of a transaction holding many others): none stops, each poison entry is answered with
// ErrEntryFailed and recorded, every other entry is applied, and the states are identical.
func TestPoisonEntriesAreSkippedAlikeOnEveryNode(t *testing.T) {
	logs, poison := poisonLog(t, 5, 400)
	if len(poison) < 20 {
		t.Fatalf("only %d poison entries in the log", len(poison))
	}
	rng := rand.New(rand.NewPCG(5, 7))
	var firstHash string
	for _, run := range []struct {
		name  string
		sizes func() int
	}{{"single", func() int { return 1 }}, {"random", func() int { return 1 + rng.IntN(64) }}, {"onebulk", func() int { return len(logs) }}} {
		f := newFSM(t)
		results := applyInBatches(f, logs, run.sizes)
		for i, r := range results {
			index := uint64(i + 1)
			err := r.(Response).Err
			if poison[index] != errors.Is(err, ErrEntryFailed) {
				t.Fatalf("%s: entry %d (poison %v) answered %v", run.name, index, poison[index], err)
			}
			if poison[index] && strings.Contains(err.Error(), "xxxx") {
				t.Fatalf("%s: the failure of entry %d repeats the entry's contents: %.200s", run.name, index, err)
			}
		}
		var failed []state.FailedEntry
		if err := f.store.View(func(tx *state.Tx) (err error) { failed, err = tx.FailedEntries(); return err }); err != nil {
			t.Fatal(err)
		}
		if len(failed) != len(poison) {
			t.Fatalf("%s: %d entries recorded as failed, want %d", run.name, len(failed), len(poison))
		}
		for _, fe := range failed {
			if !poison[fe.Index] || fe.Reason == "" || strings.Contains(fe.Reason, "xxxx") {
				t.Fatalf("%s: recorded failure %+v", run.name, fe)
			}
		}
		d, err := f.store.Hash()
		if err != nil || d.Index != uint64(len(logs)) {
			t.Fatalf("%s: hash at %d (%v)", run.name, d.Index, err)
		}
		checkIndexes(t, f)
		if firstHash == "" {
			firstHash = d.Hash
		} else if d.Hash != firstHash {
			t.Fatalf("%s: state hash %s differs from the first run's %s", run.name, d.Hash, firstHash)
		}
	}
}

// TestFailedEntryKeepsTheOthersOfItsTransaction checks the rollback: the entries applied into
// the same open transaction before the poison one survive it, and the poison one leaves
// nothing behind (its participant add ran before its panic).
func TestFailedEntryKeepsTheOthersOfItsTransaction(t *testing.T) {
	f := newFSM(t)
	const panicking = command.Type(0x70)
	f.handlers[panicking] = typed(func(tx *state.Tx, h command.Header, c command.ParticipantAdd) (any, error) {
		if err := tx.PutParticipant(c.Participant); err != nil {
			return nil, err
		}
		var m map[string]int
		m["boom"]++ // a nil map: every node's handler panics here alike
		return nil, nil
	})
	w := &logWriter{t: t}
	good := w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(1)})
	bad := w.entry(panicking, &command.ParticipantAdd{Participant: testParticipant(2)})
	after := w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(3)})
	results := f.ApplyBatch([]*hraft.Log{good, bad, after})
	f.commitOpen()
	if err := results[1].(Response).Err; !errors.Is(err, ErrEntryFailed) || !strings.Contains(err.Error(), "nil map") {
		t.Fatalf("panicking entry answered %v", err)
	}
	err := f.store.View(func(tx *state.Tx) error {
		for id, want := range map[string]bool{"p1": true, "p2": false, "p3": true} {
			if tx.HasParticipant(id) != want {
				t.Errorf("participant %s present: %v, want %v", id, !want, want)
			}
		}
		if _, ok := tx.ParticipantIDBySystem(testParticipant(2).IdentifierSystem); ok {
			t.Error("the rolled-back participant's system is still indexed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.AppliedIndex() != 3 || f.FailedEntries() != 1 {
		t.Fatalf("applied %d, failed %d; want 3 and 1", f.AppliedIndex(), f.FailedEntries())
	}
}

// TestLimitsAreBusinessErrors checks the FSM's own check of the input limits: a command
// stamped with the current rules whose fields exceed them is refused as a business error
// naming the field, changes nothing and is not a failed entry.
func TestLimitsAreBusinessErrors(t *testing.T) {
	f := newFSM(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	apply := stampedApplier(t, f, at)
	p := testParticipant(1)
	if r := apply(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p}); r.Err != nil {
		t.Fatal(r.Err)
	}
	before, _ := f.store.Hash()
	huge := strings.Repeat("é", 40<<10)
	register := func(rec command.PatientRecord) error {
		rec.System = p.IdentifierSystem
		if rec.Value == "" {
			rec.Value = "MRN-1"
		}
		r := apply(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: rec, NewEUID: "E1"}}})
		if r.Err != nil {
			return r.Err
		}
		return r.Value.([]Registered)[0].Err
	}
	cases := map[string]error{
		"family":               register(command.PatientRecord{Family: huge}),
		"given[0]":             register(command.PatientRecord{Given: []string{huge}}),
		"value":                register(command.PatientRecord{Value: strings.Repeat("9", 20<<10)}),
		"city":                 register(command.PatientRecord{City: huge}),
		"email":                register(command.PatientRecord{Email: huge}),
		"family (NUL)":         register(command.PatientRecord{Family: "O\x00Brien"}),
		"family (bidi)":        register(command.PatientRecord{Family: "abc\u202edcb"}),
		"birth_date (future)":  register(command.PatientRecord{BirthDate: "2026-03-05"}),
		"birth_date (year 0)":  register(command.PatientRecord{BirthDate: "0000-01-01"}),
		"birth_date (9999)":    register(command.PatientRecord{BirthDate: "9999-12-31"}),
		"audit participant":    apply(command.TypeAuditAppend, &command.AuditAppend{Entries: []model.AuditEntry{{ID: "a1", Participant: huge}}}).Err,
		"audit on_behalf_of":   apply(command.TypeAuditAppend, &command.AuditAppend{Entries: []model.AuditEntry{{ID: "a2", OnBehalfOf: huge}}}).Err,
		"consent records":      apply(command.TypeConsentSet, &command.ConsentSet{Create: true, Consent: model.Consent{ID: "c1", Status: "active", OptOut: true, Records: []string{p.IdentifierSystem + "|" + huge}}}).Err,
		"steward reason":       apply(command.TypeRecordUnlink, &command.RecordUnlink{Record: p.IdentifierSystem + "|MRN-1", NewEUID: "E2", Reason: huge}).Err,
		"participant name":     apply(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: func() model.Participant { q := testParticipant(2); q.Name = huge; return q }()}).Err,
		"participant system |": apply(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: func() model.Participant { q := testParticipant(3); q.IdentifierSystem = "urn:oid:1|2"; return q }()}).Err,
		"node address":         apply(command.TypeNodeRegister, &command.NodeRegister{Node: model.Node{ID: "n9", RaftAddr: huge}}).Err,
		"document master id": func() error {
			doc, _ := json.Marshal(search.Document{ID: "d1", Status: search.StatusCurrent, PatientRecord: p.IdentifierSystem + "|MRN-1", Holder: p.ID,
				MasterIdentifier: search.Identifier{System: "urn:ietf:rfc:3986", Value: strings.Repeat("1", 40<<10)}})
			r := apply(command.TypeDocumentRegister, &command.DocumentRegister{Documents: []command.DocumentRegistration{{Document: doc}}})
			if r.Err != nil {
				return r.Err
			}
			return r.Value.([]DocumentRegistered)[0].Err
		}(),
	}
	for name, err := range cases {
		if !errors.Is(err, model.ErrInvalid) || !isBusiness(err) {
			t.Errorf("%s: err = %v, want a business error wrapping model.ErrInvalid", name, err)
			continue
		}
		if strings.Contains(err.Error(), "éé") || strings.Contains(err.Error(), "9999999") || len(err.Error()) > 500 {
			t.Errorf("%s: the error repeats the value: %.300s", name, err)
		}
	}
	after, _ := f.store.Hash()
	if before.Hash != after.Hash {
		t.Fatal("refused commands changed the state")
	}
	if f.FailedEntries() != 0 {
		t.Fatalf("%d entries recorded as failed; limits are business errors", f.FailedEntries())
	}
}

// stampedApplier applies commands one entry at a time, each stamped at at with the current
// input limits (as a leader of this release stamps them), and commits each.
func stampedApplier(t *testing.T, f *FSM, at time.Time) func(command.Type, command.Payload) Response {
	t.Helper()
	index := uint64(0)
	return func(typ command.Type, payload command.Payload) Response {
		index++
		data, err := command.Encode(typ, command.Header{Time: at, Limits: model.LimitsVersion}, payload)
		if err != nil {
			t.Fatal(err)
		}
		r := f.Apply(&hraft.Log{Index: index, Term: 1, Type: hraft.LogCommand, Data: data}).(Response)
		f.commitOpen()
		return r
	}
}
