package raft

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/fsm"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// noopFSM accepts every entry and keeps nothing: the baseline of what replication alone
// costs on this machine.
type noopFSM struct{}

func (noopFSM) Apply(*hraft.Log) any                    { return nil }
func (noopFSM) ApplyBatch(logs []*hraft.Log) []any      { return make([]any, len(logs)) }
func (noopFSM) Snapshot() (hraft.FSMSnapshot, error)    { return noopSnapshot{}, nil }
func (noopFSM) Restore(rc io.ReadCloser) error          { return rc.Close() }
func (noopSnapshot) Persist(s hraft.SnapshotSink) error { return s.Close() }
func (noopSnapshot) Release()                           {}

type noopSnapshot struct{}

// noopCluster is three raft instances built exactly as Open builds them (same config, TCP
// transport, raft-boltdb log store, file snapshot store) but over noopFSM.
type noopCluster struct {
	rafts  []*hraft.Raft
	closer []func()
}

func newNoopCluster(b *testing.B, n int) *noopCluster {
	b.Helper()
	base := b.TempDir()
	c := &noopCluster{}
	var servers []hraft.Server
	var cfgs []Config
	for i := 0; i < n; i++ {
		cfg := fastConfig(b, fmt.Sprintf("n%d", i+1), filepath.Join(base, fmt.Sprintf("n%d", i+1)))
		cfg.setDefaults()
		cfgs = append(cfgs, cfg)
		servers = append(servers, hraft.Server{ID: hraft.ServerID(cfg.NodeID), Address: hraft.ServerAddress(cfg.BindAddr)})
	}
	for i, cfg := range cfgs {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			b.Fatal(err)
		}
		logStore, snaps, err := openRaftStores(cfg)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := newTCPTransport(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := hraft.NewRaft(raftConfig(cfg, nil), noopFSM{}, logStore, logStore, snaps, tr)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			if err := r.BootstrapCluster(hraft.Configuration{Servers: servers}).Error(); err != nil {
				b.Fatal(err)
			}
		}
		c.rafts = append(c.rafts, r)
		c.closer = append(c.closer, func() {
			r.Shutdown().Error()
			nt := tr.(*hraft.NetworkTransport)
			nt.CloseStreams()
			nt.Close()
			logStore.Close()
		})
	}
	b.Cleanup(func() {
		for _, f := range c.closer {
			f()
		}
	})
	return c
}

func (c *noopCluster) leader(b *testing.B) *hraft.Raft {
	var l *hraft.Raft
	testkit.WaitFor(b, 10*time.Second, "noop leader", func() bool {
		for _, r := range c.rafts {
			if r.State() == hraft.Leader {
				l = r
				return true
			}
		}
		return false
	})
	return l
}

// runWriters performs count writes with writers concurrent goroutines and returns writes/s.
func runWriters(b *testing.B, writers, count int, write func(i int) error) float64 {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				if err := write(i); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("write failed: %v", err)
	}
	return float64(count) / time.Since(start).Seconds()
}

// BenchmarkReplicatedWrites measures replicated writes on three in-process nodes over real
// TCP on loopback with 64 concurrent writers: through rls's FSM (participant adds, each
// checked against and written to the bbolt state) and through a no-op FSM over the same
// transport, log store and raft settings. Both clusters get the same pre-encoded log
// entries through raft.Apply, so the ratio is what rls's state machine costs. A round ends
// when every node of the cluster has applied its last entry, and the clusters alternate
// rounds (taking turns at going first) so that drift in disk speed hits both; the reported
// ratio is the median of the per-round ratios.
//
//	go test -run '^$' -bench ReplicatedWrites -benchtime 48000x ./raft/
func BenchmarkReplicatedWrites(b *testing.B) {
	const writers, rounds, warmup = 64, 16, 256
	rls := newTestCluster(b, 3, nil)
	rlsLeader := rls.leader()
	noop := newNoopCluster(b, 3)
	noopLeader := noop.leader(b)

	per := max(b.N/rounds, 1)
	entries := make([][]byte, warmup+per*rounds)
	stamp := time.Now().UTC()
	for i := range entries {
		data, err := command.Encode(command.TypeParticipantAdd, command.Header{Time: stamp, Actor: "bench"}, &command.ParticipantAdd{Participant: participant(i)})
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = data
	}
	next := 0
	writeRLS := func(i int) error {
		f := rlsLeader.raft.Apply(entries[next+i], 10*time.Second)
		if err := f.Error(); err != nil {
			return err
		}
		if resp, ok := f.Response().(fsm.Response); !ok || resp.Err != nil {
			return fmt.Errorf("entry %d: FSM answered %+v", next+i, f.Response())
		}
		return nil
	}
	writeNoop := func(i int) error { return noopLeader.Apply(entries[next+i], 10*time.Second).Error() }

	runWriters(b, writers, warmup, writeRLS) // warm up connections and pipelines
	runWriters(b, writers, warmup, writeNoop)
	next = warmup

	var rlsTime, noopTime time.Duration
	var ratios []float64
	b.ResetTimer()
	rlsRound := func() time.Duration {
		start := time.Now()
		runWriters(b, writers, per, writeRLS)
		rls.waitApplied(rlsLeader.fsm.LatestIndex())
		return time.Since(start)
	}
	noopRound := func() time.Duration {
		start := time.Now()
		runWriters(b, writers, per, writeNoop)
		noop.waitApplied(b, noopLeader.LastIndex())
		return time.Since(start)
	}
	for r := 0; r < rounds; r++ {
		var rlsT, noopT time.Duration
		if r%2 == 0 {
			rlsT, noopT = rlsRound(), noopRound()
		} else {
			noopT, rlsT = noopRound(), rlsRound()
		}
		next += per
		rlsTime += rlsT
		noopTime += noopT
		ratios = append(ratios, noopT.Seconds()/rlsT.Seconds())
	}
	b.StopTimer()
	total := float64(per * rounds)
	slices.Sort(ratios)
	b.ReportMetric(total/rlsTime.Seconds(), "rls-writes/s")
	b.ReportMetric(total/noopTime.Seconds(), "noop-writes/s")
	b.ReportMetric(ratios[len(ratios)/2], "median-ratio")

	rls.waitConverged()
	if got := len(rlsParticipants(b, rlsLeader)); got != len(entries) {
		b.Fatalf("leader holds %d participants after %d acknowledged writes", got, len(entries))
	}
}

// waitApplied waits until every node has handed index to its (no-op) FSM.
func (c *noopCluster) waitApplied(b *testing.B, index uint64) {
	testkit.WaitFor(b, 30*time.Second, "no-op cluster to apply", func() bool {
		for _, r := range c.rafts {
			if r.AppliedIndex() < index {
				return false
			}
		}
		return true
	})
}

func rlsParticipants(b *testing.B, n *Node) []model.Participant {
	var out []model.Participant
	err := n.State().View(func(tx *state.Tx) error {
		var err error
		out, err = tx.Participants()
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}
