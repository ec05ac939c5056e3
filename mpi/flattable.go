package mpi

// flatTable is an open-addressing hash table with linear probing, keyed by
// a 64-bit hash the caller computes, for MemStore's indexes of millions of
// entries. A lookup in a Go map of that size is a chain of dependent cache
// misses (directory, table, control group, slot, key bytes); here it is one
// slot array read, usually a single cache line, before the value itself.
// Several values may share a hash: lookups take a predicate that checks
// the value's own key, and probing passes over the others.
//
// The table keeps at most three quarters of its slots full (a probe then
// reads 2.5 slots on average for a key present and 8.5 for one absent, one
// or two cache lines of slots; kept at most half full, the blocking
// index's table alone was a tenth of the index's memory), grows by doubling
// (moving entries by their stored hashes, without reading keys again), and
// deletes by shifting later entries of the probe run back, so it never holds
// tombstones. Iteration order is slot order, which depends on the hashes:
// it must never decide anything a caller returns.
type flatTable[V any] struct {
	slots []flatSlot[V]
	count int
}

type flatSlot[V any] struct {
	// hash is the low 32 bits of the entry's hash with the top bit set, so
	// that 0 marks an empty slot: with a 32-bit value (the blocking index's
	// region references) a slot is 8 bytes, not 16. A table therefore has at
	// most 1<<31 slots; probing compares 31 bits of hash before it reads a
	// value, and a false agreement (one in two billion) costs only that read.
	hash uint32
	val  V
}

const flatOccupied = 1 << 31

// slotHash is the hash a slot stores for h.
func slotHash(h uint64) uint32 { return uint32(h) | flatOccupied }

const flatMinSlots = 16

// find returns the value whose hash is h and for which match is true.
func (t *flatTable[V]) find(h uint64, match func(V) bool) (V, bool) {
	i, ok := t.slot(h, match)
	if !ok {
		var zero V
		return zero, false
	}
	return t.slots[i].val, true
}

// slot returns the index of the matching entry's slot.
func (t *flatTable[V]) slot(h uint64, match func(V) bool) (int, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	sh := slotHash(h)
	mask := uint32(len(t.slots) - 1)
	for i := sh & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.hash == 0 {
			return 0, false
		}
		if s.hash == sh && match(s.val) {
			return int(i), true
		}
	}
}

// set replaces the matching entry's value, or inserts v.
func (t *flatTable[V]) set(h uint64, match func(V) bool, v V) {
	if i, ok := t.slot(h, match); ok {
		t.slots[i].val = v
		return
	}
	if 4*(t.count+1) > 3*len(t.slots) {
		t.grow()
	}
	t.insert(slotHash(h), v)
	t.count++
}

// insert puts an entry known to be absent into the first free slot of its
// probe run.
func (t *flatTable[V]) insert(h uint32, v V) {
	mask := uint32(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].hash != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = flatSlot[V]{hash: h, val: v}
}

func (t *flatTable[V]) grow() {
	old := t.slots
	t.slots = make([]flatSlot[V], max(flatMinSlots, 2*len(old)))
	for _, s := range old {
		if s.hash != 0 {
			t.insert(s.hash, s.val)
		}
	}
}

// delete removes the matching entry, if any.
func (t *flatTable[V]) delete(h uint64, match func(V) bool) {
	i, ok := t.slot(h, match)
	if !ok {
		return
	}
	t.count--
	// Shift back the entries after i in the probe run that would no longer
	// be reachable across the emptied slot (Knuth's algorithm R).
	mask := len(t.slots) - 1
	hole := i
	for j := (i + 1) & mask; t.slots[j].hash != 0; j = (j + 1) & mask {
		home := int(t.slots[j].hash & uint32(mask))
		// The entry at j stays if its home lies cyclically in (hole, j].
		if (hole <= j && hole < home && home <= j) || (hole > j && (hole < home || home <= j)) {
			continue
		}
		t.slots[hole] = t.slots[j]
		hole = j
	}
	t.slots[hole] = flatSlot[V]{}
}

// all calls fn for every value, in slot order.
func (t *flatTable[V]) all(fn func(V)) {
	for _, s := range t.slots {
		if s.hash != 0 {
			fn(s.val)
		}
	}
}

// HashString is 64-bit FNV-1a with a final avalanche, so that keys which
// differ only in their last bytes (db:19800101, db:19800102) spread over
// the table. It is fixed, not seeded: a MemStore lays out the same way in
// every run. The state's other in-memory indexes use it too; it is never
// stored.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// findEach looks up many entries at once: out[i] is the value with hash
// hashes[i] for which match(i, value) holds (ok[i] false when none). The
// slots of all entries are read in one tight loop and the values checked
// in another, so that the cache misses of independent lookups overlap
// instead of waiting one behind the other.
func (t *flatTable[V]) findEach(hashes []uint64, match func(i int, v V) bool, out []V, ok []bool) {
	if len(t.slots) == 0 {
		clear(ok)
		return
	}
	mask := uint32(len(t.slots) - 1)
	var firstBuf [64]uint32
	first := firstBuf[:0]
	if len(hashes) > len(firstBuf) {
		first = make([]uint32, 0, len(hashes))
	}
	for _, h := range hashes {
		sh := slotHash(h)
		i := sh & mask
		for s := t.slots[i].hash; s != sh && s != 0; s = t.slots[i].hash {
			i = (i + 1) & mask
		}
		first = append(first, i)
	}
	for k, i := range first {
		s := &t.slots[i]
		if s.hash != 0 && match(k, s.val) {
			out[k], ok[k] = s.val, true
			continue
		}
		// Another key with the same hash, or none: probe on properly.
		var found bool
		out[k], found = t.find(hashes[k], func(v V) bool { return match(k, v) })
		ok[k] = found
	}
}
