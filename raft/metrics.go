package raft

import (
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus series. Gauges are read from raft at scrape time, so
// they cost nothing between scrapes.
type metrics struct {
	collectors    []prometheus.Collector
	applyDuration prometheus.Histogram
	batchDuration prometheus.Histogram
	batchEntries  prometheus.Histogram
	commitDur     prometheus.Histogram
	commitEntries prometheus.Histogram
	flushDur      prometheus.Histogram
	flushLayers   prometheus.Histogram
	restores      prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_raft_apply_duration_seconds",
			Help:    "Time from proposing a command on the leader to its being applied there.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_fsm_batch_duration_seconds",
			Help:    "Time to apply one batch of log entries from raft to the open state transaction.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_fsm_batch_entries",
			Help:    "Log entries per batch raft hands to the state machine.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		commitDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_fsm_commit_duration_seconds",
			Help:    "Time to commit one state transaction: to make its entries visible to readers (group commit).",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 16),
		}),
		commitEntries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_fsm_commit_entries",
			Help:    "Log entries made visible per state transaction (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		flushDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_fsm_flush_duration_seconds",
			Help:    "Time to write committed state transactions to the state file and fsync it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		flushLayers: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_fsm_flush_transactions",
			Help:    "Committed state transactions written to the state file per flush.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		restores: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rls_fsm_restores_total",
			Help: "Times this node replaced its state with a snapshot since it started.",
		}),
	}
	gauge := func(name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
	}
	stateGauge := func(s hraft.RaftState) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "rls_raft_state",
			Help:        "1 for the Raft state this node is in, 0 for the others.",
			ConstLabels: prometheus.Labels{"state": stateName(s)},
		}, func() float64 {
			if n.raft != nil && n.raft.State() == s {
				return 1
			}
			return 0
		})
	}
	m.collectors = []prometheus.Collector{
		m.applyDuration, m.batchDuration, m.batchEntries, m.commitDur, m.commitEntries, m.flushDur, m.flushLayers, m.restores,
		stateGauge(hraft.Leader), stateGauge(hraft.Follower), stateGauge(hraft.Candidate), stateGauge(hraft.Shutdown),
		gauge("rls_raft_term", "Current Raft term.", func() float64 { return float64(n.raft.CurrentTerm()) }),
		gauge("rls_raft_last_log_index", "Index of the last entry in this node's log.", func() float64 { return float64(n.raft.LastIndex()) }),
		gauge("rls_raft_commit_index", "Highest log index this node knows to be committed.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("rls_fsm_applied_index", "Index of the last log entry applied to this node's state.", func() float64 { return float64(n.fsm.AppliedIndex()) }),
		gauge("rls_fsm_flushed_index", "Index of the last log entry the state file holds: after a crash the node applies the log from there again.", func() float64 {
			_, _, flushed := n.fsm.Unflushed()
			return float64(flushed)
		}),
		gauge("rls_fsm_unflushed_transactions", "Committed state transactions held in memory until the flusher writes them to the state file.", func() float64 {
			layers, _, _ := n.fsm.Unflushed()
			return float64(layers)
		}),
		gauge("rls_fsm_unflushed_bytes", "Approximate memory the unflushed state transactions hold.", func() float64 {
			_, bytes, _ := n.fsm.Unflushed()
			return float64(bytes)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rls_fsm_failed_entries_total",
			Help: "Log entries this node could not apply since it started: rolled back, recorded as failed and skipped (as on every node). Alert on any.",
		}, func() float64 { return float64(n.fsm.FailedEntries()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "rls_fsm_registrations_total",
			Help:        "Patient records this node registered since it started, by who decided their link: the leader (its decision taken) or this node (matched here).",
			ConstLabels: prometheus.Labels{"decided_by": "leader"},
		}, func() float64 { taken, _ := n.fsm.RegistrationsDecided(); return float64(taken) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "rls_fsm_registrations_total",
			Help:        "Patient records this node registered since it started, by who decided their link: the leader (its decision taken) or this node (matched here).",
			ConstLabels: prometheus.Labels{"decided_by": "self"},
		}, func() float64 { _, matched := n.fsm.RegistrationsDecided(); return float64(matched) }),
		gauge("rls_raft_last_contact_seconds", "Age of the last contact with the leader (0 on the leader, -1 never).", func() float64 {
			lc := n.LastContact()
			if lc < 0 {
				return -1
			}
			return lc.Seconds()
		}),
	}
	return m
}

func (m *metrics) observeBatch(entries int, elapsed time.Duration) {
	m.batchEntries.Observe(float64(entries))
	m.batchDuration.Observe(elapsed.Seconds())
}

func (m *metrics) observeCommit(entries int, elapsed time.Duration) {
	m.commitEntries.Observe(float64(entries))
	m.commitDur.Observe(elapsed.Seconds())
}

func (m *metrics) observeFlush(layers int, elapsed time.Duration) {
	m.flushLayers.Observe(float64(layers))
	m.flushDur.Observe(elapsed.Seconds())
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				continue
			}
			return fmt.Errorf("register raft metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors {
		r.Unregister(c)
	}
}
