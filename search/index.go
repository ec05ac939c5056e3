package search

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/mapping"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrUnusable is returned (wrapped, with the cause) by Open when the index
// directory exists but cannot serve searches: a generation that will not
// open or fails its checks after a crash or disk fault, one that a rebuild
// never finished, one built by another mapping version, or a missing or
// unreadable CURRENT file. The caller rebuilds it from the source of truth
// with [Rebuild].
var ErrUnusable = errors.New("search: index directory is unusable")

// ErrLocked is returned by Open when another process (or another Index in
// this one) holds the index open. It is not a reason to rebuild.
var ErrLocked = errors.New("search: index is locked by another user")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("search: index is closed")

// Internal keys stored inside the Bleve index, written in the same batch as
// the documents they describe.
var (
	appliedIndexKey   = []byte("rls.applied_index")
	mappingVersionKey = []byte("rls.mapping_version")
)

const (
	currentFile      = "CURRENT"
	generationPrefix = "gen-"
)

// Options tune an Index; the zero value is usable.
type Options struct {
	// Logger receives rebuild progress and cleanup problems; nil discards.
	Logger *slog.Logger
	// RebuildBatchSize is how many documents Rebuild puts in one Bleve batch
	// (default 2000). Bigger batches index faster and hold more in memory.
	RebuildBatchSize int
	// LockTimeout bounds how long Open waits for a lock held by another
	// process before returning ErrLocked (default 5s).
	LockTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RebuildBatchSize <= 0 {
		o.RebuildBatchSize = 2000
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 5 * time.Second
	}
	return o
}

// Source yields every document of the source of truth, for a rebuild. It
// must stop and return yield's error when yield fails.
type Source func(yield func(Document) error) error

// Change is one document change of an applied batch: a new version of the
// document (insert or replace) or, with a nil Document, its removal.
type Change struct {
	ID       string
	Document *Document
}

// Put is the change that indexes d, replacing any earlier version.
func Put(d Document) Change { return Change{ID: d.ID, Document: &d} }

// Delete is the change that removes the document with this id.
func Delete(id string) Change { return Change{ID: id} }

// Index is the document registry index at one directory. Searches may run
// concurrently with everything; Apply, Rebuild and Close are serialised.
type Index struct {
	dir   string
	opts  Options
	log   *slog.Logger
	alias bleve.IndexAlias // every read goes through it, so Rebuild can swap under readers

	// names normalises author-name search values the way the index does.
	names func(string) string
	// textTerms tells whether free text has any searchable word left.
	textTerms func(string) int
	// patientDateCap is the largest patient search whose creation dates are
	// filtered outside Bleve (see searchPatientFilteringDates); 0 never.
	patientDateCap int
	// locateStoredCap is the largest Locate answered from stored fields
	// rather than a facet; 0 always uses the facet.
	locateStoredCap int
	// firstPage is the page searchAllStored asks for before it knows the
	// total (defaultFirstPage; tests lower it to exercise the second ask).
	firstPage int

	mu      sync.Mutex // serialises writers; guards the fields below
	live    bleve.Index
	gen     uint64
	applied uint64
	closed  bool
}

// Open opens the index at dir, creating the directory and an empty index
// (applied index 0) when there is none. A directory holding an index that
// cannot be used is reported as ErrUnusable: the caller then calls Rebuild.
// Leftovers of an interrupted rebuild are removed.
//
// After a crash Bleve may itself fall back to the newest older snapshot
// that still loads; that is a consistent earlier state, and AppliedIndex
// says which. The caller always compares AppliedIndex with its own applied
// index and replays or rebuilds the difference.
func Open(dir string, opts Options) (*Index, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("search: create index directory: %w", err)
	}
	gen, err := readCurrent(dir)
	if errors.Is(err, fs.ErrNotExist) {
		gens, lerr := listGenerations(dir)
		if lerr != nil {
			return nil, lerr
		}
		if len(gens) > 0 {
			return nil, fmt.Errorf("%w: %s: %s is missing but generations %v exist", ErrUnusable, dir, currentFile, gens)
		}
		return createIndex(context.Background(), dir, 1, emptySource, 0, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnusable, dir, err)
	}
	live, applied, err := openGeneration(generationPath(dir, gen), opts)
	if err != nil {
		return nil, err
	}
	ix, err := newIndex(dir, gen, live, applied, opts)
	if err != nil {
		_ = live.Close()
		return nil, err
	}
	ix.removeStaleGenerations()
	return ix, nil
}

// Rebuild builds a new index at dir from source, recording appliedIndex, and
// returns it open. It is what the caller does when Open reported
// ErrUnusable (or found the index too far behind to catch up): whatever is
// in dir stays untouched until the new generation is complete, then CURRENT
// names it and the rest is removed.
func Rebuild(ctx context.Context, dir string, source Source, appliedIndex uint64, opts Options) (*Index, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("search: create index directory: %w", err)
	}
	gens, err := listGenerations(dir)
	if err != nil {
		return nil, err
	}
	next := uint64(1)
	if len(gens) > 0 {
		next = gens[len(gens)-1] + 1
	}
	if cur, err := readCurrent(dir); err == nil && cur >= next {
		next = cur + 1
	}
	return createIndex(ctx, dir, next, source, appliedIndex, opts)
}

func emptySource(func(Document) error) error { return nil }

// createIndex builds generation gen from source and makes it current.
func createIndex(ctx context.Context, dir string, gen uint64, source Source, appliedIndex uint64, opts Options) (*Index, error) {
	live, err := buildGeneration(ctx, generationPath(dir, gen), source, appliedIndex, opts)
	if err != nil {
		return nil, err
	}
	if err := writeCurrent(dir, gen); err != nil {
		_ = live.Close()
		_ = os.RemoveAll(generationPath(dir, gen))
		return nil, err
	}
	ix, err := newIndex(dir, gen, live, appliedIndex, opts)
	if err != nil {
		_ = live.Close()
		return nil, err
	}
	ix.removeStaleGenerations()
	return ix, nil
}

func newIndex(dir string, gen uint64, live bleve.Index, applied uint64, opts Options) (*Index, error) {
	m := live.Mapping()
	names := m.AnalyzerNamed(nameAnalyzer)
	text := m.AnalyzerNamed(textAnalyzer)
	if names == nil || text == nil {
		return nil, fmt.Errorf("%w: %s: mapping lacks its analyzers", ErrUnusable, dir)
	}
	return &Index{
		dir:   dir,
		opts:  opts,
		log:   opts.Logger,
		alias: bleve.NewIndexAlias(live),
		names: func(s string) string {
			tokens := names.Analyze([]byte(s))
			if len(tokens) == 0 {
				return ""
			}
			return string(tokens[0].Term)
		},
		textTerms:       func(s string) int { return len(text.Analyze([]byte(s))) },
		patientDateCap:  defaultPatientDateCap,
		locateStoredCap: defaultLocateStoredCap,
		firstPage:       defaultFirstPage,
		live:            live,
		gen:             gen,
		applied:         applied,
	}, nil
}

// Dir is the directory the index lives in.
func (ix *Index) Dir() string { return ix.dir }

// Apply indexes one applied batch of document changes and records
// appliedIndex, all in one Bleve batch: after a crash the index holds either
// all of it or none of it, and AppliedIndex says which. Changes apply in
// order (a later change of the same id wins). A batch whose appliedIndex is
// below the one already held is skipped, and one at the same index is
// applied again, so replaying a range of the log is harmless. An invalid
// document fails the whole batch with a *DocumentError and nothing changes.
// When Apply returns nil the batch is on disk.
func (ix *Index) Apply(changes []Change, appliedIndex uint64) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	if appliedIndex < ix.applied {
		ix.log.Debug("search: skipping a batch already indexed", "applied_index", appliedIndex, "held", ix.applied)
		return nil
	}
	batch := ix.live.NewBatch()
	for i, c := range changes {
		if err := addChange(batch, c); err != nil {
			return fmt.Errorf("search: apply change %d of batch at index %d: %w", i, appliedIndex, err)
		}
	}
	batch.SetInternal(appliedIndexKey, encodeAppliedIndex(appliedIndex))
	if err := ix.live.Batch(batch); err != nil {
		return fmt.Errorf("search: apply batch at index %d: %w", appliedIndex, err)
	}
	ix.applied = appliedIndex
	return nil
}

func addChange(batch *bleve.Batch, c Change) error {
	if c.Document == nil {
		if c.ID == "" {
			return &DocumentError{Field: "id", Reason: "a deletion needs the document id"}
		}
		batch.Delete(c.ID)
		return nil
	}
	return addDocument(batch, c.Document, c.ID)
}

// addDocument validates d and adds it to batch. wantID, when set, must match
// d.ID (a Change names its document twice).
func addDocument(batch *bleve.Batch, d *Document, wantID string) error {
	if wantID != "" && wantID != d.ID {
		return &DocumentError{ID: d.ID, Field: "id", Reason: fmt.Sprintf("change is for %q", wantID)}
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if err := batch.Index(d.ID, toIndexed(d)); err != nil {
		return fmt.Errorf("search: index document %q: %w", d.ID, err)
	}
	return nil
}

// AppliedIndex returns the Raft index of the last batch the index holds, read
// from the index itself (0 for a new index).
func (ix *Index) AppliedIndex() (uint64, error) {
	v, err := ix.alias.GetInternal(appliedIndexKey)
	if err != nil {
		if errors.Is(err, bleve.ErrorIndexClosed) {
			return 0, ErrClosed
		}
		return 0, fmt.Errorf("search: read applied index: %w", err)
	}
	n, err := decodeAppliedIndex(v)
	if err != nil {
		return 0, fmt.Errorf("search: read applied index: %w", err)
	}
	return n, nil
}

// DocCount returns how many documents the index holds.
func (ix *Index) DocCount() (uint64, error) {
	n, err := ix.alias.DocCount()
	if err != nil {
		if errors.Is(err, bleve.ErrorIndexClosed) {
			return 0, ErrClosed
		}
		return 0, fmt.Errorf("search: count documents: %w", err)
	}
	return n, nil
}

// Rebuild replaces the index with one built from source at appliedIndex (on
// snapshot restore, or when the index is too far behind to catch up). The
// new index is built in a new directory while searches keep using the old
// one, and then swapped in whole: no search ever sees a partial index. If the
// build fails, the old index stays in place and the error is returned.
// Apply waits while a rebuild runs.
func (ix *Index) Rebuild(ctx context.Context, source Source, appliedIndex uint64) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	next := ix.gen + 1
	path := generationPath(ix.dir, next)
	started := time.Now()
	fresh, err := buildGeneration(ctx, path, source, appliedIndex, ix.opts)
	if err != nil {
		return err
	}
	if err := writeCurrent(ix.dir, next); err != nil {
		_ = fresh.Close()
		_ = os.RemoveAll(path)
		return err
	}
	old, oldGen := ix.live, ix.gen
	// Swap waits for searches running on the alias, so once it returns no
	// search uses the old index and it can be closed.
	ix.alias.Swap([]bleve.Index{fresh}, []bleve.Index{old})
	ix.live, ix.gen, ix.applied = fresh, next, appliedIndex
	if err := old.Close(); err != nil {
		ix.log.Warn("search: closing the replaced index", "dir", generationPath(ix.dir, oldGen), "err", err)
	}
	ix.removeStaleGenerations()
	ix.log.Info("search: index rebuilt", "dir", path, "applied_index", appliedIndex, "took", time.Since(started))
	return nil
}

// Close closes the index. Searches running finish first.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	// The alias does not close its indexes; closing it makes later searches
	// fail with ErrClosed rather than reach a closed index.
	_ = ix.alias.Close()
	if err := ix.live.Close(); err != nil {
		return fmt.Errorf("search: close index: %w", err)
	}
	return nil
}

// buildGeneration creates a new Bleve index at path holding every document
// of source. The mapping version and applied index are written only with the
// last batch, so a generation interrupted before that is recognisably
// incomplete. On error the directory is removed.
func buildGeneration(ctx context.Context, path string, source Source, appliedIndex uint64, opts Options) (_ bleve.Index, err error) {
	m, err := newMapping()
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(path); err != nil {
		return nil, fmt.Errorf("search: clear %s: %w", path, err)
	}
	idx, err := bleve.New(path, m)
	if err != nil {
		return nil, fmt.Errorf("search: create index %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = idx.Close()
			_ = os.RemoveAll(path)
		}
	}()
	batch := idx.NewBatch()
	indexed := 0
	flush := func() error {
		if err := idx.Batch(batch); err != nil {
			return fmt.Errorf("search: rebuild %s after %d documents: %w", path, indexed, err)
		}
		batch.Reset()
		return nil
	}
	err = source(func(d Document) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := addDocument(batch, &d, ""); err != nil {
			return err
		}
		indexed++
		if batch.Size() >= opts.RebuildBatchSize {
			return flush()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search: rebuild %s: %w", path, err)
	}
	batch.SetInternal(mappingVersionKey, []byte(mappingVersion))
	batch.SetInternal(appliedIndexKey, encodeAppliedIndex(appliedIndex))
	if err := flush(); err != nil {
		return nil, err
	}
	opts.Logger.Debug("search: generation built", "dir", path, "documents", indexed, "applied_index", appliedIndex)
	return idx, nil
}

// openGeneration opens an existing generation and checks it can serve: the
// version and applied index written by the last batch of its build are
// there, and a search reading doc values runs. Anything wrong is
// ErrUnusable, including a panic from a damaged segment.
func openGeneration(path string, opts Options) (idx bleve.Index, applied uint64, err error) {
	unusable := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrUnusable, path, fmt.Sprintf(format, args...))
	}
	defer func() {
		if r := recover(); r != nil {
			if idx != nil {
				func() {
					defer func() { _ = recover() }()
					_ = idx.Close()
				}()
			}
			idx, err = nil, unusable("panic while opening: %v", r)
		}
	}()
	if _, err := os.Stat(path); err != nil {
		return nil, 0, unusable("%v", err)
	}
	idx, err = bleve.OpenUsing(path, map[string]any{"bolt_timeout": opts.LockTimeout.String()})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, 0, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, 0, unusable("open: %v", err)
	}
	fail := func(e error) (bleve.Index, uint64, error) {
		_ = idx.Close()
		return nil, 0, e
	}
	version, err := idx.GetInternal(mappingVersionKey)
	if err != nil {
		return fail(unusable("read mapping version: %v", err))
	}
	if string(version) != mappingVersion {
		if version == nil {
			return fail(unusable("incomplete: no mapping version (a build that never finished)"))
		}
		return fail(unusable("mapping version %q, this build needs %q", version, mappingVersion))
	}
	raw, err := idx.GetInternal(appliedIndexKey)
	if err != nil {
		return fail(unusable("read applied index: %v", err))
	}
	applied, err = decodeAppliedIndex(raw)
	if err != nil {
		return fail(unusable("%v", err))
	}
	if _, err := idx.DocCount(); err != nil {
		return fail(unusable("count documents: %v", err))
	}
	probe := bleve.NewSearchRequestOptions(bleve.NewMatchAllQuery(), 1, 0, false)
	probe.SortByCustom(sortOrder(NewestFirst))
	probe.Score = bleve.ScoreNone
	if _, err := idx.Search(probe); err != nil {
		return fail(unusable("probe search: %v", err))
	}
	if _, ok := idx.Mapping().(*mapping.IndexMappingImpl); !ok {
		return fail(unusable("unexpected mapping type %T", idx.Mapping()))
	}
	return idx, applied, nil
}

func encodeAppliedIndex(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func decodeAppliedIndex(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("applied index is %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func generationPath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%08d", generationPrefix, gen))
}

// readCurrent returns the generation CURRENT names. A missing CURRENT is
// fs.ErrNotExist.
func readCurrent(dir string) (uint64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, currentFile))
	if err != nil {
		return 0, err
	}
	name := strings.TrimSpace(string(raw))
	n, ok := parseGeneration(name)
	if !ok {
		return 0, fmt.Errorf("%s names %q, not a generation", currentFile, name)
	}
	return n, nil
}

// writeCurrent points CURRENT at gen atomically: write a temporary file,
// sync it, rename it over CURRENT and sync the directory.
func writeCurrent(dir string, gen uint64) error {
	tmp := filepath.Join(dir, currentFile+".tmp")
	name := filepath.Base(generationPath(dir, gen))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("search: write %s: %w", currentFile, err)
	}
	_, err = f.WriteString(name + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, currentFile))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("search: write %s: %w", currentFile, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func parseGeneration(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, generationPrefix)
	if !ok || digits == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil && n > 0
}

// listGenerations returns the generation numbers present in dir, ascending.
func listGenerations(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("search: list %s: %w", dir, err)
	}
	var gens []uint64
	for _, e := range entries {
		if n, ok := parseGeneration(e.Name()); ok && e.IsDir() {
			gens = append(gens, n)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// removeStaleGenerations deletes every generation but the live one: replaced
// ones and those of rebuilds that never finished. Failures only cost disk
// space, so they are logged.
func (ix *Index) removeStaleGenerations() {
	gens, err := listGenerations(ix.dir)
	if err != nil {
		ix.log.Warn("search: listing generations to clean up", "err", err)
		return
	}
	for _, g := range gens {
		if g == ix.gen {
			continue
		}
		if err := os.RemoveAll(generationPath(ix.dir, g)); err != nil {
			ix.log.Warn("search: removing a stale generation", "dir", generationPath(ix.dir, g), "err", err)
		}
	}
	_ = os.Remove(filepath.Join(ix.dir, currentFile+".tmp"))
}
