package raft

import (
	"context"
	"errors"
	"fmt"
	"os"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/fsm"
	"github.com/rls-hie/rls/raft/state"
)

// DryRun applies commands to a private copy of this node's state and returns what each
// would answer, proposing nothing: the FSM's own code decides, on the state as it is now,
// so the answers are what proposing the commands next would do (unless other writes come
// first). The copy lives in a temporary file in the data directory and is removed before
// DryRun returns; it costs a full copy of the state file.
func (n *Node) DryRun(ctx context.Context, t command.Type, h command.Header, payloads []command.Payload) ([]fsm.Response, error) {
	f, err := os.CreateTemp(n.cfg.DataDir, "dry-run-*.db")
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	sn, err := n.store.BeginSnapshot()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dry run: %w", err)
	}
	_, err = sn.WriteTo(f)
	sn.Release()
	if err = errors.Join(err, f.Close()); err != nil {
		return nil, fmt.Errorf("dry run: copy the state: %w", err)
	}
	copyStore, err := state.Open(path, n.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	defer copyStore.Close()
	machine, err := fsm.New(copyStore, nil)
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	defer machine.Close()
	index, term, err := copyStore.Applied()
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	out := make([]fsm.Response, 0, len(payloads))
	for _, p := range payloads {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		data, err := command.Encode(t, h, p)
		if err != nil {
			return out, fmt.Errorf("dry run: %w", err)
		}
		index++
		res := machine.Apply(&hraft.Log{Index: index, Term: term, Type: hraft.LogCommand, Data: data})
		r, ok := res.(fsm.Response)
		if !ok {
			return out, fmt.Errorf("dry run: unexpected FSM response %T", res)
		}
		out = append(out, r)
	}
	return out, nil
}
