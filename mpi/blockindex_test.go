package mpi

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestBlockIndexAgainstMap drives blockIndex and a map of sorted slices
// with the same random adds and removes, with a hash that puts every key
// into one of four buckets so that probing, collisions and backward-shift
// deletion are exercised, and blocks that grow through several size
// classes and shrink to nothing. Sort values are prefixes of each other
// (1, 19, 190) and shared by several keys, so members are ordered by sort
// value and then key.
func TestBlockIndexAgainstMap(t *testing.T) {
	type member struct {
		sort string
		key  RecordKey
	}
	order := func(a, b member) int {
		return cmp.Or(strings.Compare(a.sort, b.sort), strings.Compare(string(a.key), string(b.key)))
	}
	for _, hash := range []struct {
		name string
		fn   func(string) uint64
	}{{"fnv", HashString}, {"colliding", func(s string) uint64 { return HashString(s) & 3 }}} {
		t.Run(hash.name, func(t *testing.T) {
			x := newBlockIndex()
			x.hash = hash.fn
			want := map[string][]member{}
			rng := rand.New(rand.NewPCG(5, 5))
			check := func(step int) {
				t.Helper()
				blocks, largest := x.stats()
				wantLargest := 0
				for _, members := range want {
					wantLargest = max(wantLargest, len(members))
				}
				if blocks != len(want) || largest != wantLargest {
					t.Fatalf("step %d: stats %d blocks, largest %d; want %d, %d", step, blocks, largest, len(want), wantLargest)
				}
				for b := 0; b < 60; b++ {
					block := fmt.Sprintf("p:%d", b)
					for _, limit := range []int{1, 7, 1 << 30} {
						got, complete := x.members(Block{Key: block}, limit, nil)
						var w []RecordKey
						for _, m := range want[block] {
							w = append(w, m.key)
						}
						if len(w) > limit {
							w = w[:limit]
						}
						if !slices.Equal(got, w) || complete != (len(want[block]) <= limit) {
							t.Fatalf("step %d: members(%s, %d) = %v %v; want %v", step, block, limit, got, complete, w)
						}
					}
				}
			}
			sorts := []string{"", "1", "19", "190", "2"}
			systems := []string{"s|", "s|1", "s1|", "urn:a|", "", "|"}
			for step := 0; step < 20000; step++ {
				block := fmt.Sprintf("p:%d", rng.IntN(60))
				// Keys of varied length, some longer than one uvarint byte,
				// of several sources (prefixes that are prefixes of each
				// other, and none), so that members of two sources are
				// ordered by their whole keys.
				m := member{
					sort: sorts[rng.IntN(len(sorts))],
					key:  RecordKey(fmt.Sprintf("%s%0*d", systems[rng.IntN(len(systems))], 1+rng.IntN(3)*70, rng.IntN(300))),
				}
				members := want[block]
				i, found := slices.BinarySearchFunc(members, m, order)
				if rng.IntN(3) == 0 {
					x.del(block, m.sort, m.key)
					if found {
						if members = slices.Delete(members, i, i+1); len(members) == 0 {
							delete(want, block)
						} else {
							want[block] = members
						}
					}
				} else {
					x.add(block, m.sort, m.key)
					if !found {
						want[block] = slices.Insert(members, i, m)
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
	x.add("b", "", "k2")
	got, _ := x.members(Block{Key: "b"}, 10, nil)
	x.add("b", "", "k1")
	x.del("b", "", "k2")
	if !slices.Equal(got, []RecordKey{"k2"}) {
		t.Fatalf("keys read before a rewrite changed to %v", got)
	}
}

// TestArenaLargeRegion checks a region bigger than a chunk (a block of
// hundreds of thousands of members) gets a chunk of its own and that small
// regions cut after it do not overlap it.
func TestArenaLargeRegion(t *testing.T) {
	var a arena
	small1, r1, _ := a.alloc(0)
	bigClass := classFor(chunkSize + 1)
	big, rb, _ := a.alloc(bigClass)
	small2, r2, _ := a.alloc(0)
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
	if again, _, _ := a.alloc(bigClass); again != big {
		t.Fatalf("released large region not reused: got %x, want %x", again, big)
	}
}

// TestArenaFull checks that an arena with every chunk its references can
// name refuses a region that needs another, and still hands out released
// ones.
func TestArenaFull(t *testing.T) {
	var a arena
	ref, r, err := a.alloc(0)
	if err != nil {
		t.Fatal(err)
	}
	a.release(ref, r)
	a.chunks = append(a.chunks, make([][]byte, maxChunks-1)...) // the rest empty: no room in the last
	if again, _, err := a.alloc(0); err != nil || again != ref {
		t.Fatalf("released region not handed out again: %x, %v", again, err)
	}
	for _, class := range []int{0, classFor(chunkSize + 1)} {
		if _, _, err := a.alloc(class); !errors.Is(err, ErrIndexFull) {
			t.Fatalf("alloc(%d) with %d chunks: err = %v, want ErrIndexFull", class, len(a.chunks), err)
		}
	}
	// The last chunk's regions are named exactly.
	last := makeRegionRef(maxChunks-1, chunkSize-16)
	if last.chunk() != maxChunks-1 || last.offset() != chunkSize-16 {
		t.Fatalf("reference %x names chunk %d offset %d", last, last.chunk(), last.offset())
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

// TestCompareJoined checks the comparison of two joined strings against
// joining them, over splits at every position.
func TestCompareJoined(t *testing.T) {
	words := []string{"", "a", "ab", "abc", "b", "urn:x|1", "urn:x|12", "urn:y|0"}
	for _, a := range words {
		for _, b := range words {
			for i := 0; i <= len(a); i++ {
				for j := 0; j <= len(b); j++ {
					if got, want := compareJoined([]byte(a[:i]), []byte(a[i:]), []byte(b[:j]), []byte(b[j:])), strings.Compare(a, b); got != want {
						t.Fatalf("compareJoined(%q, %q, %q, %q) = %d, want %d", a[:i], a[i:], b[:j], b[j:], got, want)
					}
				}
			}
		}
	}
}

// TestRegionClasses checks that classFor picks the smallest class that holds n bytes.
func TestRegionClasses(t *testing.T) {
	wantSizes := []int{32, 48, 64, 96, 128, 192, 256}
	for c, want := range wantSizes {
		if got := regionSize(c); got != want {
			t.Fatalf("regionSize(%d) = %d, want %d", c, got, want)
		}
	}
	for n := 1; n <= 1<<20; n++ {
		c := classFor(n)
		if regionSize(c) < n || (c > 0 && regionSize(c-1) >= n) {
			t.Fatalf("classFor(%d) = %d (%d bytes; the class below holds %d)", n, c, regionSize(c), regionSize(max(c-1, 0)))
		}
	}
	if c := classFor(chunkSize + 1); c > maxRegionClass || regionSize(c) < chunkSize+1 {
		t.Fatalf("classFor(chunkSize+1) = %d", c)
	}
}
