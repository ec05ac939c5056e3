package raft

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gaugeValue reads one unlabelled gauge of the node's metrics.
func gaugeValue(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := n.metrics.register(reg); err != nil {
		t.Fatalf("register metrics: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 && f.GetMetric()[0].GetGauge() != nil {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

func TestFlushGaugesFollowTheStateFile(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.leader()
	for i := range 20 {
		addParticipant(t, n, i)
	}
	if err := n.SyncLocal(context.Background()); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if applied := float64(n.AppliedIndex()); applied < 20 {
		t.Fatalf("applied index %v after 20 writes", applied)
	}
	// The flusher writes the committed transactions within a flush interval of the first,
	// and the file then holds the applied index.
	deadline := time.Now().Add(10 * time.Second)
	for {
		applied := float64(n.AppliedIndex())
		flushed := gaugeValue(t, n, "rls_fsm_flushed_index")
		if flushed > applied {
			t.Fatalf("flushed index %v beyond the applied index %v", flushed, applied)
		}
		if flushed == applied {
			break
		}
		if gaugeValue(t, n, "rls_fsm_unflushed_transactions") == 0 && float64(n.AppliedIndex()) == applied && gaugeValue(t, n, "rls_fsm_flushed_index") < applied {
			// Committed (applied) yet neither in the file nor waiting for it.
			t.Fatalf("entries up to %v committed, the file at %v, and no transaction waits for the flusher", applied, flushed)
		}
		if time.Now().After(deadline) {
			t.Fatalf("flushed index %v never reached the applied index %v", flushed, applied)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := gaugeValue(t, n, "rls_fsm_unflushed_transactions"); got != 0 {
		t.Fatalf("%v transactions unflushed once the file holds the applied index", got)
	}
	if got := gaugeValue(t, n, "rls_fsm_unflushed_bytes"); got != 0 {
		t.Fatalf("%v bytes unflushed once the file holds the applied index", got)
	}
}
