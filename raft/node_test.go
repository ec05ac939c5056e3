package raft

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/fsm"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

func TestMain(m *testing.M) {
	// Bleve starts its analysis workers once per process, at package init.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/blevesearch/bleve_index_api.AnalysisWorker"))
}

func participantIDs(t *testing.T, n *Node) []string {
	t.Helper()
	syncLocal(t, n)
	var ids []string
	err := n.State().View(func(tx *state.Tx) error {
		all, err := tx.Participants()
		for _, p := range all {
			ids = append(ids, p.ID)
		}
		return err
	})
	if err != nil {
		t.Fatalf("list participants on %s: %v", n.ID(), err)
	}
	return ids
}

// syncLocal waits until n's readable state holds everything n has applied.
func syncLocal(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.SyncLocal(ctx); err != nil {
		t.Fatal(err)
	}
}

func stateHash(t *testing.T, n *Node) state.Digest {
	t.Helper()
	syncLocal(t, n)
	d, err := n.State().Hash()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestClusterReplicatesEveryWrite(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	for i := 0; i < 40; i++ {
		a := addParticipant(t, leader, i)
		if a.Index == 0 {
			t.Fatalf("write %d returned index 0", i)
		}
		if p, ok := a.Value.(model.Participant); !ok || p.Version != 1 || p.Created.IsZero() {
			t.Fatalf("write %d returned %#v, want the stored participant at version 1 with a stamped time", i, a.Value)
		}
	}
	c.waitConverged()
	for _, n := range c.nodes {
		if got := len(participantIDs(t, n)); got != 40 {
			t.Errorf("node %s holds %d participants, want 40", n.ID(), got)
		}
	}
	members, err := leader.Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Fatalf("members = %+v, want 3", members)
	}
	for _, m := range members {
		if m.HTTPAddr == "" || m.Suffrage != "voter" {
			t.Errorf("member %+v lacks its catalog address or is not a voter", m)
		}
	}
}

func TestBusinessErrorLeavesStateUnchanged(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.leader()
	addParticipant(t, n, 1)
	// A new leader registers itself in the catalog after it reports ready: let that write
	// land first, or it may fall between the two hashes.
	testkit.WaitFor(t, 10*time.Second, "the leader's catalog entry", func() bool {
		return n.State().View(func(tx *state.Tx) error { _, err := tx.Node(n.ID()); return err }) == nil
	})
	before := stateHash(t, n)
	ctx := context.Background()
	dup := participant(1)
	dup.TokenHash = participant(99).TokenHash
	_, err := n.Apply(ctx, command.TypeParticipantAdd, command.Header{}, &command.ParticipantAdd{Participant: dup})
	if !errors.Is(err, fsm.ErrParticipantExists) {
		t.Fatalf("duplicate add: err = %v, want ErrParticipantExists", err)
	}
	sameSystem := participant(2)
	sameSystem.IdentifierSystem = participant(1).IdentifierSystem
	_, err = n.Apply(ctx, command.TypeParticipantAdd, command.Header{}, &command.ParticipantAdd{Participant: sameSystem})
	if !errors.Is(err, fsm.ErrSystemInUse) {
		t.Fatalf("add with a taken identifier system: err = %v, want ErrSystemInUse", err)
	}
	after := stateHash(t, n)
	if after.Hash != before.Hash {
		t.Fatalf("refused commands changed the state: %s -> %s", before.Hash, after.Hash)
	}
	if after.Index <= before.Index {
		t.Fatalf("applied index did not advance past the refused commands: %d -> %d", before.Index, after.Index)
	}
}

func TestSnapshotSaveWipeRestoreGivesIdenticalState(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.leader()
	for i := 0; i < 25; i++ {
		addParticipant(t, n, i)
	}
	want := stateHash(t, n)
	file := filepath.Join(t.TempDir(), "backup.db")
	var buf bytes.Buffer
	index, err := n.WriteSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if index != want.Index {
		t.Fatalf("snapshot holds index %d, state was at %d", index, want.Index)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	// Wipe: a brand-new cluster in a fresh data dir.
	c.stop(0)
	if err := os.RemoveAll(c.cfgs[0].DataDir); err != nil {
		t.Fatal(err)
	}
	fresh := newTestCluster(t, 1, nil).leader()
	if got := participantIDs(t, fresh); len(got) != 0 {
		t.Fatalf("fresh cluster already holds %v", got)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, []byte("not a database"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := fresh.Restore(ctx, garbage); !errors.Is(err, state.ErrNotState) {
		t.Fatalf("restore of garbage: err = %v, want ErrNotState", err)
	}
	if _, err := fresh.Restore(ctx, file); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := stateHash(t, fresh); got.Hash != want.Hash {
		t.Fatalf("restored state hash %s, want %s", got.Hash, want.Hash)
	}
	// The restored cluster keeps working.
	addParticipant(t, fresh, 100)
	if ids := participantIDs(t, fresh); len(ids) != 26 {
		t.Fatalf("after restore and one write: %d participants, want 26", len(ids))
	}
	if err := fresh.VerifyStrong(ctx); err != nil {
		t.Fatalf("strong read after restore: %v", err)
	}
}

func TestRestartedNodeCatchesUpFromItsOwnLog(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	for i := 0; i < 20; i++ {
		addParticipant(t, leader, i)
	}
	c.waitConverged()
	follower := 1
	if c.nodes[follower] == leader {
		follower = 2
	}
	c.stop(follower)
	for i := 20; i < 60; i++ {
		addParticipant(t, leader, i)
	}
	n := c.restart(follower)
	if applied := n.AppliedIndex(); applied == 0 {
		t.Fatalf("restarted node lost its applied index")
	}
	c.waitConverged()
	if restores := testutil.ToFloat64(n.metrics.restores); restores != 0 {
		t.Fatalf("restarted node replaced its state %v times; it should only replay the log", restores)
	}
	if got := len(participantIDs(t, n)); got != 60 {
		t.Fatalf("restarted node holds %d participants, want 60", got)
	}
}

func TestNodeWithLostStateRestoresFromSnapshotOnStart(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.leader()
	for i := 0; i < 10; i++ {
		addParticipant(t, n, i)
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("take snapshot: %v", err)
	}
	want := stateHash(t, n)
	c.stop(0)
	os.Remove(filepath.Join(c.cfgs[0].DataDir, "state.db"))
	n = c.restart(0)
	if restores := testutil.ToFloat64(n.metrics.restores); restores != 1 {
		t.Fatalf("node without state restored %v snapshots, want 1", restores)
	}
	c.waitLeaderReady(0)
	if got := stateHash(t, n); got.Hash != want.Hash {
		t.Fatalf("state after restart %s, want %s", got.Hash, want.Hash)
	}
}

func TestStrongReadsOnlyOnAConfirmedLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	addParticipant(t, leader, 1)
	ctx := context.Background()
	if err := leader.VerifyStrong(ctx); err != nil {
		t.Fatalf("strong read on leader: %v", err)
	}
	for _, n := range c.nodes {
		if n != leader {
			if err := n.VerifyStrong(ctx); !errors.Is(err, ErrNotLeader) {
				t.Errorf("strong read on follower %s: err = %v, want ErrNotLeader", n.ID(), err)
			}
			if _, err := n.Apply(ctx, command.TypeParticipantAdd, command.Header{}, &command.ParticipantAdd{Participant: participant(9)}); !errors.Is(err, ErrNotLeader) {
				t.Errorf("write on follower %s: err = %v, want ErrNotLeader", n.ID(), err)
			}
		}
	}
}

func TestMembershipChanges(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	other := c.cfgs[1]
	if leader.ID() == other.NodeID {
		other = c.cfgs[2]
	}
	before := stateHash(t, leader)
	if _, err := leader.Join(ctx, model.Node{ID: other.NodeID, RaftAddr: "127.0.0.1:1", HTTPAddr: "http://x"}); !errors.Is(err, ErrNodeExists) {
		t.Fatalf("join with an existing id: err = %v, want ErrNodeExists", err)
	}
	if _, err := leader.Join(ctx, model.Node{ID: "new", RaftAddr: other.BindAddr, HTTPAddr: "http://x"}); !errors.Is(err, ErrNodeExists) {
		t.Fatalf("join with an existing address: err = %v, want ErrNodeExists", err)
	}
	if after := stateHash(t, leader); after.Hash != before.Hash {
		t.Fatalf("refused joins changed the state")
	}
	if _, err := leader.Remove(ctx, "nope"); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("remove of unknown node: err = %v", err)
	}

	if err := leader.TransferLeadership(""); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, "another leader", func() bool {
		for _, n := range c.nodes {
			if n != leader && n.LeaderReady() {
				return true
			}
		}
		return false
	})
	newLeader := c.leader()
	if _, err := newLeader.Remove(ctx, leader.ID()); err != nil {
		t.Fatalf("remove old leader: %v", err)
	}
	members, _ := newLeader.Members()
	if len(members) != 2 {
		t.Fatalf("after remove: members %+v", members)
	}
	addParticipant(t, newLeader, 5)
}

// TestPeerDialAddressesRouteRaftTraffic checks that a node dials a peer at its configured
// dial address (here a counting TCP relay) instead of the address the peer advertises.
func TestPeerDialAddressesRouteRaftTraffic(t *testing.T) {
	var relayed atomic.Int64
	var mu sync.Mutex
	var conns []net.Conn
	target := testkit.Listen(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			relayed.Add(1)
			out, err := net.Dial("tcp", target.Addr().String())
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	c := newTestCluster(t, 2, func(cfg *Config) {
		if cfg.NodeID == "n1" {
			cfg.Listener, cfg.BindAddr = target, target.Addr().String()
		} else {
			cfg.PeerDialAddrs = map[string]string{"n1": l.Addr().String()}
		}
	})
	leader := c.leader()
	c.waitConverged() // a transfer waits for the target to be up to date
	if err := leader.TransferLeadership("n2"); err != nil {
		t.Fatalf("transfer to n2: %v (relayed %d)", err, relayed.Load())
	}
	testkit.WaitFor(t, 10*time.Second, "n2 to lead", func() bool { return c.nodes[1].LeaderReady() })
	addParticipant(t, c.nodes[1], 1)
	if relayed.Load() == 0 {
		t.Fatal("n2 never dialled n1 through its dial address")
	}
}
