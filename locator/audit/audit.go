// Package audit is the capture side of rls's audit trail, everything of it that needs no
// HTTP server: the entry one request builds as it runs (Capture: begun on arrival, told
// what the request disclosed, completed with the outcome), the Report a leader returns to
// the node that forwarded a request so that exactly one node records it, the bounds every
// entry is held to (Bound), the group-commit Batcher that turns concurrent requests'
// entries into few replicated commands, its metrics, and the catalogue of audited actions.
//
// The audit log itself (numbering, hash chain, indexes) lives in raft/state and is written
// only by the FSM; the HTTP side (holding answers until their entry commits, sending a
// follower's batches to the leader, the audit search endpoints) is locator's. This package
// imports only raft/model (and Prometheus) and must never import locator or the state.
package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// ErrNotRecorded is returned when an entry could not be made durable: the request it
// describes must not be answered with data.
var ErrNotRecorded = errors.New("audit entry not recorded")

// CommitFunc makes a batch of entries durable (replicated and committed) or fails. It
// must be safe to call again with entries it may already have recorded: the log skips an
// entry whose ID it holds.
type CommitFunc func(ctx context.Context, entries []model.AuditEntry) error

// Batcher is group commit for audit entries. Each request's goroutine calls Record and
// waits; whichever waiter finds a commit slot free takes every pending entry (up to
// MaxBatch) and commits them in one command, so under load one Raft round trip releases
// many requests, and an idle node commits an entry at once without waiting for a timer.
// It has no goroutine of its own.
type Batcher struct {
	commit      CommitFunc
	maxBatch    int
	maxInFlight int
	timeout     time.Duration

	mu       sync.Mutex
	cond     *sync.Cond
	pending  []*waiter
	inFlight int
}

type waiter struct {
	entry model.AuditEntry
	done  bool
	err   error
}

// BatcherOptions tunes a Batcher; zero values take the defaults.
type BatcherOptions struct {
	// MaxBatch bounds the entries of one command (default 256).
	MaxBatch int
	// MaxInFlight bounds the commands in flight at once (default 4): several let Raft
	// pipeline them, more would only make batches smaller.
	MaxInFlight int
	// Timeout bounds one commit, retries included (default 10s).
	Timeout time.Duration
}

// NewBatcher returns a Batcher committing through commit.
func NewBatcher(commit CommitFunc, o BatcherOptions) *Batcher {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	b := &Batcher{commit: commit, maxBatch: o.MaxBatch, maxInFlight: o.MaxInFlight, timeout: o.Timeout}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// Record blocks until the entries are durably recorded, or fails with ErrNotRecorded.
// It does not stop early when ctx ends (a commit in flight may still record the entry,
// and the caller must know which): commits are bounded by the Batcher's timeout instead;
// ctx only supplies values.
func (b *Batcher) Record(ctx context.Context, entries ...model.AuditEntry) error {
	ws := make([]*waiter, len(entries))
	b.mu.Lock()
	for i, e := range entries {
		ws[i] = &waiter{entry: e}
		b.pending = append(b.pending, ws[i])
	}
	for !allDone(ws) {
		if b.inFlight < b.maxInFlight && len(b.pending) > 0 {
			n := min(len(b.pending), b.maxBatch)
			batch := b.pending[:n:n]
			b.pending = b.pending[n:]
			b.inFlight++
			b.mu.Unlock()
			err := b.run(ctx, batch)
			b.mu.Lock()
			b.inFlight--
			for _, w := range batch {
				w.done, w.err = true, err
			}
			b.cond.Broadcast()
			continue
		}
		b.cond.Wait()
	}
	b.mu.Unlock()
	for _, w := range ws {
		if w.err != nil {
			return w.err
		}
	}
	return nil
}

func allDone(ws []*waiter) bool {
	for _, w := range ws {
		if !w.done {
			return false
		}
	}
	return true
}

func (b *Batcher) run(ctx context.Context, batch []*waiter) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
	defer cancel()
	entries := make([]model.AuditEntry, len(batch))
	for i, w := range batch {
		entries[i] = w.entry
	}
	if err := b.commit(ctx, entries); err != nil {
		return fmt.Errorf("%w: batch of %d: %w", ErrNotRecorded, len(entries), err)
	}
	return nil
}

// NewID returns an entry id: a model.TimeOrderedID (the second of the draw, then 96 random
// bits), so that the state's index of entries by id grows at its end rather than taking a
// random page per entry across the whole log, the largest thing an exchange keeps.
func NewID() (string, error) {
	var random [12]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", fmt.Errorf("draw audit entry id: %w", err)
	}
	return model.TimeOrderedID(time.Now(), random), nil
}
