package raft

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

// fastConfig is a node config with timeouts short enough for tests, its Raft listener open
// (a restart listens again on BindAddr).
func fastConfig(t testing.TB, id, dir string) Config {
	ln := testkit.Listen(t)
	return Config{
		NodeID:             id,
		DataDir:            dir,
		Listener:           ln,
		BindAddr:           ln.Addr().String(),
		HTTPAddr:           "http://" + id + ".test",
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
	}
}

// testCluster is a set of in-process nodes over real TCP on loopback.
type testCluster struct {
	t     testing.TB
	cfgs  []Config
	nodes []*Node
}

// newTestCluster starts n nodes: the first bootstraps, the others join it.
func newTestCluster(t testing.TB, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	base := t.TempDir()
	c := &testCluster{t: t}
	for i := 0; i < n; i++ {
		cfg := fastConfig(t, fmt.Sprintf("n%d", i+1), filepath.Join(base, fmt.Sprintf("n%d", i+1)))
		cfg.Bootstrap = i == 0
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		node, err := Open(cfg)
		if err != nil {
			t.Fatalf("open node %s: %v", cfg.NodeID, err)
		}
		c.nodes = append(c.nodes, node)
		if i == 0 {
			c.waitLeaderReady(0)
			continue
		}
		leader := c.leader()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = leader.Join(ctx, model.Node{ID: cfg.NodeID, RaftAddr: cfg.BindAddr, HTTPAddr: cfg.HTTPAddr})
		cancel()
		if err != nil {
			t.Fatalf("join %s: %v", cfg.NodeID, err)
		}
	}
	t.Cleanup(c.close)
	return c
}

func (c *testCluster) close() {
	for _, n := range c.nodes {
		if n != nil {
			n.Close()
		}
	}
}

// leader waits for a node that leads and is ready for strong reads.
func (c *testCluster) leader() *Node {
	c.t.Helper()
	var leader *Node
	testkit.WaitFor(c.t, 10*time.Second, "a ready leader", func() bool {
		for _, n := range c.nodes {
			if n != nil && n.LeaderReady() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

func (c *testCluster) waitLeaderReady(i int) {
	c.t.Helper()
	testkit.WaitFor(c.t, 10*time.Second, fmt.Sprintf("node %d to lead", i), func() bool { return c.nodes[i].LeaderReady() })
}

// stop closes node i, keeping its data dir.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Fatalf("close node %d: %v", i, err)
	}
	c.nodes[i] = nil
}

// restart reopens node i on its data dir.
func (c *testCluster) restart(i int) *Node {
	c.t.Helper()
	cfg := c.cfgs[i]
	cfg.Bootstrap = false
	cfg.Listener = nil // closed with the node; the node listens on its address again
	n, err := Open(cfg)
	if err != nil {
		c.t.Fatalf("restart node %d: %v", i, err)
	}
	c.nodes[i] = n
	return n
}

// waitConverged waits until every running node's readable state holds the leader's last
// applied entry and returns the common digest.
func (c *testCluster) waitConverged() string {
	c.t.Helper()
	var hash string
	testkit.WaitFor(c.t, 15*time.Second, "nodes to converge", func() bool {
		target := c.leader().fsm.LatestIndex()
		hash = ""
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			err := n.WaitApplied(ctx, target)
			cancel()
			if err != nil {
				return false
			}
			d, err := n.State().Hash()
			if err != nil || d.Index != target {
				return false
			}
			if hash != "" && d.Hash != hash {
				c.t.Fatalf("nodes disagree at index %d: %s vs %s", target, hash, d.Hash)
			}
			hash = d.Hash
		}
		return true
	})
	return hash
}

// waitApplied waits until every running node's readable state holds index.
func (c *testCluster) waitApplied(index uint64) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		if err := n.WaitApplied(ctx, index); err != nil {
			c.t.Fatalf("node %s: %v", n.ID(), err)
		}
	}
}

// participant builds a valid participant numbered i with a token hash of its own.
func participant(i int) model.Participant {
	sum := sha256.Sum256([]byte(fmt.Sprintf("token-%d", i)))
	return model.Participant{
		ID:               fmt.Sprintf("p%d", i),
		Name:             fmt.Sprintf("Participant %d", i),
		Kind:             model.KindHospital,
		Role:             model.RoleParticipant,
		Endpoint:         fmt.Sprintf("https://p%d.example/fhir", i),
		IdentifierSystem: fmt.Sprintf("urn:oid:2.16.840.1.113883.3.%d", i),
		Active:           true,
		TokenHash:        hex.EncodeToString(sum[:]),
	}
}

func addParticipant(t testing.TB, n *Node, i int) Applied {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := n.Apply(ctx, command.TypeParticipantAdd, command.Header{Actor: "test"}, &command.ParticipantAdd{Participant: participant(i)})
	if err != nil {
		t.Fatalf("add participant %d: %v", i, err)
	}
	return a
}
