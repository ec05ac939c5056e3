package raft

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/fsm"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// TestPoisonEntryCommittedRawDoesNotStopTheCluster commits, through raft itself (bypassing
// the API and Node.Apply, as a forged entry or an older leader could), entries that no node
// can apply: an audit entry with a 40 KB participant under the rules of before the input
// limits, and bytes that do not decode. Every node must keep applying what follows, record
// the same failed entries, agree on the state, and come back from a restart (replaying
// those entries from its log) to the same state. A patient with a 40 KB identifier, which
// overflowed bbolt's key limit while records were stored by key, is now stored alike by
// every node (records are stored by slot).
func TestPoisonEntryCommittedRawDoesNotStopTheCluster(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	addParticipant(t, leader, 1)
	system := participant(1).IdentifierSystem
	huge := strings.Repeat("x", 40<<10)

	raw := func(data []byte) uint64 {
		t.Helper()
		f := c.leader().raft.Apply(data, 5*time.Second)
		if err := f.Error(); err != nil {
			t.Fatalf("commit a raw entry: %v", err)
		}
		resp, _ := f.Response().(fsm.Response)
		if !errors.Is(resp.Err, fsm.ErrEntryFailed) {
			t.Fatalf("raw poison entry answered %v, want ErrEntryFailed", resp.Err)
		}
		return f.Index()
	}
	encode := func(typ command.Type, payload command.Payload) []byte {
		data, err := command.Encode(typ, command.Header{Time: time.Now().UTC(), Actor: "forger"}, payload)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	var poisoned []uint64
	f := c.leader().raft.Apply(encode(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{
		Record: command.PatientRecord{System: system, Value: "MRN-1" + huge, Family: "Lee", Given: []string{"Margaret"}}, NewEUID: "Elong"}}}), 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("commit a raw entry: %v", err)
	}
	if resp, _ := f.Response().(fsm.Response); resp.Err != nil || resp.Value.([]fsm.Registered)[0].Err != nil {
		t.Fatalf("a 40 KB identifier under the old rules answered %v", resp)
	}
	addParticipant(t, c.leader(), 2)
	poisoned = append(poisoned, raw(encode(command.TypeAuditAppend, &command.AuditAppend{Entries: []model.AuditEntry{{ID: "a1", Participant: huge, Action: "locate"}}})))
	poisoned = append(poisoned, raw([]byte{byte(command.TypeParticipantAdd), command.FormatMsgpack, 0x81, 0xc1}))
	addParticipant(t, c.leader(), 3)

	// Through Node.Apply (what the API uses) the same record is refused before it writes.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	a, err := c.leader().Apply(ctx, command.TypePatientRegister, command.Header{Actor: "test"}, &command.PatientRegister{Registrations: []command.PatientRegistration{{
		Record: command.PatientRecord{System: system, Value: "MRN-2", Family: huge}, NewEUID: "Elimited"}}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if rerr := a.Value.([]fsm.Registered)[0].Err; !errors.Is(rerr, model.ErrTooLong) {
		t.Fatalf("oversized record through Node.Apply: %v, want ErrTooLong", rerr)
	}

	hash := c.waitConverged()
	checkFailed := func(when string) {
		t.Helper()
		for _, n := range c.nodes {
			var failed []state.FailedEntry
			if err := n.State().View(func(tx *state.Tx) (err error) { failed, err = tx.FailedEntries(); return err }); err != nil {
				t.Fatal(err)
			}
			if len(failed) != len(poisoned) {
				t.Fatalf("%s: %s recorded %d failed entries, want %d", when, n.ID(), len(failed), len(poisoned))
			}
			for i, fe := range failed {
				if fe.Index != poisoned[i] || strings.Contains(fe.Reason, "xxxx") {
					t.Fatalf("%s: %s recorded %+v, want index %d and no contents", when, n.ID(), fe, poisoned[i])
				}
			}
		}
	}
	checkFailed("before restart")
	if got := len(participantIDs(t, c.leader())); got != 3 {
		t.Fatalf("%d participants after the poison entries, want 3", got)
	}

	// Restart every node. The followers' state files hold the poison entries; one node
	// loses its state file and replays the whole log, poison entries included.
	for i := range c.nodes {
		c.stop(i)
	}
	if err := removeStateFile(c.cfgs[2].DataDir); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		c.restart(i)
	}
	if got := c.waitConverged(); got != hash {
		t.Fatalf("state after restart %s, before %s", got, hash)
	}
	checkFailed("after restart")
	addParticipant(t, c.leader(), 4)
	c.waitConverged()
}

// removeStateFile deletes a stopped node's state file and derived index, so that it
// rebuilds its state from its Raft log (and snapshots, if any) on start.
func removeStateFile(dir string) error {
	for _, p := range []string{"state.db", "state.db.clean", "search"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			return err
		}
	}
	return nil
}
