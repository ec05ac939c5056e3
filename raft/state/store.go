// Package state owns rls's replicated state on one node: a bbolt file that only the Raft FSM
// writes and that API handlers read, with the FSM's committed batches held in memory as
// layers over it until they are flushed into it (see layers.go). It stores the last applied
// log index with the data, so a restarted node knows exactly which entries it already holds.
//
// It also makes and restores snapshots (a consistent copy of the file) and computes the
// state digest that lets two nodes be compared. It must never import HTTP or API code; it
// knows the entities of raft/model but nothing about commands or Raft itself.
package state

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/mpi"
)

// Bucket names. The set is part of the snapshot format: add, never rename.
var (
	bucketMeta         = []byte("meta")
	bucketParticipants = []byte("participants")
	bucketNodes        = []byte("nodes")

	allBuckets = slices.Concat([][]byte{bucketMeta, bucketParticipants, bucketNodes}, mpiBuckets, patientBuckets, documentBuckets, stewardBuckets, auditBuckets, consentBuckets, listBuckets, hl7Buckets, notifyBuckets)

	keyAppliedIndex = []byte("applied_index")
	keyAppliedTerm  = []byte("applied_term")
)

// ErrNotFound is returned when a requested entity does not exist.
var ErrNotFound = errors.New("not found")

// ErrNotState is returned when a file offered as a snapshot is not an rls state file.
var ErrNotState = errors.New("not an rls state snapshot")

const (
	fileMode = 0o600
	// openTimeout bounds the wait for bbolt's file lock: without it, Open blocks forever
	// when another process holds the file.
	openTimeout = 5 * time.Second
	// initialMmapSize is reserved address space, not memory (a read-only shared mapping of
	// the file, which counts against no commit limit): bbolt grows the map only by waiting
	// for every open reader, and new readers wait behind it, so a long read transaction (a
	// Raft snapshot or a download of the state being streamed, minutes at millions of
	// persons) would hold up every flush and then the state machine whenever the file
	// crossed the map's end. 1 GiB was crossed at some 500,000 records; 64 GiB is far
	// beyond any state this design holds.
	initialMmapSize = 64 << 30
)

// Store is the node's replicated state file.
type Store struct {
	path   string
	logger *slog.Logger

	// mu guards db against being swapped by Replace while a reader uses it.
	mu sync.RWMutex
	db *bolt.DB

	index *participantIndex
	// mpi is the in-memory match index (see mpiIndex).
	mpi mpiIndex
	// writeMu is held from Begin until a Batch's index changes are published, so the next
	// write transaction never sees committed data without its index entries.
	writeMu sync.Mutex

	// frozen are the layers of committed batches not yet written to the file, oldest first
	// (see layers.go), frozenSize their approximate memory; layersMu guards them.
	layersMu   sync.RWMutex
	frozen     []*layer
	frozenSize int
	// flushed is closed and replaced whenever a flush drops layers (under layersMu);
	// flushGen counts those drops, so that a reader can tell that layers left the list
	// between opening its file transaction and taking the list.
	flushed  chan struct{}
	flushGen atomic.Uint64
	// flushMu serialises flushes, and Replace against them.
	flushMu sync.Mutex
	// flushedIndex is the applied index of the file: as opened or restored, then as the
	// flushes advance it.
	flushedIndex atomic.Uint64
	// nesting, when set, checks that no goroutine opens a transaction inside another
	// (CheckNesting, tests only).
	nesting *nestingCheck
}

// Open opens (or creates) the state file at path. After an unclean shutdown it runs bbolt's
// consistency check and refuses a damaged file.
func Open(path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, logger: logger, flushed: make(chan struct{})}
	_, statErr := os.Stat(path)
	existed := statErr == nil
	clean := fileExists(cleanMarker(path))
	if existed {
		// A clean file gets the cheap check that keeps bbolt's memory map from faulting;
		// after a crash every reachable page is read.
		verify := checkBoltFile
		if !clean {
			verify = walkBoltFile
		}
		if err := verify(path); err != nil {
			return nil, fmt.Errorf("state file %s is damaged (move it aside; the node then restores its newest snapshot and replays the log): %w", path, err)
		}
	}
	db, err := openDB(path, logger)
	if err != nil {
		return nil, err
	}
	if existed && !clean {
		logger.Warn("state file was not closed cleanly; checking it", "path", path)
		if err := check(db); err != nil {
			db.Close()
			return nil, fmt.Errorf("state file %s failed its consistency check: %w", path, err)
		}
	}
	// The marker is removed while the file is open, so a crash leaves none behind.
	if err := os.Remove(cleanMarker(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		db.Close()
		return nil, fmt.Errorf("remove clean-shutdown marker: %w", err)
	}
	s.db = db
	if s.index, err = buildParticipantIndex(db); err != nil {
		db.Close()
		return nil, err
	}
	if err := rebuildFromFile(&s.mpi, db); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.readFlushedIndex(db); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func openDB(path string, logger *slog.Logger) (*bolt.DB, error) {
	db, err := bolt.Open(path, fileMode, &bolt.Options{Timeout: openTimeout, InitialMmapSize: initialMmapSize})
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if err := dropDerived(&kvTx{bolt: tx}); err != nil {
			return err
		}
		return backfillLinkEventOrder(&kvTx{bolt: tx})
	})
	if err == nil {
		err = migrateToSlots(db, logger, migrateChunk)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare state file %s: %w", path, err)
	}
	return db, nil
}

func check(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

func cleanMarker(path string) string { return path + ".clean" }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Close writes the layers still in memory to the file, closes it and leaves the marker that
// spares the next Open its check.
func (s *Store) Close() error {
	if err := s.Flush(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file: %w", err)
	}
	s.db = nil
	if err := os.WriteFile(cleanMarker(s.path), nil, fileMode); err != nil {
		return fmt.Errorf("write clean-shutdown marker: %w", err)
	}
	return nil
}

// View runs fn in a read transaction: the file and the committed layers not yet in it.
func (s *Store) View(fn func(*Tx) error) error {
	defer s.enter("a read transaction (View)")()
	s.mu.RLock()
	defer s.mu.RUnlock()
	kv, err := s.view()
	if err != nil {
		return err
	}
	defer kv.bolt.Rollback()
	return fn(&Tx{tx: kv, index: s.index, mpiIndex: s.mpi.current(), viewIndex: appliedIndex(kv)})
}

// ViewFile runs fn in a read transaction of the state file alone, without the committed
// layers not yet flushed into it: what a node would have after a crash. Derived state kept
// on disk (the document index) reads it so as never to get ahead of the file.
func (s *Store) ViewFile(fn func(*Tx) error) error {
	defer s.enter("a read transaction of the file (ViewFile)")()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(func(tx *bolt.Tx) error {
		kv := &kvTx{bolt: tx}
		return fn(&Tx{tx: kv, index: s.index, mpiIndex: s.mpi.current(), viewIndex: appliedIndex(kv)})
	})
}

// view opens a read transaction on the file and takes the frozen layers above it. The
// caller holds s.mu (read) and rolls the file transaction back when done.
//
// The file transaction is opened before the list is taken, and without layersMu held: bbolt
// may make it wait for a flush that grows the file's memory map, which waits for open
// readers (the state machine's batch among them) to finish. A flush that dropped layers in
// between would leave the transaction without them, so it starts again.
func (s *Store) view() (*kvTx, error) {
	for {
		gen := s.flushGen.Load()
		tx, err := s.db.Begin(false)
		if err != nil {
			return nil, fmt.Errorf("begin read transaction: %w", err)
		}
		kv := &kvTx{bolt: tx}
		s.layersMu.RLock()
		if s.flushGen.Load() != gen {
			s.layersMu.RUnlock()
			if err := tx.Rollback(); err != nil {
				return nil, fmt.Errorf("end read transaction: %w", err)
			}
			continue
		}
		if len(s.frozen) > 0 {
			base := appliedIndex(kv)
			for i, l := range s.frozen {
				// A layer at or below the file's applied index was flushed already.
				if l.last > base {
					kv.layers = slices.Clone(s.frozen[i:])
					break
				}
			}
		}
		s.layersMu.RUnlock()
		return kv, nil
	}
}

// Batch is the state machine's write transaction: a layer it fills across several applied
// batches of log entries, over a read transaction of the file and the frozen layers. Readers
// see none of it until Commit freezes it. Only the FSM uses it.
type Batch struct {
	store *Store
	tx    *kvTx
	delta *indexDelta
	// index holds the in-memory indexes the batch reads and changes; mpiChanged is set
	// once it changed them, so that a rollback rebuilds them from the committed state.
	index      *mpiState
	mpiChanged bool
	// mpiStore is the batch's applyStore, made once: Tx.MPI is asked for it several
	// times per registration, and each applyStore put in an interface is an allocation.
	mpiStore mpi.Store
}

// MaxFrozenSize bounds the memory of the committed layers not yet in the file: Begin waits
// for a flush beyond it, so that a disk slower than the state machine slows the state
// machine instead of filling memory.
const MaxFrozenSize = 512 << 20

// Begin opens the write transaction. It waits while another Batch is open, and while the
// layers waiting for a flush hold more than MaxFrozenSize.
func (s *Store) Begin() (*Batch, error) {
	s.writeMu.Lock()
	for {
		s.layersMu.RLock()
		full, flushed := s.frozenSize > MaxFrozenSize, s.flushed
		s.layersMu.RUnlock()
		if !full {
			break
		}
		<-flushed
	}
	s.mu.RLock()
	kv, err := s.view()
	if err != nil {
		s.mu.RUnlock()
		s.writeMu.Unlock()
		return nil, fmt.Errorf("begin write transaction: %w", err)
	}
	kv.top = newLayer()
	b := &Batch{store: s, tx: kv, delta: &indexDelta{}, index: s.mpi.current()}
	b.mpiStore = applyStore{tx: kv, batch: b, mem: b.index.mem, slots: b.index.slots}
	// Until the FSM says which entry writes (Tx.StampEntry), what this transaction writes to
	// the in-memory index is of no known entry, and every reader reads it from its own state.
	b.index.mem.Stamp(math.MaxUint64)
	return b, nil
}

// Tx returns the typed accessors of the open transaction.
func (b *Batch) Tx() *Tx { return &Tx{tx: b.tx, index: b.store.index, pending: b.delta, batch: b} }

// Commit freezes the batch's layer, which readers see from then on, and publishes its index
// changes. The layer reaches the file with the next Flush.
func (b *Batch) Commit() error {
	defer b.store.writeMu.Unlock()
	defer b.store.mu.RUnlock()
	if err := b.tx.bolt.Rollback(); err != nil {
		return fmt.Errorf("end the batch's read transaction: %w", err)
	}
	if top := b.tx.top; !top.empty() {
		top.freeze()
		var ok bool
		if top.last, ok = top.appliedIndex(); !ok {
			top.last = math.MaxUint64 // no applied index: above every file
		}
		b.store.layersMu.Lock()
		b.store.frozen = append(b.store.frozen, top)
		b.store.frozenSize += top.size
		b.store.layersMu.Unlock()
	}
	b.store.index.apply(b.delta)
	return nil
}

// Rollback discards the transaction. If the batch changed the match index, the index is
// rebuilt from the committed state before the next batch can begin; a state file that can
// no longer be read stops the node (every write would be refused after it anyway).
func (b *Batch) Rollback() {
	defer b.store.writeMu.Unlock()
	defer b.store.mu.RUnlock()
	if err := b.tx.bolt.Rollback(); err != nil {
		b.store.logger.Warn("roll back state transaction", "err", err)
	}
	if b.mpiChanged {
		kv, err := b.store.view()
		if err == nil {
			err = b.store.mpi.rebuild(kv)
			kv.bolt.Rollback()
		}
		if err != nil {
			panic(fmt.Sprintf("rls state: rebuild the match index after a rollback: %v", err))
		}
	}
}

// MaxFlushKeys bounds the keys one bbolt transaction of a flush writes. bbolt holds every
// page a transaction touches in memory until it commits, and once the state file is much
// larger than a flush, nearly every key of a registration falls on a page of its own: at
// 100,000 persons a flush of a second's registrations held some 290 MB, beside an index of
// 320 MB. A flush of more keys writes the layers in several transactions, oldest first,
// each ending at the applied index of its last layer, so the file is whole after each.
const MaxFlushKeys = 16 << 10

// Flush writes the frozen layers to the file (with bbolt's fsyncs), in transactions of
// whole layers of at most MaxFlushKeys keys (a larger layer alone), and drops them. The
// state machine calls it when the layers have grown or aged, before a snapshot and when it
// stops.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.layersMu.RLock()
	layers := slices.Clone(s.frozen)
	s.layersMu.RUnlock()
	for len(layers) > 0 {
		n, keys := 1, layers[0].keys
		for n < len(layers) && keys+layers[n].keys <= MaxFlushKeys {
			keys += layers[n].keys
			n++
		}
		if err := s.flushLayers(layers[:n]); err != nil {
			return err
		}
		layers = layers[n:]
	}
	return nil
}

// flushLayers writes the oldest frozen layers, layers, in one bbolt transaction and drops
// them.
func (s *Store) flushLayers(layers []*layer) error {
	s.mu.RLock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, l := range layers {
			if err := l.writeTo(tx); err != nil {
				return err
			}
		}
		return nil
	})
	s.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("write %d committed layers to the state file: %w", len(layers), err)
	}
	for _, l := range layers {
		if l.last != math.MaxUint64 && l.last > s.flushedIndex.Load() {
			s.flushedIndex.Store(l.last)
		}
	}
	s.dropLayers(len(layers))
	return nil
}

// dropLayers takes the n oldest frozen layers off the list (a flush wrote them, or a restore
// replaced the state they were of) and wakes whoever waits for that.
func (s *Store) dropLayers(n int) {
	s.layersMu.Lock()
	defer s.layersMu.Unlock()
	for _, l := range s.frozen[:n] {
		s.frozenSize -= l.size
	}
	s.frozen = slices.Clone(s.frozen[n:])
	s.flushGen.Add(1)
	close(s.flushed)
	s.flushed = make(chan struct{})
}

// FlushedIndex returns the applied index of the state file: what a node has after a crash.
func (s *Store) FlushedIndex() uint64 { return s.flushedIndex.Load() }

func (s *Store) readFlushedIndex(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		s.flushedIndex.Store(appliedIndex(&kvTx{bolt: tx}))
		return nil
	})
}

// Unflushed returns how many committed layers wait for a flush and roughly how much memory
// they hold.
func (s *Store) Unflushed() (layers, size int) {
	s.layersMu.RLock()
	defer s.layersMu.RUnlock()
	return len(s.frozen), s.frozenSize
}

// Applied returns the index and term of the last log entry the state holds.
func (s *Store) Applied() (index, term uint64, err error) {
	err = s.View(func(tx *Tx) error {
		index, term = tx.Applied()
		return nil
	})
	return index, term, err
}

// Digest identifies the replicated state at a log index.
type Digest struct {
	Index uint64 `json:"index"`
	Hash  string `json:"hash"`
}

// Hash computes a SHA-256 digest over every bucket, key and value of the replicated state,
// in bbolt's (sorted) order, leaving out only the applied index and term, which are
// reported beside it. Two nodes at the same index must give the same hash.
func (s *Store) Hash() (Digest, error) {
	var d Digest
	err := s.View(func(tx *Tx) error {
		d.Index, _ = tx.Applied()
		h := sha256.New()
		var lenBuf [binary.MaxVarintLen64]byte
		writeField := func(b []byte) {
			n := binary.PutUvarint(lenBuf[:], uint64(len(b)))
			h.Write(lenBuf[:n])
			h.Write(b)
		}
		err := tx.tx.ForEach(func(name []byte, b *kvBucket) error {
			writeField(name)
			return b.ForEach(func(k, v []byte) error {
				if string(name) == string(bucketMeta) && (string(k) == string(keyAppliedIndex) || string(k) == string(keyAppliedTerm)) {
					return nil
				}
				writeField(k)
				writeField(v)
				return nil
			})
		})
		d.Hash = hex.EncodeToString(h.Sum(nil))
		return err
	})
	if err != nil {
		return Digest{}, fmt.Errorf("hash state: %w", err)
	}
	return d, nil
}

// Snapshot is a consistent, point-in-time view of the state held open until Release.
type Snapshot struct {
	store   *Store
	tx      *bolt.Tx
	release sync.Once
}

// BeginSnapshot flushes the committed layers and opens a read transaction that pins the
// file. It is cheap; the copy happens in WriteTo, concurrently with further writes.
func (s *Store) BeginSnapshot() (*Snapshot, error) {
	for {
		if err := s.Flush(); err != nil {
			return nil, err
		}
		s.mu.RLock()
		tx, err := s.db.Begin(false)
		if err != nil {
			s.mu.RUnlock()
			return nil, fmt.Errorf("begin snapshot: %w", err)
		}
		if n, _ := s.Unflushed(); n == 0 {
			return &Snapshot{store: s, tx: tx}, nil
		}
		// A batch was committed meanwhile: the file alone is not the state.
		tx.Rollback()
		s.mu.RUnlock()
	}
}

// Index returns the last applied log index the snapshot holds.
func (sn *Snapshot) Index() uint64 {
	index, _ := (&Tx{tx: &kvTx{bolt: sn.tx}}).Applied()
	return index
}

// WriteTo streams the snapshot, a complete bbolt file, to w without buffering it in memory.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := sn.tx.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("write snapshot: %w", err)
	}
	return n, nil
}

// Release ends the snapshot's read transaction. It is safe to call more than once.
func (sn *Snapshot) Release() {
	sn.release.Do(func() {
		if err := sn.tx.Rollback(); err != nil {
			sn.store.logger.Warn("release snapshot", "err", err)
		}
		sn.store.mu.RUnlock()
	})
}

// Replace discards the whole state and puts the snapshot read from r in its place. The
// snapshot is written to a temporary file, synced and checked before the swap, so a broken
// stream leaves the current state untouched.
func (s *Store) Replace(r io.Reader) error {
	tmp := s.path + ".restore"
	if err := writeSynced(tmp, r); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("receive snapshot: %w", err)
	}
	if err := ValidateSnapshotFile(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	// The layers not yet in the file are of the state being replaced.
	s.layersMu.RLock()
	n := len(s.frozen)
	s.layersMu.RUnlock()
	s.dropLayers(n)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state for restore: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("swap in restored state: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	db, err := openDB(s.path, s.logger)
	if err != nil {
		return fmt.Errorf("reopen restored state: %w", err)
	}
	index, err := buildParticipantIndex(db)
	if err != nil {
		db.Close()
		return err
	}
	if err := rebuildFromFile(&s.mpi, db); err != nil {
		db.Close()
		return err
	}
	if err := s.readFlushedIndex(db); err != nil {
		db.Close()
		return err
	}
	s.db, s.index = db, index
	return nil
}

// ValidateSnapshotFile checks that the file at path is an intact rls state file: its pages
// pass walkBoltFile (read without a memory map), it passes bbolt's consistency check and it
// has rls's meta bucket.
func ValidateSnapshotFile(path string) error {
	if err := walkBoltFile(path); err != nil {
		return err
	}
	db, err := bolt.Open(path, fileMode, &bolt.Options{Timeout: openTimeout, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotState, err)
	}
	defer db.Close()
	if err := check(db); err != nil {
		return fmt.Errorf("%w: consistency check: %v", ErrNotState, err)
	}
	return db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return fmt.Errorf("%w: no %s bucket", ErrNotState, bucketMeta)
		}
		return nil
	})
}

// ForgetApplied copies the snapshot file src to dst with its applied index and term set to
// zero. A snapshot restored into a cluster comes from another log (or an older point of
// this one): its recorded index means nothing there, and keeping it could make the FSM skip
// new entries as "already applied". Zero means "holds no entry of this log yet".
func ForgetApplied(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", src, err)
	}
	err = writeSynced(dst, in)
	in.Close()
	if err != nil {
		return fmt.Errorf("copy snapshot: %w", err)
	}
	db, err := bolt.Open(dst, fileMode, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotState, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: no %s bucket", ErrNotState, bucketMeta)
		}
		return (&Tx{tx: &kvTx{bolt: tx}}).SetApplied(0, 0)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("clear applied index of snapshot copy: %w", err)
	}
	return nil
}

func writeSynced(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, fileMode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s to sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
