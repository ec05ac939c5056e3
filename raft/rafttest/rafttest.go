// Package rafttest starts rls nodes in process for the tests of the packages above raft
// (locator, cmd/rls, integration): real raft.Nodes over TCP on loopback, their Raft
// listener handed over open, with election timeouts of a few hundred milliseconds, each in
// a temporary directory of its own.
//
// It is imported by tests only. It must never import locator (whose own tests use it) or
// anything above it; a test that needs the API builds it on the node it gets here. raft's
// own tests, which cannot import it, use its building blocks from integration/testkit.
package rafttest

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// AdminID is the id of the admin participant a node bootstraps (Options.AdminTokenHash).
const AdminID = "admin"

// Options describe a node. The zero value is node "n1" bootstrapping a new cluster in a
// temporary directory.
type Options struct {
	// ID is the node id (default "n1").
	ID string
	// DataDir is the node's data directory (default a new temporary one); a node opened
	// again on the same directory keeps its state.
	DataDir string
	// HTTPAddr is the API base URL the node records in the catalog (default
	// "http://ID.test", for a node nobody forwards to).
	HTTPAddr string
	// Join: the node does not bootstrap a cluster; another node joins it (Join).
	Join bool
	// AdminTokenHash, when set, makes the first leader create the admin participant
	// (AdminID) with this token hash, as `rls agent -bootstrap` does.
	AdminTokenHash string
	// Registerer receives the node's metrics.
	Registerer prometheus.Registerer
	// Adjust, when set, changes the configuration last.
	Adjust func(*raft.Config)
}

// Node is a node started by Start.
type Node struct {
	*raft.Node
	// RaftAddr is the address of its Raft listener; HTTPAddr its API base URL.
	RaftAddr, HTTPAddr string
}

// Start opens a node, closed when the test ends. A node that bootstraps is returned once it
// leads, is ready for strong reads, and its state holds the bootstrap admin (if any), so
// that a request with the admin's token succeeds at once.
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	if o.ID == "" {
		o.ID = "n1"
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "http://" + o.ID + ".test"
	}
	ln := testkit.Listen(t)
	cfg := raft.Config{
		NodeID: o.ID, DataDir: o.DataDir, Listener: ln, BindAddr: ln.Addr().String(), HTTPAddr: o.HTTPAddr,
		Bootstrap:        !o.Join,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		Registerer:        o.Registerer,
		CheckStateNesting: true,
	}
	if o.AdminTokenHash != "" {
		cfg.BootstrapAdmin = &model.Participant{ID: AdminID, Name: "Admin", Kind: model.KindHIE, Role: model.RoleAdmin, Active: true, TokenHash: o.AdminTokenHash}
	}
	if o.Adjust != nil {
		o.Adjust(&cfg)
	}
	n, err := raft.Open(cfg)
	if err != nil {
		t.Fatalf("open node %s: %v", o.ID, err)
	}
	t.Cleanup(func() { n.Close() })
	node := &Node{Node: n, RaftAddr: cfg.BindAddr, HTTPAddr: cfg.HTTPAddr}
	if cfg.Bootstrap {
		testkit.WaitFor(t, 10*time.Second, "node "+o.ID+" to lead", n.LeaderReady)
		if cfg.BootstrapAdmin != nil {
			testkit.WaitFor(t, 10*time.Second, "the bootstrap admin", func() bool { return hasParticipant(n, AdminID) })
		}
	}
	return node
}

// Join makes follower a voter of leader's cluster and waits until it has applied everything
// the leader had.
func Join(t testing.TB, leader, follower *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := leader.Join(ctx, model.Node{ID: follower.ID(), RaftAddr: follower.RaftAddr, HTTPAddr: follower.HTTPAddr}); err != nil {
		t.Fatalf("join %s: %v", follower.ID(), err)
	}
	if err := follower.WaitApplied(ctx, leader.AppliedIndex()); err != nil {
		t.Fatalf("%s catching up: %v", follower.ID(), err)
	}
}

func hasParticipant(n *raft.Node, id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if n.SyncLocal(ctx) != nil {
		return false
	}
	err := n.State().View(func(tx *state.Tx) error {
		_, err := tx.Participant(id)
		return err
	})
	return err == nil
}
