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

// Sandbox is a private copy of a node's state with an FSM of its own: commands applied to
// it are decided by the FSM's own code, on the state as it was when the sandbox was made,
// and nothing is proposed or replicated. It answers "what would these commands do?" (a
// dry run). The copy lives in a temporary file in the data directory until Close.
type Sandbox struct {
	path        string
	store       *state.Store
	machine     *fsm.FSM
	index, term uint64
}

// Sandbox copies this node's state into a new sandbox (a full copy of the state file).
func (n *Node) Sandbox() (*Sandbox, error) {
	f, err := os.CreateTemp(n.cfg.DataDir, "sandbox-*.db")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	sb := &Sandbox{path: f.Name()}
	sn, err := n.store.BeginSnapshot()
	if err != nil {
		f.Close()
		sb.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	_, err = sn.WriteTo(f)
	sn.Release()
	if err = errors.Join(err, f.Close()); err != nil {
		sb.Close()
		return nil, fmt.Errorf("sandbox: copy the state: %w", err)
	}
	if sb.store, err = state.Open(sb.path, n.cfg.Logger); err != nil {
		sb.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if sb.machine, err = fsm.New(sb.store, nil); err != nil {
		sb.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if sb.index, sb.term, err = sb.store.Applied(); err != nil {
		sb.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return sb, nil
}

// Apply applies one command to the sandbox as Node.Apply would to the cluster, and returns
// what it produced: its result, or its business error. The index is the sandbox's own.
func (sb *Sandbox) Apply(ctx context.Context, t command.Type, h command.Header, payload command.Payload) (Applied, error) {
	if err := ctx.Err(); err != nil {
		return Applied{}, err
	}
	data, err := command.Encode(t, h, payload)
	if err != nil {
		return Applied{}, fmt.Errorf("sandbox: %w", err)
	}
	sb.index++
	res := sb.machine.Apply(&hraft.Log{Index: sb.index, Term: sb.term, Type: hraft.LogCommand, Data: data})
	r, ok := res.(fsm.Response)
	if !ok {
		return Applied{Index: sb.index}, fmt.Errorf("sandbox: unexpected FSM response %T", res)
	}
	return Applied{Index: sb.index, Value: r.Value}, r.Err
}

// Close discards the sandbox and its copy of the state.
func (sb *Sandbox) Close() error {
	if sb.machine != nil {
		sb.machine.Close()
	}
	var err error
	if sb.store != nil {
		err = sb.store.Close()
	}
	return errors.Join(err, os.Remove(sb.path))
}
