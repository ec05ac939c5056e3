package fsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/raft/command"
)

// sourceFunc is a DecisionSource made of a function.
type sourceFunc func(index, term uint64) (DecidedEntry, bool)

func (s sourceFunc) Decided(index, term uint64) (DecidedEntry, bool) { return s(index, term) }

// decisionsLog is registrationLog (the synthetic sample, prepared) followed by commands
// that register a fifth of its identifiers again with other demographics (records that
// move between persons and may leave one empty), one record of an unknown system among
// them.
func decisionsLog(t *testing.T) []*hraft.Log {
	t.Helper()
	logs := registrationLog(t, true)
	file, err := dataset.Load(testkit.Testdata(t, "synthetic", "sample.csv"), dataset.CSV)
	if err != nil {
		t.Fatal(err)
	}
	w := &logWriter{t: t, index: logs[len(logs)-1].Index}
	cmd := &command.PatientRegister{}
	for i := 0; i < len(file.Rows); i += 5 {
		r := file.Rows[(i*7+3)%len(file.Rows)].Record
		r.System, r.Value = file.Rows[i].Record.System, file.Rows[i].Record.Value
		cmd.Registrations = append(cmd.Registrations, command.PatientRegistration{Record: commandRecord(r), NewEUID: fmt.Sprintf("R%09d", i)})
		if i == 50 {
			r.System = "urn:oid:1.2.3.999"
			cmd.Registrations = append(cmd.Registrations, command.PatientRegistration{Record: commandRecord(r), NewEUID: "R-unknown"})
		}
		if len(cmd.Registrations) >= 25 {
			PrepareProposal(command.TypePatientRegister, cmd)
			logs = append(logs, w.entry(command.TypePatientRegister, cmd))
			cmd = &command.PatientRegister{}
		}
	}
	PrepareProposal(command.TypePatientRegister, cmd)
	return append(logs, w.entry(command.TypePatientRegister, cmd))
}

// registered returns what the state keeps of the decisions of a batch's responses (see
// DecidedEntry.MarshalJSON), and their refusals, as JSON.
func registered(t *testing.T, results []any) string {
	t.Helper()
	var out []any
	for _, res := range results {
		r := res.(Response)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if regs, ok := r.Value.([]Registered); ok {
			for _, g := range regs {
				d := g.Decision
				out = append(out, []any{d.Record, d.Outcome, d.EUID, d.Score, d.Review, d.Updated, d.PreviousEUID, d.ConfigVersion}, g.Patient, fmt.Sprint(g.Err))
			}
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFollowersTakeTheLeadersDecisions applies one log to a leader and to followers that
// ask the leader for its decisions: one takes them and matches nothing, one is given
// decisions of another entry (another checksum), one decisions that do not fit its index,
// and both match every record themselves. Every follower must answer every registration as
// the leader did and end with the leader's state file and in-memory indexes.
func TestFollowersTakeTheLeadersDecisions(t *testing.T) {
	logs := decisionsLog(t)
	leader := newFSM(t)
	fromLeader := func(index, term uint64) (DecidedEntry, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		// As the follower receives it.
		wire, ok, err := leader.DecidedJSON(ctx, index, term)
		if err != nil || !ok {
			return DecidedEntry{}, false
		}
		var got DecidedEntry
		if err := json.Unmarshal(wire, &got); err != nil {
			t.Error(err)
			return DecidedEntry{}, false
		}
		return got, true
	}
	taking := newFSM(t)
	taking.SetDecisionSource(sourceFunc(fromLeader))
	otherEntry := newFSM(t)
	otherEntry.SetDecisionSource(sourceFunc(func(index, term uint64) (DecidedEntry, bool) {
		e, ok := fromLeader(index, term)
		e.Sum++
		return e, ok
	}))
	unfit := newFSM(t)
	unfit.SetDecisionSource(sourceFunc(func(index, term uint64) (DecidedEntry, bool) {
		e, ok := fromLeader(index, term)
		decisions := make([]*mpi.Decision, len(e.Decisions))
		for i, d := range e.Decisions {
			if d != nil {
				wrong := *d
				wrong.EUID = "NOBODY"
				decisions[i] = &wrong
			}
		}
		e.Decisions = decisions
		return e, ok
	}))
	followers := []*FSM{taking, otherEntry, unfit}
	for i := 0; i < len(logs); i += 6 {
		batch := logs[i:min(i+6, len(logs))]
		want := registered(t, leader.ApplyBatch(batch))
		for k, f := range followers {
			if got := registered(t, f.ApplyBatch(batch)); got != want {
				t.Fatalf("follower %d answered entries %d-%d otherwise than the leader", k, batch[0].Index, batch[len(batch)-1].Index)
			}
		}
	}
	digest := func(f *FSM) string {
		t.Helper()
		f.commitOpen()
		d, err := f.store.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s %x", d.Hash, f.store.MPIIndexDigest())
	}
	want := digest(leader)
	for k, f := range followers {
		if got := digest(f); got != want {
			t.Errorf("follower %d holds another state", k)
		}
	}
	leaderTaken, leaderMatched := leader.RegistrationsDecided()
	if leaderTaken != 0 || leaderMatched < 1000 {
		t.Fatalf("the leader took %d decisions and matched %d records", leaderTaken, leaderMatched)
	}
	if taken, matched := taking.RegistrationsDecided(); taken != leaderMatched || matched != 0 {
		t.Errorf("the follower took %d decisions and matched %d records; the leader matched %d", taken, matched, leaderMatched)
	}
	for k, f := range followers[1:] {
		if taken, matched := f.RegistrationsDecided(); taken != 0 || matched != leaderMatched {
			t.Errorf("follower %d took %d decisions and matched %d records", k+1, taken, matched)
		}
	}
}

// decidedAt is DecidedJSON decoded, as a follower reads it.
func decidedAt(t *testing.T, f *FSM, ctx context.Context, index, term uint64) (DecidedEntry, bool, error) {
	t.Helper()
	var e DecidedEntry
	wire, ok, err := f.DecidedJSON(ctx, index, term)
	if err != nil || !ok {
		return e, ok, err
	}
	if err := json.Unmarshal(wire, &e); err != nil {
		t.Error(err)
	}
	return e, true, nil
}

// TestDecidedJSONWaitsForTheEntry: DecidedJSON waits for an entry not yet applied and gives
// its decisions once it is; it gives nothing for an entry of another term, for one that
// registered nobody, or when its context ends first (ErrNotAppliedYet).
func TestDecidedJSONWaitsForTheEntry(t *testing.T) {
	logs := registrationLog(t, true)
	f := newFSM(t)
	last := logs[len(logs)-1]
	got := make(chan DecidedEntry, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e, _, _ := decidedAt(t, f, ctx, last.Index, last.Term)
		got <- e
	}()
	time.Sleep(20 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("DecidedJSON answered before the entry was applied")
	default:
	}
	applyInBatches(f, logs, func() int { return 4 })
	e := <-got
	if e.Index != last.Index || e.Sum != entrySum(last.Data) || e.Decider != f.decider || len(e.Decisions) == 0 || e.Decisions[0] == nil {
		t.Fatalf("DecidedJSON gave %+v", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, ok, _ := decidedAt(t, f, ctx, last.Index, last.Term+1); ok {
		t.Error("decisions given for an entry of another term")
	}
	if _, ok, _ := decidedAt(t, f, ctx, logs[0].Index, logs[0].Term); ok {
		t.Error("decisions given for a participant entry")
	}
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	if _, ok, err := decidedAt(t, f, short, last.Index+1, last.Term); ok || !errors.Is(err, ErrNotAppliedYet) {
		t.Errorf("an entry never applied: ok %v, err %v", ok, err)
	}
}

// TestDeciderNamesTheBuild: a process names its build the same way every time, and a test
// binary (no VCS information) by its executable file too, so that another build of the
// same source is not taken for it.
func TestDeciderNamesTheBuild(t *testing.T) {
	a, b := decider(), decider()
	if a == "" || a != b {
		t.Fatalf("decider %q then %q", a, b)
	}
	if !strings.Contains(a, "exe=") {
		t.Errorf("a test binary named without its executable: %q", a)
	}
}

// TestDecidedLogReplacesWhatARollbackReplays: an entry applied again after a rollback
// replaces what the log kept from it on, so that every entry stays findable in index order.
func TestDecidedLogReplacesWhatARollbackReplays(t *testing.T) {
	var l decidedLog
	one := []*mpi.Decision{{EUID: "A"}}
	for _, index := range []uint64{1, 2, 3, 2, 3, 4} {
		l.put(&DecidedEntry{Index: index, Term: 1, Decisions: one})
	}
	for index := uint64(1); index <= 4; index++ {
		if d, _ := l.find(index); d == nil {
			t.Errorf("entry %d not found", index)
		}
	}
	if len(l.entries) != 4 || l.count != 4 {
		t.Errorf("%d entries holding %d decisions, want 4 and 4", len(l.entries), l.count)
	}
}
