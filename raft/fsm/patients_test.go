package fsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/mpi/eval"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// logWriter builds consecutive log entries for one FSM.
type logWriter struct {
	t     *testing.T
	index uint64
}

func (w *logWriter) entry(typ command.Type, payload command.Payload) *hraft.Log {
	w.index++
	data, err := command.Encode(typ, command.Header{Time: time.Unix(int64(w.index), 0).UTC()}, payload)
	if err != nil {
		w.t.Fatal(err)
	}
	return &hraft.Log{Index: w.index, Term: 1, Type: hraft.LogCommand, Data: data}
}

func commandRecord(r mpi.Record) command.PatientRecord {
	return command.PatientRecord{System: r.System, Value: r.Value, Given: r.Given, Family: r.Family, Suffix: r.Suffix,
		BirthDate: r.BirthDate, Sex: r.Sex, AddressLines: r.AddressLines, City: r.City, State: r.State,
		PostalCode: r.PostalCode, Phones: r.Phones, Email: r.Email, SSN: r.SSN}
}

// TestRegistrationThroughFSMMatchesEval registers the labelled synthetic sample through
// the FSM (log entries, bbolt state, batches of varying size) and through the evaluation
// path (the in-memory index, as `rls mpi eval` does), in the same order with the same
// EUIDs: every decision must be identical, and so must the evaluation's pair counts.
func TestRegistrationThroughFSMMatchesEval(t *testing.T) {
	path := testkit.Testdata(t, "synthetic", "sample.csv")
	file, err := dataset.Load(path, dataset.CSV)
	if err != nil {
		t.Fatal(err)
	}
	// A small transaction limit commits in the middle of raft batches, as a bulk import
	// does, on the state machine's goroutine.
	f := newFSMB(t, WithMaxPendingRecords(16))
	w := &logWriter{t: t}
	var systems []string
	for _, row := range file.Rows {
		if !slices.Contains(systems, row.Record.System) {
			systems = append(systems, row.Record.System)
		}
	}
	var setup []*hraft.Log
	for i, sys := range systems {
		p := testParticipant(100 + i)
		p.IdentifierSystem = sys
		setup = append(setup, w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p}))
	}
	f.ApplyBatch(setup)

	// Through the FSM, in batches of 1 to 7 records per command and 1 to 5 commands per
	// raft batch, as bulk import and concurrent API calls would produce them.
	var fsmDecisions []mpi.Decision
	var pending []*hraft.Log
	var counts []int
	for i := 0; i < len(file.Rows); {
		n := min(1+i%7, len(file.Rows)-i)
		var regs []command.PatientRegistration
		for j := i; j < i+n; j++ {
			regs = append(regs, command.PatientRegistration{Record: commandRecord(file.Rows[j].Record), NewEUID: fmt.Sprintf("E%09d", j+1)})
		}
		cmd := &command.PatientRegister{Registrations: regs}
		if len(counts)%2 == 0 {
			// Half the commands carry their records prepared, as the leader proposes them;
			// the others are prepared by the FSM, as entries of earlier releases are.
			PrepareProposal(command.TypePatientRegister, cmd)
		}
		pending = append(pending, w.entry(command.TypePatientRegister, cmd))
		counts = append(counts, n)
		i += n
		if len(pending) == 1+len(counts)%5 || i == len(file.Rows) {
			for k, res := range f.ApplyBatch(pending) {
				outs := res.(Response).Value.([]Registered)
				if len(outs) != counts[k] {
					t.Fatalf("%d outcomes for %d records", len(outs), counts[k])
				}
				for _, o := range outs {
					if o.Err != nil {
						t.Fatalf("registration refused: %v", o.Err)
					}
					fsmDecisions = append(fsmDecisions, o.Decision)
				}
			}
			pending, counts = nil, nil
		}
	}

	// Through the in-memory index, exactly as eval registers.
	mem := mpi.NewMemStore()
	m := mpi.NewMatcher()
	for i, row := range file.Rows {
		d, err := m.Register(mem, row.Record, fmt.Sprintf("E%09d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, fsmDecisions[i]) {
			t.Fatalf("record %d (%s): FSM decided %+v, eval path %+v", i, d.Record, fsmDecisions[i], d)
		}
	}

	// The persons the FSM formed give the same pair counts as `rls mpi eval`.
	rep, err := eval.Run(context.Background(), eval.Options{Files: []string{path}, Format: "csv"})
	if err != nil {
		t.Fatal(err)
	}
	f.commitOpen()
	var predicted int64
	reviews := 0
	err = f.store.View(func(tx *state.Tx) error {
		return tx.ForEachPerson(func(p mpi.Person) error {
			n := int64(len(p.Records))
			predicted += n * (n - 1) / 2
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.store.View(func(tx *state.Tx) error { reviews = tx.ReviewCount(); return nil })
	checkIndexes(t, f)
	if predicted != rep.PredictedPairs || reviews != rep.ReviewItems {
		t.Fatalf("FSM formed %d linked pairs and %d review items; eval reports %d and %d", predicted, reviews, rep.PredictedPairs, rep.ReviewItems)
	}
	t.Logf("%d records: %d linked pairs, %d review items, identical decisions on both paths", len(file.Rows), predicted, reviews)
}

func TestPatientRegisterRefusalsChangeNothing(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	p := withParticipant(f, w)
	good := command.PatientRecord{System: p.IdentifierSystem, Value: "MRN1", Given: []string{"Ann"}, Family: "Lee", BirthDate: "1980-02-03"}
	res := f.ApplyBatch([]*hraft.Log{w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: good, NewEUID: "E1"}}})})
	if outs := res[0].(Response).Value.([]Registered); outs[0].Err != nil || outs[0].Decision.EUID != "E1" {
		t.Fatalf("first registration: %+v", outs)
	}
	f.commitOpen()
	before, _ := f.store.Hash()

	unknown := good
	unknown.System = "urn:oid:9.9.9"
	noValue := good
	noValue.Value = ""
	other := good
	other.Value = "MRN2"
	cases := []struct {
		reg  command.PatientRegistration
		want error
	}{
		{command.PatientRegistration{Record: unknown, NewEUID: "E2"}, ErrUnknownSystem},
		{command.PatientRegistration{Record: noValue, NewEUID: "E3"}, ErrInvalidRecord},
		{command.PatientRegistration{Record: other, NewEUID: "E1"}, ErrEUIDInUse},
		{command.PatientRegistration{Record: other, NewEUID: "bad euid"}, ErrInvalidRecord},
	}
	var regs []command.PatientRegistration
	for _, c := range cases {
		regs = append(regs, c.reg)
	}
	res = f.ApplyBatch([]*hraft.Log{w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: regs})})
	outs := res[0].(Response).Value.([]Registered)
	for i, c := range cases {
		if !errors.Is(outs[i].Err, c.want) {
			t.Errorf("case %d: err = %v, want %v", i, outs[i].Err, c.want)
		}
	}
	f.commitOpen()
	if after, _ := f.store.Hash(); after.Hash != before.Hash {
		t.Fatal("refused registrations changed the state")
	}
}

func TestMatchConfigMustBeNewerAndValid(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	set := func(cfg []byte) error {
		r := f.Apply(w.entry(command.TypeMatchConfigSet, &command.MatchConfigSet{Config: cfg})).(Response)
		return r.Err
	}
	cfg := mpi.DefaultConfig()
	stale, _ := jsonOf(cfg)
	if err := set(stale); !errors.Is(err, ErrStaleConfig) {
		t.Fatalf("same version: %v", err)
	}
	if err := set([]byte(`{"version": 99}`)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("incomplete config: %v", err)
	}
	cfg.Version++
	cfg.Upper = 15
	newer, _ := jsonOf(cfg)
	if err := set(newer); err != nil {
		t.Fatalf("newer config: %v", err)
	}
	f.commitOpen()
	f.store.View(func(tx *state.Tx) error {
		got, ok, err := tx.MPI().Config()
		if err != nil || !ok || got.Upper != 15 || got.Version != cfg.Version {
			t.Fatalf("stored config %+v %v %v", got, ok, err)
		}
		return nil
	})
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

// withParticipant applies the participant-add entry of testParticipant(1) to f and returns
// the participant.
func withParticipant(f *FSM, w *logWriter) model.Participant {
	p := testParticipant(1)
	f.ApplyBatch([]*hraft.Log{w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p})})
	return p
}

// registerAll applies one patient-register entry of regs to f and fails the test on any
// refused registration.
func registerAll(t *testing.T, f *FSM, w *logWriter, regs ...command.PatientRegistration) []Registered {
	t.Helper()
	res := f.ApplyBatch([]*hraft.Log{w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: regs})})
	outs := res[0].(Response).Value.([]Registered)
	for i, out := range outs {
		if out.Err != nil {
			t.Fatalf("registration %d: %v", i, out.Err)
		}
	}
	return outs
}

// TestReRegistrationKeepsTheRegistryEntry registers a record and then the same record
// again, changed, in a later entry and twice more within one entry: the registry entry
// keeps its FHIR id and creation time, its version counts every registration, and the id
// still finds the record. A new record's entry is written without looking for an old one
// (none can exist), so this is what tells that shortcut from a lost entry.
func TestReRegistrationKeepsTheRegistryEntry(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	p := withParticipant(f, w)
	rec := command.PatientRecord{System: p.IdentifierSystem, Value: "MRN7", Given: []string{"Ann"}, Family: "Lee", BirthDate: "1980-02-03"}
	register := func(regs ...command.PatientRegistration) []Registered { return registerAll(t, f, w, regs...) }
	first := register(command.PatientRegistration{Record: rec, NewEUID: "E1"})[0].Patient
	if first.Version != 1 || first.ID != model.PatientID(first.Key) {
		t.Fatalf("first registration: %+v", first)
	}
	moved := rec
	moved.City = "Hartford"
	renamed := moved
	renamed.Family = "Lee-Park"
	outs := register(command.PatientRegistration{Record: moved, NewEUID: "E2"}, command.PatientRegistration{Record: renamed, NewEUID: "E3"})
	last := outs[1].Patient
	if last.Version != 3 || last.ID != first.ID || !last.Created.Equal(first.Created) || !last.Updated.After(first.Created) {
		t.Fatalf("after two re-registrations: %+v (first %+v)", last, first)
	}
	f.commitOpen()
	if err := f.store.View(func(tx *state.Tx) error {
		key, ok := tx.PatientKeyByID(first.ID)
		if !ok || key != first.Key {
			t.Errorf("id %s finds %q, %v", first.ID, key, ok)
		}
		meta, ok, err := tx.PatientMeta(first.Key)
		if err != nil || !ok || meta.Version != 3 || !meta.Created.Equal(first.Created) {
			t.Errorf("stored entry %+v, %v, %v", meta, ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPatientIDsAreFoundAsTheTransactionHoldsThem: a FHIR Patient id is found through the
// in-memory search index, which Apply changes before the entry is committed. A reader
// finds the record of an id only once its transaction holds the record, never an id that
// is not the record's own, and a store opened again (the index built from the records)
// finds every id.
func TestPatientIDsAreFoundAsTheTransactionHoldsThem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f, st := openFSMAt(t, path)
	w := &logWriter{t: t}
	p := withParticipant(f, w)
	register := func(value, euid string) model.PatientMeta {
		t.Helper()
		rec := command.PatientRecord{System: p.IdentifierSystem, Value: value, Given: []string{"Ann"}, Family: "Lee" + value, BirthDate: "1980-02-03"}
		return registerAll(t, f, w, command.PatientRegistration{Record: rec, NewEUID: euid})[0].Patient
	}
	find := func(s *state.Store, id string) (string, bool) {
		t.Helper()
		var key string
		var ok bool
		if err := s.View(func(tx *state.Tx) error { key, ok = tx.PatientKeyByID(id); return nil }); err != nil {
			t.Fatal(err)
		}
		return key, ok
	}
	first := register("MRN1", "E1")
	f.commitOpen()
	second := register("MRN2", "E2") // applied, not yet committed
	if key, ok := find(st, first.ID); !ok || key != first.Key {
		t.Errorf("committed record: id finds %q, %v", key, ok)
	}
	if key, ok := find(st, second.ID); ok {
		t.Errorf("a reader of the committed state found %q, applied after it", key)
	}
	f.commitOpen()
	if key, ok := find(st, second.ID); !ok || key != second.Key {
		t.Errorf("after the commit: id finds %q, %v", key, ok)
	}
	for _, id := range []string{"", "0", strings.Repeat("0", 32), first.ID[:16], first.ID + "0", strings.ToUpper(first.ID)} {
		if key, ok := find(st, id); ok {
			t.Errorf("id %q finds %q", id, key)
		}
	}
	f.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, m := range []model.PatientMeta{first, second} {
		if key, ok := find(st, m.ID); !ok || key != m.Key {
			t.Errorf("opened again: id %s finds %q, %v", m.ID, key, ok)
		}
	}
}
