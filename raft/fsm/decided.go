package fsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"sync"

	"github.com/rls-hie/rls/mpi"
)

// Followers take the leader's matching decisions.
//
// Applying a patient registration entry is deterministic: every node that applies the
// entry at index N, over the state every node has after N-1 entries, with the same
// binary, decides every record of it alike. Matching is most of that work, and on a small
// cluster every node does it again for every record. So each node keeps, for the entries it
// applied lately, what its matcher decided (DecidedEntry), and a follower about to apply an
// entry asks the leader for them first (DecisionSource): it then writes what the decisions
// say (mpi.Matcher.RegisterDecided) instead of matching. A decision is taken only for the
// same entry (index, term and a checksum of its bytes) decided by the same build
// (Decider), and only if it fits the follower's index (RegisterDecided checks the record's
// previous person, the person it joins or founds, the configuration version); anything
// else, or no answer from the leader in time, and the follower matches as before, which
// gives the same state: the source changes how much a follower works, never what it
// holds. Every check that can refuse a record runs on the follower itself, as before.

// DecidedEntry is what applying one patient registration entry decided.
type DecidedEntry struct {
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Sum is the CRC-32 (IEEE) of the entry's bytes.
	Sum uint32 `json:"sum"`
	// Decider names the build that decided (see decider).
	Decider string `json:"decider"`
	// Decisions are the matcher's, one per registration of the entry, before a steward's
	// pin moved the record (as keptDecision keeps them); nil for a record refused before
	// matching.
	Decisions []*mpi.Decision `json:"decisions"`
}

// keptDecision is what an entry keeps of a decision for the followers: what the state
// holds of it (outcome, person, score, review item, the record's previous person), without
// what only the answer to the registrant uses (its candidates, probability and counts of
// records read), which was most of the bytes, and, decoded on every follower, cost as much
// as matching.
func keptDecision(d *mpi.Decision) *mpi.Decision {
	return &mpi.Decision{Record: d.Record, Outcome: d.Outcome, EUID: d.EUID, Score: d.Score,
		Review: d.Review, Updated: d.Updated, PreviousEUID: d.PreviousEUID, ConfigVersion: d.ConfigVersion}
}

// DecisionSource gives a follower what another node decided applying an entry. Decided is
// called on the state machine's goroutine, before the entry is applied: it must answer
// within a bounded time, and false whenever it has nothing (this node leads, the leader
// is unknown or does not answer, the leader no longer holds the entry). It must never read
// the state (state.Store.View): the state machine holds a read transaction of the file
// while it applies, and once the file outgrows its memory map (see state.Store) a flush waits
// for every reader to finish before it maps more, while bbolt holds every new reader back
// behind the waiting flush, so a second transaction there would wait forever.
type DecisionSource interface {
	Decided(index, term uint64) (DecidedEntry, bool)
}

// SetDecisionSource sets where this node asks for the decisions of the entries it applies
// (nil: it matches every record itself).
func (f *FSM) SetDecisionSource(src DecisionSource) {
	if src == nil {
		f.source.Store(nil)
		return
	}
	f.source.Store(&src)
}

// RegistrationsDecided reports how many records this node registered since it started
// with a decision another node made, and how many it matched itself.
func (f *FSM) RegistrationsDecided() (taken, matched uint64) {
	return f.decisionsTaken.Load(), f.decisionsMatched.Load()
}

// maxDecided bounds the registrations whose decisions a node keeps for the followers: a
// follower asks for an entry as it applies it, shortly after the leader did.
const maxDecided = 8192

// decidedLog holds the decisions of the entries a node applied lately, oldest first.
type decidedLog struct {
	mu      sync.Mutex
	entries []*decided
	count   int // decisions held
	// changed is closed and replaced when an entry is added or the state machine moves on,
	// for the readers waiting in DecidedJSON.
	changed chan struct{}
}

// decided is one entry of a decidedLog, with its JSON made once for every follower.
type decided struct {
	DecidedEntry
	once sync.Once
	json []byte
	err  error
}

func (d *decided) encoded() ([]byte, error) {
	d.once.Do(func() { d.json, d.err = json.Marshal(&d.DecidedEntry) })
	return d.json, d.err
}

func (l *decidedLog) put(e *DecidedEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// An entry applied again after a rollback (FSM.skipFailed) replaces what the rolled-back
	// transaction kept from it on, so that the entries stay in index order.
	for n := len(l.entries); n > 0 && l.entries[n-1].Index >= e.Index; n = len(l.entries) {
		l.count -= len(l.entries[n-1].Decisions)
		l.entries[n-1] = nil
		l.entries = l.entries[:n-1]
	}
	l.entries = append(l.entries, &decided{DecidedEntry: *e})
	l.count += len(e.Decisions)
	drop := 0
	for l.count > maxDecided && drop < len(l.entries)-1 {
		l.count -= len(l.entries[drop].Decisions)
		drop++
	}
	if drop > 0 {
		clear(l.entries[:drop])
		l.entries = l.entries[drop:]
	}
	l.wake()
}

// wake tells the waiting readers to look again. The caller holds mu.
func (l *decidedLog) wake() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// find returns the entry at index (nil if not held) and a channel closed when that may
// change.
func (l *decidedLog) find(index uint64) (*decided, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.entries) - 1; i >= 0; i-- {
		if e := l.entries[i]; e.Index == index {
			return e, nil
		} else if e.Index < index {
			break
		}
	}
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return nil, l.changed
}

func (l *decidedLog) moved() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wake()
}

func (l *decidedLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.entries)
	l.entries, l.count = nil, 0
	l.wake()
}

// ErrNotAppliedYet is returned by DecidedJSON when ctx ended before this node applied the
// entry.
var ErrNotAppliedYet = errors.New("entry not applied here yet")

// DecidedJSON returns, as JSON encoded once for all the followers that ask, what this node
// decided applying the patient registration entry at index (a DecidedEntry), waiting until
// it has applied that entry or ctx ends: ErrNotAppliedYet then. It returns false for an
// entry that registered no patients, one applied too long ago, or a different entry at that
// index (another term).
func (f *FSM) DecidedJSON(ctx context.Context, index, term uint64) ([]byte, bool, error) {
	d := f.decidedAt(ctx, index, term)
	if d == nil {
		if f.latest.Load() < index {
			return nil, false, ErrNotAppliedYet
		}
		return nil, false, nil
	}
	b, err := d.encoded()
	if err != nil {
		return nil, false, fmt.Errorf("encode the decisions of entry %d: %w", index, err)
	}
	return b, true, nil
}

func (f *FSM) decidedAt(ctx context.Context, index, term uint64) *decided {
	for {
		d, changed := f.decided.find(index)
		if d != nil {
			if d.Term != term {
				return nil
			}
			return d
		}
		if f.latest.Load() >= index {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// decisionsFor asks the source, if any, for the decisions of the entry being applied (its
// bytes' entrySum is sum), and returns them if they are of this very entry, by this build,
// for n registrations.
func (f *FSM) decisionsFor(n int, sum uint32) []*mpi.Decision {
	p := f.source.Load()
	if p == nil || f.applying == nil {
		return nil
	}
	l := f.applying
	e, ok := (*p).Decided(l.Index, l.Term)
	if !ok {
		return nil
	}
	if e.Index != l.Index || e.Term != l.Term || e.Sum != sum || e.Decider != f.decider || len(e.Decisions) != n {
		f.logger.Warn("decisions from another node not taken: not of this entry or build", "index", l.Index)
		return nil
	}
	return e.Decisions
}

// entrySum is the checksum that ties a DecidedEntry to the bytes of its entry.
func entrySum(data []byte) uint32 { return crc32.ChecksumIEEE(data) }

// decider names the build of this process: decisions are taken only from the same build,
// whose matcher is the same code. It is the main module's path and version, the Go version
// and the normalisation version, with the VCS revision of a build from a clean checkout;
// a build from a modified tree, or without VCS information (a test binary, a source
// tarball), is named by its executable file's size and modification time as well, so that
// two such builds are never taken for one. "" when the binary carries no build information
// or its file cannot be read: then no decision is ever taken.
func decider() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	id := fmt.Sprintf("%s@%s %s norm%d", bi.Main.Path, bi.Main.Version, bi.GoVersion, mpi.NormVersion)
	clean := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			id += " rev=" + s.Value
		case "vcs.modified":
			clean = s.Value == "false"
		}
	}
	if clean {
		return id
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	st, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s exe=%d/%d", id, st.Size(), st.ModTime().UnixNano())
}
