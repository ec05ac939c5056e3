package mpi

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
)

// MemStore is an in-memory Store for evaluation, tests and benchmarks. It is
// safe for concurrent use (one writer or many readers at a time per call),
// but a Register is several calls: run registrations one at a time, as the
// Raft FSM does.
//
// Its layout is chosen for indexes of millions of records, where a
// registration's cost is the number of cache misses it takes and a garbage
// collection's cost the number of pointers it must follow: the blocking
// index holds no Go pointers per block and keeps each block's member keys
// next to each other (blockIndex), and a stored record or person is copied
// into a few allocations (all its strings in one) so that reading it
// touches a few adjacent cache lines. Records, persons and blocks are found
// through flat hash tables (flatTable), one slot read each, where a Go map of
// a million entries costs a chain of dependent cache misses.
type MemStore struct {
	mu      sync.RWMutex
	cfg     *Config
	records flatTable[stamped[memRecord]] // by HashString(key)
	blocks  *blockIndex
	persons flatTable[stamped[*Person]] // by HashString(EUID)
	terms   map[termKey]int64
	reviews []ReviewItem
	// version is what the records and persons written now are stamped with (see Stamp),
	// latest the greatest version any write has carried.
	version, latest uint64
	// encodeBuf is PutRecord's scratch (m.mu held).
	encodeBuf []byte
	// withoutBlocks leaves records' blocking keys out (WithoutRecordBlocks).
	withoutBlocks bool
}

// stamped is a record or person with the version of the store it was written at.
type stamped[T any] struct {
	val     T
	written uint64
}

// Stamp sets the version that the records and persons written from now on carry, until
// the next Stamp. The Raft FSM stamps each entry's writes with the entry's log index, so
// that a reader whose own state is as of an earlier index can tell a record the store
// still holds as it was then from one written since (RecordAt, PersonAt).
func (m *MemStore) Stamp(version uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.version = version
}

// WrittenSince reports whether any write (of a record, person or block) was stamped after
// version: if not, the store holds exactly the records and blocks it held at version.
func (m *MemStore) WrittenSince(version uint64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.latest > version
}

// wrote notes a write at the current version; m.mu is held.
func (m *MemStore) wrote() { m.latest = max(m.latest, m.version) }

// RecordAt returns the record under key as it stood at version: known is true when the
// store holds it and no write stamped after version changed it. Otherwise (written since,
// or not held) the store cannot say, and the caller reads its own state. The record's
// strings and normalised lists are shared: do not modify them.
func (m *MemStore) RecordAt(key RecordKey, version uint64) (sr *StoredRecord, known bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.records.find(HashString(string(key)), isRecord(key))
	if !ok || st.written > version {
		return nil, false
	}
	sr, err := st.val.whole()
	return sr, err == nil
}

// HeldAt reports whether RecordAt(key, version) would find the record, without decoding it.
func (m *MemStore) HeldAt(key RecordKey, version uint64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.records.find(HashString(string(key)), isRecord(key))
	return ok && st.written <= version
}

// PersonAt is RecordAt for a person. Its Records slice is shared: do not modify it.
func (m *MemStore) PersonAt(euid string, version uint64) (p Person, known bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.persons.find(HashString(euid), isPerson(euid))
	if !ok || st.written > version {
		return Person{}, false
	}
	return *st.val, true
}

type termKey struct{ field, value string }

// MemStoreOption configures a MemStore.
type MemStoreOption func(*MemStore)

// WithoutRecordBlocks makes a store that does not keep the blocking keys each record is
// filed under (it still files records under them): Record gives records with Blocks nil,
// which the matcher cannot update or remove a record by. It is for a store inside another
// that keeps the records whole elsewhere and reads them from there when the matcher asks
// for a record (the Raft FSM's, over its state file): the keys were a sixth of the index's
// memory.
func WithoutRecordBlocks() MemStoreOption {
	return func(m *MemStore) { m.withoutBlocks = true }
}

// NewMemStore returns an empty in-memory store.
func NewMemStore(opts ...MemStoreOption) *MemStore {
	m := &MemStore{
		blocks: newBlockIndex(),
		terms:  map[termKey]int64{},
	}
	for _, o := range opts {
		o(m)
	}
	return m
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

// Record implements Store: a new StoredRecord whose strings and normalised lists are
// shared with the store (do not modify them).
func (m *MemStore) Record(key RecordKey) (*StoredRecord, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.records.find(HashString(string(key)), isRecord(key))
	if !ok {
		return nil, nil
	}
	return st.val.whole()
}

// Normalized returns the store's own copy of a record's key and its normalised form
// (shared: do not modify it), without decoding the rest of the record; ok is false when
// the store does not hold the record.
func (m *MemStore) Normalized(key RecordKey) (RecordKey, *Normalized, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.records.find(HashString(string(key)), isRecord(key))
	if !ok {
		return "", nil, false
	}
	d, own, _ := st.val.open(nil)
	norm := new(Normalized)
	if d.normalized(norm); d.err != nil {
		return "", nil, false
	}
	return own, norm, true
}

// StoredKey returns the store's own copy of a record's key (a string that keeps no other
// value alive); ok is false when the store does not hold the record.
func (m *MemStore) StoredKey(key RecordKey) (own RecordKey, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.records.find(HashString(string(key)), isRecord(key))
	if !ok {
		return "", false
	}
	return st.val.key(), true
}

func isRecord(key RecordKey) func(stamped[memRecord]) bool {
	return func(st stamped[memRecord]) bool { return st.val.key() == key }
}

func isPerson(euid string) func(stamped[*Person]) bool {
	return func(st stamped[*Person]) bool { return st.val.EUID == euid }
}

// PutRecord implements Store. It stores a compact copy of rec (see
// newMemRecord), so rec may be reused after.
func (m *MemStore) PutRecord(rec *StoredRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cp memRecord
	cp, m.encodeBuf = newMemRecord(rec, m.encodeBuf[:0], m.withoutBlocks)
	key := cp.key()
	m.records.set(HashString(string(key)), isRecord(key), stamped[memRecord]{cp, m.version})
	m.wrote()
	return nil
}

// BlockMembers implements Store.
func (m *MemStore) BlockMembers(block Block, limit int, buf []RecordKey) ([]RecordKey, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	buf, complete := m.blocks.members(block, limit, buf)
	return buf, complete, nil
}

// AddToBlock implements Store.
func (m *MemStore) AddToBlock(block Block, key RecordKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.blocks.add(block.Key, block.Sort, key); err != nil {
		return err
	}
	m.wrote()
	return nil
}

// RemoveFromBlock implements Store.
func (m *MemStore) RemoveFromBlock(block Block, key RecordKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blocks.del(block.Key, block.Sort, key)
	m.wrote()
	return nil
}

// Person implements Store. The Records slice returned is shared: do not
// modify it.
func (m *MemStore) Person(euid string) (Person, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.persons.find(HashString(euid), isPerson(euid))
	if !ok {
		return Person{}, false, nil
	}
	return *st.val, true, nil
}

// PutPerson implements Store. It stores a compact copy of p: its EUID and
// record keys in one string, so that reading a person is one more cache
// line, not one per key.
func (m *MemStore) PutPerson(p Person) error {
	cp := compactPerson(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.persons.set(HashString(cp.EUID), isPerson(cp.EUID), stamped[*Person]{cp, m.version})
	m.wrote()
	return nil
}

// DeletePerson implements Store.
func (m *MemStore) DeletePerson(euid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.persons.delete(HashString(euid), isPerson(euid))
	m.wrote()
	return nil
}

// PersonCount implements Store.
func (m *MemStore) PersonCount() (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(m.persons.count), nil
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
	old, ok := m.terms[k]
	switch n := old + delta; {
	case n == 0:
		delete(m.terms, k)
	case ok:
		m.terms[k] = n
	default:
		// A new name: keep a copy of its own rather than a string that
		// keeps the caller's record alive.
		m.terms[termKey{strings.Clone(field), strings.Clone(value)}] = n
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
	return sortedPersons(&m.persons)
}

// sortedPersons returns every person of a table, ordered by EUID.
func sortedPersons(t *flatTable[stamped[*Person]]) []Person {
	out := make([]Person, 0, t.count)
	t.all(func(st stamped[*Person]) { out = append(out, *st.val) })
	sort.Slice(out, func(i, j int) bool { return out[i].EUID < out[j].EUID })
	return out
}

// Stats reports the sizes of the index, for benchmarks and diagnostics.
func (m *MemStore) Stats() MemStats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := MemStats{Records: m.records.count, Persons: m.persons.count, Reviews: len(m.reviews)}
	s.Blocks, s.LargestBlock = m.blocks.stats()
	return s
}

// memRecord is how MemStore holds a stored record: one string in a binary form of its own
// (the key, the EUID, then the normalised form, the source's fields and the blocks the
// record is filed under, each as in binary.go; no blocks in a store WithoutRecordBlocks),
// which the garbage collector does not walk.
// Scoring a candidate reads the key, EUID and normalised form only, decoded into the
// reader's RecordArena as strings that slice this one; the rest is decoded when the whole
// record is asked for (Record, RecordAt). As a StoredRecord with its strings gathered into
// one allocation, a record took 1.5 KB: a 768-byte struct of string headers, of which the
// blocks' headers and the source's took 300, and 580 bytes more for its eighteen-odd
// blocks as a []Block. Its encoding takes about half of that.
type memRecord string

// newMemRecord encodes sr (with no blocking keys when withoutBlocks), using buf as scratch;
// it returns the encoding and buf.
func newMemRecord(sr *StoredRecord, buf []byte, withoutBlocks bool) (memRecord, []byte) {
	buf = appendString(buf, string(sr.Key))
	buf = appendString(buf, sr.EUID)
	buf = appendNormalized(buf, &sr.Norm)
	buf = appendRecord(buf, &sr.Record)
	if withoutBlocks {
		buf = appendBlocks(buf, nil)
	} else {
		buf = appendBlocks(buf, sr.Blocks)
	}
	return memRecord(buf), buf
}

// key returns the record's key.
func (mr memRecord) key() RecordKey {
	d := decoder{s: string(mr)}
	return RecordKey(d.string())
}

// open reads the record's key and EUID and returns a decoder at its normalised form, whose
// lists it carves from lists (allocates when nil).
func (mr memRecord) open(lists *RecordArena) (d decoder, key RecordKey, euid string) {
	d = decoder{s: string(mr), lists: lists}
	key = RecordKey(d.string())
	return d, key, d.string()
}

// decodeScoring sets sr's key, EUID and normalised form, leaving its Record and Blocks
// alone; the normalised form's lists are carved from arena (allocated when it is nil).
func (mr memRecord) decodeScoring(sr *StoredRecord, arena *RecordArena) error {
	var d decoder
	d, sr.Key, sr.EUID = mr.open(arena)
	d.normalized(&sr.Norm)
	if d.err != nil {
		return fmt.Errorf("decode in-memory record: %w", d.err)
	}
	return nil
}

// whole returns the stored record, its strings slices of the memRecord's.
func (mr memRecord) whole() (*StoredRecord, error) {
	sr := &StoredRecord{}
	var d decoder
	d, sr.Key, sr.EUID = mr.open(nil)
	d.normalized(&sr.Norm)
	d.record(&sr.Record)
	sr.Blocks = d.blocks()
	if err := d.finish("in-memory record " + string(sr.Key)); err != nil {
		return nil, err
	}
	return sr, nil
}

// RecordArena holds the records a BatchReader decodes for one caller (see RecordsBatch):
// they stay valid until the caller's Reset, which lets it reuse the memory for the next
// registration. The zero value is ready to use; an arena is not safe for concurrent use.
type RecordArena struct {
	records []StoredRecord
	strs    []string
	addrs   []AddressLine
}

// Reset makes the arena's memory available again: records it gave out before are no
// longer valid.
func (a *RecordArena) Reset() {
	clear(a.records)
	clear(a.strs)
	clear(a.addrs)
	a.records, a.strs, a.addrs = a.records[:0], a.strs[:0], a.addrs[:0]
}

// record returns a zero StoredRecord from the arena (a new one from a nil arena). Chunks
// are never grown in place, so the records given out earlier stay where they are.
func (a *RecordArena) record() *StoredRecord {
	if a == nil {
		return new(StoredRecord)
	}
	if len(a.records) == cap(a.records) {
		a.records = make([]StoredRecord, 0, max(64, 2*cap(a.records)))
	}
	a.records = a.records[:len(a.records)+1]
	return &a.records[len(a.records)-1]
}

// stringList returns a list of n strings from the arena (empty, not nil, when n is 0).
func (a *RecordArena) stringList(n int) []string { return carve(&a.strs, n, 256) }

// addressList is stringList for address lines.
func (a *RecordArena) addressList(n int) []AddressLine { return carve(&a.addrs, n, 64) }

// carve cuts n elements from the end of *pool, starting a new pool of at least minCap
// elements when it has no room (the lists cut before keep the old one).
func carve[T any](pool *[]T, n, minCap int) []T {
	if cap(*pool)-len(*pool) < n || *pool == nil {
		*pool = make([]T, 0, max(minCap, n))
	}
	l := len(*pool)
	*pool = (*pool)[:l+n]
	return (*pool)[l : l+n : l+n]
}

// compactPerson returns a copy of p in one allocation, with its EUID and
// record keys in one string: reading a person touches two places, not one
// per key.
func compactPerson(p Person) *Person {
	var cp *Person
	switch len(p.Records) {
	case 0:
		cp = &Person{EUID: p.EUID, Records: p.Records}
		if p.Records != nil {
			cp.Records = []RecordKey{}
		}
	case 1:
		// Most persons have one record: keep it in the same allocation.
		one := &struct {
			p    Person
			keys [1]RecordKey
		}{p: Person{EUID: p.EUID}, keys: [1]RecordKey{p.Records[0]}}
		one.p.Records = one.keys[:]
		cp = &one.p
	default:
		cp = &Person{EUID: p.EUID, Records: slices.Clone(p.Records)}
	}
	fields := make([]*string, 0, 1+len(cp.Records))
	fields = append(fields, &cp.EUID)
	for i := range cp.Records {
		fields = append(fields, (*string)(&cp.Records[i]))
	}
	shareOneString(fields)
	return cp
}

// shareOneString copies the strings *fields point to into one allocation
// and points them at their copies; the values are unchanged.
func shareOneString(fields []*string) {
	size := 0
	for _, p := range fields {
		size += len(*p)
	}
	var b strings.Builder
	b.Grow(size)
	for _, p := range fields {
		b.WriteString(*p)
	}
	all, off := b.String(), 0
	for _, p := range fields {
		l := len(*p)
		*p = all[off : off+l]
		off += l
	}
}

// MemStats are the sizes reported by MemStore.Stats.
type MemStats struct {
	Records, Persons, Blocks, Reviews, LargestBlock int
}

var _ BatchReader = (*MemStore)(nil)

// RecordsBatch implements BatchReader: the slots of all keys are read
// first, then the records, so their cache misses overlap. Each record is
// decoded into arena with Record and Blocks empty (see memRecord).
func (m *MemStore) RecordsBatch(keys []RecordKey, out []*StoredRecord, arena *RecordArena) ([]*StoredRecord, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	start := len(out)
	out = slices.Grow(out, len(keys))[:start+len(keys)]
	clear(out[start:])
	var hashBuf [64]uint64
	var foundBuf [64]bool
	hashes, found := stackOr(hashBuf[:], len(keys)), stackOr(foundBuf[:], len(keys))
	for i, k := range keys {
		hashes[i] = HashString(string(k))
	}
	var stBuf [64]stamped[memRecord]
	sts := stackOr(stBuf[:], len(keys))
	m.records.findEach(hashes, func(i int, st stamped[memRecord]) bool { return st.val.key() == keys[i] }, sts, found)
	for i, st := range sts {
		if found[i] {
			sr := arena.record()
			if err := st.val.decodeScoring(sr, arena); err != nil {
				return out, err
			}
			out[start+i] = sr
		}
	}
	return out, nil
}

// PersonsBatch implements BatchReader.
func (m *MemStore) PersonsBatch(euids []string, out []Person, found []bool) ([]Person, []bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var hashBuf [64]uint64
	var foundBuf [64]bool
	var personBuf [64]stamped[*Person]
	hashes, ok, ps := stackOr(hashBuf[:], len(euids)), stackOr(foundBuf[:], len(euids)), stackOr(personBuf[:], len(euids))
	for i, e := range euids {
		hashes[i] = HashString(e)
	}
	m.persons.findEach(hashes, func(i int, st stamped[*Person]) bool { return st.val.EUID == euids[i] }, ps, ok)
	for i, st := range ps {
		if ok[i] {
			out = append(out, *st.val)
		} else {
			out = append(out, Person{})
		}
		found = append(found, ok[i])
	}
	return out, found, nil
}

// BlockMembersBatch implements BatchReader. The keys are views of keyBytes,
// which holds all of them (grown once to the size they need), so reading a
// query's members allocates nothing once the caller's buffer is large enough.
func (m *MemStore) BlockMembersBatch(blocks []Block, limit int, keyBytes []byte, buf []RecordKey, ends []int, complete []bool) ([]byte, []RecordKey, []int, []bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	x := m.blocks
	var hashBuf [64]uint64
	var foundBuf [64]bool
	var refBuf [64]regionRef
	hashes, found, refs := stackOr(hashBuf[:], len(blocks)), stackOr(foundBuf[:], len(blocks)), stackOr(refBuf[:], len(blocks))
	for i, b := range blocks {
		hashes[i] = x.hash(b.Key)
	}
	x.table.findEach(hashes, func(i int, ref regionRef) bool {
		k, _ := regionKey(x.arena.region(ref))
		return string(k) == blocks[i].Key
	}, refs, found)
	type span struct{ first, end int }
	var spanBuf [64]span
	spans := stackOr(spanBuf[:], len(blocks))
	total := 0
	for i := range blocks {
		c := true
		if found[i] {
			r := x.arena.region(refs[i])
			var n int
			spans[i].first, spans[i].end, n, c = x.window(r, blocks[i].Sort, limit)
			total += x.keysLenBound(spans[i].first, spans[i].end, n)
		}
		complete = append(complete, c)
	}
	// Grown once, before any view of it is taken: every key is a view of the
	// same array.
	base := len(keyBytes)
	keyBytes = slices.Grow(keyBytes, total)
	var endBuf [512]int
	keyEnds := endBuf[:0]
	var blockEndBuf [64]int
	blockEnds := stackOr(blockEndBuf[:], len(blocks))[:0]
	keys := keyBytes[base:base]
	for i, sp := range spans {
		if found[i] {
			keys, keyEnds = x.appendMembers(keys, keyEnds, x.arena.region(refs[i]), sp.first, sp.end)
		}
		blockEnds = append(blockEnds, len(keyEnds))
	}
	start := 0
	for _, e := range blockEnds {
		buf = appendKeys(buf, keys, keyEnds, start, e)
		ends = append(ends, len(buf))
		start = e
	}
	return keyBytes[:base+len(keys)], buf, ends, complete, nil
}

// stackOr returns buf[:n] (a caller's array, zeroed) when it is long
// enough, else a new slice: batch lookups of the sizes the matcher asks for
// allocate nothing.
func stackOr[T any](buf []T, n int) []T {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([]T, n)
}

// Digest returns a SHA-256 digest of everything the store holds: configuration, records
// (in their binary form), blocks with their members in block order, persons, term counts
// and review items, each in key order. Two stores that answer every call alike have the
// same digest whatever order they were filled in; a store rebuilt from another's records
// and persons can be checked against it this way.
func (m *MemStore) Digest() [sha256.Size]byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	h := sha256.New()
	var buf []byte
	field := func(b []byte) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(b)))
		h.Write(buf)
		h.Write(b)
	}
	if m.cfg != nil {
		cfg, _ := json.Marshal(m.cfg) // a Config always marshals
		field(cfg)
	}
	field([]byte("records"))
	records := make([]memRecord, 0, m.records.count)
	m.records.all(func(st stamped[memRecord]) { records = append(records, st.val) })
	slices.SortFunc(records, func(a, b memRecord) int { return strings.Compare(string(a.key()), string(b.key())) })
	var enc []byte
	for _, mr := range records {
		// Every record in the store decodes: newMemRecord encoded it.
		sr, _ := mr.whole()
		enc, _ = sr.AppendBinary(enc[:0])
		field(enc)
	}
	field([]byte("blocks"))
	regions := make([][]byte, 0, m.blocks.table.count)
	m.blocks.table.all(func(ref regionRef) { regions = append(regions, m.blocks.arena.region(ref)) })
	slices.SortFunc(regions, func(a, b []byte) int {
		ka, _ := regionKey(a)
		kb, _ := regionKey(b)
		return bytes.Compare(ka, kb)
	})
	var member []byte
	for _, r := range regions {
		key, pos := regionKey(r)
		field(key)
		// A member as sort value, 0x00, record key: the digest does not
		// depend on how the index numbers key prefixes.
		for used := regionUsed(r); pos < used; {
			mb := memberAt(r, pos)
			member = m.blocks.appendKey(append(append(member[:0], mb.sort...), 0), &mb)
			field(member)
			pos = mb.next
		}
	}
	field([]byte("persons"))
	for _, p := range sortedPersons(&m.persons) {
		enc, _ = p.AppendBinary(enc[:0])
		field(enc)
	}
	field([]byte("terms"))
	terms := slices.Collect(maps.Keys(m.terms))
	slices.SortFunc(terms, func(a, b termKey) int {
		return cmp.Or(strings.Compare(a.field, b.field), strings.Compare(a.value, b.value))
	})
	for _, t := range terms {
		field([]byte(t.field))
		field([]byte(t.value))
		field(binary.AppendVarint(nil, m.terms[t]))
	}
	field([]byte("reviews"))
	for _, r := range m.reviews {
		v, _ := json.Marshal(r) // a ReviewItem always marshals
		field(v)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
