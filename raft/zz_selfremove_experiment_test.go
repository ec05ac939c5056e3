package raft

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/command"
)

func TestExperimentLeaderRemovesItself(t *testing.T) {
	var next atomic.Int64
	for round := 0; round < 15; round++ {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					leader.Apply(ctx, command.TypeParticipantAdd, command.Header{Actor: "x"}, &command.ParticipantAdd{Participant: participant(int(next.Add(1)))})
					cancel()
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := leader.Remove(ctx, leader.ID())
			done <- err
		}()
		select {
		case err := <-done:
			t.Logf("round %d: remove returned %v", round, err)
		case <-time.After(8 * time.Second):
			close(stop)
			wg.Wait()
			t.Fatalf("round %d: Remove of the leader itself hung", round)
		}
		close(stop)
		wg.Wait()
		c.close()
		c.nodes = nil
	}
}
