package raft

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft/command"
)

// TestLeaderRemovingItselfAnswersEveryCaller is the in-process regression test for what
// scenario 8 of the fault-injection harness (integration/chaos_full_test.go,
// TestChaosMembershipChange) found: a leader that removed itself under write load shut raft
// down (hashicorp/raft's ShutdownOnRemove) with committed entries still queued for the FSM,
// so their futures were never answered and the callers (the removal itself, concurrent
// Applies) hung for ever. Every call must now return.
func TestLeaderRemovingItselfAnswersEveryCaller(t *testing.T) {
	var next atomic.Int64
	for round := 0; round < 3; round++ {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		stop := make(chan struct{})
		var writers sync.WaitGroup
		for w := 0; w < 16; w++ {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					leader.Apply(ctx, command.TypeParticipantAdd, command.Header{Actor: "test"}, &command.ParticipantAdd{Participant: participant(int(next.Add(1)))})
					cancel()
				}
			}()
		}
		testkit.WaitFor(t, 5*time.Second, "writes before the removal", func() bool { return leader.AppliedIndex() > 50 })

		removed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := leader.Remove(ctx, leader.ID())
			removed <- err
		}()
		select {
		case err := <-removed:
			if err != nil {
				t.Logf("round %d: removing the leader answered %v", round, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the leader's removal of itself never returned", round)
		}
		close(stop)
		done := make(chan struct{})
		go func() {
			writers.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: writes to the removed leader never returned", round)
		}
		c.close()
		c.nodes = nil
	}
}
