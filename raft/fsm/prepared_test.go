package fsm

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/state"
)

// registrationLog returns the entries that register the synthetic sample (its
// participants first, then commands of 1 to 9 records), with each record prepared as the
// leader proposes it or not (as entries of earlier releases are).
func registrationLog(t *testing.T, prepare bool) []*hraft.Log {
	t.Helper()
	if !prepare {
		return registrationLogPreparedBy(t, nil)
	}
	return registrationLogPreparedBy(t, PrepareProposal)
}

// registrationLogPreparedBy is registrationLog with each command prepared by prepare (nil:
// not prepared).
func registrationLogPreparedBy(t *testing.T, prepare func(command.Type, command.Payload)) []*hraft.Log {
	t.Helper()
	file, err := dataset.Load(testkit.Testdata(t, "synthetic", "sample.csv"), dataset.CSV)
	if err != nil {
		t.Fatal(err)
	}
	w := &logWriter{t: t}
	var logs []*hraft.Log
	var systems []string
	for _, row := range file.Rows {
		if !slices.Contains(systems, row.Record.System) {
			systems = append(systems, row.Record.System)
			p := testParticipant(100 + len(systems))
			p.IdentifierSystem = row.Record.System
			logs = append(logs, w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p}))
		}
	}
	for i := 0; i < len(file.Rows); {
		n := min(1+i%9, len(file.Rows)-i)
		cmd := &command.PatientRegister{}
		for j := i; j < i+n; j++ {
			cmd.Registrations = append(cmd.Registrations, command.PatientRegistration{
				Record: commandRecord(file.Rows[j].Record), NewEUID: fmt.Sprintf("E%09d", j+1)})
		}
		if prepare != nil {
			prepare(command.TypePatientRegister, cmd)
		}
		logs = append(logs, w.entry(command.TypePatientRegister, cmd))
		i += n
	}
	return logs
}

// TestPreparedEntriesBuildOneStateEverywhere: the same registrations applied with the
// records prepared by the proposer and without (each node preparing them itself) leave the
// same state file and the same in-memory indexes; so does a node that restores the state
// from a snapshot, and one that reopens its state file after a restart.
func TestPreparedEntriesBuildOneStateEverywhere(t *testing.T) {
	prepared, plain := registrationLog(t, true), registrationLog(t, false)
	digests := func(f *FSM) (string, [32]byte) {
		t.Helper()
		f.commitOpen()
		d, err := f.store.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return d.Hash, f.store.MPIIndexDigest()
	}
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "leader.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	leader, err := New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(prepared); i += 7 {
		for _, res := range leader.ApplyBatch(prepared[i:min(i+7, len(prepared))]) {
			if err := res.(Response).Err; err != nil {
				t.Fatal(err)
			}
			if outs, ok := res.(Response).Value.([]Registered); ok {
				for _, o := range outs {
					if o.Err != nil {
						t.Fatalf("registration refused: %v", o.Err)
					}
				}
			}
		}
	}
	checkIndexes(t, leader)
	wantHash, wantIndex := digests(leader)

	follower := newFSM(t)
	applyInBatches(follower, plain, func() int { return 3 })
	if h, ix := digests(follower); h != wantHash || ix != wantIndex {
		t.Fatalf("records prepared by the proposer and by each node give different states (file %v, index %v)", h == wantHash, ix == wantIndex)
	}

	snaps := hraft.NewInmemSnapshotStore()
	sn, err := leader.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink, err := snaps.Create(hraft.SnapshotVersionMax, uint64(len(prepared)), 1, hraft.Configuration{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sn.Persist(sink); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	_, rc, err := snaps.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	restored := newFSM(t)
	applyInBatches(restored, registrationLog(t, true)[:40], func() int { return 5 }) // state to be replaced
	if err := restored.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if h, ix := digests(restored); h != wantHash || ix != wantIndex {
		t.Fatalf("restored from a snapshot, the state differs (file %v, index %v)", h == wantHash, ix == wantIndex)
	}

	leader.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = state.Open(filepath.Join(dir, "leader.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.MPIIndexDigest() != wantIndex {
		t.Fatal("reopened after a restart, the state file gives other in-memory indexes")
	}
}

// TestPreparedFormMustFollowFromTheRecord: a registration whose prepared form belongs to
// another record, is of other normalisation rules or does not decode is refused as an
// invalid record and changes nothing; the other records of its command are registered.
func TestPreparedFormMustFollowFromTheRecord(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	p := testParticipant(1)
	p.IdentifierSystem = "urn:oid:1.2.3.1"
	f.ApplyBatch([]*hraft.Log{w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p})})
	record := func(value, given string) command.PatientRecord {
		return command.PatientRecord{System: p.IdentifierSystem, Value: value, Given: []string{given}, Family: "Okafor",
			BirthDate: "1971-04-09", Sex: "F", PostalCode: "97301"}
	}
	other := mpi.Prepare(record("x", "Adaeze").MPIRecord())
	otherBytes, _ := other.AppendBinary(nil)
	rules := mpi.Prepare(record("M3", "Ngozi").MPIRecord())
	rules.Norm.Version++
	rulesBytes, _ := rules.AppendBinary(nil)
	good := &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: record("M0", "Ngozi"), NewEUID: "E0"}}}
	PrepareProposal(command.TypePatientRegister, good)
	f.ApplyBatch([]*hraft.Log{w.entry(command.TypePatientRegister, good)})
	f.commitOpen()
	before, err := f.store.Hash()
	if err != nil {
		t.Fatal(err)
	}

	bad := &command.PatientRegister{Registrations: []command.PatientRegistration{
		{Record: record("M1", "Chioma"), NewEUID: "E1", Prepared: otherBytes},
		{Record: record("M2", "Ifeoma"), NewEUID: "E2", Prepared: []byte{1, 0xff, 0xff}},
		{Record: record("M3", "Ngozi"), NewEUID: "E3", Prepared: rulesBytes},
	}}
	res := f.ApplyBatch([]*hraft.Log{w.entry(command.TypePatientRegister, bad)})[0].(Response)
	for i, o := range res.Value.([]Registered) {
		if !errors.Is(o.Err, ErrInvalidRecord) {
			t.Errorf("registration %d with a prepared form not of its record: err = %v, want ErrInvalidRecord", i, o.Err)
		}
	}
	f.commitOpen()
	after, err := f.store.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if after.Hash != before.Hash {
		t.Fatal("refused registrations changed the state")
	}
	checkIndexes(t, f)

	// The proposer replaces whatever the payload held with its own derivation.
	PrepareProposal(command.TypePatientRegister, bad)
	res = f.ApplyBatch([]*hraft.Log{w.entry(command.TypePatientRegister, bad)})[0].(Response)
	outs := res.Value.([]Registered)
	for i, o := range outs {
		if o.Err != nil {
			t.Fatalf("registration %d prepared by the proposer refused: %v", i, o.Err)
		}
	}
	if outs[2].Decision.EUID != "E0" {
		t.Fatalf("the second Ngozi Okafor record went to %s, want the first's person E0", outs[2].Decision.EUID)
	}
	checkIndexes(t, f)
}

// TestProposerTakesItsOwnPreparedForms: the node that proposed the registrations applies
// them with the prepared forms it remembered (neither decoding nor verifying them again)
// and ends in the state of a node that decodes and verifies every one; a remembered form
// sent with another record is verified like any other, and refused.
func TestProposerTakesItsOwnPreparedForms(t *testing.T) {
	leader := newFSM(t)
	logs := registrationLogPreparedBy(t, leader.PrepareProposal)
	if len(leader.proposals.m) == 0 {
		t.Fatal("the proposer remembered no prepared form")
	}
	applyInBatches(leader, logs, func() int { return 4 })
	if n := len(leader.proposals.m); n != 0 {
		t.Fatalf("%d remembered forms left after their entries were applied", n)
	}
	follower := newFSM(t)
	applyInBatches(follower, logs, func() int { return 3 })
	leader.commitOpen()
	follower.commitOpen()
	lh, err := leader.store.Hash()
	if err != nil {
		t.Fatal(err)
	}
	fh, err := follower.store.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if lh.Hash != fh.Hash || leader.store.MPIIndexDigest() != follower.store.MPIIndexDigest() {
		t.Fatal("the proposer's state differs from a node that verified every prepared form")
	}
	checkIndexes(t, leader)

	// A form remembered for one record, sent with another: verified, and refused.
	w := &logWriter{t: t, index: logs[len(logs)-1].Index}
	p := testParticipant(200)
	p.IdentifierSystem = "urn:oid:1.2.3.200"
	leader.ApplyBatch([]*hraft.Log{w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p})})
	rec := command.PatientRecord{System: p.IdentifierSystem, Value: "T1", Given: []string{"Adaeze"}, Family: "Okafor",
		BirthDate: "1971-04-09", Sex: "F", PostalCode: "97301"}
	cmd := &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: rec, NewEUID: "ET1"}}}
	leader.PrepareProposal(command.TypePatientRegister, cmd)
	cmd.Registrations[0].Record.Given = []string{"Chioma"}
	res := leader.ApplyBatch([]*hraft.Log{w.entry(command.TypePatientRegister, cmd)})[0].(Response)
	if o := res.Value.([]Registered)[0]; !errors.Is(o.Err, ErrInvalidRecord) {
		t.Fatalf("a remembered form sent with another record: err = %v, want ErrInvalidRecord", o.Err)
	}
}

// TestSameRecordSeesEveryField: a record that differs in any one field is not the same
// record, so a form remembered for one record is never taken for another.
func TestSameRecordSeesEveryField(t *testing.T) {
	base := mpi.Record{System: "s", Value: "v", Given: []string{"g"}, Family: "f", Suffix: "x", BirthDate: "b", Sex: "F",
		AddressLines: []string{"a"}, City: "c", State: "st", PostalCode: "p", Phones: []string{"ph"}, Email: "e", SSN: "n"}
	if !sameRecord(&base, &base) {
		t.Fatal("a record is not the same as itself")
	}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		other := base
		f := reflect.ValueOf(&other).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "!")
		case reflect.Slice:
			f.Set(reflect.Append(f, reflect.ValueOf("more")))
		default:
			t.Fatalf("field %s of kind %s: sameRecord and this test need a case", typ.Field(i).Name, f.Kind())
		}
		if sameRecord(&base, &other) {
			t.Errorf("records differing in %s taken for the same record", typ.Field(i).Name)
		}
	}
}
