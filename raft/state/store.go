// Package state owns rls's replicated state on one node: a bbolt file that only the Raft FSM
// writes (one transaction per applied batch) and that API handlers read. It stores the last
// applied log index in the same transaction as the data, so a restarted node knows exactly
// which entries it already holds.
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
	"time"

	bolt "go.etcd.io/bbolt"
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
	// initialMmapSize is reserved address space, not memory: a long read transaction (a
	// snapshot being streamed) would otherwise block writers whenever the map must grow.
	initialMmapSize = 1 << 30
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
}

// Open opens (or creates) the state file at path. After an unclean shutdown it runs bbolt's
// consistency check and refuses a damaged file.
func Open(path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, logger: logger}
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
	db, err := openDB(path)
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
	if err := s.mpi.rebuild(db); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func openDB(path string) (*bolt.DB, error) {
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
		if err := dropDerived(tx); err != nil {
			return err
		}
		return backfillLinkEventOrder(tx)
	})
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

// Close closes the file and leaves the marker that spares the next Open its check.
func (s *Store) Close() error {
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

// View runs fn in a read transaction.
func (s *Store) View(fn func(*Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(func(tx *bolt.Tx) error {
		return fn(&Tx{tx: tx, index: s.index, mpiIndex: s.mpi.current(), viewIndex: appliedIndex(tx)})
	})
}

// Batch is a write transaction that the FSM keeps open across several applied batches of
// log entries and commits (with bbolt's fsyncs) when it chooses. Readers see none of it until
// Commit. Only the FSM uses it.
type Batch struct {
	store *Store
	tx    *bolt.Tx
	delta *indexDelta
	// index holds the in-memory indexes the batch reads and changes; mpiChanged is set
	// once it changed them, so that a rollback rebuilds them from the committed state.
	index      *mpiState
	mpiChanged bool
}

// Begin opens the write transaction. It waits while another Batch is open.
func (s *Store) Begin() (*Batch, error) {
	s.writeMu.Lock()
	s.mu.RLock()
	tx, err := s.db.Begin(true)
	if err != nil {
		s.mu.RUnlock()
		s.writeMu.Unlock()
		return nil, fmt.Errorf("begin write transaction: %w", err)
	}
	b := &Batch{store: s, tx: tx, delta: &indexDelta{}, index: s.mpi.current()}
	// Until the FSM says which entry writes (Tx.StampEntry), what this transaction writes to
	// the in-memory index is of no known entry, and every reader reads it from its own state.
	b.index.mem.Stamp(math.MaxUint64)
	return b, nil
}

// Tx returns the typed accessors of the open transaction.
func (b *Batch) Tx() *Tx { return &Tx{tx: b.tx, index: b.store.index, pending: b.delta, batch: b} }

// Commit writes and fsyncs the transaction, then publishes its index changes.
func (b *Batch) Commit() error {
	defer b.store.writeMu.Unlock()
	defer b.store.mu.RUnlock()
	if err := b.tx.Commit(); err != nil {
		return fmt.Errorf("commit state: %w", err)
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
	if err := b.tx.Rollback(); err != nil {
		b.store.logger.Warn("roll back state transaction", "err", err)
	}
	if b.mpiChanged {
		if err := b.store.mpi.rebuild(b.store.db); err != nil {
			panic(fmt.Sprintf("rls state: rebuild the match index after a rollback: %v", err))
		}
	}
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
		err := tx.tx.ForEach(func(name []byte, b *bolt.Bucket) error {
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

// BeginSnapshot opens a read transaction that pins the current state. It is cheap; the copy
// happens in WriteTo, concurrently with further writes.
func (s *Store) BeginSnapshot() (*Snapshot, error) {
	s.mu.RLock()
	tx, err := s.db.Begin(false)
	if err != nil {
		s.mu.RUnlock()
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	return &Snapshot{store: s, tx: tx}, nil
}

// Index returns the last applied log index the snapshot holds.
func (sn *Snapshot) Index() uint64 {
	index, _ := (&Tx{tx: sn.tx}).Applied()
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state for restore: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("swap in restored state: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	db, err := openDB(s.path)
	if err != nil {
		return fmt.Errorf("reopen restored state: %w", err)
	}
	index, err := buildParticipantIndex(db)
	if err != nil {
		db.Close()
		return err
	}
	if err := s.mpi.rebuild(db); err != nil {
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
		return (&Tx{tx: tx}).SetApplied(0, 0)
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
