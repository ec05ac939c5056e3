package state

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/google/btree"

	"github.com/rls-hie/rls/mpi"
)

// patientSearch is the in-memory index of the demographic patient search (PDQm): for each
// kind of search term (see searchTerms) the records findable by each value. It is derived
// from the records' normalised forms, like the blocking index, and for the same reason: a
// record is findable by a dozen terms, and a dozen randomly placed bbolt keys per record
// made up most of what each commit wrote (an import ran 2.5 times faster without them).
// It is built and rebuilt with the match index (see mpiIndex) and changed by the FSM as
// it applies registrations, so a reader may find it ahead of its own transaction:
// SearchPatients therefore checks every hit against the record the transaction holds.
//
// The FSM does not file a record itself: it queues the change (update), and a goroutine
// files the queued changes in order beside it (fileQueued), started when the queue was
// empty and ending when it is empty again. Filing a record under a dozen terms was a
// tenth of the state machine's own time in a bulk load, on the one goroutine every
// registration waits for. A reader waits, before it reads the index, until every change
// queued before it began is filed (settle): the index is then at least as new as the
// reader's transaction, as when the FSM filed records itself.
//
// Records are filed by slot (see recordSlots), in 32 bits: a posting is then four bytes
// that hold no pointer, where a record key's string header was sixteen that the garbage
// collector followed, and a record is filed under a dozen terms or more.
//
// Values of the kinds searched by prefix or range (names, birth dates) are also kept in a
// B-tree, in byte order; every other kind is only ever looked up by its exact value. A
// posting list is unordered: a search reads all of a value's records or gives up on the
// criterion as too broad, so their order decides nothing.
type patientSearch struct {
	mu sync.RWMutex
	// kinds is indexed by the kind's byte: a registration files a record under a dozen
	// terms, and a map of kinds cost a lookup more for each.
	kinds [256]*searchKind

	// queueMu guards the changes queued and not yet filed, their count and the count
	// filed; filed is broadcast on whenever filedCount grows.
	queueMu    sync.Mutex
	filed      *sync.Cond
	queue      []searchChange
	spare      []searchChange
	queued     uint64
	filedCount uint64
	filing     bool
}

// searchChange is a record's move from the terms of one normalised form to another's.
type searchChange struct {
	slot     uint32
	key      mpi.RecordKey
	old, new *mpi.Normalized
}

// searchKind holds the postings of one kind of term. Kinds searched by prefix or range
// (ordered) map each value to its postings and keep the values in a B-tree; the kinds only
// ever looked up by exact value map a 64-bit hash of the value (mpi.HashString) instead,
// and keep no value at all: a search checks every hit against the record it reads
// (Tx.SearchPatients), so two values of one hash cost a record read, not a wrong answer.
// Most values of a phone, an e-mail or an identifier belong to one record: a single record
// is kept in place, and only a value of two or more records gets a list (its number in
// lists; the numbers of emptied lists are reused).
type searchKind struct {
	byValue map[string]postings // ordered kinds
	byHash  map[uint64]postings // the others
	lists   [][]uint32
	free    []int32
	ordered *btree.BTreeG[string] // nil for kinds looked up by exact value only
}

// postings are the records filed under one value: one, in place (list < 0), or list
// number list.
type postings struct {
	one  uint32
	list int32
}

// records calls fn with each record of p until fn returns false, and reports whether it
// went through them all.
func (k *searchKind) records(p postings, fn func(uint32) bool) bool {
	if p.list < 0 {
		return fn(p.one)
	}
	for _, key := range k.lists[p.list] {
		if !fn(key) {
			return false
		}
	}
	return true
}

// lookup returns the postings of value and whether there are any.
func (k *searchKind) lookup(value string) (postings, bool) {
	if k.ordered != nil {
		p, ok := k.byValue[value]
		return p, ok
	}
	p, ok := k.byHash[mpi.HashString(value)]
	return p, ok
}

// set stores the postings of value; remove drops them.
func (k *searchKind) set(value string, p postings) {
	if k.ordered != nil {
		k.byValue[value] = p
		return
	}
	k.byHash[mpi.HashString(value)] = p
}

// searchOrdered lists the kinds scanned by prefix (names) or range (birth dates).
var searchOrdered = []byte{searchFamily, searchGiven, searchBirth}

func newPatientSearch() *patientSearch {
	ps := &patientSearch{}
	ps.filed = sync.NewCond(&ps.queueMu)
	for _, kind := range []byte{searchFamily, searchFamilyCode, searchGiven, searchGivenCode, searchFormalCode,
		searchBirth, searchPostal, searchCity, searchPhone, searchEmail, searchIdentifierSV, searchPatientID} {
		ps.kinds[kind] = &searchKind{byHash: map[uint64]postings{}}
	}
	for _, kind := range searchOrdered {
		k := ps.kinds[kind]
		k.byHash, k.byValue = nil, map[string]postings{}
		k.ordered = btree.NewG(32, func(a, b string) bool { return a < b })
	}
	return ps
}

// update queues the move of a record's entries from the terms of its old normalised form
// (nil when new) to those of its new one; the forms must not change afterwards.
func (ps *patientSearch) update(slot uint32, key mpi.RecordKey, old, new *mpi.Normalized) {
	ps.queueMu.Lock()
	defer ps.queueMu.Unlock()
	ps.queue = append(ps.queue, searchChange{slot: slot, key: key, old: old, new: new})
	ps.queued++
	if !ps.filing {
		ps.filing = true
		go ps.fileQueued()
	}
}

// fileQueued files the queued changes in order until the queue is empty.
func (ps *patientSearch) fileQueued() {
	for {
		ps.queueMu.Lock()
		batch := ps.queue
		if len(batch) == 0 {
			ps.filing = false
			ps.queueMu.Unlock()
			return
		}
		ps.queue, ps.spare = ps.spare[:0], nil
		ps.queueMu.Unlock()
		for i, c := range batch {
			ps.file(c.slot, c.key, c.old, c.new)
			batch[i] = searchChange{}
		}
		ps.queueMu.Lock()
		ps.filedCount += uint64(len(batch))
		ps.spare = batch[:0]
		ps.filed.Broadcast()
		ps.queueMu.Unlock()
	}
}

// settle waits until every change queued so far is filed.
func (ps *patientSearch) settle() {
	ps.queueMu.Lock()
	defer ps.queueMu.Unlock()
	for target := ps.queued; ps.filedCount < target; {
		ps.filed.Wait()
	}
}

// file moves a record's entries from the terms of its old normalised form (nil when new)
// to those of its new one.
func (ps *patientSearch) file(slot uint32, key mpi.RecordKey, old, new *mpi.Normalized) {
	var oldTerms, newTerms [][2]string
	if old != nil {
		oldTerms = searchTerms(key, old)
	}
	if new != nil {
		newTerms = searchTerms(key, new)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, term := range oldTerms {
		if !containsTerm(newTerms, term) {
			ps.remove(term[0][0], term[1], slot)
		}
	}
	for _, term := range newTerms {
		if !containsTerm(oldTerms, term) {
			ps.add(term[0][0], term[1], slot)
		}
	}
}

func containsTerm(terms [][2]string, t [2]string) bool {
	for _, x := range terms {
		if x == t {
			return true
		}
	}
	return false
}

// add files a record under a value. A record is filed under each of its terms once (update
// adds only the terms its old form lacked), so the list is not searched for it: the list
// of a city holds a good part of the index.
func (ps *patientSearch) add(kind byte, value string, key uint32) {
	k := ps.kinds[kind]
	p, ok := k.lookup(value)
	switch {
	case !ok:
		if k.ordered != nil {
			// A value of its own: the caller's string may hold a whole record's bytes.
			value = strings.Clone(value)
			k.ordered.ReplaceOrInsert(value)
		}
		k.set(value, postings{one: key, list: -1})
	case p.list >= 0:
		k.lists[p.list] = append(k.lists[p.list], key)
	default:
		var i int32
		if n := len(k.free); n > 0 {
			i, k.free = k.free[n-1], k.free[:n-1]
			k.lists[i] = append(k.lists[i], p.one, key)
		} else {
			i = int32(len(k.lists))
			k.lists = append(k.lists, []uint32{p.one, key})
		}
		if k.ordered != nil {
			value = k.ownValue(value)
		}
		k.set(value, postings{list: i})
	}
}

// ownValue returns the index's own copy of an ordered value it holds (the B-tree's), so
// that a map key never keeps a caller's string alive.
func (k *searchKind) ownValue(value string) string {
	if own, ok := k.ordered.Get(value); ok {
		return own
	}
	return strings.Clone(value)
}

// remove takes a record off a value's postings (a walk of the list: records change their
// terms far less often than they are filed).
func (ps *patientSearch) remove(kind byte, value string, key uint32) {
	k := ps.kinds[kind]
	p, ok := k.lookup(value)
	if !ok {
		return
	}
	if p.list < 0 {
		if p.one == key {
			k.drop(value)
		}
		return
	}
	list := k.lists[p.list]
	for i, have := range list {
		if have != key {
			continue
		}
		last := len(list) - 1
		list[i] = list[last]
		list[last] = 0
		list = list[:last]
		if len(list) > 1 {
			k.lists[p.list] = list
			return
		}
		// One record left: back in place, the list to be reused.
		one := list[0]
		list[0] = 0
		k.lists[p.list] = list[:0]
		k.free = append(k.free, p.list)
		if k.ordered != nil {
			value = k.ownValue(value)
		}
		k.set(value, postings{one: one, list: -1})
		return
	}
}

// drop removes a value and its postings.
func (k *searchKind) drop(value string) {
	if k.ordered == nil {
		delete(k.byHash, mpi.HashString(value))
		return
	}
	delete(k.byValue, value)
	k.ordered.Delete(value)
}

// scan calls fn with every record of a kind whose value s selects (see scan), until fn
// returns false. fn runs with the index locked for reading: it must not call back into it.
func (ps *patientSearch) scan(kind byte, s scan, fn func(uint32) bool) {
	ps.settle()
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	k := ps.kinds[kind]
	each := func(value string) bool {
		p, ok := k.lookup(value)
		return !ok || k.records(p, fn)
	}
	if s.exact {
		each(s.value)
		return
	}
	k.ordered.AscendGreaterOrEqual(s.value, func(value string) bool {
		if !strings.HasPrefix(value, s.prefix) || (s.hasUpTo && value > s.upTo) {
			return false
		}
		return each(value)
	})
}

// buildPatientSearch indexes every record of a store's match index under its slot.
func buildPatientSearch(mem *mpi.MemStore, slots *recordSlots) *patientSearch {
	ps := newPatientSearch()
	slots.each(func(slot uint32, key mpi.RecordKey) bool {
		if _, norm, ok := mem.Normalized(key); ok {
			ps.file(slot, key, nil, norm)
		}
		return true
	})
	return ps
}

// digest returns a SHA-256 digest of the index's entries in order (kind, value or value
// hash, slot), whatever order they were added in.
func (ps *patientSearch) digest() [sha256.Size]byte {
	ps.settle()
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	h := sha256.New()
	var buf []byte
	entry := func(kind int, value []byte, k *searchKind, p postings) {
		var slots []uint32
		k.records(p, func(slot uint32) bool { slots = append(slots, slot); return true })
		slices.Sort(slots)
		for _, slot := range slots {
			buf = append(buf[:0], byte(kind))
			buf = binary.AppendUvarint(buf, uint64(len(value)))
			buf = append(buf, value...)
			buf = binary.BigEndian.AppendUint32(buf, slot)
			h.Write(buf)
		}
	}
	for kind, k := range ps.kinds {
		if k == nil {
			continue
		}
		for _, value := range slices.Sorted(maps.Keys(k.byValue)) {
			entry(kind, []byte(value), k, k.byValue[value])
		}
		for _, vh := range slices.Sorted(maps.Keys(k.byHash)) {
			entry(kind, binary.BigEndian.AppendUint64(nil, vh), k, k.byHash[vh])
		}
		if k.ordered != nil {
			// The ordered values must be exactly the values with postings.
			n := 0
			k.ordered.Ascend(func(value string) bool {
				if _, ok := k.byValue[value]; !ok {
					h.Write([]byte("stray ordered value"))
				}
				n++
				return true
			})
			if n != len(k.byValue) {
				h.Write([]byte("ordered values missing"))
			}
		}
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
