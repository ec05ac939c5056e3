package state

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/mpi"
)

// mpiIndex is the decoded, in-memory form of the master patient index that the FSM
// matches against: an mpi.MemStore holding the records, persons and configuration of the
// state file and the blocking index and term counts derived from them. The state file
// stays the source of truth; the index is built from it when the store opens, when a
// snapshot replaces it and when a write transaction that changed the index rolls back.
//
// Why in memory: the matcher reads a dozen candidate records, fifteen blocks and their
// persons for every record it registers, on every node, inside the single-threaded Apply.
// Read from bbolt (a cursor seek per block, a decoded value per record) that cost ten
// times the matching itself. Why derived rather than stored: a blocking index of one key
// per (block, record) made every registration insert fifteen randomly placed keys, and a
// bbolt commit rewrites every page an insert touches (dozens of pages per record once the
// index outgrows a transaction); the records already say which blocks they are filed in.
//
// The FSM's write transaction changes the index as it applies entries, before they are
// committed (see applyStore); a rollback rebuilds it from the committed state, which is
// rare (an entry that fails on every node). Readers therefore may find the index ahead of
// their own transaction, and viewStore reads only the blocking index and the counts from
// it, checking every block member against the transaction.
type mpiIndex struct {
	cur atomic.Pointer[mpiState]
}

// mpiState is one build of the in-memory indexes: the match index, the patient search
// index and the records' slots, derived from the same records.
type mpiState struct {
	mem    *mpi.MemStore
	search *patientSearch
	slots  *recordSlots
}

// current returns the indexes as they are now.
func (ix *mpiIndex) current() *mpiState { return ix.cur.Load() }

// rebuild builds the indexes from the committed state tx reads and puts them in place.
func (ix *mpiIndex) rebuild(tx *kvTx) error {
	st, err := buildMPIIndex(tx)
	if err != nil {
		return err
	}
	ix.cur.Store(st)
	return nil
}

// rebuildFromFile rebuilds the indexes from a file no layer lies on (at open, after a
// restore).
func rebuildFromFile(ix *mpiIndex, db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error { return ix.rebuild(&kvTx{bolt: tx}) })
}

// buildMPIIndex reads the configuration, records and persons of a transaction into a new
// mpi.MemStore, filing each record under its stored blocks and term counts as Register
// filed it, and indexes the records for patient search.
func buildMPIIndex(tx *kvTx) (*mpiState, error) {
	// The records' blocking keys stay in the state file, where applyStore.Record reads them.
	mem := mpi.NewMemStore(mpi.WithoutRecordBlocks())
	// Everything read here is as of the transaction's applied index: a reader of an older
	// state reads from its own transaction instead (viewStore).
	mem.Stamp(appliedIndex(tx))
	slots := newRecordSlots()
	cfg, ok, err := getConfig(tx)
	if err != nil {
		return nil, fmt.Errorf("build the match index: %w", err)
	}
	if ok {
		if err := mem.PutConfig(cfg); err != nil {
			return nil, err
		}
	}
	records := tx.Bucket(bucketMPIRecords)
	given := records.Sequence()
	err = records.ForEach(func(k, v []byte) error {
		slot, ok := slotOf(k)
		if !ok || slot == 0 || slot > given {
			return fmt.Errorf("records: key %x is no slot given", k)
		}
		sr, err := decodeRecord(v)
		if err != nil {
			return err
		}
		if err := mpi.IndexRecord(mem, sr); err != nil {
			return err
		}
		own, _ := mem.StoredKey(sr.Key)
		if _, taken := slots.get(own); taken {
			return fmt.Errorf("records: a record is stored under two slots (the second is %d)", slot)
		}
		return slots.set(own, slot)
	})
	if err != nil {
		return nil, fmt.Errorf("build the match index: %w", err)
	}
	err = tx.Bucket(bucketMPIPersons).ForEach(func(k, v []byte) error {
		p, err := decodePerson(string(k), v)
		if err != nil {
			return err
		}
		return mem.PutPerson(p)
	})
	if err != nil {
		return nil, fmt.Errorf("build the match index: %w", err)
	}
	return &mpiState{mem: mem, search: buildPatientSearch(mem, slots), slots: slots}, nil
}

// dropDerived removes what releases before the in-memory index stored of it (the blocking
// index, the term counts, the person count): they are derived from the records and
// persons, and left in place they would go stale, and make the state of a node that
// upgraded in place differ from one restored from a snapshot.
func dropDerived(tx *kvTx) error {
	for _, name := range derivedMPIBuckets {
		if tx.Bucket(name) == nil {
			continue
		}
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("drop bucket %s: %w", name, err)
		}
	}
	if b := tx.Bucket(bucketMPIConfig); b != nil && b.Get(keyPersonCount) != nil {
		if err := b.Delete(keyPersonCount); err != nil {
			return fmt.Errorf("drop the stored person count: %w", err)
		}
	}
	return nil
}

// MPIIndexDigest returns a digest of the in-memory indexes: the match index
// (mpi.MemStore.Digest), the patient search index and the records' slots.
func (s *Store) MPIIndexDigest() [sha256.Size]byte {
	return s.mpi.current().digest()
}

func (st *mpiState) digest() [sha256.Size]byte {
	mem, search, slots := st.mem.Digest(), st.search.digest(), st.slots.digest()
	return sha256.Sum256(slices.Concat(mem[:], search[:], slots[:]))
}

// RebuiltMPIIndexDigest builds a fresh index from the committed state and returns its
// digest, without putting it in place. With no write transaction open, it equals
// MPIIndexDigest unless the index kept in step with the writes has drifted from what the
// state file says (tests check this after every kind of write).
func (s *Store) RebuiltMPIIndexDigest() ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	err := s.View(func(tx *Tx) error {
		st, err := buildMPIIndex(tx.tx)
		if err != nil {
			return err
		}
		d = st.digest()
		return nil
	})
	return d, err
}
