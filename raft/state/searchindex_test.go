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
	model := map[term][]mpi.RecordKey{}
	kinds := []byte{searchFamily, searchPhone}
	for step := range 20000 {
		tm := term{kinds[rng.IntN(2)], fmt.Sprintf("v%d", rng.IntN(40))}
		if have := model[tm]; len(have) > 0 && rng.IntN(2) == 0 {
			key := have[rng.IntN(len(have))]
			ps.remove(tm.kind, tm.value, key)
			i := slices.Index(have, key)
			model[tm] = slices.Delete(have, i, i+1)
		} else {
			key := mpi.RecordKey(fmt.Sprintf("s|%d", rng.IntN(300)))
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
			var got []mpi.RecordKey
			ps.scan(tm.kind, valueScan(tm.kind, tm.value, 0), func(k mpi.RecordKey) bool { got = append(got, k); return true })
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
		var prefixed []mpi.RecordKey
		ps.scan(searchFamily, prefixScan(searchFamily, "v1", 0), func(k mpi.RecordKey) bool { prefixed = append(prefixed, k); return true })
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
