package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// docIndex keeps the Bleve document index in step with the committed state. The index is
// derived: the FSM reports each commit (its index and the documents it changed) and a
// worker indexes them in one Bleve batch that records the index; on start the index
// catches up from the state's change log, and a lost or damaged index is rebuilt from the
// state into a new generation that is swapped in whole.
//
// The index on disk never gets ahead of the state file, which is what a node has after a
// crash: committed entries reach the file only when the FSM flushes them, so documents
// changed by an entry are indexed (from the file) once the file holds it. A commit that
// changed no document moves the index on at once; a reader that waits for documents not yet
// flushed asks for the flush.
type docIndex struct {
	dir    string
	store  *state.Store
	logger *slog.Logger
	ix     *search.Index
	// requestFlush asks the FSM to flush now (set once the FSM exists, before serving).
	requestFlush func()

	mu sync.Mutex
	// pending are the commits not yet indexed, in order.
	pending      []docChange
	rebuild      bool
	rebuildIndex uint64
	wake         chan struct{}

	// indexed is the committed state index the search index reflects.
	indexed atomic.Uint64
	waitMu  sync.Mutex
	waitCh  chan struct{}

	stop chan struct{}
	done chan struct{}
}

// openDocIndex opens (or rebuilds) the index in dir and brings it up to the state.
func openDocIndex(dir string, store *state.Store, logger *slog.Logger) (*docIndex, error) {
	d := &docIndex{dir: dir, store: store, logger: logger, wake: make(chan struct{}, 1), waitCh: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
	applied, _, err := store.Applied()
	if err != nil {
		return nil, err
	}
	opts := search.Options{Logger: logger}
	ix, err := search.Open(dir, opts)
	switch {
	case errors.Is(err, search.ErrUnusable):
		logger.Warn("document index unusable; rebuilding it from the state", "dir", dir, "err", err)
		ix, err = search.Rebuild(context.Background(), dir, d.fileSource, applied, opts)
		if err != nil {
			return nil, fmt.Errorf("rebuild document index: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("open document index: %w", err)
	}
	d.ix = ix
	if err := d.catchUp(applied); err != nil {
		ix.Close()
		return nil, err
	}
	d.indexed.Store(applied)
	go d.run()
	return d, nil
}

// docChange is a commit: its index and the documents it changed.
type docChange struct {
	index uint64
	docs  []string
}

// catchUp indexes the documents changed after the index the search index holds.
func (d *docIndex) catchUp(applied uint64) error {
	have, err := d.ix.AppliedIndex()
	if err != nil {
		return err
	}
	if have >= applied {
		return nil
	}
	var ids []string
	err = d.store.ViewFile(func(tx *state.Tx) error {
		return tx.DocumentsChangedAfter(have, func(id string) error { ids = append(ids, id); return nil })
	})
	if err != nil {
		return err
	}
	d.logger.Info("document index catching up", "from", have, "to", applied, "documents", len(ids))
	return d.apply(ids, applied)
}

// apply indexes the documents as the state file holds them, recording index (at most the
// file's applied index).
func (d *docIndex) apply(ids []string, index uint64) error {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	changes := make([]search.Change, 0, len(ids))
	err := d.store.ViewFile(func(tx *state.Tx) error {
		for _, id := range ids {
			sd, ok, err := tx.Document(id)
			if err != nil {
				return err
			}
			if ok {
				changes = append(changes, search.Put(sd.Document))
			} else {
				changes = append(changes, search.Delete(id))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read changed documents: %w", err)
	}
	if err := d.ix.Apply(changes, index); err != nil {
		return fmt.Errorf("index %d documents at %d: %w", len(changes), index, err)
	}
	return nil
}

// committed is the FSM's commit hook: it only queues, so commits never wait for Bleve.
func (d *docIndex) committed(index uint64, docs []string) {
	d.mu.Lock()
	d.pending = append(d.pending, docChange{index: index, docs: docs})
	d.mu.Unlock()
	d.signal()
}

// flushed is the FSM's flush hook: the state file holds more entries
// (state.Store.FlushedIndex), which the documents waiting for them may now be indexed from.
func (d *docIndex) flushed() { d.signal() }

// restored is the FSM's restore hook: the state was replaced, so the index is rebuilt.
func (d *docIndex) restored(index uint64) {
	d.mu.Lock()
	d.rebuild, d.rebuildIndex, d.pending = true, index, nil
	d.mu.Unlock()
	d.indexed.Store(0)
	d.signal()
}

func (d *docIndex) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *docIndex) run() {
	defer close(d.done)
	for {
		select {
		case <-d.stop:
			return
		case <-d.wake:
		}
		d.mu.Lock()
		rebuild, rebuildIndex := d.rebuild, d.rebuildIndex
		d.rebuild = false
		// The commits that may be indexed now: each one that changed no document, and
		// each one the file holds, in order up to the first that must wait for a flush.
		var docs []string
		var through, onDisk uint64
		flushed := d.store.FlushedIndex()
		n := 0
		for ; n < len(d.pending); n++ {
			c := d.pending[n]
			if c.index > flushed && len(c.docs) > 0 {
				break
			}
			docs = append(docs, c.docs...)
			through = c.index
			if c.index <= flushed {
				onDisk = c.index
			}
		}
		d.pending = d.pending[n:]
		d.mu.Unlock()
		var err error
		switch {
		case rebuild:
			err = d.ix.Rebuild(context.Background(), d.fileSource, rebuildIndex)
			through = max(through, rebuildIndex)
		case len(docs) > 0:
			err = d.apply(docs, onDisk)
		}
		if err != nil {
			// The index falls behind but stays consistent: the next start catches up from
			// the state, and searches that must be current keep waiting.
			d.logger.Error("document index update failed", "index", through, "err", err)
			continue
		}
		if through > 0 {
			d.setIndexed(through)
		}
	}
}

// fileSource streams every document of the state file, for rebuilds.
func (d *docIndex) fileSource(yield func(search.Document) error) error {
	return d.store.ViewFile(func(tx *state.Tx) error {
		return tx.ForEachDocument(func(sd state.StoredDocument) error { return yield(sd.Document) })
	})
}

func (d *docIndex) setIndexed(index uint64) {
	if index <= d.indexed.Load() {
		return
	}
	d.indexed.Store(index)
	d.waitMu.Lock()
	close(d.waitCh)
	d.waitCh = make(chan struct{})
	d.waitMu.Unlock()
}

// wait blocks until the index reflects the committed state at index, or ctx ends.
func (d *docIndex) wait(ctx context.Context, index uint64) error {
	for {
		d.waitMu.Lock()
		ch := d.waitCh
		d.waitMu.Unlock()
		if d.indexed.Load() >= index {
			return nil
		}
		flushed := d.store.FlushedIndex()
		d.mu.Lock()
		unflushed := slices.ContainsFunc(d.pending, func(c docChange) bool { return c.index > flushed && len(c.docs) > 0 })
		d.mu.Unlock()
		if unflushed && d.requestFlush != nil {
			d.requestFlush()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for the document index to reach %d (at %d): %w", index, d.indexed.Load(), ctx.Err())
		}
	}
}

func (d *docIndex) close() error {
	close(d.stop)
	<-d.done
	return d.ix.Close()
}
