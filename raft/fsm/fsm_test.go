package fsm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

func newFSM(t *testing.T) *FSM { return newFSMB(t) }

// openFSMAt opens the state file at path and an FSM on it; the caller closes both (a test
// that reopens the file needs them closed in its own order).
func openFSMAt(t *testing.T, path string, opts ...Option) (*FSM, *state.Store) {
	t.Helper()
	st, err := state.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(st, nil, opts...)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return f, st
}

func newFSMB(t testing.TB, opts ...Option) *FSM {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f, err := New(st, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// checkIndexes commits what f holds open and checks that the in-memory indexes it kept in
// step with its writes equal indexes built afresh from the committed state.
func checkIndexes(t testing.TB, f *FSM) {
	t.Helper()
	f.commitOpen()
	rebuilt, err := f.store.RebuiltMPIIndexDigest()
	if err != nil {
		t.Fatal(err)
	}
	if live := f.store.MPIIndexDigest(); live != rebuilt {
		t.Fatalf("the in-memory match index (%x) differs from one rebuilt from the state file (%x)", live[:8], rebuilt[:8])
	}
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func testParticipant(i int) model.Participant {
	return model.Participant{
		ID:               fmt.Sprintf("p%d", i),
		Name:             fmt.Sprintf("Participant %d", i),
		Kind:             model.KindPractice,
		Role:             model.RoleParticipant,
		IdentifierSystem: fmt.Sprintf("urn:oid:1.2.3.%d", i),
		Active:           true,
		TokenHash:        hashOf(fmt.Sprintf("t%d", i)),
	}
}

// randomLog builds a log of n commands from a seeded source: adds, updates (some with stale
// versions), enable/disable, token rotations, node registrations, and commands that must be
// refused (duplicates, taken identifier systems, unknown participants).
func randomLog(t *testing.T, seed uint64, n int) []*hraft.Log {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var logs []*hraft.Log
	add := func(typ command.Type, payload command.Payload) {
		i := len(logs)
		h := command.Header{Time: base.Add(time.Duration(i) * time.Second), Actor: "admin", RequestID: fmt.Sprintf("r%d", i)}
		data, err := command.Encode(typ, h, payload)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &hraft.Log{Index: uint64(i + 1), Term: 1, Type: hraft.LogCommand, Data: data})
	}
	for len(logs) < n {
		k := rng.IntN(40)
		switch rng.IntN(7) {
		case 0, 1:
			add(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(k)})
		case 2:
			p := testParticipant(k)
			p.Name = fmt.Sprintf("Renamed %d", rng.IntN(1000))
			p.IdentifierSystem = fmt.Sprintf("urn:oid:1.2.3.%d", rng.IntN(40))
			add(command.TypeParticipantUpdate, &command.ParticipantUpdate{Participant: p, ExpectedVersion: uint64(rng.IntN(3))})
		case 3:
			add(command.TypeParticipantSetActive, command.ParticipantSetActive{ID: fmt.Sprintf("p%d", k), Active: rng.IntN(2) == 0})
		case 4:
			add(command.TypeParticipantRotateToken, command.ParticipantRotateToken{ID: fmt.Sprintf("p%d", k), TokenHash: hashOf(fmt.Sprintf("rot%d", rng.Int()))})
		case 5:
			add(command.TypeNodeRegister, &command.NodeRegister{Node: model.Node{ID: fmt.Sprintf("n%d", k%5), RaftAddr: fmt.Sprintf("10.0.0.%d:7000", k), HTTPAddr: "http://x"}})
		case 6:
			logs = append(logs, &hraft.Log{Index: uint64(len(logs) + 1), Term: 1, Type: hraft.LogConfiguration})
		}
	}
	return logs
}

func applyInBatches(f *FSM, logs []*hraft.Log, sizes func() int) []any {
	var out []any
	for i := 0; i < len(logs); {
		j := min(i+sizes(), len(logs))
		out = append(out, f.ApplyBatch(logs[i:j])...)
		i = j
	}
	f.commitOpen()
	return out
}

// TestApplyIsDeterministic applies the same log to fresh FSMs entry by entry, in random
// batch sizes, and all at once: the state hashes and the responses must be identical.
func TestApplyIsDeterministic(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			logs := randomLog(t, seed, 600)
			rng := rand.New(rand.NewPCG(seed, 99))
			runs := map[string]func() int{
				"single":  func() int { return 1 },
				"random":  func() int { return 1 + rng.IntN(64) },
				"onebulk": func() int { return len(logs) },
			}
			var firstName, firstHash string
			var firstResults []any
			for _, name := range []string{"single", "random", "onebulk"} {
				f := newFSM(t)
				results := applyInBatches(f, logs, runs[name])
				d, err := f.store.Hash()
				if err != nil {
					t.Fatal(err)
				}
				if d.Index != uint64(len(logs)) {
					t.Fatalf("%s: applied index %d, want %d", name, d.Index, len(logs))
				}
				if firstName == "" {
					firstName, firstHash, firstResults = name, d.Hash, results
					continue
				}
				if d.Hash != firstHash {
					t.Fatalf("%s gave hash %s, %s gave %s", name, d.Hash, firstName, firstHash)
				}
				a, b := describe(results), describe(firstResults)
				if !reflect.DeepEqual(a, b) {
					for i := range a {
						if a[i] != b[i] {
							t.Fatalf("%s and %s gave different responses to entry %d: %s vs %s", name, firstName, i+1, a[i], b[i])
						}
					}
				}
			}
		})
	}
}

func describe(results []any) []string {
	out := make([]string, len(results))
	for i, r := range results {
		if resp, ok := r.(Response); ok && resp.Err != nil {
			out[i] = "error: " + resp.Err.Error()
			continue
		}
		out[i] = fmt.Sprintf("%+v", r)
	}
	return out
}

// TestReplayedEntriesAreSkipped checks that entries at or below the stored applied index
// (raft replays them after a restart) change nothing.
func TestReplayedEntriesAreSkipped(t *testing.T) {
	logs := randomLog(t, 7, 100)
	f := newFSM(t)
	f.ApplyBatch(logs)
	f.commitOpen()
	before, _ := f.store.Hash()
	f.ApplyBatch(logs[50:])
	f.commitOpen()
	after, _ := f.store.Hash()
	if before != after {
		t.Fatalf("replay changed state: %+v -> %+v", before, after)
	}
}

func TestHandlers(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	index := uint64(0)
	apply := func(f *FSM, typ command.Type, payload command.Payload) Response {
		index++
		data, err := command.Encode(typ, command.Header{Time: at}, payload)
		if err != nil {
			t.Fatal(err)
		}
		r := f.Apply(&hraft.Log{Index: index, Term: 1, Type: hraft.LogCommand, Data: data}).(Response)
		f.commitOpen()
		return r
	}
	admin := testParticipant(0)
	admin.Role, admin.Kind, admin.IdentifierSystem = model.RoleAdmin, model.KindHIE, ""

	tests := []struct {
		name string
		run  func(f *FSM) error
		want error
	}{
		{"second bootstrap refused", func(f *FSM) error {
			apply(f, command.TypeBootstrapAdmin, &command.BootstrapAdmin{Participant: admin})
			other := testParticipant(1)
			other.Role = model.RoleAdmin
			return apply(f, command.TypeBootstrapAdmin, &command.BootstrapAdmin{Participant: other}).Err
		}, ErrAlreadyBootstrapped},
		{"disabling the last admin refused", func(f *FSM) error {
			apply(f, command.TypeBootstrapAdmin, &command.BootstrapAdmin{Participant: admin})
			return apply(f, command.TypeParticipantSetActive, command.ParticipantSetActive{ID: admin.ID, Active: false}).Err
		}, ErrLastAdmin},
		{"demoting the last admin refused", func(f *FSM) error {
			apply(f, command.TypeBootstrapAdmin, &command.BootstrapAdmin{Participant: admin})
			demoted := admin
			demoted.Role = model.RoleParticipant
			return apply(f, command.TypeParticipantUpdate, &command.ParticipantUpdate{Participant: demoted}).Err
		}, ErrLastAdmin},
		{"revoking the last admin token refused, a tokenless admin does not count", func(f *FSM) error {
			apply(f, command.TypeBootstrapAdmin, &command.BootstrapAdmin{Participant: admin})
			second := testParticipant(1)
			second.Role, second.Kind, second.IdentifierSystem = model.RoleAdmin, model.KindHIE, ""
			apply(f, command.TypeParticipantAdd, &command.ParticipantAdd{Participant: second})
			if r := apply(f, command.TypeParticipantRevokeToken, command.ParticipantRevokeToken{ID: second.ID}); r.Err != nil {
				return fmt.Errorf("revoking one of two admin tokens: %w", r.Err)
			}
			// Revoking again changes nothing, not even the version.
			if r := apply(f, command.TypeParticipantRevokeToken, command.ParticipantRevokeToken{ID: second.ID}); r.Err != nil || r.Value.(model.Participant).Version != 2 {
				return fmt.Errorf("revoking an absent token: %+v", r)
			}
			return apply(f, command.TypeParticipantRevokeToken, command.ParticipantRevokeToken{ID: admin.ID}).Err
		}, ErrLastAdmin},
		{"stale version refused", func(f *FSM) error {
			apply(f, command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(1)})
			apply(f, command.TypeParticipantUpdate, &command.ParticipantUpdate{Participant: testParticipant(1), ExpectedVersion: 1})
			return apply(f, command.TypeParticipantUpdate, &command.ParticipantUpdate{Participant: testParticipant(1), ExpectedVersion: 1}).Err
		}, ErrVersionConflict},
		{"update of unknown participant", func(f *FSM) error {
			return apply(f, command.TypeParticipantUpdate, &command.ParticipantUpdate{Participant: testParticipant(1)}).Err
		}, state.ErrNotFound},
		{"rotated token replaces the old one", func(f *FSM) error {
			apply(f, command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(1)})
			r := apply(f, command.TypeParticipantRotateToken, command.ParticipantRotateToken{ID: "p1", TokenHash: hashOf("new")})
			if r.Err != nil {
				return r.Err
			}
			return f.store.View(func(tx *state.Tx) error {
				if _, err := tx.ParticipantByTokenHash(hashOf("t1")); !errors.Is(err, state.ErrNotFound) {
					return fmt.Errorf("old token still resolves: %v", err)
				}
				p, err := tx.ParticipantByTokenHash(hashOf("new"))
				if err != nil || p.ID != "p1" || p.Version != 2 {
					return fmt.Errorf("new token resolves to %+v, %v", p, err)
				}
				return nil
			})
		}, nil},
		{"changing identifier system frees the old one", func(f *FSM) error {
			apply(f, command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(1)})
			moved := testParticipant(1)
			moved.IdentifierSystem = "urn:oid:9.9"
			if r := apply(f, command.TypeParticipantUpdate, &command.ParticipantUpdate{Participant: moved}); r.Err != nil {
				return r.Err
			}
			taker := testParticipant(2)
			taker.IdentifierSystem = testParticipant(1).IdentifierSystem
			return apply(f, command.TypeParticipantAdd, &command.ParticipantAdd{Participant: taker}).Err
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(newFSM(t))
			if tc.want == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestUndecodableEntryIsSkipped: bytes that do not decode are the same on every node, so
// every node records the entry as failed and goes on (see TestPoisonEntriesAreSkippedAlike).
func TestUndecodableEntryIsSkipped(t *testing.T) {
	f := newFSM(t)
	r := f.Apply(&hraft.Log{Index: 1, Type: hraft.LogCommand, Data: []byte{0x04, 0x01, 0x81}}).(Response)
	f.commitOpen()
	if !errors.Is(r.Err, ErrEntryFailed) || f.AppliedIndex() != 1 {
		t.Fatalf("garbage answered %v, applied index %d", r.Err, f.AppliedIndex())
	}
}

func TestUnknownIgnorableCommandIsSkipped(t *testing.T) {
	f := newFSM(t)
	data, _ := command.Encode(command.Type(0x7f)|command.FlagIgnoreUnknown, command.Header{}, command.Barrier{})
	r := f.Apply(&hraft.Log{Index: 1, Type: hraft.LogCommand, Data: data}).(Response)
	if f.commitOpen(); r.Err != nil || f.AppliedIndex() != 1 {
		t.Fatalf("ignorable unknown command: %+v, applied %d", r, f.AppliedIndex())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an unknown command without the ignore flag did not stop the node")
		}
	}()
	data, _ = command.Encode(command.Type(0x7f), command.Header{}, command.Barrier{})
	f.Apply(&hraft.Log{Index: 2, Type: hraft.LogCommand, Data: data})
}

// TestReadersSeeOnlyCommittedStateAndWaitingCommitsAtOnce checks the group commit: applied
// entries stay invisible until committed, and a reader waiting for one gets it committed
// without waiting for the commit interval.
func TestReadersSeeOnlyCommittedStateAndWaitingCommitsAtOnce(t *testing.T) {
	f := newFSM(t)
	logs := randomLog(t, 11, 20)
	f.ApplyBatch(logs)
	if f.LatestIndex() != 20 {
		t.Fatalf("latest index %d, want 20", f.LatestIndex())
	}
	if f.AppliedIndex() != 0 {
		t.Fatalf("readers already see index %d before any commit", f.AppliedIndex())
	}
	ctx, cancel := context.WithTimeout(context.Background(), CommitInterval/2)
	defer cancel()
	if err := f.WaitApplied(ctx, 20); err != nil {
		t.Fatalf("waiting reader was not served before the commit interval: %v", err)
	}
	d, err := f.store.Hash()
	if err != nil || d.Index != 20 {
		t.Fatalf("committed state at index %d (%v), want 20", d.Index, err)
	}
	// A reader waiting for an entry not yet applied is served as soon as it is.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), CommitInterval/2)
		defer cancel()
		done <- f.WaitApplied(ctx, 21)
	}()
	time.Sleep(5 * time.Millisecond) // let the reader register; the assertion below does not depend on it
	more := randomLog(t, 12, 21)[20:]
	f.ApplyBatch(more)
	if err := <-done; err != nil {
		t.Fatalf("reader of a later entry: %v", err)
	}
}

// TestCrashBeforeTheFlushIsReplayedFromTheLog: entries committed (readers saw them) but not
// yet flushed are not in the state file; a node that crashes then resumes at the file's
// applied index, and applying the log again from there gives the state the node had.
func TestCrashBeforeTheFlushIsReplayedFromTheLog(t *testing.T) {
	logs := randomLog(t, 11, 120)
	path := filepath.Join(t.TempDir(), "state.db")
	f, st := openFSMAt(t, path, func(f *FSM) { f.flushInterval = time.Hour })
	f.ApplyBatch(logs[:70])
	f.commitOpen()
	f.flush()
	f.ApplyBatch(logs[70:])
	f.commitOpen()
	want, err := st.Hash()
	if err != nil || want.Index != 120 {
		t.Fatalf("committed state: %+v %v", want, err)
	}
	// The file as a crash now would leave it.
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crashed, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st.Close()

	st2, err := state.Open(crashed, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if index, _, _ := st2.Applied(); index != 70 {
		t.Fatalf("the file holds index %d, want the flushed 70", index)
	}
	f2, err := New(st2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	f2.ApplyBatch(logs) // raft replays from its snapshot: what the file holds is skipped
	f2.commitOpen()
	if got, err := st2.Hash(); err != nil || got != want {
		t.Fatalf("after the replay %+v (%v), want %+v", got, err, want)
	}
	f2.flush()
	if got, err := st2.Hash(); err != nil || got != want {
		t.Fatalf("after the flush %+v (%v), want %+v", got, err, want)
	}
}

func TestCloseCommitsPendingEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f, st := openFSMAt(t, path)
	f.ApplyBatch(randomLog(t, 5, 30))
	f.Close()
	st.Close()
	st, err := state.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if index, _, _ := st.Applied(); index != 30 {
		t.Fatalf("after Close the state holds index %d, want 30", index)
	}
}

// TestReadersOfDataDoNotWaitForAuditEntries: entries that only append to the audit log do
// not have to be committed before a read that does not look at it (WaitChanges), while
// any other entry still does, and a read of the audit log still waits for them all.
func TestReadersOfDataDoNotWaitForAuditEntries(t *testing.T) {
	f := newFSM(t)
	f.ApplyBatch(randomLog(t, 13, 10))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := f.WaitApplied(ctx, 10); err != nil {
		t.Fatal(err)
	}
	entry := func(index uint64, typ command.Type, payload command.Payload) *hraft.Log {
		data, err := command.Encode(typ, command.Header{Time: time.Date(2026, 2, 1, 0, 0, int(index), 0, time.UTC), Actor: "n1"}, payload)
		if err != nil {
			t.Fatal(err)
		}
		return &hraft.Log{Index: index, Term: 1, Type: hraft.LogCommand, Data: data}
	}
	audit := func(index uint64) *hraft.Log {
		return entry(index, command.TypeAuditAppend, &command.AuditAppend{ClusterKey: []byte("key"),
			Entries: []model.AuditEntry{{ID: fmt.Sprintf("a-%d", index), Node: "n1", Action: "locate", Status: 200}}})
	}
	f.ApplyBatch([]*hraft.Log{audit(11), audit(12)})
	quick, stop := context.WithTimeout(context.Background(), CommitInterval/4)
	defer stop()
	if err := f.WaitChanges(quick, 12); err != nil {
		t.Fatalf("a data read waited for audit entries: %v", err)
	}
	if f.AppliedIndex() != 10 {
		t.Fatalf("a data read committed the audit entries (readable index %d, want 10)", f.AppliedIndex())
	}
	// An entry that changes something else must be readable before the read.
	f.ApplyBatch([]*hraft.Log{entry(13, command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(99)}), audit(14)})
	if err := f.WaitChanges(ctx, 14); err != nil {
		t.Fatal(err)
	}
	if f.AppliedIndex() < 13 {
		t.Fatalf("readable index %d after a data read that follows entry 13", f.AppliedIndex())
	}
	// A read of the audit log waits for every entry.
	if err := f.WaitApplied(ctx, 14); err != nil || f.AppliedIndex() != 14 {
		t.Fatalf("audit read: %v, readable index %d", err, f.AppliedIndex())
	}
}
