package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/mpi"
)

// Buckets of the master patient index (see the layout in mpi.Store's contract).
var (
	bucketMPIConfig  = []byte("mpi_config")
	bucketMPIRecords = []byte("mpi_records")
	// bucketMPIBlocks holds block entries with their sort values (key + 0x00 + sort +
	// 0x00 + record key). Releases before scoring model 2 filed entries without sort
	// values in "mpi_blocks"; `rls mpi rematch` files every record anew and drops it.
	bucketMPIBlocks   = []byte("mpi_block_entries")
	bucketMPIBlocksV1 = []byte("mpi_blocks")
	bucketMPIPersons  = []byte("mpi_persons")
	bucketMPITerms    = []byte("mpi_terms")
	bucketMPIReviews  = []byte("mpi_reviews")
	// bucketMPIReviewRecords indexes the review queue by record: record key + 0x00 +
	// sequence (8 bytes) → empty, for finding a record's open items.
	bucketMPIReviewRecords = []byte("mpi_review_records")

	mpiBuckets = [][]byte{bucketMPIConfig, bucketMPIRecords, bucketMPIBlocks, bucketMPIPersons, bucketMPITerms, bucketMPIReviews, bucketMPIReviewRecords}

	keyCurrentConfig = []byte("current")
	// keyPersonCount, in the config bucket, holds the number of persons as 8 bytes
	// big-endian, kept by PutPerson and DeletePerson so the matcher's prior needs no
	// walk of the persons bucket.
	keyPersonCount = []byte("person_count")
)

// keySep separates the parts of composite keys; blocking keys and field names never hold it.
const keySep = 0x00

// MPI returns the master patient index store of the transaction: the matcher reads and
// writes the replicated state through it. Writes are only allowed inside the FSM.
func (t *Tx) MPI() mpi.Store { return mpiStore{tx: t.tx} }

// mpiStore implements mpi.Store over one bbolt transaction.
type mpiStore struct {
	tx *bolt.Tx
}

var _ mpi.Store = mpiStore{}

func (s mpiStore) Config() (mpi.Config, bool, error) {
	var c mpi.Config
	v := s.tx.Bucket(bucketMPIConfig).Get(keyCurrentConfig)
	if v == nil {
		return c, false, nil
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, false, fmt.Errorf("decode match configuration: %w", err)
	}
	return c, true, nil
}

func (s mpiStore) PutConfig(c mpi.Config) error {
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode match configuration: %w", err)
	}
	return s.tx.Bucket(bucketMPIConfig).Put(keyCurrentConfig, v)
}

func (s mpiStore) Record(key mpi.RecordKey) (*mpi.StoredRecord, error) {
	v := s.tx.Bucket(bucketMPIRecords).Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	var r mpi.StoredRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode record %s: %w", key, err)
	}
	return &r, nil
}

func (s mpiStore) PutRecord(r *mpi.StoredRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", r.Key, err)
	}
	return s.tx.Bucket(bucketMPIRecords).Put([]byte(r.Key), v)
}

func blockKey(block mpi.Block, key mpi.RecordKey) []byte {
	k := make([]byte, 0, len(block.Key)+len(block.Sort)+2+len(key))
	k = append(k, block.Key...)
	k = append(k, keySep)
	k = append(k, block.Sort...)
	k = append(k, keySep)
	return append(k, key...)
}

// memberKey is the record key of a block entry, past its block prefix.
func memberKey(rest []byte) mpi.RecordKey {
	if i := bytes.IndexByte(rest, keySep); i >= 0 {
		return mpi.RecordKey(rest[i+1:])
	}
	return ""
}

func (s mpiStore) BlockMembers(block mpi.Block, limit int, buf []mpi.RecordKey) ([]mpi.RecordKey, bool, error) {
	prefix := append([]byte(block.Key), keySep)
	c := s.tx.Bucket(bucketMPIBlocks).Cursor()
	start, n := len(buf), 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if n == limit {
			return s.blockWindow(c, prefix, block.Sort, limit, buf[:start]), false, nil
		}
		buf = append(buf, memberKey(k[len(prefix):]))
		n++
	}
	return buf, true, nil
}

// blockWindow appends the window of limit entries of a block larger than limit
// around the position of at (see mpi.Store.BlockMembers): limit/2 entries before that
// position, or more when fewer than the rest follow it, then the entries from it on.
func (s mpiStore) blockWindow(c *bolt.Cursor, prefix []byte, at string, limit int, buf []mpi.RecordKey) []mpi.RecordKey {
	probe := append(append(append([]byte(nil), prefix...), at...), keySep)
	inBlock := func(k []byte) bool { return k != nil && bytes.HasPrefix(k, prefix) }
	var after []mpi.RecordKey
	for k, _ := c.Seek(probe); inBlock(k) && len(after) < limit; k, _ = c.Next() {
		after = append(after, memberKey(k[len(prefix):]))
	}
	wantBefore := max(limit/2, limit-len(after))
	var before []mpi.RecordKey // nearest first
	k, _ := c.Seek(probe)
	if k == nil {
		k, _ = c.Last() // the probe lies past the bucket's last key
	} else {
		k, _ = c.Prev()
	}
	for ; inBlock(k) && len(before) < wantBefore; k, _ = c.Prev() {
		before = append(before, memberKey(k[len(prefix):]))
	}
	for i := len(before) - 1; i >= 0; i-- {
		buf = append(buf, before[i])
	}
	return append(buf, after[:limit-len(before)]...)
}

func (s mpiStore) AddToBlock(block mpi.Block, key mpi.RecordKey) error {
	return s.tx.Bucket(bucketMPIBlocks).Put(blockKey(block, key), nil)
}

func (s mpiStore) RemoveFromBlock(block mpi.Block, key mpi.RecordKey) error {
	return s.tx.Bucket(bucketMPIBlocks).Delete(blockKey(block, key))
}

func (s mpiStore) Person(euid string) (mpi.Person, bool, error) {
	var p mpi.Person
	v := s.tx.Bucket(bucketMPIPersons).Get([]byte(euid))
	if v == nil {
		return p, false, nil
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return p, false, fmt.Errorf("decode person %s: %w", euid, err)
	}
	return p, true, nil
}

func (s mpiStore) PutPerson(p mpi.Person) error {
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode person %s: %w", p.EUID, err)
	}
	b := s.tx.Bucket(bucketMPIPersons)
	if b.Get([]byte(p.EUID)) == nil {
		if err := s.addPersonCount(1); err != nil {
			return err
		}
	}
	return b.Put([]byte(p.EUID), v)
}

func (s mpiStore) DeletePerson(euid string) error {
	b := s.tx.Bucket(bucketMPIPersons)
	if b.Get([]byte(euid)) == nil {
		return nil
	}
	if err := s.addPersonCount(-1); err != nil {
		return err
	}
	return b.Delete([]byte(euid))
}

// PersonCount returns the kept count, or counts the persons bucket when the state
// predates the count (every node then counts the same bucket at the same entry).
func (s mpiStore) PersonCount() (int64, error) {
	if v := s.tx.Bucket(bucketMPIConfig).Get(keyPersonCount); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	return int64(s.tx.Bucket(bucketMPIPersons).Stats().KeyN), nil
}

func (s mpiStore) addPersonCount(delta int64) error {
	n, err := s.PersonCount()
	if err != nil {
		return err
	}
	if n += delta; n < 0 {
		return fmt.Errorf("%w: person count below zero", mpi.ErrCorruptStore)
	}
	if err := s.tx.Bucket(bucketMPIConfig).Put(keyPersonCount, encodeUint(uint64(n))); err != nil {
		return fmt.Errorf("store person count: %w", err)
	}
	return nil
}

func termKey(field, value string) []byte {
	k := make([]byte, 0, len(field)+1+len(value))
	k = append(k, field...)
	k = append(k, keySep)
	return append(k, value...)
}

func (s mpiStore) TermCount(field, value string) (int64, error) {
	v := s.tx.Bucket(bucketMPITerms).Get(termKey(field, value))
	if len(v) != 8 {
		return 0, nil
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func (s mpiStore) AddTermCount(field, value string, delta int64) error {
	b := s.tx.Bucket(bucketMPITerms)
	k := termKey(field, value)
	var n int64
	if v := b.Get(k); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	if n <= 0 {
		return b.Delete(k)
	}
	return b.Put(k, encodeUint(uint64(n)))
}

func (s mpiStore) AppendReview(item mpi.ReviewItem) error {
	b := s.tx.Bucket(bucketMPIReviews)
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
	return s.tx.Bucket(bucketMPIReviewRecords).Put(append(append([]byte(item.Record), keySep), encodeUint(seq)...), nil)
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
func (t *Tx) RecordKeys() []mpi.RecordKey {
	var out []mpi.RecordKey
	c := t.tx.Bucket(bucketMPIRecords).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		out = append(out, mpi.RecordKey(k))
	}
	return out
}

// ForEachPerson calls fn for every person, in EUID order.
func (t *Tx) ForEachPerson(fn func(mpi.Person) error) error {
	return t.tx.Bucket(bucketMPIPersons).ForEach(func(k, v []byte) error {
		var p mpi.Person
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("decode person %s: %w", k, err)
		}
		return fn(p)
	})
}

// ReviewCount returns the number of items in the review queue.
func (t *Tx) ReviewCount() int {
	return t.tx.Bucket(bucketMPIReviews).Stats().KeyN
}

// ForEachRecord calls fn for every registered source record, in key order. fn must not
// keep the pointer past the call.
func (t *Tx) ForEachRecord(fn func(*mpi.StoredRecord) error) error {
	return t.tx.Bucket(bucketMPIRecords).ForEach(func(k, v []byte) error {
		var r mpi.StoredRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode record %s: %w", k, err)
		}
		return fn(&r)
	})
}
