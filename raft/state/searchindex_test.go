package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rls-hie/rls/mpi"
)

// TestPatientSearchPostings files and unfiles records under values of an ordered kind and
// of a hashed one at random (values held by one record, by two, by many; records leaving
// until one or none is left) and checks after every step that each value finds exactly the
// records a plain model holds, and that the index digests as one built afresh from the
// model in another order.
func TestPatientSearchPostings(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ps := newPatientSearch()
	type term struct {
		kind  byte
		value string
	}
	model := map[term][]uint32{}
	kinds := []byte{searchFamily, searchPhone}
	for step := range 20000 {
		tm := term{kinds[rng.IntN(2)], fmt.Sprintf("v%d", rng.IntN(40))}
		if have := model[tm]; len(have) > 0 && rng.IntN(2) == 0 {
			key := have[rng.IntN(len(have))]
			ps.remove(tm.kind, tm.value, key)
			i := slices.Index(have, key)
			model[tm] = slices.Delete(have, i, i+1)
		} else {
			key := uint32(1 + rng.IntN(300))
			if slices.Contains(model[tm], key) {
				continue // a record is filed under a term once
			}
			ps.add(tm.kind, tm.value, key)
			model[tm] = append(model[tm], key)
		}
		if step%500 != 0 {
			continue
		}
		for tm, want := range model {
			var got []uint32
			ps.scan(tm.kind, valueScan(tm.kind, tm.value, 0), func(k uint32) bool { got = append(got, k); return true })
			slices.Sort(got)
			want = slices.Sorted(slices.Values(want))
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: %c %s finds %v, want %v", step, tm.kind, tm.value, got, want)
			}
		}
		fresh := newPatientSearch()
		terms := make([]term, 0, len(model))
		for tm := range model {
			terms = append(terms, tm)
		}
		rng.Shuffle(len(terms), func(i, j int) { terms[i], terms[j] = terms[j], terms[i] })
		for _, tm := range terms {
			for _, k := range model[tm] {
				fresh.add(tm.kind, tm.value, k)
			}
		}
		if ps.digest() != fresh.digest() {
			t.Fatalf("step %d: the index digests otherwise than one built afresh", step)
		}
		var prefixed []uint32
		ps.scan(searchFamily, prefixScan(searchFamily, "v1", 0), func(k uint32) bool { prefixed = append(prefixed, k); return true })
		want := 0
		for tm, keys := range model {
			if tm.kind == searchFamily && len(tm.value) >= 2 && tm.value[:2] == "v1" {
				want += len(keys)
			}
		}
		if len(prefixed) != want {
			t.Fatalf("step %d: prefix v1 finds %d records, want %d", step, len(prefixed), want)
		}
	}
}

// TestQueuedChangesAreFiledBeforeAnyRead: the FSM only queues a record's search entries,
// a goroutine files them beside it; a read that begins after the changes were queued finds
// every one of them, in the order they were queued (a record filed, then moved to another
// name), and the digest covers them all.
func TestQueuedChangesAreFiledBeforeAnyRead(t *testing.T) {
	ps := newPatientSearch()
	const n = 5000
	norms := make([]*mpi.Normalized, n)
	key := func(i int) mpi.RecordKey { return mpi.RecordKey(fmt.Sprintf("urn:oid:1.2|M%d", i)) }
	for i := range n {
		family := fmt.Sprintf("Fam%c%c%c", 'a'+i%26, 'a'+i/26%26, 'a'+i/676%26) // a name of its own
		norm := mpi.Normalize(mpi.Record{System: "urn:oid:1.2", Value: fmt.Sprintf("M%d", i), Family: family, Given: []string{"Ann"}})
		norms[i] = &norm
		ps.update(uint32(i+1), key(i), nil, norms[i])
	}
	// The last record moves to another family name.
	moved := mpi.Normalize(mpi.Record{System: "urn:oid:1.2", Value: fmt.Sprintf("M%d", n-1), Family: "Moved", Given: []string{"Ann"}})
	ps.update(n, key(n-1), norms[n-1], &moved)
	find := func(family string) []uint32 {
		var got []uint32
		ps.scan(searchFamily, valueScan(searchFamily, family, 0), func(slot uint32) bool {
			got = append(got, slot)
			return true
		})
		return got
	}
	if got := find(moved.Family); !slices.Equal(got, []uint32{n}) {
		t.Fatalf("the last change queued: found %v under its new name", got)
	}
	if got := find(norms[n-1].Family); len(got) != 0 {
		t.Fatalf("found %v under the name the last record left", got)
	}
	if got := find(norms[n-2].Family); !slices.Equal(got, []uint32{n - 1}) {
		t.Fatalf("found %v under the name of the record before it", got)
	}
	built := newPatientSearch()
	for i := range n - 1 {
		built.file(uint32(i+1), key(i), nil, norms[i])
	}
	built.file(n, key(n-1), nil, &moved)
	if ps.digest() != built.digest() {
		t.Fatal("the index filed beside the writer digests otherwise than one filed in place")
	}
}
