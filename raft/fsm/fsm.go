// Package fsm is rls's Raft state machine: it decodes each committed log entry and applies it
// to the bbolt state through a table of small handlers, one per command type, committing one
// bbolt transaction per batch of entries.
//
// Apply is deterministic: a handler reads only its command (whose time and ids the leader
// stamped) and the replicated state, never a clock, a random source, local configuration or
// Go map order. Business outcomes such as "participant already exists", and input beyond the
// limits of raft/model, are returned as the entry's Response and change nothing.
//
// An entry that a node of this version cannot apply at all (undecodable bytes, a storage
// error such as a key too large, a panic in a handler) fails the same way on every node of
// this version: its writes are rolled back, the entry is filed in the state as failed (index,
// type and a fixed reason, never its contents) and skipped, so that every node stays
// identical and keeps going. Only an entry of an unknown type without the ignore flag (the
// node is older than the log) and a commit that the local disk refuses stop the node: the
// first is fixed by upgrading, the second by fixing the disk, and neither is something the
// other nodes share, so skipping it would make this node diverge.
//
// A follower registers patients with the matching decisions the leader made for the same
// entry when a DecisionSource gives them (decided.go): the same state, without matching
// every record on every node.
//
// The package must never import HTTP or API code: the source that asks the leader is the
// API's (locator).
package fsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/tinylib/msgp/msgp"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/state"
)

// Response is what applying one entry produced: the resulting entity, or a business error
// (in which case the entry changed nothing).
type Response struct {
	Value any
	Err   error
}

// handler applies one command inside the batch's transaction. It must check every
// precondition before its first write, so that an error leaves nothing half-written.
type handler func(tx *state.Tx, e command.Entry) (any, error)

// typed adapts a handler of one payload type to the table, decoding header and payload in
// one pass.
func typed[P any, PP interface {
	*P
	msgp.Unmarshaler
}](apply func(tx *state.Tx, h command.Header, payload P) (any, error)) handler {
	return func(tx *state.Tx, e command.Entry) (any, error) {
		h, p, err := command.DecodeBody[P, PP](e)
		if err != nil {
			return nil, err
		}
		if h.Limits >= 1 {
			if err := checkLimits(h, any(PP(&p))); err != nil {
				return nil, business("%s: %w", e.Type, err)
			}
		}
		return apply(tx, h, p)
	}
}

// FSM applies committed log entries to the replicated state.
//
// Entries are applied into a write transaction (state.Batch: a layer in memory over the
// state file) that stays open across batches; a committer goroutine commits it (freezes the
// layer, which readers then see) at most CommitInterval after its first entry, as soon as
// it holds MaxPendingEntries, or at once when a reader waits for an entry it holds
// (WaitApplied). A flusher goroutine writes the committed layers into the bbolt file, in
// one transaction with bbolt's own fsyncs (never NoSync), FlushInterval after the first of
// them or as soon as they hold FlushSize. Neither makes the state machine wait: a bbolt
// commit blocked the next batch from beginning while it wrote and fsynced pages, a quarter
// to a third of a bulk load. An acknowledged write does not depend on the file: raft
// acknowledges only entries a quorum has fsynced to its log, and after a crash the entries
// after the file's applied index are replayed from that log.
type FSM struct {
	store    *state.Store
	logger   *slog.Logger
	handlers map[command.Type]handler
	// matcher decides patient links; it keeps only reusable buffers, never results.
	matcher *mpi.Matcher
	// proposals are the prepared forms of the registrations this node proposed.
	proposals proposals

	// latest is the last entry raft handed to the FSM, committed or not; committed is the
	// last entry in the state file, visible to readers.
	latest    atomic.Uint64
	committed atomic.Uint64
	// changed is the last entry handed to the FSM that changed anything but the audit log
	// (see WaitChanges); at start and after a restore, the applied index.
	changed atomic.Uint64
	// wanted is the highest index a reader is waiting for: applying it triggers a commit.
	wanted atomic.Uint64

	openMu    sync.Mutex
	open      *state.Batch
	openIndex uint64
	openCount int
	// openDocs lists the documents changed in the open transaction, for the search index.
	openDocs []string
	// openLogs are the command entries applied into the open transaction, in order, with
	// the failure each one that was skipped met: when an entry fails (see Apply), the
	// transaction is rolled back and they are applied (or recorded as failed) again.
	openLogs []openEntry
	// failed counts the entries recorded as failed since start (metrics).
	failed atomic.Uint64
	// applying is the entry being applied (handlers record its index).
	applying *hraft.Log

	// decided keeps what the matcher decided for the entries applied lately, for the
	// followers; source, if set, is where this node asks for them (see DecisionSource).
	decided          decidedLog
	source           atomic.Pointer[DecisionSource]
	decider          string
	decisionsTaken   atomic.Uint64
	decisionsMatched atomic.Uint64
	// openRecords counts the patient records registered into the open transaction (see
	// MaxPendingRecords).
	openRecords int
	// maxPendingRecords commits the open transaction before an entry once it holds this
	// many registrations.
	maxPendingRecords int

	// commitMu serialises commits between the committer and Snapshot/Restore/Close.
	commitMu     sync.Mutex
	commitSignal chan struct{} // the open transaction got its first entries
	commitNow    chan struct{} // a reader or the size limit wants a commit now
	stop         chan struct{}
	stopped      chan struct{}
	closeOnce    sync.Once

	flushInterval time.Duration
	flushSignal   chan struct{} // a commit added a layer to flush
	flushNow      chan struct{} // the layers reached FlushSize
	flushStop     chan struct{}
	flushStopped  chan struct{}

	waitMu      sync.Mutex
	committedCh chan struct{} // closed and replaced each time committed advances

	observeBatch  func(entries int, elapsed time.Duration)
	observeCommit func(entries int, elapsed time.Duration)
	observeFlush  func(layers int, elapsed time.Duration)

	// onCommit, if set, is told after each commit the index now readable and the documents
	// changed since the previous commit (in order; called by one goroutine at a time).
	onCommit func(index uint64, docs []string)
	// onRestore, if set, is told that the whole state was replaced.
	onRestore func(index uint64)
	// onFlush, if set, is told after each flush (state.Store.FlushedIndex moved).
	onFlush func()
}

// WithFlushHook registers a hook told after each flush that the state file holds more
// (state.Store.FlushedIndex): derived state kept on disk (the search index) must not get
// ahead of the file, which is what a node has after a crash.
func WithFlushHook(flushed func()) Option {
	return func(f *FSM) { f.onFlush = flushed }
}

// RequestFlush asks the flusher to write the committed layers to the state file now (a
// reader waits for derived state that follows the file).
func (f *FSM) RequestFlush() { signal(f.flushNow) }

// WithCommitHooks registers the hooks that keep derived state (the search index) in step
// with the committed state.
func WithCommitHooks(commit func(index uint64, docs []string), restore func(index uint64)) Option {
	return func(f *FSM) { f.onCommit, f.onRestore = commit, restore }
}

// Option configures an FSM.
type Option func(*FSM)

// WithMaxPendingRecords commits the open transaction before the next entry once it holds
// n patient registrations (default MaxPendingRecords).
func WithMaxPendingRecords(n int) Option {
	return func(f *FSM) { f.maxPendingRecords = n }
}

// WithObservers reports the size and duration of each applied batch, of each commit and of
// each flush to the state file (for metrics).
func WithObservers(batch, commit, flush func(n int, elapsed time.Duration)) Option {
	return func(f *FSM) { f.observeBatch, f.observeCommit, f.observeFlush = batch, commit, flush }
}

// New returns an FSM over store, resuming after the last entry the store holds. Close
// stops its committer.
func New(store *state.Store, logger *slog.Logger, opts ...Option) (*FSM, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{
		store: store, logger: logger,
		committedCh:   make(chan struct{}),
		commitSignal:  make(chan struct{}, 1),
		commitNow:     make(chan struct{}, 1),
		stop:          make(chan struct{}),
		stopped:       make(chan struct{}),
		flushInterval: FlushInterval,
		flushSignal:   make(chan struct{}, 1),
		flushNow:      make(chan struct{}, 1),
		flushStop:     make(chan struct{}),
		flushStopped:  make(chan struct{}),
		matcher:       mpi.NewMatcher(),
		decider:       decider(),

		maxPendingRecords: MaxPendingRecords,
	}
	f.handlers = map[command.Type]handler{
		command.TypeBootstrapAdmin:         typed(applyBootstrapAdmin),
		command.TypeNodeRegister:           typed(applyNodeRegister),
		command.TypeNodeDeregister:         typed(applyNodeDeregister),
		command.TypeParticipantAdd:         typed(applyParticipantAdd),
		command.TypeParticipantUpdate:      typed(applyParticipantUpdate),
		command.TypeParticipantSetActive:   typed(applyParticipantSetActive),
		command.TypeParticipantRotateToken: typed(applyParticipantRotateToken),
		command.TypeBarrier.Base():         typed(applyBarrier),
		command.TypePatientRegister:        typed(f.applyPatientRegister),
		command.TypeMatchConfigSet:         typed(applyMatchConfigSet),
		command.TypeDocumentRegister:       typed(f.applyDocumentRegister),
		command.TypeRecordLink:             typed(applyRecordLink),
		command.TypeRecordUnlink:           typed(applyRecordUnlink),
		command.TypePersonMerge:            typed(applyPersonMerge),
		command.TypePersonUnmerge:          typed(applyPersonUnmerge),
		command.TypeReviewResolve:          typed(applyReviewResolve),
		command.TypeMPIRematch:             typed(f.applyMPIRematch),
		command.TypeDocumentProvide:        typed(f.applyDocumentProvide),
		command.TypeAuditAppend:            typed(applyAuditAppend),
	}
	for t, h := range privacyHandlers() {
		f.handlers[t] = h
	}
	for t, h := range hl7Handlers() {
		f.handlers[t] = h
	}
	for t, h := range notifyHandlers() {
		f.handlers[t] = h
	}
	for _, o := range opts {
		o(f)
	}
	index, _, err := store.Applied()
	if err != nil {
		return nil, fmt.Errorf("read applied index: %w", err)
	}
	f.latest.Store(index)
	f.committed.Store(index)
	f.changed.Store(index)
	go f.runCommitter()
	go f.runFlusher()
	return f, nil
}

// Close commits what is pending, writes it to the state file and stops the committer and
// the flusher. Call it after raft has stopped handing entries to the FSM.
func (f *FSM) Close() {
	f.closeOnce.Do(func() {
		close(f.stop)
		<-f.stopped
		close(f.flushStop)
		<-f.flushStopped
	})
}

// AppliedIndex returns the index of the last log entry in the state readers see.
func (f *FSM) AppliedIndex() uint64 { return f.committed.Load() }

// LatestIndex returns the index of the last log entry raft handed to the FSM; the state
// readers see catches up with it within one commit.
func (f *FSM) LatestIndex() uint64 { return f.latest.Load() }

// Group commit and flush limits: see FSM.
const (
	CommitInterval    = 100 * time.Millisecond
	MaxPendingEntries = 10000
	// FlushInterval bounds how long a committed entry stays out of the state file, and so
	// how much of the log a restart after a crash applies again. A flush rewrites every page
	// its keys fall on: the longer the interval, the more keys share a page. Five seconds
	// wrote 18-35% fewer bytes than one through the FSM alone (population-20k) for 8% less
	// CPU, but imported no faster in a node, held 250 MiB more at its peak and slowed the
	// reads right after an import (more layers to read through).
	FlushInterval = time.Second
	// FlushSize flushes sooner when the committed layers hold this much memory.
	FlushSize = 64 << 20
	// MaxPendingRecords bounds the patient registrations of one transaction (the default
	// of WithMaxPendingRecords): a bulk load that applies faster than CommitInterval still
	// becomes visible, and its layer sorted, in steps of this many. (When transactions were
	// bbolt's, a commit cost an fsync on the state machine's goroutine and 2,048 was chosen
	// against 256 for that; a commit now costs a sort of the layer.)
	MaxPendingRecords = 2048
)

// WaitApplied blocks until the state readers see holds log entry index, or ctx ends. If the
// entry is applied but not yet committed, it asks for the commit at once.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.waitMu.Lock()
		ch := f.committedCh
		f.waitMu.Unlock()
		if f.committed.Load() >= index {
			return nil
		}
		f.want(index)
		if f.latest.Load() >= index {
			signal(f.commitNow)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d (applied %d): %w", index, f.committed.Load(), ctx.Err())
		}
	}
}

// WaitChanges is WaitApplied for a reader that does not read the audit log: of the entries
// up to index, those after the last one that changed anything else only appended audit
// entries, and need not be committed before it reads. Every answer of an audited read
// appends an audit entry, so under a steady load of reads WaitApplied would commit (and
// fsync) the state file once per read for entries no other read looks at.
func (f *FSM) WaitChanges(ctx context.Context, index uint64) error {
	if f.latest.Load() >= index {
		// Read after latest: every entry up to index is in, and changed holds the last
		// of them (or a later one, when waiting for index itself is right).
		if c := f.changed.Load(); c < index {
			index = c
		}
	}
	return f.WaitApplied(ctx, index)
}

// want records that a reader waits for index, so that ApplyBatch commits as soon as it has
// applied it instead of waiting for the commit interval.
func (f *FSM) want(index uint64) {
	for {
		w := f.wanted.Load()
		if w >= index || f.wanted.CompareAndSwap(w, index) {
			return
		}
	}
}

func (f *FSM) setCommitted(index uint64) {
	f.committed.Store(index)
	f.waitMu.Lock()
	close(f.committedCh)
	f.committedCh = make(chan struct{})
	f.waitMu.Unlock()
}

// Apply implements hraft.FSM for a single entry.
func (f *FSM) Apply(l *hraft.Log) any {
	return f.ApplyBatch([]*hraft.Log{l})[0]
}

// ApplyBatch implements hraft.BatchingFSM: the batch's entries and the new applied index go
// into the open write transaction, which the committer commits whole, so a crash leaves
// either all of a batch or none of it. Entries at or below the last applied index (replayed
// after a restart) are skipped.
func (f *FSM) ApplyBatch(logs []*hraft.Log) []any {
	start := time.Now() // measures the batch for metrics; never reaches the state
	defer f.store.Applying()()
	results := make([]any, len(logs))
	already := f.latest.Load()

	last, pending := f.applyToOpen(logs, already, results)
	if last != nil {
		f.latest.Store(last.Index)
		f.decided.moved()
		signal(f.commitSignal)
		if pending >= MaxPendingEntries || f.wanted.Load() > f.committed.Load() && last.Index >= f.wanted.Load() {
			signal(f.commitNow)
		}
	}
	if f.observeBatch != nil {
		f.observeBatch(len(logs), time.Since(start))
	}
	return results
}

// applyToOpen applies the entries after index already into the open transaction (opening
// one if needed), filling results, and returns the last entry applied and how many entries
// the transaction now holds.
func (f *FSM) applyToOpen(logs []*hraft.Log, already uint64, results []any) (*hraft.Log, int) {
	f.openMu.Lock()
	defer f.openMu.Unlock()
	if f.open == nil {
		b, err := f.store.Begin()
		if err != nil {
			panic(fmt.Sprintf("rls fsm: %v", err))
		}
		f.open = b
	}
	tx := f.open.Tx()
	var last *hraft.Log
	for i, l := range logs {
		if l.Index <= already {
			continue
		}
		if f.openRecords >= f.maxPendingRecords && last != nil {
			tx = f.commitInline(last)
		}
		last = l
		if l.Type != hraft.LogCommand {
			continue // configuration changes only advance the index
		}
		f.applying = l
		tx.StampEntry(l.Index)
		if len(l.Data) == 0 || command.Type(l.Data[0]) != command.TypeAuditAppend {
			f.changed.Store(l.Index)
		}
		resp, failure := f.applyCommand(tx, l)
		if failure != nil {
			tx = f.skipFailed(l, failure)
			resp = Response{Err: failure}
		}
		f.openLogs = append(f.openLogs, openEntry{log: l, failure: failure})
		results[i] = resp
	}
	if last != nil {
		if err := tx.SetApplied(last.Index, last.Term); err != nil {
			panic(fmt.Sprintf("rls fsm: %v", err))
		}
		f.openIndex = last.Index
		f.openCount += len(logs)
	}
	return last, f.openCount
}

// commitInline commits the open transaction, which holds everything up to last, and opens
// the next one. It runs on the FSM goroutine with openMu held; no other commit can be in
// flight, because a transaction is only opened once the previous one has committed.
func (f *FSM) commitInline(last *hraft.Log) *state.Tx {
	tx := f.open.Tx()
	if err := tx.SetApplied(last.Index, last.Term); err != nil {
		panic(fmt.Sprintf("rls fsm: %v", err))
	}
	start, count, docs := time.Now(), f.openCount, f.openDocs
	if err := f.open.Commit(); err != nil {
		panic(fmt.Sprintf("rls fsm: commit entries up to index %d: %v", last.Index, err))
	}
	f.setCommitted(last.Index)
	f.openDocs = nil
	if f.onCommit != nil {
		f.onCommit(last.Index, docs)
	}
	if f.observeCommit != nil {
		f.observeCommit(count, time.Since(start))
	}
	f.layerCommitted()
	b, err := f.store.Begin()
	if err != nil {
		panic(fmt.Sprintf("rls fsm: %v", err))
	}
	f.open, f.openCount, f.openRecords, f.openIndex, f.openLogs = b, 0, 0, last.Index, nil
	return b.Tx()
}

func (f *FSM) runCommitter() {
	defer close(f.stopped)
	// Entries applied while a commit ran are in a new transaction: it re-arms for them.
	runGrouped(f.commitSignal, f.commitNow, f.stop, CommitInterval, f.commitOpen, f.hasOpen)
}

// runGrouped runs work interval after the first signal since it last ran, at once on now,
// and a last time on stop; after each run it arms again while pending says there is more.
// It is the loop of both the committer and the flusher.
func runGrouped(signalled, now, stop <-chan struct{}, interval time.Duration, work func(), pending func() bool) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case <-signalled:
			if !armed {
				timer.Reset(interval)
				armed = true
			}
			continue
		case <-timer.C:
		case <-now:
			timer.Stop()
		case <-stop:
			timer.Stop()
			work()
			return
		}
		armed = false
		work()
		if pending() {
			timer.Reset(interval)
			armed = true
		}
	}
}

func (f *FSM) hasOpen() bool {
	f.openMu.Lock()
	defer f.openMu.Unlock()
	return f.open != nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// commitOpen commits the open transaction, if any. A commit that fails stops the node: the
// state file could not take what every other node is applying, and a restart replays it.
func (f *FSM) commitOpen() {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.openMu.Lock()
	b, index, count, docs := f.open, f.openIndex, f.openCount, f.openDocs
	f.open, f.openCount, f.openRecords, f.openDocs, f.openLogs = nil, 0, 0, nil, nil
	f.openMu.Unlock()
	if b == nil {
		return
	}
	start := time.Now()
	if err := b.Commit(); err != nil {
		panic(fmt.Sprintf("rls fsm: commit entries up to index %d: %v", index, err))
	}
	f.setCommitted(index)
	if f.onCommit != nil {
		f.onCommit(index, docs)
	}
	if f.observeCommit != nil {
		f.observeCommit(count, time.Since(start))
	}
	f.layerCommitted()
}

// layerCommitted tells the flusher that a commit added a layer.
func (f *FSM) layerCommitted() {
	signal(f.flushSignal)
	if _, size := f.store.Unflushed(); size >= FlushSize {
		signal(f.flushNow)
	}
}

func (f *FSM) runFlusher() {
	defer close(f.flushStopped)
	runGrouped(f.flushSignal, f.flushNow, f.flushStop, f.flushInterval, f.flush, func() bool {
		n, _ := f.store.Unflushed()
		return n > 0
	})
}

// flush writes the committed layers to the state file. A flush that fails stops the node,
// as a failed commit did: the file could not take what every other node holds, and a
// restart replays it from the log.
func (f *FSM) flush() {
	n, _ := f.store.Unflushed()
	if n == 0 {
		return
	}
	start := time.Now()
	if err := f.store.Flush(); err != nil {
		panic(fmt.Sprintf("rls fsm: %v", err))
	}
	if f.observeFlush != nil {
		f.observeFlush(n, time.Since(start))
	}
	if f.onFlush != nil {
		f.onFlush()
	}
}

// applyCommand applies one command entry. A failure is an entry this node cannot apply (see
// Apply); the caller rolls the transaction back and skips it. An entry of an unknown type
// that may not be skipped stops the node.
func (f *FSM) applyCommand(tx *state.Tx, l *hraft.Log) (Response, *EntryFailure) {
	e, err := command.Decode(l.Data)
	if err != nil {
		return Response{}, newFailure(l, "", "malformed entry: "+malformedReason(err))
	}
	h, ok := f.handlers[e.Type.Base()]
	if !ok {
		if e.Type.IgnoreIfUnknown() {
			f.logger.Warn("skipping unknown command marked ignorable", "index", l.Index, "type", e.Type)
			return Response{}, nil
		}
		// The log is newer than this node: skipping would diverge from the nodes that know
		// the type, so stop, naming only the index and the type.
		panic(fmt.Sprintf("rls fsm: entry %d has unknown command type %s; upgrade this node (see README, \"Upgrading\")", l.Index, e.Type))
	}
	v, err, panicked := f.callHandler(h, tx, e, l.Index)
	if panicked == "" && err == nil {
		// What the entry changed becomes notification events in the same transaction: a
		// failure here fails the entry as a handler's would.
		err = deriveNotifyEvents(tx, e, l.Index, v)
	}
	if panicked != "" {
		return Response{}, newFailure(l, e.Type.String(), "panic in the handler: "+panicked)
	}
	if err != nil && !isBusiness(err) {
		if errors.Is(err, command.ErrMalformed) {
			return Response{}, newFailure(l, e.Type.String(), "malformed entry: "+malformedReason(err))
		}
		if local := localStorageError(err); local {
			// Not a property of the entry: the next node would apply it. Stop; a restart
			// replays it.
			panic(fmt.Sprintf("rls fsm: entry %d (%s): state file unusable: %v", l.Index, e.Type, storageReason(err)))
		}
		return Response{}, newFailure(l, e.Type.String(), "storage error: "+storageReason(err))
	}
	return Response{Value: v, Err: err}, nil
}

// callHandler runs a handler, turning a panic into a description of it: a bug that every
// node of this version hits on the same entry, not a reason to stop them all.
func (f *FSM) callHandler(h handler, tx *state.Tx, e command.Entry, index uint64) (v any, err error, panicked string) {
	defer func() {
		if p := recover(); p != nil {
			panicked = panicReason(p)
			f.logger.Error("handler panicked on a log entry", "index", index, "type", e.Type, "reason", panicked, "stack", string(debug.Stack()))
		}
	}()
	v, err = h(tx, e)
	return v, err, ""
}

// EntryFailure is the response of an entry that could not be applied and was skipped.
type EntryFailure struct {
	state.FailedEntry
}

func (e *EntryFailure) Error() string {
	return fmt.Sprintf("log entry %d (%s) could not be applied and was skipped on every node: %s", e.Index, e.Type, e.Reason)
}

// Unwrap makes errors.Is(err, ErrEntryFailed) true.
func (e *EntryFailure) Unwrap() error { return ErrEntryFailed }

func newFailure(l *hraft.Log, typ, reason string) *EntryFailure {
	if typ == "" && len(l.Data) > 0 {
		typ = command.Type(l.Data[0]).String()
	}
	return &EntryFailure{state.FailedEntry{Index: l.Index, Term: l.Term, Type: typ, Reason: reason}}
}

// skipFailed rolls back the open transaction, applies again the entries it held before l,
// files l as failed and returns the transaction to continue in. Replaying is deterministic:
// the same entries on the same committed state give the same writes and the same documents
// to index; an entry that applied a moment ago and now fails means this node cannot trust
// its own state, so it stops.
func (f *FSM) skipFailed(l *hraft.Log, failure *EntryFailure) *state.Tx {
	f.open.Rollback()
	b, err := f.store.Begin()
	if err != nil {
		panic(fmt.Sprintf("rls fsm: %v", err))
	}
	f.open, f.openDocs, f.openRecords = b, nil, 0
	tx := b.Tx()
	for _, oe := range f.openLogs {
		f.applying = oe.log
		if oe.failure != nil {
			recordFailure(tx, oe.failure)
			continue
		}
		if _, again := f.applyCommand(tx, oe.log); again != nil {
			panic(fmt.Sprintf("rls fsm: entry %d applied, then failed when applied again after entry %d failed (%s); this node's state cannot be trusted: restore it from a snapshot of another node", oe.log.Index, l.Index, again.Reason))
		}
	}
	f.applying = l
	recordFailure(tx, failure)
	f.failed.Add(1)
	f.logger.Error("log entry could not be applied: rolled back, recorded as failed and skipped (every node does the same); see README, \"Recovering from an entry that cannot be applied\"",
		"index", l.Index, "term", l.Term, "type", failure.Type, "reason", failure.Reason)
	return tx
}

// openEntry is an entry of the open transaction and, if it was skipped, why.
type openEntry struct {
	log     *hraft.Log
	failure *EntryFailure
}

func recordFailure(tx *state.Tx, failure *EntryFailure) {
	if err := tx.RecordFailedEntry(failure.FailedEntry); err != nil {
		panic(fmt.Sprintf("rls fsm: entry %d: %v", failure.Index, err))
	}
}

// FailedEntries returns how many entries this node recorded as failed since it started.
func (f *FSM) FailedEntries() uint64 { return f.failed.Load() }

// Unflushed reports what the flusher has yet to write to the state file: the committed
// transactions waiting, roughly the memory they hold, and the index the file holds. A crash
// now would replay the log after that index.
func (f *FSM) Unflushed() (transactions, bytes int, flushedIndex uint64) {
	transactions, bytes = f.store.Unflushed()
	return transactions, bytes, f.store.FlushedIndex()
}

// malformedReason describes a decoding error without the bytes it met.
func malformedReason(err error) string {
	msg := err.Error()
	// msgp's errors name fields and types, never values; cut anything long all the same.
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// storageReason describes a storage error by its innermost cause: bbolt's own errors are
// fixed texts ("key too large"); the wrapping errors above them name keys, which hold
// identifiers and names, so they are left out.
func storageReason(err error) string {
	for _, known := range []error{berrors.ErrKeyTooLarge, berrors.ErrValueTooLarge, berrors.ErrKeyRequired,
		berrors.ErrIncompatibleValue, berrors.ErrBucketNotFound, berrors.ErrBucketExists, berrors.ErrBucketNameRequired,
		berrors.ErrTxNotWritable, berrors.ErrTxClosed, berrors.ErrDatabaseNotOpen, berrors.ErrDatabaseReadOnly,
		state.ErrNotFound, mpi.ErrCorruptStore, mpi.ErrNotFound, mpi.ErrInvalidRecord, mpi.ErrInvalidEUID, mpi.ErrInvalidConfig} {
		if errors.Is(err, known) {
			return known.Error()
		}
	}
	inner := err
	for {
		next := errors.Unwrap(inner)
		if next == nil {
			break
		}
		inner = next
	}
	return fmt.Sprintf("%T", inner)
}

// localStorageError reports errors that say the state file itself is unusable on this node
// (closed, read-only), not that the entry is.
func localStorageError(err error) bool {
	return errors.Is(err, berrors.ErrTxClosed) || errors.Is(err, berrors.ErrDatabaseNotOpen) || errors.Is(err, berrors.ErrDatabaseReadOnly)
}

// panicReason describes a recovered panic: a runtime error's text (index out of range, nil
// dereference: no data), otherwise only the value's type.
func panicReason(p any) string {
	if re, ok := p.(runtime.Error); ok {
		return re.Error()
	}
	return fmt.Sprintf("%T", p)
}

// Snapshot implements hraft.FSM: it commits what is pending and writes it to the state file
// (BeginSnapshot flushes), so the snapshot holds every entry raft handed over, and pins that
// state in a read transaction; Persist streams it while later entries keep being applied.
func (f *FSM) Snapshot() (hraft.FSMSnapshot, error) {
	f.commitOpen()
	f.flush() // here rather than only in BeginSnapshot, so that the flush hook hears of it
	sn, err := f.store.BeginSnapshot()
	if err != nil {
		return nil, err
	}
	return &snapshot{sn: sn}, nil
}

// Restore implements hraft.FSM: it discards the state, pending entries included, and
// replaces it with the snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.openMu.Lock()
	if f.open != nil {
		f.open.Rollback()
		f.open, f.openCount, f.openRecords, f.openDocs, f.openLogs = nil, 0, 0, nil, nil
	}
	f.openMu.Unlock()
	if err := f.store.Replace(rc); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	index, _, err := f.store.Applied()
	if err != nil {
		return fmt.Errorf("read restored applied index: %w", err)
	}
	f.logger.Info("state restored from snapshot", "applied_index", index)
	f.decided.reset()
	f.latest.Store(index)
	f.changed.Store(index)
	f.setCommitted(index)
	if f.onRestore != nil {
		f.onRestore(index)
	}
	return nil
}

type snapshot struct {
	sn *state.Snapshot
}

func (s *snapshot) Persist(sink hraft.SnapshotSink) error {
	if _, err := s.sn.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close snapshot sink: %w", err)
	}
	return nil
}

func (s *snapshot) Release() { s.sn.Release() }

// Business outcomes. Each is returned as an entry's Response and leaves the state unchanged.
var (
	// ErrParticipantExists: a participant with that id is already registered.
	ErrParticipantExists = errors.New("participant already exists")
	// ErrSystemInUse: another participant already owns that identifier system.
	ErrSystemInUse = errors.New("identifier system already belongs to another participant")
	// ErrVersionConflict: the participant changed since the version the caller read.
	ErrVersionConflict = errors.New("version conflict")
	// ErrLastAdmin: the change would leave the cluster without an active admin.
	ErrLastAdmin = errors.New("would leave no active admin")
	// ErrAlreadyBootstrapped: the cluster already has an admin.
	ErrAlreadyBootstrapped = errors.New("cluster already has an admin")
	// ErrTokenInUse: the token hash is already issued (a collision; ask for a new token).
	ErrTokenInUse = errors.New("token already issued")
	// ErrEntryFailed: the entry could not be applied on any node and was skipped (see
	// Apply); it changed nothing.
	ErrEntryFailed = errors.New("log entry could not be applied")
)

// businessError wraps an outcome sentinel with the entry's details.
type businessError struct{ err error }

func (b businessError) Error() string { return b.err.Error() }
func (b businessError) Unwrap() error { return b.err }

func business(format string, args ...any) error {
	return businessError{fmt.Errorf(format, args...)}
}

func isBusiness(err error) bool {
	var b businessError
	return errors.As(err, &b)
}
