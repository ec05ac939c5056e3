package audit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics lets an operator alert on audit failures (each one is a request refused with
// 503) and see what group commit achieves. A nil *Metrics counts nothing.
type Metrics struct {
	entries *prometheus.CounterVec
	batch   prometheus.Histogram
	wait    prometheus.Histogram
}

// NewMetrics registers the audit trail's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rls_audit_entries_total",
			Help: "Audit entries by result: recorded (committed), failed (request answered 503), reported (left to the forwarding node).",
		}, []string{"result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_audit_commit_entries",
			Help:    "Audit entries per commit (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rls_audit_wait_seconds",
			Help:    "How long a request waited for its audit entry to commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	reg.MustRegister(m.entries, m.batch, m.wait)
	return m
}

// Entry counts one request's entry by what became of it: recorded, failed, reported (left
// to the node that forwarded the request) or not-admitted (never recorded); waited is how
// long the request waited for it.
func (m *Metrics) Entry(result string, waited time.Duration) {
	if m == nil {
		return
	}
	m.entries.WithLabelValues(result).Inc()
	if result != "reported" {
		m.wait.Observe(waited.Seconds())
	}
}

// Commit counts one commit of entries.
func (m *Metrics) Commit(entries int) {
	if m != nil {
		m.batch.Observe(float64(entries))
	}
}
