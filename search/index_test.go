package search

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
)

func TestOpenNewIndexHoldsNothing(t *testing.T) {
	ix := openTest(t)
	applied, err := ix.AppliedIndex()
	if err != nil || applied != 0 {
		t.Fatalf("applied %d, %v; want 0", applied, err)
	}
	if n, err := ix.DocCount(); err != nil || n != 0 {
		t.Fatalf("doc count %d, %v; want 0", n, err)
	}
}

func TestAppliedIndexSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ix, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, ix, 42, corpus()...)
	if got, err := ix.AppliedIndex(); err != nil || got != 42 {
		t.Fatalf("applied %d, %v; want 42", got, err)
	}
	// A batch with no document changes still moves the applied index.
	if err := ix.Apply(nil, 43); err != nil {
		t.Fatal(err)
	}
	want := searchIDs(t, ix, Query{})
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Search(context.Background(), Query{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("search after close: %v, want ErrClosed", err)
	}
	if err := ix.Apply(nil, 44); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v, want ErrClosed", err)
	}

	ix, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if got, err := ix.AppliedIndex(); err != nil || got != 43 {
		t.Fatalf("after reopen: applied %d, %v; want 43", got, err)
	}
	if got := searchIDs(t, ix, Query{}); !slices.Equal(got, want) {
		t.Fatalf("after reopen: %v, want %v", got, want)
	}
}

func TestApplyIsIdempotentAndOrdered(t *testing.T) {
	ix := openTest(t)
	docs := corpus()
	mustApply(t, ix, 5, docs...)
	want := searchIDs(t, ix, Query{})

	// The same batch again, as after a replay: nothing changes.
	mustApply(t, ix, 5, docs...)
	if got := searchIDs(t, ix, Query{}); !slices.Equal(got, want) {
		t.Fatalf("re-applied: %v, want %v", got, want)
	}
	if n, _ := ix.DocCount(); n != uint64(len(docs)) {
		t.Fatalf("re-applied: %d documents, want %d", n, len(docs))
	}

	// A replacement and a deletion at a later index.
	replaced := docs[0]
	replaced.Status = StatusSuperseded
	if err := ix.Apply([]Change{Put(replaced), Delete("d2")}, 6); err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, ix, Query{Statuses: []Status{StatusCurrent}}); !slices.Equal(got, []string{"d5"}) {
		t.Fatalf("after replace and delete: current %v, want [d5]", got)
	}

	// An older batch (already held) is skipped: d2 stays deleted.
	mustApply(t, ix, 5, docs...)
	if got := searchIDs(t, ix, Query{Statuses: []Status{StatusCurrent}}); !slices.Equal(got, []string{"d5"}) {
		t.Fatalf("older batch was applied: current %v", got)
	}
	if applied, _ := ix.AppliedIndex(); applied != 6 {
		t.Fatalf("applied %d, want 6", applied)
	}

	// Within a batch the later change of an id wins.
	again := docs[1]
	if err := ix.Apply([]Change{Put(again), Delete("d2"), Put(again)}, 7); err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, ix, Query{Holders: []string{"city-hospital"}}); !slices.Equal(got, []string{"d2"}) {
		t.Fatalf("put, delete, put: %v, want [d2]", got)
	}
	if err := ix.Apply([]Change{Put(again), Delete("d2")}, 8); err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, ix, Query{Holders: []string{"city-hospital"}}); len(got) != 0 {
		t.Fatalf("put, delete: %v, want none", got)
	}
}

func TestApplyRefusesABadDocumentWholeBatch(t *testing.T) {
	ix := openTest(t)
	mustApply(t, ix, 1, baseDoc("ok1"))
	bad := baseDoc("bad")
	bad.Created = time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)
	err := ix.Apply([]Change{Put(baseDoc("ok2")), Put(bad)}, 2)
	var de *DocumentError
	if !errors.Is(err, ErrInvalidDocument) || !errors.As(err, &de) || de.ID != "bad" || de.Field != "created" {
		t.Fatalf("err = %v, want a DocumentError on bad.created", err)
	}
	if got := searchIDs(t, ix, Query{}); !slices.Equal(got, []string{"ok1"}) {
		t.Fatalf("a failed batch changed the index: %v", got)
	}
	if applied, _ := ix.AppliedIndex(); applied != 1 {
		t.Fatalf("a failed batch moved the applied index to %d", applied)
	}
	mismatch := Change{ID: "other", Document: &Document{ID: "ok3"}}
	if err := ix.Apply([]Change{mismatch}, 3); !errors.Is(err, ErrInvalidDocument) {
		t.Fatalf("change id differing from document id: %v", err)
	}
	if err := ix.Apply([]Change{{}}, 3); !errors.Is(err, ErrInvalidDocument) {
		t.Fatalf("deletion without id: %v", err)
	}
}

func TestSecondOpenOfADirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	ix, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	_, err = Open(dir, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

// sliceSource yields docs, as the caller's bbolt scan would.
func sliceSource(docs []Document) Source {
	return func(yield func(Document) error) error {
		for _, d := range docs {
			if err := yield(d); err != nil {
				return err
			}
		}
		return nil
	}
}

// damage is one way a crash or a disk fault can leave the index directory.
type damage struct {
	name string
	do   func(t *testing.T, dir string)
}

func liveGeneration(t *testing.T, dir string) string {
	t.Helper()
	gen, err := readCurrent(dir)
	if err != nil {
		t.Fatal(err)
	}
	return generationPath(dir, gen)
}

// filesOf lists the regular files of a generation with a suffix.
func filesOf(t *testing.T, gen, suffix string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(gen, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, suffix) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no %s file in %s", suffix, gen)
	}
	return out
}

var damages = []damage{
	{"segments truncated", func(t *testing.T, dir string) {
		for _, f := range filesOf(t, liveGeneration(t, dir), ".zap") {
			info, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(f, info.Size()/2); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"segments emptied", func(t *testing.T, dir string) {
		for _, f := range filesOf(t, liveGeneration(t, dir), ".zap") {
			if err := os.Truncate(f, 0); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"segment files deleted", func(t *testing.T, dir string) {
		for _, f := range filesOf(t, liveGeneration(t, dir), ".zap") {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"root.bolt overwritten", func(t *testing.T, dir string) {
		f := filesOf(t, liveGeneration(t, dir), "root.bolt")[0]
		if err := os.WriteFile(f, []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
			t.Fatal(err)
		}
	}},
	{"root.bolt truncated", func(t *testing.T, dir string) {
		if err := os.Truncate(filesOf(t, liveGeneration(t, dir), "root.bolt")[0], 100); err != nil {
			t.Fatal(err)
		}
	}},
	{"generation deleted", func(t *testing.T, dir string) {
		if err := os.RemoveAll(liveGeneration(t, dir)); err != nil {
			t.Fatal(err)
		}
	}},
	{"CURRENT deleted", func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, currentFile)); err != nil {
			t.Fatal(err)
		}
	}},
	{"CURRENT garbled", func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, currentFile), []byte("\x00\x01"), 0o600); err != nil {
			t.Fatal(err)
		}
	}},
	{"index metadata deleted", func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(liveGeneration(t, dir), "index_meta.json")); err != nil {
			t.Fatal(err)
		}
	}},
	{"unfinished build made current", func(t *testing.T, dir string) {
		// A generation whose build never wrote its last batch.
		gen := generationPath(dir, 9)
		m, err := newMapping()
		if err != nil {
			t.Fatal(err)
		}
		idx, err := bleve.New(gen, m)
		if err != nil {
			t.Fatal(err)
		}
		b := idx.NewBatch()
		d := baseDoc("partial")
		if err := b.Index(d.ID, toIndexed(&d)); err != nil {
			t.Fatal(err)
		}
		if err := idx.Batch(b); err != nil {
			t.Fatal(err)
		}
		if err := idx.Close(); err != nil {
			t.Fatal(err)
		}
		if err := writeCurrent(dir, 9); err != nil {
			t.Fatal(err)
		}
	}},
	{"another mapping version", func(t *testing.T, dir string) {
		idx, err := bleve.Open(liveGeneration(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		if err := idx.SetInternal(mappingVersionKey, []byte("rls-documents-0")); err != nil {
			t.Fatal(err)
		}
		if err := idx.Close(); err != nil {
			t.Fatal(err)
		}
	}},
}

// TestDamagedDirectoryIsReportedAndRebuilt simulates crashes and disk faults.
// Open must never serve a damaged index or hang: it reports ErrUnusable, or,
// when Bleve falls back to an older snapshot that still loads, it opens that
// consistent earlier state with its older applied index, which the caller
// treats as "behind". Either way a rebuild from the source gives back
// exactly the results of before.
func TestDamagedDirectoryIsReportedAndRebuilt(t *testing.T) {
	docs := corpus()
	queries := []Query{
		{},
		{PersonEUIDs: []string{"E1"}, Statuses: []Status{StatusCurrent}},
		{Text: "note"},
		{Types: []string{loinc + "|"}, Created: []DateParam{{Prefix: DateGe, Range: TimeRange{From: day("2023-01-01")}}}},
	}
	results := func(ix *Index) [][]string {
		var out [][]string
		for _, q := range queries {
			out = append(out, searchIDs(t, ix, q))
		}
		return out
	}
	sameResults := func(a, b [][]string) bool {
		return slices.EqualFunc(a, b, func(x, y []string) bool { return sameIDs(x, y) })
	}
	for _, dmg := range damages {
		t.Run(dmg.name, func(t *testing.T) {
			dir := t.TempDir()
			ix, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// The states the index went through, by applied index.
			states := map[uint64][][]string{0: results(ix)}
			// Two batches, so there are several segments to damage.
			mustApply(t, ix, 10, docs[:3]...)
			states[10] = results(ix)
			mustApply(t, ix, 11, docs[3:]...)
			want := results(ix)
			wantLocate, err := ix.Locate(context.Background(), LocateQuery{PersonEUIDs: []string{"E1"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := ix.Close(); err != nil {
				t.Fatal(err)
			}

			dmg.do(t, dir)

			ix, err = Open(dir, Options{LockTimeout: time.Second})
			switch {
			case errors.Is(err, ErrUnusable):
				ix, err = Rebuild(context.Background(), dir, sliceSource(docs), 11, Options{})
				if err != nil {
					t.Fatalf("rebuild: %v", err)
				}
			case err != nil:
				t.Fatalf("open of a damaged directory: %v, want ErrUnusable or an earlier state", err)
			default:
				applied, err := ix.AppliedIndex()
				if err != nil {
					t.Fatal(err)
				}
				earlier, known := states[applied]
				if !known || !sameResults(results(ix), earlier) {
					t.Fatalf("opened a damaged index at applied index %d that is not a state it went through", applied)
				}
				t.Logf("Bleve fell back to the state at applied index %d", applied)
				if err := ix.Rebuild(context.Background(), sliceSource(docs), 11); err != nil {
					t.Fatalf("rebuild: %v", err)
				}
			}
			check := func(ix *Index) {
				t.Helper()
				if got := results(ix); !sameResults(got, want) {
					t.Errorf("after rebuild: %v, want %v", got, want)
				}
				gotLocate, err := ix.Locate(context.Background(), LocateQuery{PersonEUIDs: []string{"E1"}})
				if err != nil || !equalHoldings(gotLocate, wantLocate) {
					t.Errorf("locate after rebuild: %+v, %v; want %+v", gotLocate, err, wantLocate)
				}
				if applied, err := ix.AppliedIndex(); err != nil || applied != 11 {
					t.Errorf("applied after rebuild: %d, %v; want 11", applied, err)
				}
			}
			check(ix)
			if err := ix.Close(); err != nil {
				t.Fatal(err)
			}
			// The rebuilt directory opens by itself and holds only its live
			// generation.
			ix, err = Open(dir, Options{})
			if err != nil {
				t.Fatalf("open after rebuild: %v", err)
			}
			defer ix.Close()
			check(ix)
			gens, err := listGenerations(dir)
			if err != nil || len(gens) != 1 {
				t.Errorf("generations after rebuild: %v, %v; want one", gens, err)
			}
		})
	}
}

func TestRebuildFailureKeepsTheOldIndex(t *testing.T) {
	ix := openTest(t)
	mustApply(t, ix, 4, corpus()...)
	want := searchIDs(t, ix, Query{})

	bad := baseDoc("bad")
	bad.PatientRecord = "no-bar"
	err := ix.Rebuild(context.Background(), sliceSource(append(corpus(), bad)), 9)
	if !errors.Is(err, ErrInvalidDocument) {
		t.Fatalf("rebuild with a bad document: %v, want ErrInvalidDocument", err)
	}
	sourceErr := errors.New("bbolt went away")
	failing := func(yield func(Document) error) error {
		if err := yield(baseDoc("x1")); err != nil {
			return err
		}
		return sourceErr
	}
	if err := ix.Rebuild(context.Background(), failing, 9); !errors.Is(err, sourceErr) {
		t.Fatalf("rebuild with a failing source: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ix.Rebuild(ctx, sliceSource(corpus()), 9); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled rebuild: %v", err)
	}
	if got := searchIDs(t, ix, Query{}); !slices.Equal(got, want) {
		t.Fatalf("after failed rebuilds: %v, want %v", got, want)
	}
	if applied, _ := ix.AppliedIndex(); applied != 4 {
		t.Fatalf("after failed rebuilds: applied %d, want 4", applied)
	}
	gens, _ := listGenerations(ix.Dir())
	if len(gens) != 1 {
		t.Fatalf("failed rebuilds left generations %v", gens)
	}
}

// TestRebuildSwapsUnderRunningSearches checks that searches running while
// the index is rebuilt see either the whole old index or the whole new one,
// never an empty or partial one, and never fail.
func TestRebuildSwapsUnderRunningSearches(t *testing.T) {
	ix := openTest(t)
	docsOf := func(prefix string, n int) []Document {
		docs := make([]Document, n)
		for i := range docs {
			docs[i] = baseDoc(fmt.Sprintf("%s%04d", prefix, i))
			docs[i].Created = day("2020-01-01").Add(time.Duration(i) * time.Hour)
		}
		return docs
	}
	old, fresh := docsOf("old", 300), docsOf("new", 500)
	mustApply(t, ix, 1, old...)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var searches atomic.Int64
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				res, err := ix.Search(context.Background(), Query{PersonEUIDs: []string{"E1"}, Limit: 10})
				if err != nil {
					errs <- err
					return
				}
				if res.Total != 300 && res.Total != 500 {
					errs <- fmt.Errorf("a search saw %d documents", res.Total)
					return
				}
				prefix := "old"
				if res.Total == 500 {
					prefix = "new"
				}
				for _, h := range res.Hits {
					if !strings.HasPrefix(h.ID, prefix) {
						errs <- fmt.Errorf("a search of %d documents returned %s", res.Total, h.ID)
						return
					}
				}
				searches.Add(1)
			}
		}()
	}
	for i := range 4 {
		src := fresh
		if i%2 == 1 {
			src = old
		}
		// Small batches make each rebuild take a while under the searches.
		if err := ix.Rebuild(context.Background(), sliceSource(src), uint64(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if searches.Load() == 0 {
		t.Fatal("no search completed")
	}
	if got, _ := ix.AppliedIndex(); got != 13 {
		t.Fatalf("applied %d, want 13", got)
	}
	// Writes go to the rebuilt index.
	mustApply(t, ix, 14, baseDoc("after"))
	if n, _ := ix.DocCount(); n != 301 {
		t.Fatalf("doc count %d, want 301", n)
	}
	gens, _ := listGenerations(ix.Dir())
	if len(gens) != 1 {
		t.Fatalf("generations left: %v", gens)
	}
}
