package mpi

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strings"
)

// blockIndex is MemStore's blocking index: blocking key → the sorted set of
// members filed under it (MemStore's members are sort value, 0x00, record
// key; see appendMember). It is laid out for an index of millions of
// records, where every random memory access costs hundreds of nanoseconds
// and the garbage collector's cost grows with the number of pointers:
//
//   - a block is one region of a byte arena holding its own key followed by
//     its members, length-prefixed and in ascending byte order, so reading
//     a block is one slot of a flat hash table plus one contiguous read (a
//     map of strings to slices of strings costs a cache miss per member
//     key, because each key's bytes live somewhere else);
//   - nothing in the index is a Go pointer except the arena's few chunks,
//     so a garbage collection does not walk millions of block entries.
type blockIndex struct {
	table flatTable[regionRef] // by hash of the blocking key
	arena arena
	// hash is hashString except in tests that force collisions.
	hash func(string) uint64
}

func newBlockIndex() *blockIndex {
	return &blockIndex{hash: hashString}
}

// Region layout (little-endian):
//
//	[0]      size class: the region is regionSize(class) bytes
//	[1:5]    bytes in use, header included
//	[5:9]    number of members
//	[9:]     uvarint length + blocking key, then each member as uvarint
//	         length + record key, ascending, no duplicates
const (
	regionClassAt  = 0
	regionUsedAt   = 1
	regionCountAt  = 5
	regionHeaderSz = 9
)

func regionUsed(r []byte) int       { return int(binary.LittleEndian.Uint32(r[regionUsedAt:])) }
func regionCount(r []byte) int      { return int(binary.LittleEndian.Uint32(r[regionCountAt:])) }
func setRegionUsed(r []byte, n int) { binary.LittleEndian.PutUint32(r[regionUsedAt:], uint32(n)) }
func setRegionCount(r []byte, n int) {
	binary.LittleEndian.PutUint32(r[regionCountAt:], uint32(n))
}

// regionKey returns a region's blocking key and where its members start.
func regionKey(r []byte) ([]byte, int) {
	n, w := binary.Uvarint(r[regionHeaderSz:])
	start := regionHeaderSz + w
	return r[start : start+int(n)], start + int(n)
}

// nextMember decodes the member at pos: its bytes are r[start:end].
func nextMember(r []byte, pos int) (start, end int) {
	n, w := binary.Uvarint(r[pos:])
	start = pos + w
	return start, start + int(n)
}

// find returns the region of a blocking key.
func (x *blockIndex) find(block string) (regionRef, []byte, bool) {
	ref, ok := x.table.find(x.hash(block), x.isBlock(block))
	if !ok {
		return 0, nil, false
	}
	return ref, x.arena.region(ref), true
}

// isBlock matches the region of a blocking key (the region repeats the key,
// so keys whose hashes collide stay apart).
func (x *blockIndex) isBlock(block string) func(regionRef) bool {
	return func(ref regionRef) bool {
		k, _ := regionKey(x.arena.region(ref))
		return string(k) == block
	}
}

// members appends to buf the record keys of a block's members, or of the
// window of limit members around block.Sort (see Store.BlockMembers).
func (x *blockIndex) members(block Block, limit int, buf []RecordKey) ([]RecordKey, bool) {
	_, r, ok := x.find(block.Key)
	if !ok {
		return buf, true
	}
	return x.regionMembers(r, block.Sort, limit, buf)
}

// regionMembers appends to buf the record keys of a region's members, all
// of them when there are at most limit, else the window of limit members
// around the position of at.
func (x *blockIndex) regionMembers(r []byte, at string, limit int, buf []RecordKey) ([]RecordKey, bool) {
	first, end, complete := x.window(r, at, limit)
	// One string for all the members returned: the region's bytes change
	// on the next insert, and a string must never change.
	return appendMembers(buf, r, first, end, string(r[first:end])), complete
}

// window returns where in r the members regionMembers reads lie, r[first:end],
// and whether they are all of the region's members.
func (x *blockIndex) window(r []byte, at string, limit int) (first, end int, complete bool) {
	count := regionCount(r)
	_, pos := regionKey(r)
	if limit <= 0 {
		return pos, pos, count == 0
	}
	skip := 0
	if count > limit {
		// The position at would take: members before at+0x00 sort lower
		// (a member is its sort value, 0x00, its record key).
		var atBuf [64]byte
		probe := append(append(atBuf[:0], at...), 0)
		p, scan := 0, pos
		for ; p < count; p++ {
			s, e := nextMember(r, scan)
			if bytes.Compare(r[s:e], probe) >= 0 {
				break
			}
			scan = e
		}
		skip = min(max(p-limit/2, 0), count-limit)
	}
	for i := 0; i < skip; i++ {
		_, pos = nextMember(r, pos)
	}
	n := min(count-skip, limit)
	first, end = pos, pos
	for i := 0; i < n; i++ {
		_, end = nextMember(r, end)
	}
	return first, end, count <= limit
}

// appendMembers appends to buf the record keys of the members in r[first:end]
// (see window), as substrings of copied, which holds a copy of those bytes.
func appendMembers(buf []RecordKey, r []byte, first, end int, copied string) []RecordKey {
	for p := first; p < end; {
		s, e := nextMember(r, p)
		m := copied[s-first : e-first]
		buf = append(buf, RecordKey(m[strings.IndexByte(m, 0)+1:]))
		p = e
	}
	return buf
}

// add files a member under block (idempotent).
func (x *blockIndex) add(block string, key []byte) {
	entry := uvarintLen(len(key)) + len(key)
	ref, r, ok := x.find(block)
	if !ok {
		need := regionHeaderSz + uvarintLen(len(block)) + len(block) + entry
		ref, r = x.arena.alloc(classFor(need))
		n := regionHeaderSz + binary.PutUvarint(r[regionHeaderSz:], uint64(len(block)))
		n += copy(r[n:], block)
		setRegionUsed(r, n)
		setRegionCount(r, 0)
		x.table.set(x.hash(block), x.isBlock(block), ref)
	}
	used := regionUsed(r)
	_, pos := regionKey(r)
	for pos < used {
		s, e := nextMember(r, pos)
		c := bytes.Compare(r[s:e], key)
		if c == 0 {
			return
		}
		if c > 0 {
			break
		}
		pos = e
	}
	if used+entry > len(r) {
		newRef, grown := x.arena.alloc(classFor(used + entry))
		copy(grown[1:], r[1:used])
		x.table.set(x.hash(block), x.isBlock(block), newRef)
		x.arena.release(ref, r)
		ref, r = newRef, grown
	}
	copy(r[pos+entry:], r[pos:used])
	w := binary.PutUvarint(r[pos:], uint64(len(key)))
	copy(r[pos+w:], key)
	setRegionUsed(r, used+entry)
	setRegionCount(r, regionCount(r)+1)
}

// del removes a member from block (idempotent); a block left empty is
// released.
func (x *blockIndex) del(block string, key []byte) {
	ref, r, ok := x.find(block)
	if !ok {
		return
	}
	used := regionUsed(r)
	_, pos := regionKey(r)
	for pos < used {
		s, e := nextMember(r, pos)
		switch c := bytes.Compare(r[s:e], key); {
		case c < 0:
			pos = e
			continue
		case c > 0:
			return
		}
		count := regionCount(r) - 1
		if count == 0 {
			x.table.delete(x.hash(block), x.isBlock(block))
			x.arena.release(ref, r)
			return
		}
		copy(r[pos:], r[e:used])
		setRegionUsed(r, used-(e-pos))
		setRegionCount(r, count)
		return
	}
}

// stats returns the number of blocks and the size of the largest.
func (x *blockIndex) stats() (blocks, largest int) {
	x.table.all(func(ref regionRef) {
		largest = max(largest, regionCount(x.arena.region(ref)))
	})
	return x.table.count, largest
}

func uvarintLen(n int) int {
	return (bits.Len64(uint64(n)|1) + 6) / 7
}

// regionRef locates a region in an arena: chunk index << chunkBits | offset.
type regionRef uint64

// arena hands out regions of power-of-two sizes from large chunks, and
// recycles released regions by size class. Its chunks are the only
// pointers it holds.
type arena struct {
	chunks [][]byte
	free   [maxRegionClass + 1][]regionRef
	// tail is where the next region is cut from the last chunk.
	tail int
}

const (
	chunkBits      = 22 // 4 MiB chunks
	chunkSize      = 1 << chunkBits
	minRegionBits  = 5 // 32 bytes: a small block (key and one member)
	maxRegionClass = 62 - minRegionBits
)

func regionSize(class int) int { return 1 << (minRegionBits + class) }

// classFor returns the smallest size class that holds n bytes.
func classFor(n int) int {
	if n <= 1<<minRegionBits {
		return 0
	}
	return bits.Len64(uint64(n-1)) - minRegionBits
}

// region returns the bytes of a region (its length is its size class).
func (a *arena) region(ref regionRef) []byte {
	c := a.chunks[ref>>chunkBits]
	off := int(ref & (chunkSize - 1))
	size := regionSize(int(c[off+regionClassAt]))
	return c[off : off+size : off+size]
}

// alloc returns a region of the given class with its class byte set. The
// rest is not cleared: a region is only read up to the length its header
// records, and clearing would touch every line of a region that may be
// far larger than what is written into it.
func (a *arena) alloc(class int) (regionRef, []byte) {
	size := regionSize(class)
	var ref regionRef
	switch free := a.free[class]; {
	case len(free) > 0:
		ref = free[len(free)-1]
		a.free[class] = free[:len(free)-1]
	case size > chunkSize:
		// A region larger than a chunk gets a chunk of its own.
		a.chunks = append(a.chunks, make([]byte, size))
		ref = regionRef(len(a.chunks)-1) << chunkBits
	default:
		if len(a.chunks) == 0 || a.tail+size > len(a.chunks[len(a.chunks)-1]) || len(a.chunks[len(a.chunks)-1]) > chunkSize {
			a.chunks = append(a.chunks, make([]byte, chunkSize))
			a.tail = 0
		}
		ref = regionRef(len(a.chunks)-1)<<chunkBits | regionRef(a.tail)
		a.tail += size
	}
	c := a.chunks[ref>>chunkBits]
	off := int(ref & (chunkSize - 1))
	r := c[off : off+size : off+size]
	r[regionClassAt] = byte(class)
	return ref, r
}

// release returns a region to its class's free list.
func (a *arena) release(ref regionRef, r []byte) {
	class := int(r[regionClassAt])
	a.free[class] = append(a.free[class], ref)
}
