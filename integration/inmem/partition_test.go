package inmem

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// commandsToAck is how many acknowledged commands scenario 1 waits for: 10,000 in the full
// set (-tags chaos or RLS_CHAOS=full), fewer by default.
func commandsToAck() int {
	if fullChaos || os.Getenv("RLS_CHAOS") == "full" {
		return 10000
	}
	return 1500
}

// cluster is five rls nodes in this process on raft's in-memory transport.
type cluster struct {
	t          *testing.T
	dir        string
	cfgs       []raft.Config
	transports []*hraft.InmemTransport
	nodes      []*raft.Node
	logFiles   []*os.File
}

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "_")
	dir, err := os.MkdirTemp("", "rls-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir}
	t.Cleanup(c.cleanup)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("n%d", i+1)
		addr, trans := hraft.NewInmemTransport(hraft.ServerAddress(id))
		logFile, err := os.Create(filepath.Join(dir, id+".log"))
		if err != nil {
			t.Fatal(err)
		}
		c.logFiles = append(c.logFiles, logFile)
		c.transports = append(c.transports, trans)
		c.cfgs = append(c.cfgs, raft.Config{
			NodeID: id, DataDir: filepath.Join(dir, id), BindAddr: string(addr), AdvertiseAddr: string(addr),
			HTTPAddr: "http://" + id + ".test", Bootstrap: i == 0, Transport: trans,
			HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
			ApplyTimeout:      2 * time.Second,
			Logger:            slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
			CheckStateNesting: true,
		})
	}
	c.heal()
	for i := range c.cfgs {
		node, err := raft.Open(c.cfgs[i])
		if err != nil {
			t.Fatalf("open %s: %v", c.cfgs[i].NodeID, err)
		}
		c.nodes = append(c.nodes, node)
		if i == 0 {
			testkit.WaitFor(c.t, 10*time.Second, "n1 to lead", func() bool { return node.LeaderReady() })
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = c.leader().Join(ctx, model.Node{ID: c.cfgs[i].NodeID, RaftAddr: c.cfgs[i].AdvertiseAddr, HTTPAddr: c.cfgs[i].HTTPAddr})
		cancel()
		if err != nil {
			t.Fatalf("join %s: %v", c.cfgs[i].NodeID, err)
		}
	}
	return c
}

func (c *cluster) cleanup() {
	c.closeNodes()
	for _, f := range c.logFiles {
		f.Close()
	}
	if c.t.Failed() {
		c.t.Logf("kept the nodes' logs and data dirs in %s", c.dir)
		return
	}
	os.RemoveAll(c.dir)
}

func (c *cluster) closeNodes() {
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Close(); err != nil {
				c.t.Errorf("close %s: %v", n.ID(), err)
			}
		}()
		c.nodes[i] = nil
	}
	wg.Wait()
}

// currentLeader returns the node that leads at the highest term, or nil.
func (c *cluster) currentLeader() *raft.Node {
	var best *raft.Node
	var term uint64
	for _, n := range c.nodes {
		if n == nil || !n.IsLeader() {
			continue
		}
		if l := n.Local(); best == nil || l.Term > term {
			best, term = n, l.Term
		}
	}
	return best
}

// leader waits for a leader ready for strong reads.
func (c *cluster) leader() *raft.Node {
	c.t.Helper()
	var l *raft.Node
	testkit.WaitFor(c.t, 20*time.Second, "a ready leader", func() bool {
		l = c.currentLeader()
		return l != nil && l.LeaderReady()
	})
	return l
}

// partition cuts every link between two groups, both ways, and opens every link inside a
// group.
func (c *cluster) partition(groups ...[]int) {
	group := map[int]int{}
	for g, members := range groups {
		for _, i := range members {
			group[i] = g
		}
	}
	for i, ti := range c.transports {
		for j, tj := range c.transports {
			if i == j {
				continue
			}
			if group[i] == group[j] {
				ti.Connect(tj.LocalAddr(), tj)
			} else {
				ti.Disconnect(tj.LocalAddr())
			}
		}
	}
}

func (c *cluster) heal() { c.partition(c.indexes()) }

func (c *cluster) indexes() []int {
	var out []int
	for i := range c.transports {
		out = append(out, i)
	}
	return out
}

func (c *cluster) indexOf(n *raft.Node) int {
	for i, m := range c.nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// participant is the participant added by command number i.
func participant(i int64) model.Participant {
	sum := sha256.Sum256([]byte(fmt.Sprintf("token-%d", i)))
	return model.Participant{
		ID: fmt.Sprintf("p%d", i), Name: fmt.Sprintf("Participant %d", i), Kind: model.KindHospital,
		Role: model.RoleParticipant, Endpoint: fmt.Sprintf("https://p%d.example/fhir", i),
		IdentifierSystem: fmt.Sprintf("urn:oid:2.16.840.1.113883.3.%d", i), Active: true, TokenHash: hex.EncodeToString(sum[:]),
	}
}

// outcome of one proposed command.
type outcome int

const (
	acked outcome = iota
	notApplied
	unknown
)

type result struct {
	id      string
	outcome outcome
	index   uint64
}

// TestPartitionedLeaderInmem is scenario 1: five nodes in one process on raft's in-memory
// transport; sixteen clients propose participant adds to whichever node leads while the
// leader, alone or with one or two followers, is repeatedly partitioned from the rest (a
// minority of one or two, or a majority of three). Pass rule, after healing: every node's
// Raft log holds the same entries (term, type and bytes) over the range all of them keep
// and ends at the same index, every node's state has the same hash, every acknowledged
// command is in every node's state and in every log at the index it was acknowledged
// with, and no command answered "not applied" is anywhere.
func TestPartitionedLeaderInmem(t *testing.T) {
	if testing.Short() {
		t.Skip("five raft nodes under partitions; skipped with -short")
	}
	target := commandsToAck()
	c := newCluster(t, 5)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))

	var (
		mu      sync.Mutex
		results []result
		ackedN  atomic.Int64
		nextID  atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var clients sync.WaitGroup
	for client := 0; client < 16; client++ {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for ctx.Err() == nil && ackedN.Load() < int64(target) {
				leader := c.currentLeader()
				if leader == nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				n := nextID.Add(1)
				p := participant(n)
				actx, acancel := context.WithTimeout(ctx, 2*time.Second)
				a, err := leader.Apply(actx, command.TypeParticipantAdd, command.Header{Actor: "scenario-1"}, &command.ParticipantAdd{Participant: p})
				acancel()
				r := result{id: p.ID, index: a.Index}
				switch {
				case err == nil:
					r.outcome = acked
					ackedN.Add(1)
				case errors.Is(err, raft.ErrNotLeader):
					r.outcome = notApplied
				case errors.Is(err, raft.ErrOutcomeUnknown):
					r.outcome = unknown
				default:
					t.Errorf("add %s: unexpected error %v", p.ID, err)
					r.outcome = unknown
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}

	partitions := 0
	start := time.Now()
	for ackedN.Load() < int64(target) {
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("only %d of %d commands acknowledged after %s", ackedN.Load(), target, time.Since(start))
		}
		time.Sleep(between(rng, 200*time.Millisecond, 600*time.Millisecond)) // writes between faults
		leader := c.currentLeader()
		if leader == nil {
			continue
		}
		l := c.indexOf(leader)
		var others []int
		for _, i := range rng.Perm(len(c.nodes)) {
			if i != l {
				others = append(others, i)
			}
		}
		with := rng.IntN(3) // the leader keeps 0, 1 or 2 followers
		c.partition(append([]int{l}, others[:with]...), others[with:])
		partitions++
		time.Sleep(between(rng, 300*time.Millisecond, time.Second)) // the partition's length
		c.heal()
	}
	cancel()
	clients.Wait()
	c.heal()

	// One more entry from a ready leader makes every node learn the final commit index.
	leader := c.leader()
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
	final, err := leader.Apply(bctx, command.TypeBarrier, command.Header{Actor: "scenario-1"}, command.Barrier{})
	bcancel()
	if err != nil {
		t.Fatalf("final barrier: %v", err)
	}
	var hash string
	for _, n := range c.nodes {
		wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := n.WaitApplied(wctx, final.Index)
		wcancel()
		if err != nil {
			t.Fatalf("%s did not apply the final barrier: %v", n.ID(), err)
		}
		d, err := n.State().Hash()
		if err != nil {
			t.Fatal(err)
		}
		if d.Index != final.Index {
			t.Errorf("%s state at index %d, want %d", n.ID(), d.Index, final.Index)
		}
		if hash != "" && d.Hash != hash {
			t.Errorf("%s has state hash %s, others %s", n.ID(), d.Hash, hash)
		}
		hash = d.Hash
	}

	counts := map[outcome]int{}
	for _, r := range results {
		counts[r.outcome]++
	}
	t.Logf("%d partitions in %s; %d commands acknowledged, %d not applied, %d unknown; all nodes at index %d",
		partitions, time.Since(start).Round(time.Millisecond), counts[acked], counts[notApplied], counts[unknown], final.Index)

	for _, n := range c.nodes {
		err := n.State().View(func(tx *state.Tx) error {
			lost, ghosts := 0, 0
			for _, r := range results {
				has := tx.HasParticipant(r.id)
				if r.outcome == acked && !has {
					lost++
				}
				if r.outcome == notApplied && has {
					ghosts++
				}
			}
			if lost > 0 || ghosts > 0 {
				t.Errorf("%s lacks %d acknowledged commands and holds %d not-applied ones", n.ID(), lost, ghosts)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	c.closeNodes()
	c.compareLogs(results)
}

// compareLogs opens every node's Raft log (the nodes closed) and requires the same last
// index, the same entries over the range every log still holds, and each acknowledged
// command at its index.
func (c *cluster) compareLogs(results []result) {
	c.t.Helper()
	var stores []*raftboltdb.BoltStore
	for _, cfg := range c.cfgs {
		s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db"), BoltOptions: &bolt.Options{ReadOnly: true, Timeout: time.Second}})
		if err != nil {
			c.t.Fatalf("open raft log of %s: %v", cfg.NodeID, err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	var first, last uint64
	for i, s := range stores {
		f, err := s.FirstIndex()
		if err != nil {
			c.t.Fatal(err)
		}
		l, err := s.LastIndex()
		if err != nil {
			c.t.Fatal(err)
		}
		if i > 0 && l != last {
			c.t.Errorf("%s's log ends at %d, %s's at %d", c.cfgs[i].NodeID, l, c.cfgs[0].NodeID, last)
		}
		first, last = max(first, f), l
	}
	for index := first; index <= last; index++ {
		var want hraft.Log
		for i, s := range stores {
			var got hraft.Log
			if err := s.GetLog(index, &got); err != nil {
				c.t.Fatalf("%s entry %d: %v", c.cfgs[i].NodeID, index, err)
			}
			if i == 0 {
				want = got
				continue
			}
			if got.Term != want.Term || got.Type != want.Type || string(got.Data) != string(want.Data) {
				c.t.Fatalf("entry %d differs: %s has term %d type %v, %s term %d type %v", index,
					c.cfgs[0].NodeID, want.Term, want.Type, c.cfgs[i].NodeID, got.Term, got.Type)
			}
		}
	}
	checked := 0
	for _, r := range results {
		if r.outcome != acked || r.index < first {
			continue
		}
		var entry hraft.Log
		if err := stores[0].GetLog(r.index, &entry); err != nil {
			c.t.Errorf("acknowledged %s at index %d: %v", r.id, r.index, err)
			continue
		}
		e, err := command.Decode(entry.Data)
		if err != nil {
			c.t.Errorf("entry %d of acknowledged %s: %v", r.index, r.id, err)
			continue
		}
		_, add, err := command.DecodeBody[command.ParticipantAdd](e)
		if err != nil || e.Type != command.TypeParticipantAdd || add.Participant.ID != r.id {
			c.t.Errorf("entry %d is not the acknowledged add of %s (type %s, %v)", r.index, r.id, e.Type, err)
			continue
		}
		checked++
	}
	c.t.Logf("logs equal over %d..%d on every node; %d acknowledged commands found at their indexes", first, last, checked)
}

func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}
