package locator

import (
	"context"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
)

// BatchSequence places a batch in an import stream: a client that sends several batches
// at once (`rls import patients -parallel 4`) numbers them from 0 under one stream name,
// and the leader proposes them to the log in that order whatever order they arrive in.
// Batches are then matched in file order, as if sent one at a time, while the leader still
// decodes, checks and prepares the next batches and replicates them during the one being
// applied.
type BatchSequence struct {
	// Stream names the import: 1–64 letters, digits, '-' or '_', chosen by the client
	// (random, so that two imports never share one).
	Stream string `json:"stream"`
	// Number is the batch's place in the stream, from 0.
	Number uint64 `json:"number"`
	// Settled is the lowest number of the stream the client has had no answer for (every
	// batch before it was answered). A leader that meets the stream for the first time,
	// after a leader change, starts it there instead of waiting for batches that went to
	// the leader before.
	Settled uint64 `json:"settled"`
}

// Limits of import streams.
const (
	// sequenceWait bounds how long a batch waits for the batch before it. A batch that never
	// comes (its client gave up, or sent it to another leader) must not hold the import
	// forever: after this the waiting batch is proposed anyway, out of order.
	sequenceWait = 15 * time.Second
	// sequenceIdle is how long a stream nobody used is remembered.
	sequenceIdle = 15 * time.Minute
	// maxSequenceStreams bounds the streams remembered; beyond it batches are proposed
	// in arrival order (a batch is never refused for want of room).
	maxSequenceStreams = 4096
)

var streamNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (q *BatchSequence) check() error {
	if !streamNamePattern.MatchString(q.Stream) {
		return fhir.Invalid("sequence.stream", "a stream name is 1 to 64 letters, digits, '-' or '_'")
	}
	if q.Settled > q.Number {
		return fhir.Invalid("sequence.settled", "a batch cannot be answered before it is sent: settled must not exceed number")
	}
	return nil
}

// batchSequencer orders the proposals of numbered batches, stream by stream, on this node.
// Only the order in which proposals enter the Raft log is kept: a batch waits until the one
// before it has been handed to Raft, not until it is applied, so that several are in
// flight at once.
type batchSequencer struct {
	mu      sync.Mutex
	streams map[string]*importStream
	logger  *slog.Logger
	wait    time.Duration // sequenceWait, shorter in tests
}

type importStream struct {
	next     uint64        // number of the batch whose turn it is
	advanced chan struct{} // closed, and replaced, whenever next moves
	used     time.Time
}

func newBatchSequencer(logger *slog.Logger) *batchSequencer {
	return &batchSequencer{streams: map[string]*importStream{}, logger: logger, wait: sequenceWait}
}

// await blocks until it is q's turn: the batches before it in its stream have been
// proposed (or q was proposed before and is being sent again). It returns the function to
// call once q has been handed to Raft. A batch that waited sequenceWait goes ahead anyway;
// a cancelled request returns ctx's error.
func (s *batchSequencer) await(ctx context.Context, q BatchSequence) (proposed func(), err error) {
	noop := func() {}
	timer := time.NewTimer(s.wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		st := s.stream(q.Stream)
		if st == nil {
			s.mu.Unlock()
			return noop, nil
		}
		st.used = time.Now()
		if q.Settled > st.next {
			st.moveTo(q.Settled)
		}
		if q.Number <= st.next {
			s.mu.Unlock()
			return func() { s.advance(q) }, nil
		}
		wake := st.advanced
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return noop, ctx.Err()
		case <-timer.C:
			s.logger.Warn("an import batch waited for the batch before it in its stream, in vain, and goes ahead out of order",
				"waited", s.wait, "batch", q.Number)
			return func() { s.advance(q) }, nil
		}
	}
}

// stream returns the state of a stream, new if unknown (at its first batch); nil when no
// more streams fit.
func (s *batchSequencer) stream(name string) *importStream {
	if st, ok := s.streams[name]; ok {
		return st
	}
	if len(s.streams) >= maxSequenceStreams {
		s.forgetIdle()
		if len(s.streams) >= maxSequenceStreams {
			return nil
		}
	}
	st := &importStream{advanced: make(chan struct{})}
	s.streams[name] = st
	return st
}

// advance lets the batch after q go: q has been handed to Raft.
func (s *batchSequencer) advance(q BatchSequence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[q.Stream]
	if !ok || q.Number+1 <= st.next {
		return
	}
	st.moveTo(q.Number + 1)
}

func (st *importStream) moveTo(next uint64) {
	st.next = next
	close(st.advanced)
	st.advanced = make(chan struct{})
}

func (s *batchSequencer) forgetIdle() {
	cutoff := time.Now().Add(-sequenceIdle)
	for name, st := range s.streams {
		if st.used.Before(cutoff) {
			close(st.advanced) // a batch still waiting goes ahead
			delete(s.streams, name)
		}
	}
}
