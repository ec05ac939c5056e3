package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/mpi"
)

// recordSlots maps each record key to its slot: the number, in the order records were
// first stored, under which the state file keeps the record (bucketMPIRecords) and its
// registry entry (bucketPatients). It is derived from the records bucket and built with
// the match index.
//
// Why slots rather than the record keys themselves: a hospital's record keys arrive in no
// order, and a bbolt commit rewrites every page a key lands on, so a flush of a few
// thousand new records rewrote a few thousand pages of each bucket keyed by record (a
// bulk load of 20,000 persons wrote 1.7 times the bytes it writes by slot; at a million,
// every new record dirtied a page of its own). Numbered in the order they arrive, new records fill the last
// pages of the bucket, which a flush writes once.
//
// A slot never changes once given (records are replaced in place and never removed), so a
// reader may look a key up here even though the FSM may have added slots since its
// transaction began: the transaction holds nothing under a slot it cannot see.
type recordSlots struct {
	mu sync.RWMutex
	// table finds a key's slot: open addressing by mpi.HashString of the key with linear
	// probing, each entry a slot (0: empty) whose key is keys[slot], so that keys whose
	// hashes collide stay apart. It is at most half full. A Go map of strings took about
	// 40 bytes and a pointer for the collector per record; this takes 8 to 16 bytes.
	table []uint32
	// keys is indexed by slot (slot 0 is never given); the patient search index files
	// records by slot and answers with them.
	keys  []mpi.RecordKey
	count int
}

func newRecordSlots() *recordSlots {
	return &recordSlots{table: make([]uint32, 1024)}
}

// errTooManyRecords is returned when a slot does not fit in 32 bits (four billion
// records): the slots' table and the patient search index keep slots so.
var errTooManyRecords = errors.New("more records than the index can number")

// searchSlot returns a slot in 32 bits, if it fits.
func searchSlot(slot uint64) (uint32, bool) {
	return uint32(slot), slot <= math.MaxUint32
}

// keyOf returns the record key of a slot ("" for a slot not given).
func (s *recordSlots) keyOf(slot uint64) mpi.RecordKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if slot >= uint64(len(s.keys)) {
		return ""
	}
	return s.keys[slot]
}

// each calls fn with every slot given and its key, in slot order, until fn returns false.
func (s *recordSlots) each(fn func(slot uint32, key mpi.RecordKey) bool) {
	s.mu.RLock()
	keys := s.keys
	s.mu.RUnlock()
	for slot, key := range keys {
		if key != "" && !fn(uint32(slot), key) { // set gives no slot beyond 32 bits
			return
		}
	}
}

// find returns where in the table key's slot is, or the empty entry where it would go;
// s.mu is held.
func (s *recordSlots) find(key mpi.RecordKey) int {
	mask := uint64(len(s.table) - 1)
	for i := mpi.HashString(string(key)) & mask; ; i = (i + 1) & mask {
		if slot := s.table[i]; slot == 0 || s.keys[slot] == key {
			return int(i)
		}
	}
}

// get returns the slot of a record key.
func (s *recordSlots) get(key mpi.RecordKey) (uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	slot := s.table[s.find(key)]
	return uint64(slot), slot != 0
}

// set gives key its slot, which must fit in 32 bits and be given to no other key. key
// should be the match index's own copy of the string (mpi.MemStore.StoredKey), so that
// the list keeps no other string alive.
func (s *recordSlots) set(key mpi.RecordKey, slot uint64) error {
	s32, ok := searchSlot(slot)
	if !ok {
		return errTooManyRecords
	}
	if slot == 0 {
		return errors.New("slot 0 is never given")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slot < uint64(len(s.keys)) && s.keys[slot] != "" && s.keys[slot] != key {
		return fmt.Errorf("slot %d is given twice", slot)
	}
	if slot >= uint64(len(s.keys)) {
		// Slots are given in order, so this grows the list by one (a file whose slots have
		// gaps is read all the same: none is made, records are never removed).
		s.keys = append(s.keys, make([]mpi.RecordKey, slot+1-uint64(len(s.keys)))...)
	}
	s.keys[slot] = key
	i := s.find(key)
	if s.table[i] == 0 {
		s.count++
	}
	s.table[i] = s32
	if 2*s.count > len(s.table) {
		s.grow()
	}
	return nil
}

// grow doubles the table; s.mu is held.
func (s *recordSlots) grow() {
	old := s.table
	s.table = make([]uint32, 2*len(old))
	for _, slot := range old {
		if slot != 0 {
			s.table[s.find(s.keys[slot])] = slot
		}
	}
}

// digest is a digest of every slot given and its key, in slot order.
func (s *recordSlots) digest() [sha256.Size]byte {
	h := sha256.New()
	var buf []byte
	s.each(func(slot uint32, key mpi.RecordKey) bool {
		buf = binary.BigEndian.AppendUint32(buf[:0], slot)
		buf = binary.AppendUvarint(buf, uint64(len(key)))
		buf = append(buf, key...)
		h.Write(buf)
		return true
	})
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// slotKey is the state file key of a slot: big-endian, so that bbolt's byte order is the
// order of the slots.
func slotKey(slot uint64) [8]byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], slot)
	return k
}

// slotOf decodes a state file key written by slotKey.
func slotOf(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// migrateChunk is how many records one transaction of migrateToSlots moves: bbolt keeps
// every page a transaction writes in memory until it commits.
const migrateChunk = 50_000

// migrateToSlots moves the records and registry entries of a state file written before
// slots (keyed by record key) under slots, numbered in key order, and drops the old
// buckets. Each transaction moves the first chunk records left, in key order (see
// moveToSlots), so that a node stopped part way resumes where it stopped and every node
// numbers alike (and so holds the same state hash).
func migrateToSlots(db *bolt.DB, logger *slog.Logger, chunk int) error {
	moved := 0
	for {
		var n int
		var done bool
		err := db.Update(func(tx *bolt.Tx) (err error) {
			n, done, err = moveToSlots(tx, chunk)
			return err
		})
		if err != nil {
			return fmt.Errorf("number the records in slots: %w", err)
		}
		moved += n
		if done {
			if moved > 0 {
				logger.Info("state file: records numbered in slots", "records", moved)
			}
			return nil
		}
	}
}

// moveToSlots moves the first chunk records left in the buckets keyed by record key, with
// their registry entries, under the next slots; once none is left it drops those buckets
// and reports done.
func moveToSlots(tx *bolt.Tx, chunk int) (moved int, done bool, err error) {
	legacy := tx.Bucket(bucketLegacyMPIRecords)
	if legacy == nil {
		return 0, true, nil
	}
	legacyPatients := tx.Bucket(bucketLegacyPatients)
	records, patients := tx.Bucket(bucketMPIRecords), tx.Bucket(bucketPatients)
	// Values are copied: a write may remap the file the cursor's bytes point into.
	var keys, values [][]byte
	c := legacy.Cursor()
	for k, v := c.First(); k != nil && len(keys) < chunk; k, v = c.Next() {
		keys, values = append(keys, bytes.Clone(k)), append(values, bytes.Clone(v))
	}
	for i, key := range keys {
		slot, err := records.NextSequence()
		if err != nil {
			return moved, false, fmt.Errorf("number a record: %w", err)
		}
		sk := slotKey(slot)
		if err := records.Put(sk[:], values[i]); err != nil {
			return moved, false, fmt.Errorf("move a record: %w", err)
		}
		if legacyPatients != nil {
			if v := legacyPatients.Get(key); v != nil {
				if err := patients.Put(sk[:], bytes.Clone(v)); err != nil {
					return moved, false, fmt.Errorf("move a registry entry: %w", err)
				}
				if err := legacyPatients.Delete(key); err != nil {
					return moved, false, fmt.Errorf("move a registry entry: %w", err)
				}
			}
		}
		if err := legacy.Delete(key); err != nil {
			return moved, false, fmt.Errorf("move a record: %w", err)
		}
		moved++
	}
	if len(keys) == chunk {
		return moved, false, nil
	}
	// Every record moved. A registry entry is written only for a record the index holds:
	// one left over means a damaged file, which a snapshot must replace.
	if legacyPatients != nil {
		left := 0
		c := legacyPatients.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			left++
		}
		if left > 0 {
			return moved, false, fmt.Errorf("%d registry entries have no record (a damaged file: move it aside; the node then restores its newest snapshot and replays the log)", left)
		}
		if err := tx.DeleteBucket(bucketLegacyPatients); err != nil {
			return moved, false, fmt.Errorf("drop the registry by record key: %w", err)
		}
	}
	if err := tx.DeleteBucket(bucketLegacyMPIRecords); err != nil {
		return moved, false, fmt.Errorf("drop the records by record key: %w", err)
	}
	return moved, true, nil
}
