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
// Values of the kinds searched by prefix or range (names, birth dates) are also kept in a
// B-tree, in byte order; every other kind is only ever looked up by its exact value. A
// posting list is unordered: a search reads all of a value's records or gives up on the
// criterion as too broad, so their order decides nothing.
type patientSearch struct {
	mu sync.RWMutex
	// kinds is indexed by the kind's byte: a registration files a record under a dozen
	// terms, and a map of kinds cost a lookup more for each.
	kinds [256]*searchKind
}

// searchKind holds the posting lists of one kind of term. A value maps to the number of
// its list in lists, so that filing a record under a value is one lookup in a map that
// grows with the index (a city's list is appended to in place); the numbers of emptied
// lists are reused.
type searchKind struct {
	index   map[string]int32
	lists   [][]mpi.RecordKey
	free    []int32
	ordered *btree.BTreeG[string] // nil for kinds looked up by exact value only
}

// postings returns the records filed under value (nil if none).
func (k *searchKind) postings(value string) []mpi.RecordKey {
	if i, ok := k.index[value]; ok {
		return k.lists[i]
	}
	return nil
}

// searchOrdered lists the kinds scanned by prefix (names) or range (birth dates).
var searchOrdered = []byte{searchFamily, searchGiven, searchBirth}

func newPatientSearch() *patientSearch {
	ps := &patientSearch{}
	for _, kind := range []byte{searchFamily, searchFamilyCode, searchGiven, searchGivenCode, searchFormalCode,
		searchBirth, searchPostal, searchCity, searchPhone, searchEmail, searchIdentifierSV} {
		ps.kinds[kind] = &searchKind{index: map[string]int32{}}
	}
	for _, kind := range searchOrdered {
		ps.kinds[kind].ordered = btree.NewG(32, func(a, b string) bool { return a < b })
	}
	return ps
}

// update moves a record's entries from the terms of its old normalised form (nil when
// new) to those of its new one.
func (ps *patientSearch) update(key mpi.RecordKey, old, new *mpi.Normalized) {
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
			ps.remove(term[0][0], term[1], key)
		}
	}
	for _, term := range newTerms {
		if !containsTerm(oldTerms, term) {
			ps.add(term[0][0], term[1], key)
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
func (ps *patientSearch) add(kind byte, value string, key mpi.RecordKey) {
	k := ps.kinds[kind]
	if i, ok := k.index[value]; ok {
		k.lists[i] = append(k.lists[i], key)
		return
	}
	// A value of its own: the caller's string may hold a whole record's bytes.
	value = strings.Clone(value)
	if k.ordered != nil {
		k.ordered.ReplaceOrInsert(value)
	}
	var i int32
	if n := len(k.free); n > 0 {
		i, k.free = k.free[n-1], k.free[:n-1]
		k.lists[i] = append(k.lists[i], key)
	} else {
		i = int32(len(k.lists))
		k.lists = append(k.lists, []mpi.RecordKey{key})
	}
	k.index[value] = i
}

// remove takes a record off a value's list (a walk of the list: records change their
// terms far less often than they are filed).
func (ps *patientSearch) remove(kind byte, value string, key mpi.RecordKey) {
	k := ps.kinds[kind]
	n, ok := k.index[value]
	if !ok {
		return
	}
	list := k.lists[n]
	for i, have := range list {
		if have != key {
			continue
		}
		last := len(list) - 1
		list[i] = list[last]
		list[last] = ""
		k.lists[n] = list[:last]
		if last == 0 {
			delete(k.index, value)
			k.free = append(k.free, n)
			if k.ordered != nil {
				k.ordered.Delete(value)
			}
		}
		return
	}
}

// scan calls fn with every record of a kind whose value s selects (see scan), until fn
// returns false. fn runs with the index locked for reading: it must not call back into it.
func (ps *patientSearch) scan(kind byte, s scan, fn func(mpi.RecordKey) bool) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	k := ps.kinds[kind]
	each := func(value string) bool {
		for _, key := range k.postings(value) {
			if !fn(key) {
				return false
			}
		}
		return true
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

// buildPatientSearch indexes every record of a store's match index.
func buildPatientSearch(mem *mpi.MemStore, keys []mpi.RecordKey) *patientSearch {
	ps := newPatientSearch()
	for _, k := range keys {
		if own, norm, ok := mem.Normalized(k); ok {
			ps.update(own, nil, norm)
		}
	}
	return ps
}

// digest returns a SHA-256 digest of the index's entries in order (kind, value, record
// key), whatever order they were added in.
func (ps *patientSearch) digest() [sha256.Size]byte {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	h := sha256.New()
	var buf []byte
	for kind, k := range ps.kinds {
		if k == nil {
			continue
		}
		for _, value := range slices.Sorted(maps.Keys(k.index)) {
			for _, key := range slices.Sorted(slices.Values(k.postings(value))) {
				buf = append(buf[:0], byte(kind))
				buf = binary.AppendUvarint(buf, uint64(len(value)))
				buf = append(buf, value...)
				buf = binary.AppendUvarint(buf, uint64(len(key)))
				buf = append(buf, key...)
				h.Write(buf)
			}
		}
		if k.ordered != nil {
			// The ordered values must be exactly the values with postings.
			n := 0
			k.ordered.Ascend(func(value string) bool {
				if _, ok := k.index[value]; !ok {
					h.Write([]byte("stray ordered value"))
				}
				n++
				return true
			})
			if n != len(k.index) {
				h.Write([]byte("ordered values missing"))
			}
		}
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
