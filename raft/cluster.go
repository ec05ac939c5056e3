package raft

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Member is a server of the Raft configuration, with its catalog addresses.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Suffrage string `json:"suffrage"`
}

// Members returns the servers of the current Raft configuration in configuration order.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	catalog := map[string]model.Node{}
	err := n.store.View(func(tx *state.Tx) error {
		nodes, err := tx.Nodes()
		for _, nd := range nodes {
			catalog[nd.ID] = nd
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read node catalog: %w", err)
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		m := Member{ID: string(s.ID), RaftAddr: string(s.Address), Suffrage: suffrage(s.Suffrage)}
		m.HTTPAddr = catalog[m.ID].HTTPAddr
		out = append(out, m)
	}
	return out, nil
}

func suffrage(s hraft.ServerSuffrage) string {
	switch s {
	case hraft.Voter:
		return "voter"
	case hraft.Nonvoter:
		return "nonvoter"
	default:
		return "staging"
	}
}

// LocalStatus is what one node knows about itself.
type LocalStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	LastLogIndex uint64 `json:"last_log_index"`
	CommitIndex  uint64 `json:"commit_index"`
	// AppliedIndex is the last entry applied to the state machine; ReadableIndex, what
	// reads see, reaches it at the next group commit (at most 100 ms later).
	AppliedIndex  uint64 `json:"applied_index"`
	ReadableIndex uint64 `json:"readable_index"`
	// LastContactMS is the age of the last message from the leader in milliseconds: 0 on
	// the leader, -1 if it never heard from one.
	LastContactMS int64 `json:"last_contact_ms"`
	LeaderReady   bool  `json:"leader_ready"`
}

// Local returns this node's own view of the cluster.
func (n *Node) Local() LocalStatus {
	_, leaderID := n.raft.LeaderWithID()
	lc := n.LastContact()
	ms := int64(-1)
	if lc >= 0 {
		ms = lc.Milliseconds()
	}
	return LocalStatus{
		ID:            n.cfg.NodeID,
		State:         stateName(n.raft.State()),
		LeaderID:      string(leaderID),
		Term:          n.raft.CurrentTerm(),
		LastLogIndex:  n.raft.LastIndex(),
		CommitIndex:   n.raft.CommitIndex(),
		AppliedIndex:  n.fsm.LatestIndex(),
		ReadableIndex: n.fsm.AppliedIndex(),
		LastContactMS: ms,
		LeaderReady:   n.LeaderReady(),
	}
}

func stateName(s hraft.RaftState) string {
	switch s {
	case hraft.Leader:
		return "leader"
	case hraft.Follower:
		return "follower"
	case hraft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

// Join adds a node to the cluster as a voter. Its catalog entry is written first, so that
// once it is a member every node can forward to its HTTP address. A node id or Raft address
// already in the configuration is refused with ErrNodeExists and changes nothing.
func (n *Node) Join(ctx context.Context, node model.Node) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("read raft configuration: %w", err)
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == node.ID {
			return 0, fmt.Errorf("join %q: %w (id %q at %s)", node.ID, ErrNodeExists, s.ID, s.Address)
		}
		if string(s.Address) == node.RaftAddr {
			return 0, fmt.Errorf("join %q: %w (raft address %s belongs to %q)", node.ID, ErrNodeExists, s.Address, s.ID)
		}
	}
	if _, err := n.Apply(ctx, command.TypeNodeRegister, command.Header{Actor: n.cfg.NodeID}, &command.NodeRegister{Node: node}); err != nil {
		return 0, fmt.Errorf("register node %q: %w", node.ID, err)
	}
	add := n.raft.AddVoter(hraft.ServerID(node.ID), hraft.ServerAddress(node.RaftAddr), 0, n.timeout(ctx))
	if err := add.Error(); err != nil {
		return 0, fmt.Errorf("add voter %q: %w", node.ID, classifyApplyError(command.TypeNodeRegister, err))
	}
	n.logger.Info("node joined", "id", node.ID, "raft_addr", node.RaftAddr, "http_addr", node.HTTPAddr)
	return add.Index(), nil
}

// Remove takes a node out of the cluster and the catalog.
func (n *Node) Remove(ctx context.Context, id string) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	members, err := n.Members()
	if err != nil {
		return 0, err
	}
	var target *Member
	voters := 0
	for i, m := range members {
		if m.ID == id {
			target = &members[i]
		}
		if m.Suffrage == "voter" {
			voters++
		}
	}
	if target == nil {
		return 0, fmt.Errorf("remove %q: %w", id, ErrNodeNotFound)
	}
	if target.Suffrage == "voter" && voters == 1 {
		return 0, fmt.Errorf("remove %q: %w", id, ErrLastVoter)
	}
	// Deregister first: once the leader removes itself it can no longer propose.
	if _, err := n.Apply(ctx, command.TypeNodeDeregister, command.Header{Actor: n.cfg.NodeID}, command.NodeDeregister{ID: id}); err != nil {
		return 0, fmt.Errorf("deregister node %q: %w", id, err)
	}
	rm := n.raft.RemoveServer(hraft.ServerID(id), 0, n.timeout(ctx))
	if err := rm.Error(); err != nil {
		return 0, fmt.Errorf("remove server %q: %w", id, classifyApplyError(command.TypeNodeDeregister, err))
	}
	n.logger.Info("node removed", "id", id)
	return rm.Index(), nil
}

// TransferLeadership hands leadership to the node with id to, or to the most up-to-date
// follower when to is empty.
func (n *Node) TransferLeadership(to string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	var f hraft.Future
	if to == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		members, err := n.Members()
		if err != nil {
			return err
		}
		var target *Member
		for i := range members {
			if members[i].ID == to {
				target = &members[i]
			}
		}
		if target == nil {
			return fmt.Errorf("transfer leadership to %q: %w", to, ErrNodeNotFound)
		}
		f = n.raft.LeadershipTransferToServer(hraft.ServerID(target.ID), hraft.ServerAddress(target.RaftAddr))
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	return nil
}

// WriteSnapshot streams a consistent copy of this node's state to w and returns the log
// index it holds. It does not touch raft's own snapshots or log.
func (n *Node) WriteSnapshot(w io.Writer) (uint64, error) {
	sn, err := n.store.BeginSnapshot()
	if err != nil {
		return 0, err
	}
	defer sn.Release()
	if _, err := sn.WriteTo(w); err != nil {
		return 0, err
	}
	return sn.Index(), nil
}

// Restore replaces the state of the whole cluster with the snapshot file at path (made by
// WriteSnapshot). It runs on the leader, which installs the snapshot into its own state
// and then into every follower's. The file is checked before anything changes, and its
// recorded applied index is cleared (see state.ForgetApplied). It returns the log index at
// which the cluster holds the restored state.
func (n *Node) Restore(ctx context.Context, path string) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	if err := state.ValidateSnapshotFile(path); err != nil {
		return 0, err
	}
	prepared := filepath.Join(n.cfg.DataDir, "restore-upload.db")
	defer os.Remove(prepared)
	if err := state.ForgetApplied(path, prepared); err != nil {
		return 0, err
	}
	f, err := os.Open(prepared)
	if err != nil {
		return 0, fmt.Errorf("open prepared snapshot: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat snapshot: %w", err)
	}
	meta := &hraft.SnapshotMeta{Version: hraft.SnapshotVersionMax, Size: info.Size()}
	// raft restores the snapshot into the FSM, which counts it in the restores metric.
	if err := n.raft.Restore(meta, f, n.timeout(ctx)); err != nil {
		return 0, fmt.Errorf("restore snapshot: %w", err)
	}
	// Raft marks the restore with a no-op entry our FSM never sees; a barrier command makes
	// the applied index cover it, so strong reads do not wait for the next write.
	a, err := n.Apply(ctx, command.TypeBarrier, command.Header{Actor: n.cfg.NodeID}, command.Barrier{})
	if err != nil {
		return 0, fmt.Errorf("barrier after restore: %w", err)
	}
	n.logger.Info("cluster state restored from snapshot", "bytes", info.Size(), "index", a.Index)
	return a.Index, nil
}

func (n *Node) timeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return n.cfg.ApplyTimeout
}
