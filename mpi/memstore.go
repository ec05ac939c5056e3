package mpi

import (
	"sort"
	"sync"
)

// MemStore is an in-memory Store for evaluation, tests and benchmarks. It is
// safe for concurrent use (one writer or many readers at a time per call),
// but a Register is several calls: run registrations one at a time, as the
// Raft FSM does.
type MemStore struct {
	mu      sync.RWMutex
	cfg     *Config
	records map[RecordKey]*StoredRecord
	blocks  map[string][]RecordKey // each slice kept sorted
	persons map[string]Person
	terms   map[termKey]int64
	reviews []ReviewItem
}

type termKey struct{ field, value string }

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore {
	return &MemStore{
		records: map[RecordKey]*StoredRecord{},
		blocks:  map[string][]RecordKey{},
		persons: map[string]Person{},
		terms:   map[termKey]int64{},
	}
}

var _ Store = (*MemStore)(nil)

// Config implements Store.
func (m *MemStore) Config() (Config, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cfg == nil {
		return Config{}, false, nil
	}
	return *m.cfg, true, nil
}

// PutConfig implements Store.
func (m *MemStore) PutConfig(cfg Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = &cfg
	return nil
}

// Record implements Store. The record returned is shared: do not modify it.
func (m *MemStore) Record(key RecordKey) (*StoredRecord, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.records[key], nil
}

// PutRecord implements Store. It keeps rec itself: do not modify it after.
func (m *MemStore) PutRecord(rec *StoredRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records[rec.Key] = rec
	return nil
}

// BlockMembers implements Store.
func (m *MemStore) BlockMembers(block string, limit int, buf []RecordKey) ([]RecordKey, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	keys := m.blocks[block]
	complete := len(keys) <= limit
	if !complete {
		keys = keys[:limit]
	}
	return append(buf, keys...), complete, nil
}

// AddToBlock implements Store.
func (m *MemStore) AddToBlock(block string, key RecordKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := m.blocks[block]
	i := sort.Search(len(keys), func(i int) bool { return keys[i] >= key })
	if i < len(keys) && keys[i] == key {
		return nil
	}
	keys = append(keys, "")
	copy(keys[i+1:], keys[i:])
	keys[i] = key
	m.blocks[block] = keys
	return nil
}

// RemoveFromBlock implements Store.
func (m *MemStore) RemoveFromBlock(block string, key RecordKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := m.blocks[block]
	i := sort.Search(len(keys), func(i int) bool { return keys[i] >= key })
	if i == len(keys) || keys[i] != key {
		return nil
	}
	if len(keys) == 1 {
		delete(m.blocks, block)
		return nil
	}
	copy(keys[i:], keys[i+1:])
	keys[len(keys)-1] = ""
	m.blocks[block] = keys[:len(keys)-1]
	return nil
}

// Person implements Store.
func (m *MemStore) Person(euid string) (Person, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.persons[euid]
	return p, ok, nil
}

// PutPerson implements Store.
func (m *MemStore) PutPerson(p Person) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.persons[p.EUID] = p
	return nil
}

// DeletePerson implements Store.
func (m *MemStore) DeletePerson(euid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.persons, euid)
	return nil
}

// TermCount implements Store.
func (m *MemStore) TermCount(field, value string) (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.terms[termKey{field, value}], nil
}

// AddTermCount implements Store.
func (m *MemStore) AddTermCount(field, value string, delta int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := termKey{field, value}
	if n := m.terms[k] + delta; n != 0 {
		m.terms[k] = n
	} else {
		delete(m.terms, k)
	}
	return nil
}

// AppendReview implements Store.
func (m *MemStore) AppendReview(item ReviewItem) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reviews = append(m.reviews, item)
	return nil
}

// Reviews returns the review queue in the order items were appended.
func (m *MemStore) Reviews() []ReviewItem {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]ReviewItem(nil), m.reviews...)
}

// Persons returns every person, ordered by EUID.
func (m *MemStore) Persons() []Person {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Person, 0, len(m.persons))
	for _, p := range m.persons {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EUID < out[j].EUID })
	return out
}

// Stats reports the sizes of the index, for benchmarks and diagnostics.
func (m *MemStore) Stats() MemStats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := MemStats{Records: len(m.records), Persons: len(m.persons), Blocks: len(m.blocks), Reviews: len(m.reviews)}
	for _, keys := range m.blocks {
		if len(keys) > s.LargestBlock {
			s.LargestBlock = len(keys)
		}
	}
	return s
}

// MemStats are the sizes reported by MemStore.Stats.
type MemStats struct {
	Records, Persons, Blocks, Reviews, LargestBlock int
}
