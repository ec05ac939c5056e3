package raft

import (
	"context"
	"errors"
	"testing"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

// TestSandboxAnswersLikeApply: a command applied to a sandbox gives the result and the
// business errors Node.Apply gives, through the types raft names, and the node's own state
// does not move.
func TestSandboxAnswersLikeApply(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.leader()
	addParticipant(t, n, 1)
	before := stateHash(t, n)
	sb, err := n.Sandbox()
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	ctx := context.Background()
	a, err := sb.Apply(ctx, command.TypeParticipantAdd, command.Header{}, &command.ParticipantAdd{Participant: participant(2)})
	if err != nil {
		t.Fatalf("sandbox add: %v", err)
	}
	if p, ok := a.Value.(model.Participant); !ok || p.ID != "p2" || a.Index <= before.Index {
		t.Fatalf("sandbox add answered %+v", a)
	}
	dup := participant(1)
	dup.TokenHash = participant(99).TokenHash
	if _, err := sb.Apply(ctx, command.TypeParticipantAdd, command.Header{}, &command.ParticipantAdd{Participant: dup}); !errors.Is(err, ErrParticipantExists) {
		t.Fatalf("sandbox duplicate add: err = %v, want ErrParticipantExists", err)
	}
	if after := stateHash(t, n); after.Hash != before.Hash {
		t.Fatalf("a sandbox changed the node's state: %s -> %s", before.Hash, after.Hash)
	}
	if ids := participantIDs(t, n); len(ids) != 1 || ids[0] != "p1" {
		t.Fatalf("participants on the node after the dry run: %v", ids)
	}
}
