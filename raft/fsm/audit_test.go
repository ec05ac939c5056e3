package fsm

import (
	"fmt"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// TestAuditAppendChainsDeterministically: two nodes applying the same audit commands, in
// different batchings, build the same chain; an entry ID appended again (a retried batch) is
// skipped, and the first cluster key stays.
func TestAuditAppendChainsDeterministically(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var logs []*hraft.Log
	add := func(c *command.AuditAppend) {
		data, err := command.Encode(command.TypeAuditAppend, command.Header{Time: at.Add(time.Duration(len(logs)) * time.Second), Actor: "n1"}, c)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &hraft.Log{Index: uint64(len(logs) + 1), Term: 1, Type: hraft.LogCommand, Data: data})
	}
	entry := func(i int) model.AuditEntry {
		return model.AuditEntry{ID: fmt.Sprintf("id-%d", i), Node: "n2", Action: "locate", Status: 200, EUIDs: []string{fmt.Sprintf("E%d", i%3)}}
	}
	add(&command.AuditAppend{ClusterKey: []byte("first key"), Entries: []model.AuditEntry{entry(1), entry(2)}})
	add(&command.AuditAppend{ClusterKey: []byte("second key"), Entries: []model.AuditEntry{entry(3)}})
	add(&command.AuditAppend{Entries: []model.AuditEntry{entry(2), entry(4), {}}}) // retried 2, and one without id

	var hashes []string
	for _, size := range []int{1, 3} {
		f := newFSM(t)
		results := applyInBatches(f, logs, func() int { return size })
		last := results[2].(Response).Value.(AuditAppended)
		if len(last.Entries) != 1 || last.Entries[0].ID != "id-4" || last.Entries[0].Seq != 4 || last.Duplicates != 2 {
			t.Fatalf("retried batch: %+v", last)
		}
		err := f.store.View(func(tx *state.Tx) error {
			if string(tx.ClusterKey()) != "first key" {
				t.Errorf("cluster key %q, want the first", tx.ClusterKey())
			}
			seq, head := tx.AuditHead()
			if seq != 4 {
				t.Errorf("head %d, want 4", seq)
			}
			e, err := tx.AuditEntry(3)
			if err != nil || !e.Recorded.Equal(at.Add(time.Second)) || e.ID != "id-3" {
				t.Errorf("entry 3: %+v %v", e, err)
			}
			hashes = append(hashes, head)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := f.store.VerifyAudit(); err != nil || !v.OK || v.Entries != 4 {
			t.Fatalf("verify: %+v %v", v, err)
		}
	}
	if hashes[0] != hashes[1] {
		t.Fatalf("the same log gave chains ending in %s and %s", hashes[0], hashes[1])
	}
}
