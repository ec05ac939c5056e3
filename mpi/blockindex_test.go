package mpi

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestBlockIndexAgainstMap drives blockIndex and a map of sorted slices
// with the same random adds and removes, with a hash that puts every key
// into one of four buckets so that probing, collisions and backward-shift
// deletion are exercised, and blocks that grow through several size
// classes and shrink to nothing.
func TestBlockIndexAgainstMap(t *testing.T) {
	for _, hash := range []struct {
		name string
		fn   func(string) uint64
	}{{"fnv", hashString}, {"colliding", func(s string) uint64 { return hashString(s) & 3 }}} {
		t.Run(hash.name, func(t *testing.T) {
			x := newBlockIndex()
			x.hash = hash.fn
			want := map[string][]RecordKey{}
			rng := rand.New(rand.NewPCG(5, 5))
			check := func(step int) {
				t.Helper()
				blocks, largest := x.stats()
				wantLargest := 0
				for _, keys := range want {
					wantLargest = max(wantLargest, len(keys))
				}
				if blocks != len(want) || largest != wantLargest {
					t.Fatalf("step %d: stats %d blocks, largest %d; want %d, %d", step, blocks, largest, len(want), wantLargest)
				}
				for b := 0; b < 60; b++ {
					block := fmt.Sprintf("p:%d", b)
					for _, limit := range []int{1, 7, 1 << 30} {
						got, complete := x.members(Block{Key: block}, limit, nil)
						w := want[block]
						if len(w) > limit {
							w = w[:limit]
						}
						if !slices.Equal(got, w) || complete != (len(want[block]) <= limit) {
							t.Fatalf("step %d: members(%s, %d) = %v %v; want %v", step, block, limit, got, complete, w)
						}
					}
				}
			}
			for step := 0; step < 20000; step++ {
				block := fmt.Sprintf("p:%d", rng.IntN(60))
				// Keys of varied length, some longer than the comparison's
				// stack buffer and than one uvarint byte.
				key := RecordKey(fmt.Sprintf("s|%0*d", 1+rng.IntN(3)*70, rng.IntN(300)))
				keys := want[block]
				i, found := slices.BinarySearch(keys, key)
				if rng.IntN(3) == 0 {
					x.del(block, appendMember(nil, "", key))
					if found {
						if keys = slices.Delete(keys, i, i+1); len(keys) == 0 {
							delete(want, block)
						} else {
							want[block] = keys
						}
					}
				} else {
					x.add(block, appendMember(nil, "", key))
					if !found {
						want[block] = slices.Insert(keys, i, key)
					}
				}
				if step%1000 == 999 {
					check(step)
				}
			}
			check(-1)
		})
	}
}

// TestBlockIndexReturnsStableKeys checks that the keys members returns stay
// as they were when the block's region is rewritten by later inserts.
func TestBlockIndexReturnsStableKeys(t *testing.T) {
	x := newBlockIndex()
	x.add("b", appendMember(nil, "", "k2"))
	got, _ := x.members(Block{Key: "b"}, 10, nil)
	x.add("b", appendMember(nil, "", "k1"))
	x.del("b", appendMember(nil, "", "k2"))
	if !slices.Equal(got, []RecordKey{"k2"}) {
		t.Fatalf("keys read before a rewrite changed to %v", got)
	}
}

// TestArenaLargeRegion checks a region bigger than a chunk (a block of
// hundreds of thousands of members) gets a chunk of its own and that small
// regions cut after it do not overlap it.
func TestArenaLargeRegion(t *testing.T) {
	var a arena
	small1, r1 := a.alloc(0)
	bigClass := classFor(chunkSize + 1)
	big, rb := a.alloc(bigClass)
	small2, r2 := a.alloc(0)
	if len(rb) != regionSize(bigClass) || len(a.region(big)) != regionSize(bigClass) {
		t.Fatalf("large region has %d bytes, want %d", len(rb), regionSize(bigClass))
	}
	for i := range rb {
		rb[i] = 0xff
	}
	rb[regionClassAt] = byte(bigClass)
	r1[1], r2[1] = 1, 2
	if a.region(small1)[1] != 1 || a.region(small2)[1] != 2 || a.region(big)[1] != 0xff {
		t.Fatal("regions overlap")
	}
	a.release(big, rb)
	if again, _ := a.alloc(bigClass); again != big {
		t.Fatalf("released large region not reused: got %x, want %x", again, big)
	}
}

// TestFlatTableDelete checks backward-shift deletion keeps every remaining
// entry reachable, with long probe runs that wrap around the table's end.
func TestFlatTableDelete(t *testing.T) {
	var tab flatTable[int]
	is := func(v int) func(int) bool { return func(w int) bool { return w == v } }
	// Hashes near the top of a 16- and of a 32-slot table, so runs wrap
	// around its end.
	hash := func(v int) uint64 { return uint64(29 + v%5) }
	want := map[int]bool{}
	rng := rand.New(rand.NewPCG(9, 9))
	for step := 0; step < 5000; step++ {
		v := rng.IntN(12)
		if rng.IntN(2) == 0 {
			tab.set(hash(v), is(v), v)
			want[v] = true
		} else {
			tab.delete(hash(v), is(v))
			delete(want, v)
		}
		if tab.count != len(want) {
			t.Fatalf("step %d: count %d, want %d", step, tab.count, len(want))
		}
		for w := 0; w < 12; w++ {
			if _, ok := tab.find(hash(w), is(w)); ok != want[w] {
				t.Fatalf("step %d: find(%d) = %v, want %v", step, w, ok, want[w])
			}
		}
		hashes := []uint64{hash(v), hash(v + 1), hash(v + 2)}
		out, ok := make([]int, 3), make([]bool, 3)
		tab.findEach(hashes, func(i, w int) bool { return w == v+i }, out, ok)
		for i := range hashes {
			if ok[i] != want[v+i] || (ok[i] && out[i] != v+i) {
				t.Fatalf("step %d: findEach %d = %d %v, want %v", step, v+i, out[i], ok[i], want[v+i])
			}
		}
	}
}
