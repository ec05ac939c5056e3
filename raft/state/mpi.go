package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rls-hie/rls/mpi"
)

// Buckets of the master patient index. Only what the index cannot be derived from is
// stored: the configuration, the records (each with its normalised form and the blocks it
// is filed under), the persons and the review queue. The blocking index, the term counts
// and the number of persons are derived from them and kept in memory (see mpiIndex).
var (
	bucketMPIConfig = []byte("mpi_config")
	// bucketMPIRecords holds the records by slot (see recordSlots): slot (8 bytes) → the
	// stored record, binary (mpi.StoredRecord.AppendBinary) or the JSON of earlier releases.
	bucketMPIRecords = []byte("mpi_record_slots")
	// bucketLegacyMPIRecords held the records by record key in releases before slots;
	// opening a file moves them into bucketMPIRecords (migrateToSlots).
	bucketLegacyMPIRecords = []byte("mpi_records")
	bucketMPIPersons       = []byte("mpi_persons")
	bucketMPIReviews       = []byte("mpi_reviews")
	// bucketMPIReviewRecords indexes the review queue by record: record key + 0x00 +
	// sequence (8 bytes) → empty, for finding a record's open items.
	bucketMPIReviewRecords = []byte("mpi_review_records")
	// bucketMPIBlocksV1 is the blocking index of releases before scoring model 2, filed
	// without sort values; `rls mpi rematch` files every record anew and drops it.
	bucketMPIBlocksV1 = []byte("mpi_blocks")

	mpiBuckets = [][]byte{bucketMPIConfig, bucketMPIRecords, bucketMPIPersons, bucketMPIReviews, bucketMPIReviewRecords}

	// derivedMPIBuckets are what releases before the in-memory index stored of it: the
	// blocking index (block key + 0x00 + sort + 0x00 + record key → empty), the term
	// counts (field + 0x00 + value → 8-byte count), the patient search entries and the FHIR
	// id index (id → record key: a randomly placed key every new record wrote; without it
	// the flush of 100,000 persons is 10-15% shorter). Open drops them; the in-memory index
	// is built from the records instead (see dropDerived).
	derivedMPIBuckets = [][]byte{[]byte("mpi_block_entries"), []byte("mpi_terms"), []byte("patient_search"), []byte("patient_ids")}

	keyCurrentConfig = []byte("current")
	// keyPersonCount, in the config bucket, held the number of persons in releases
	// before the in-memory index; Open drops it.
	keyPersonCount = []byte("person_count")
)

// keySep separates the parts of composite keys; record keys and EUIDs never hold it.
const keySep = 0x00

// MPI returns the master patient index store of the transaction: the matcher reads and
// writes the replicated state through it. In the FSM's write transaction it reads the
// in-memory index and writes both the index and the state file; in a read transaction it
// reads records, persons and the configuration from the state file and only the blocking
// index and counts from memory (see viewStore). Writes are only allowed inside the FSM.
func (t *Tx) MPI() mpi.Store {
	if t.batch != nil {
		return t.batch.mpiStore
	}
	return viewStore{tx: t.tx, mem: t.mpiIndex.mem, slots: t.mpiIndex.slots, applied: t.viewIndex}
}

// StampEntry marks what the FSM writes to the in-memory index from now on as written by
// the log entry at index (mpi.MemStore.Stamp), so that readers of an older state do not
// take it for theirs. Only the FSM's write transaction stamps.
func (t *Tx) StampEntry(index uint64) {
	if t.batch != nil {
		t.batch.index.mem.Stamp(index)
	}
}

// recordValue returns the stored form of the record under key, if the transaction holds it.
func recordValue(tx *kvTx, slots *recordSlots, key mpi.RecordKey) []byte {
	slot, ok := slots.get(key)
	if !ok {
		return nil
	}
	k := slotKey(slot)
	return tx.Bucket(bucketMPIRecords).Get(k[:])
}

// getRecord decodes the stored record under key from the state file (binary, or the
// JSON of earlier releases), or returns nil.
func getRecord(tx *kvTx, slots *recordSlots, key mpi.RecordKey) (*mpi.StoredRecord, error) {
	v := recordValue(tx, slots, key)
	if v == nil {
		return nil, nil
	}
	r, err := decodeRecord(v)
	if err != nil {
		return nil, err
	}
	if r.Key != key {
		return nil, fmt.Errorf("decode record %s: its slot holds another record", key)
	}
	return r, nil
}

// decodeRecord decodes a stored record (its key is inside it: the caller names it).
func decodeRecord(v []byte) (*mpi.StoredRecord, error) {
	var r mpi.StoredRecord
	var err error
	if mpi.IsBinary(v) {
		err = r.UnmarshalBinary(v)
	} else {
		err = json.Unmarshal(v, &r)
	}
	if err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return &r, nil
}

func getPerson(tx *kvTx, euid string) (mpi.Person, bool, error) {
	v := tx.Bucket(bucketMPIPersons).Get([]byte(euid))
	if v == nil {
		return mpi.Person{}, false, nil
	}
	p, err := decodePerson(euid, v)
	return p, err == nil, err
}

func decodePerson(euid string, v []byte) (mpi.Person, error) {
	var p mpi.Person
	var err error
	if mpi.IsBinary(v) {
		err = p.UnmarshalBinary(v)
	} else {
		err = json.Unmarshal(v, &p)
	}
	if err != nil {
		return p, fmt.Errorf("decode person %s: %w", euid, err)
	}
	return p, nil
}

func getConfig(tx *kvTx) (mpi.Config, bool, error) {
	var c mpi.Config
	v := tx.Bucket(bucketMPIConfig).Get(keyCurrentConfig)
	if v == nil {
		return c, false, nil
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, false, fmt.Errorf("decode match configuration: %w", err)
	}
	return c, true, nil
}

// applyStore is the store of the FSM's write transaction. Every read is served by the
// in-memory index, which holds every write applied so far (committed or not); every write
// goes to the index and, for what the state file keeps, to the transaction. It implements
// mpi.BatchReader through the index, so the matcher reads exactly as it does over
// mpi.MemStore in `rls mpi eval`, and decides alike.
type applyStore struct {
	tx    *kvTx
	batch *Batch
	mem   *mpi.MemStore
	slots *recordSlots
}

var (
	_ mpi.Store       = applyStore{}
	_ mpi.BatchReader = applyStore{}
)

// changed records that the batch changed the index, so that a rollback rebuilds it.
func (s applyStore) changed() { s.batch.mpiChanged = true }

func (s applyStore) Config() (mpi.Config, bool, error) { return s.mem.Config() }

func (s applyStore) PutConfig(c mpi.Config) error {
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode match configuration: %w", err)
	}
	s.changed()
	if err := s.tx.Bucket(bucketMPIConfig).Put(keyCurrentConfig, v); err != nil {
		return fmt.Errorf("store match configuration: %w", err)
	}
	return s.mem.PutConfig(c)
}

// Record reads the record whole from the transaction: the in-memory index keeps no
// blocking keys (mpi.WithoutRecordBlocks), and the matcher updates or removes a record by
// them. Asking the index first spares the B-tree search for a key it does not hold, the
// common case (a registration asks for the record it is about to write). The matcher scores
// what it reads through RecordsBatch, from memory.
func (s applyStore) Record(key mpi.RecordKey) (*mpi.StoredRecord, error) {
	if _, ok := s.mem.StoredKey(key); !ok {
		return nil, nil
	}
	return getRecord(s.tx, s.slots, key)
}

func (s applyStore) PutRecord(r *mpi.StoredRecord) error {
	v, err := r.AppendBinary(s.tx.encodeBuffer())
	if err != nil {
		return fmt.Errorf("encode record %s: %w", r.Key, err)
	}
	s.tx.keepBuffer(v)
	s.changed()
	records := s.tx.Bucket(bucketMPIRecords)
	slot, existed := s.slots.get(r.Key)
	if !existed {
		if slot, err = records.NextSequence(); err != nil {
			return fmt.Errorf("number record %s: %w", r.Key, err)
		}
		if _, fits := searchSlot(slot); !fits {
			return errTooManyRecords
		}
	}
	k := slotKey(slot)
	if err := records.Put(k[:], v); err != nil {
		return fmt.Errorf("store record %s: %w", r.Key, err)
	}
	if err := s.mem.PutRecord(r); err != nil {
		return err
	}
	if !existed {
		own, _ := s.mem.StoredKey(r.Key)
		return s.slots.set(own, slot)
	}
	return nil
}

func (s applyStore) BlockMembers(block mpi.Block, limit int, buf []mpi.RecordKey) ([]mpi.RecordKey, bool, error) {
	return s.mem.BlockMembers(block, limit, buf)
}

func (s applyStore) AddToBlock(block mpi.Block, key mpi.RecordKey) error {
	s.changed()
	return s.mem.AddToBlock(block, key)
}

func (s applyStore) RemoveFromBlock(block mpi.Block, key mpi.RecordKey) error {
	s.changed()
	return s.mem.RemoveFromBlock(block, key)
}

func (s applyStore) Person(euid string) (mpi.Person, bool, error) { return s.mem.Person(euid) }

func (s applyStore) PutPerson(p mpi.Person) error {
	v, err := p.AppendBinary(s.tx.encodeBuffer())
	if err != nil {
		return fmt.Errorf("encode person %s: %w", p.EUID, err)
	}
	s.tx.keepBuffer(v)
	s.changed()
	var kb [keyBufferSize]byte
	if err := s.tx.Bucket(bucketMPIPersons).Put(keyBytes(&kb, p.EUID), v); err != nil {
		return fmt.Errorf("store person %s: %w", p.EUID, err)
	}
	return s.mem.PutPerson(p)
}

func (s applyStore) DeletePerson(euid string) error {
	s.changed()
	if err := s.tx.Bucket(bucketMPIPersons).Delete([]byte(euid)); err != nil {
		return fmt.Errorf("delete person %s: %w", euid, err)
	}
	return s.mem.DeletePerson(euid)
}

func (s applyStore) PersonCount() (int64, error) { return s.mem.PersonCount() }

func (s applyStore) TermCount(field, value string) (int64, error) {
	return s.mem.TermCount(field, value)
}

func (s applyStore) AddTermCount(field, value string, delta int64) error {
	s.changed()
	return s.mem.AddTermCount(field, value, delta)
}

func (s applyStore) AppendReview(item mpi.ReviewItem) error { return appendReview(s.tx, item) }

func (s applyStore) BlockMembersBatch(blocks []mpi.Block, limit int, keyBytes []byte, buf []mpi.RecordKey, ends []int, complete []bool) ([]byte, []mpi.RecordKey, []int, []bool, error) {
	return s.mem.BlockMembersBatch(blocks, limit, keyBytes, buf, ends, complete)
}

func (s applyStore) RecordsBatch(keys []mpi.RecordKey, out []*mpi.StoredRecord, arena *mpi.RecordArena) ([]*mpi.StoredRecord, error) {
	return s.mem.RecordsBatch(keys, out, arena)
}

func (s applyStore) PersonsBatch(euids []string, out []mpi.Person, found []bool) ([]mpi.Person, []bool, error) {
	return s.mem.PersonsBatch(euids, out, found)
}

// viewStore is the store of a read transaction ($match, locate, explain). It answers as
// of the transaction's own state, whose applied index it holds. The FSM may have applied
// entries to the in-memory index since (and entries not yet committed), so a record or
// person is taken from memory only when no entry after the transaction's index wrote it
// (mpi.MemStore.RecordAt), and otherwise decoded from the transaction; a block member
// the transaction cannot see is left out, so the matcher meets only records of the
// transaction's own state. Reading memory first spares the decoding and the B-tree
// search of each candidate, which were a third of the $match handler's CPU. Counts from a few
// entries later only move scores by the smallest amounts, which a read may take.
type viewStore struct {
	tx      *kvTx
	mem     *mpi.MemStore
	slots   *recordSlots
	applied uint64
}

var _ mpi.Store = viewStore{}

// errReadOnly is returned by the write methods of a read transaction's store.
var errReadOnly = errors.New("the master patient index is written only by the FSM")

func (s viewStore) Config() (mpi.Config, bool, error) { return getConfig(s.tx) }
func (s viewStore) PutConfig(mpi.Config) error        { return errReadOnly }

// Record gives a record from memory without its blocking keys (see applyStore.Record): a
// reader never updates one.
func (s viewStore) Record(key mpi.RecordKey) (*mpi.StoredRecord, error) {
	if sr, known := s.mem.RecordAt(key, s.applied); known {
		return sr, nil
	}
	return getRecord(s.tx, s.slots, key)
}
func (s viewStore) PutRecord(*mpi.StoredRecord) error { return errReadOnly }

func (s viewStore) BlockMembers(block mpi.Block, limit int, buf []mpi.RecordKey) ([]mpi.RecordKey, bool, error) {
	start := len(buf)
	buf, complete, err := s.mem.BlockMembers(block, limit, buf)
	if err != nil {
		return buf, complete, err
	}
	if !s.mem.WrittenSince(s.applied) {
		return buf, complete, nil // the index is as of this transaction: every member is in it
	}
	kept := buf[:start]
	for _, k := range buf[start:] {
		if s.mem.HeldAt(k, s.applied) || recordValue(s.tx, s.slots, k) != nil {
			kept = append(kept, k)
		}
	}
	return kept, complete, nil
}

func (s viewStore) AddToBlock(mpi.Block, mpi.RecordKey) error      { return errReadOnly }
func (s viewStore) RemoveFromBlock(mpi.Block, mpi.RecordKey) error { return errReadOnly }

func (s viewStore) Person(euid string) (mpi.Person, bool, error) {
	if p, known := s.mem.PersonAt(euid, s.applied); known {
		return p, true, nil
	}
	return getPerson(s.tx, euid)
}
func (s viewStore) PutPerson(mpi.Person) error  { return errReadOnly }
func (s viewStore) DeletePerson(string) error   { return errReadOnly }
func (s viewStore) PersonCount() (int64, error) { return s.mem.PersonCount() }

func (s viewStore) TermCount(field, value string) (int64, error) {
	return s.mem.TermCount(field, value)
}
func (s viewStore) AddTermCount(string, string, int64) error { return errReadOnly }
func (s viewStore) AppendReview(mpi.ReviewItem) error        { return errReadOnly }

func appendReview(tx *kvTx, item mpi.ReviewItem) error {
	b := tx.Bucket(bucketMPIReviews)
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("number review item: %w", err)
	}
	v, err := json.Marshal(item)
	if err != nil {
		return fmt.Errorf("encode review item: %w", err)
	}
	if err := b.Put(encodeUint(seq), v); err != nil {
		return fmt.Errorf("store review item: %w", err)
	}
	return tx.Bucket(bucketMPIReviewRecords).Put(append(append([]byte(item.Record), keySep), encodeUint(seq)...), nil)
}

// HasOpenReview reports whether a record has a review item no steward has resolved
// (items queued before the queue was indexed by record are not seen).
func (t *Tx) HasOpenReview(key mpi.RecordKey) bool {
	prefix := append([]byte(key), keySep)
	c := t.tx.Bucket(bucketMPIReviewRecords).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if t.tx.Bucket(bucketResolutions).Get(k[len(prefix):]) == nil {
			return true
		}
	}
	return false
}

// DropLegacyBlocks removes the blocking index of releases before scoring model 2, which
// a rematch has replaced (it is not read any more).
func (t *Tx) DropLegacyBlocks() error {
	if t.tx.Bucket(bucketMPIBlocksV1) == nil {
		return nil
	}
	if err := t.tx.DeleteBucket(bucketMPIBlocksV1); err != nil {
		return fmt.Errorf("drop the legacy blocking index: %w", err)
	}
	return nil
}

// RecordKeys returns the key of every registered source record, in key order.
func (t *Tx) RecordKeys() ([]mpi.RecordKey, error) {
	keys, _, err := t.recordsByKey()
	return keys, err
}

// recordsByKey returns the key and the slot of every record the transaction holds, in
// key order. Only the key is decoded of each record.
func (t *Tx) recordsByKey() ([]mpi.RecordKey, []uint64, error) {
	type entry struct {
		key  mpi.RecordKey
		slot uint64
	}
	var all []entry
	err := t.tx.Bucket(bucketMPIRecords).ForEach(func(k, v []byte) error {
		slot, ok := slotOf(k)
		if !ok {
			return fmt.Errorf("records: a key of %d bytes is no slot", len(k))
		}
		key, err := storedRecordKey(v)
		if err != nil {
			return err
		}
		all = append(all, entry{key, slot})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(string(a.key), string(b.key)) })
	keys, slots := make([]mpi.RecordKey, len(all)), make([]uint64, len(all))
	for i, e := range all {
		keys[i], slots[i] = e.key, e.slot
	}
	return keys, slots, nil
}

// storedRecordKey reads only the key of a stored record.
func storedRecordKey(v []byte) (mpi.RecordKey, error) {
	if mpi.IsBinary(v) {
		key, err := mpi.StoredRecordKey(v)
		if err != nil {
			return "", fmt.Errorf("decode record: %w", err)
		}
		return key, nil
	}
	r, err := decodeRecord(v)
	if err != nil {
		return "", err
	}
	return r.Key, nil
}

// ForEachPerson calls fn for every person, in EUID order.
func (t *Tx) ForEachPerson(fn func(mpi.Person) error) error {
	return t.tx.Bucket(bucketMPIPersons).ForEach(func(k, v []byte) error {
		p, err := decodePerson(string(k), v)
		if err != nil {
			return err
		}
		return fn(p)
	})
}

// ReviewCount returns the number of items in the review queue.
func (t *Tx) ReviewCount() int {
	return t.tx.Bucket(bucketMPIReviews).Stats().KeyN
}

// ForEachRecord calls fn for every registered source record, in key order (training reads
// them so, whatever order they were stored in). fn must not keep the pointer past the call.
func (t *Tx) ForEachRecord(fn func(*mpi.StoredRecord) error) error {
	_, slots, err := t.recordsByKey()
	if err != nil {
		return err
	}
	records := t.tx.Bucket(bucketMPIRecords)
	for _, slot := range slots {
		k := slotKey(slot)
		r, err := decodeRecord(records.Get(k[:]))
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
