package mpi

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"unsafe"
)

// blockIndex is MemStore's blocking index: blocking key → the members filed
// under it, each a sort value and a record key, ordered by sort value and
// then record key. It is laid out for an index of millions of records,
// where every random memory access costs hundreds of nanoseconds and the
// garbage collector's cost grows with the number of pointers:
//
//   - a block is one region of a byte arena holding its own key followed by
//     its members, so reading a block is one slot of a flat hash table plus
//     one contiguous read (a map of strings to slices of strings costs a
//     cache miss per member key, because each key's bytes live somewhere
//     else);
//   - a member's record key is written as the number of its prefix (the
//     identifier system and its separator, shared by every record of a
//     source) and the rest: a record is filed under fifteen-odd blocks, and
//     the system's URI written into each was half of the blocking index's
//     memory.
//     Numbering whole keys instead (four bytes a member) saved a little more
//     memory but cost a cache miss per member read, as the key then lives
//     elsewhere: registration into an index of 200,000 persons took half as
//     long again;
//   - nothing in the index is a Go pointer except the arena's few chunks
//     and the prefixes, so a garbage collection does not walk millions of
//     block entries.
//
// Prefix numbers are this index's own (two indexes filled in different
// orders number them differently): members are ordered by record key, and
// returned as keys, never by number.
type blockIndex struct {
	table flatTable[regionRef] // by hash of the blocking key
	arena arena
	// prefixes holds each numbered key prefix, numbers finds a prefix's
	// number. Number 0 is the empty prefix of a key without a separator.
	prefixes []string
	numbers  map[string]uint64
	// longestPrefix is the length of the longest of prefixes.
	longestPrefix int
	// hash is HashString except in tests that force collisions.
	hash func(string) uint64
}

func newBlockIndex() *blockIndex {
	return &blockIndex{hash: HashString, prefixes: []string{""}, numbers: map[string]uint64{"": 0}}
}

// Region layout (little-endian):
//
//	[0]      size class: the region is regionSize(class) bytes
//	[1:5]    bytes in use, header included
//	[5:9]    number of members
//	[9:]     uvarint length + blocking key, then each member as uvarint
//	         length + sort value, uvarint prefix number, uvarint length +
//	         the rest of the record key; ordered by sort value, then record
//	         key, no duplicates
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

// member is a decoded member of a region: its sort value and the rest of its
// record key are slices of the region.
type member struct {
	sort   []byte
	prefix uint64
	rest   []byte
	// next is where the next member starts.
	next int
}

// memberAt decodes the member at pos. Nearly every length and prefix number
// is below 128, one byte: that case is decoded here without a call.
func memberAt(r []byte, pos int) member {
	var m member
	n := uint64(r[pos])
	if n < 0x80 {
		pos++
	} else {
		n, pos = uvarintAt(r, pos)
	}
	m.sort, pos = r[pos:pos+int(n)], pos+int(n)
	if m.prefix = uint64(r[pos]); m.prefix < 0x80 {
		pos++
	} else {
		m.prefix, pos = uvarintAt(r, pos)
	}
	if n = uint64(r[pos]); n < 0x80 {
		pos++
	} else {
		n, pos = uvarintAt(r, pos)
	}
	m.rest, m.next = r[pos:pos+int(n)], pos+int(n)
	return m
}

// uvarintAt decodes the uvarint at pos and returns it with the position
// after it.
func uvarintAt(r []byte, pos int) (uint64, int) {
	v, w := binary.Uvarint(r[pos:])
	return v, pos + w
}

// nextMember returns where the member after the one at pos starts.
func nextMember(r []byte, pos int) int {
	return skipKey(r, skipBytes(r, pos)) // the sort value, then the key
}

// sortAt returns where the sort value of the member at pos lies,
// r[start:end]; its key starts at end.
func sortAt(r []byte, pos int) (start, end int) {
	if n := int(r[pos]); n < 0x80 {
		return pos + 1, pos + 1 + n
	}
	n, start := uvarintAt(r, pos)
	return start, start + int(n)
}

// skipKey returns where the member's key that starts at pos ends.
func skipKey(r []byte, pos int) int {
	if r[pos] < 0x80 { // the prefix number
		pos++
	} else {
		_, pos = uvarintAt(r, pos)
	}
	return skipBytes(r, pos) // the rest of the key
}

// skipBytes returns where the length-prefixed bytes at pos end.
func skipBytes(r []byte, pos int) int {
	if n := int(r[pos]); n < 0x80 {
		return pos + 1 + n
	}
	n, pos := uvarintAt(r, pos)
	return pos + int(n)
}

// splitKey splits a record key after its first separator (system|value):
// the prefix, shared by every record of a source, and the rest.
func splitKey(key RecordKey) (prefix, rest string) {
	i := strings.IndexByte(string(key), '|')
	return string(key[:i+1]), string(key[i+1:])
}

// prefixNumber returns the number of a key prefix, numbering it if new.
func (x *blockIndex) prefixNumber(prefix string) uint64 {
	if n, ok := x.numbers[prefix]; ok {
		return n
	}
	n := uint64(len(x.prefixes))
	// A copy: the caller's key may be part of a record it reuses.
	prefix = strings.Clone(prefix)
	x.prefixes = append(x.prefixes, prefix)
	x.numbers[prefix] = n
	x.longestPrefix = max(x.longestPrefix, len(prefix))
	return n
}

// compare orders a member against a sort value and a record key split by
// splitKey, whose prefix has the given number, without building the
// member's key.
func (x *blockIndex) compare(m *member, sort string, number uint64, rest string) int {
	if c := bytes.Compare(m.sort, unsafeBytes(sort)); c != 0 {
		return c
	}
	if m.prefix == number {
		return bytes.Compare(m.rest, unsafeBytes(rest))
	}
	return compareJoined(unsafeBytes(x.prefixes[m.prefix]), m.rest, unsafeBytes(x.prefixes[number]), unsafeBytes(rest))
}

// unsafeBytes views a string's bytes, for reading only: comparing a
// region's bytes with a string would otherwise copy one of them, on every
// member a registration files or removes.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// compareJoined compares a1+a2 with b1+b2 without joining them.
func compareJoined(a1, a2, b1, b2 []byte) int {
	for {
		if len(a1) == 0 {
			a1, a2 = a2, nil
		}
		if len(b1) == 0 {
			b1, b2 = b2, nil
		}
		if len(a1) == 0 || len(b1) == 0 {
			return cmp.Compare(len(a1), len(b1))
		}
		n := min(len(a1), len(b1))
		if c := bytes.Compare(a1[:n], b1[:n]); c != 0 {
			return c
		}
		a1, b1 = a1[n:], b1[n:]
	}
}

// appendKey appends a member's record key to buf.
func (x *blockIndex) appendKey(buf []byte, m *member) []byte {
	return append(append(buf, x.prefixes[m.prefix]...), m.rest...)
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
	first, end, n, complete := x.window(r, block.Sort, limit)
	// A copy of their own: the region's bytes change on the next insert.
	keys, ends := x.appendMembers(make([]byte, 0, x.keysLenBound(first, end, n)), nil, r, first, end)
	return appendKeys(buf, keys, ends, 0, len(ends)), complete
}

// window returns where in r the members to read lie, r[first:end], how many
// they are, and whether they are all of the region's members: all of them
// when there are at most limit, else the window of limit members around the
// position of at.
func (x *blockIndex) window(r []byte, at string, limit int) (first, end, n int, complete bool) {
	count := regionCount(r)
	_, pos := regionKey(r)
	if limit <= 0 {
		return pos, pos, 0, count == 0
	}
	skip := 0
	if count > limit {
		// The position at would take: before the first member whose sort
		// value is at or above it.
		p, scan := 0, pos
		for ; p < count; p++ {
			start, end := sortAt(r, scan)
			if string(r[start:end]) >= at {
				break
			}
			scan = skipKey(r, end)
		}
		skip = min(max(p-limit/2, 0), count-limit)
	}
	for i := 0; i < skip; i++ {
		pos = nextMember(r, pos)
	}
	n = min(count-skip, limit)
	first, end = pos, pos
	for i := 0; i < n; i++ {
		end = nextMember(r, end)
	}
	return first, end, n, count <= limit
}

// appendMembers appends the record keys of the members in r[first:end] (see
// window) to keys, and where each ends in keys to ends. It decodes members
// in line (memberAt would also slice out the sort value, which is not
// wanted here): this loop runs for every member a registration reads, some
// eight hundred in a large index.
func (x *blockIndex) appendMembers(keys []byte, ends []int, r []byte, first, end int) ([]byte, []int) {
	for p := first; p < end; {
		n := int(r[p])
		if n < 0x80 {
			p++
		} else {
			v, q := uvarintAt(r, p)
			n, p = int(v), q
		}
		p += n // the sort value
		prefix := uint64(r[p])
		if prefix < 0x80 {
			p++
		} else {
			prefix, p = uvarintAt(r, p)
		}
		n = int(r[p])
		if n < 0x80 {
			p++
		} else {
			v, q := uvarintAt(r, p)
			n, p = int(v), q
		}
		keys = append(append(keys, x.prefixes[prefix]...), r[p:p+n]...)
		ends = append(ends, len(keys))
		p += n
	}
	return keys, ends
}

// keysLenBound is at least the length of the record keys of the count
// members in r[first:end]: each holds the rest of its key, and its prefix
// number stands for at most the longest prefix.
func (x *blockIndex) keysLenBound(first, end, count int) int {
	return end - first + count*x.longestPrefix
}

// appendKeys appends to buf keys from to to of those appendMembers wrote
// into keys: key j is keys[ends[j-1]:ends[j]], the first starting at 0. The
// strings are views of keys, not copies: the caller must not change those
// bytes while it holds them.
func appendKeys(buf []RecordKey, keys []byte, ends []int, from, to int) []RecordKey {
	for j := from; j < to; j++ {
		start := 0
		if j > 0 {
			start = ends[j-1]
		}
		if start == ends[j] {
			buf = append(buf, "")
			continue
		}
		buf = append(buf, RecordKey(unsafe.String(&keys[start], ends[j]-start)))
	}
	return buf
}

// add files a record under block at a sort value (idempotent).
func (x *blockIndex) add(block, sort string, key RecordKey) error {
	prefix, rest := splitKey(key)
	number := x.prefixNumber(prefix)
	entry := uvarintLen(len(sort)) + len(sort) + uvarintLen(int(number)) + uvarintLen(len(rest)) + len(rest)
	ref, r, ok := x.find(block)
	if !ok {
		need := regionHeaderSz + uvarintLen(len(block)) + len(block) + entry
		var err error
		if ref, r, err = x.arena.alloc(classFor(need)); err != nil {
			return err
		}
		n := regionHeaderSz + binary.PutUvarint(r[regionHeaderSz:], uint64(len(block)))
		n += copy(r[n:], block)
		setRegionUsed(r, n)
		setRegionCount(r, 0)
		x.table.set(x.hash(block), x.isBlock(block), ref)
	}
	used := regionUsed(r)
	pos, present := x.position(r, sort, number, rest)
	if present {
		return nil
	}
	if used+entry > len(r) {
		newRef, grown, err := x.arena.alloc(classFor(used + entry))
		if err != nil {
			return err
		}
		copy(grown[1:], r[1:used])
		x.table.set(x.hash(block), x.isBlock(block), newRef)
		x.arena.release(ref, r)
		ref, r = newRef, grown
	}
	copy(r[pos+entry:], r[pos:used])
	w := pos + binary.PutUvarint(r[pos:], uint64(len(sort)))
	w += copy(r[w:], sort)
	w += binary.PutUvarint(r[w:], number)
	w += binary.PutUvarint(r[w:], uint64(len(rest)))
	copy(r[w:], rest)
	setRegionUsed(r, used+entry)
	setRegionCount(r, regionCount(r)+1)
	return nil
}

// del removes a record filed under block at a sort value (idempotent); a
// block left empty is released.
func (x *blockIndex) del(block, sort string, key RecordKey) {
	ref, r, ok := x.find(block)
	if !ok {
		return
	}
	prefix, rest := splitKey(key)
	number, known := x.numbers[prefix]
	if !known {
		return
	}
	pos, present := x.position(r, sort, number, rest)
	if !present {
		return
	}
	count := regionCount(r) - 1
	if count == 0 {
		x.table.delete(x.hash(block), x.isBlock(block))
		x.arena.release(ref, r)
		return
	}
	used, next := regionUsed(r), nextMember(r, pos)
	copy(r[pos:], r[next:used])
	setRegionUsed(r, used-(next-pos))
	setRegionCount(r, count)
}

// position returns where in r the member of this sort value and record key
// (split by splitKey, its prefix numbered) is, or would be inserted, and
// whether it is there. Members of a lower sort value are passed over on
// their sort value alone: filing a record scans half of each of its blocks,
// some hundreds of members in the large blocks of a large index.
func (x *blockIndex) position(r []byte, sort string, number uint64, rest string) (int, bool) {
	used := regionUsed(r)
	_, pos := regionKey(r)
	target := unsafeBytes(sort)
	for pos < used {
		start, end := sortAt(r, pos)
		switch c := bytes.Compare(r[start:end], target); {
		case c < 0:
			pos = skipKey(r, end)
			continue
		case c > 0:
			return pos, false
		}
		m := memberAt(r, pos)
		switch c := x.compare(&m, sort, number, rest); {
		case c < 0:
			pos = m.next
		case c > 0:
			return pos, false
		default:
			return pos, true
		}
	}
	return pos, false
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

// regionRef locates a region in an arena in 32 bits, so that a slot of the
// blocking index's table is 8 bytes: the chunk's index << offsetBits | the
// offset in 16-byte units (every class is a multiple of 16 bytes and a
// chunk's first region starts at 0). An arena holds at most maxChunks
// chunks: 64 GiB.
type regionRef uint32

const (
	regionAlignBits = 4
	offsetBits      = chunkBits - regionAlignBits
	maxChunks       = 1 << (32 - offsetBits)
)

// ErrIndexFull is returned (wrapped) when the blocking index's arena can
// take no more chunks.
var ErrIndexFull = errors.New("the in-memory blocking index is full")

func makeRegionRef(chunk, offset int) regionRef {
	return regionRef(chunk<<offsetBits | offset>>regionAlignBits)
}

func (ref regionRef) chunk() int  { return int(ref >> offsetBits) }
func (ref regionRef) offset() int { return int(ref&(1<<offsetBits-1)) << regionAlignBits }

// arena hands out regions from large chunks, and recycles released regions
// by size class. The classes step by half a power of two (32, 48, 64, 96…
// bytes): most blocks hold one member in 40-odd bytes, which a 64-byte class
// left a third empty. In an index of 180,000 generated persons, powers of
// two left 35% of the regions' bytes unused, these steps 17%. Its chunks
// are the only pointers it holds.
type arena struct {
	chunks [][]byte
	free   [maxRegionClass + 1][]regionRef
	// tail is where the next region is cut from the last chunk.
	tail int
}

const (
	chunkBits      = 22 // 4 MiB chunks
	chunkSize      = 1 << chunkBits
	minRegionBits  = 5 // 32 bytes: the smallest class
	maxRegionClass = 2*(61-minRegionBits) + 1
)

// regionSize is the size of a class: 2<<k or 3<<k bytes for even and odd classes.
func regionSize(class int) int { return (2 + class&1) << (minRegionBits - 1 + class>>1) }

// classFor returns the smallest size class that holds n bytes.
func classFor(n int) int {
	if n <= 1<<minRegionBits {
		return 0
	}
	class := 2 * (bits.Len64(uint64(n-1)) - minRegionBits) // the power of two at or above n
	if regionSize(class-1) >= n {
		class--
	}
	return class
}

// region returns the bytes of a region (its length is its size class).
func (a *arena) region(ref regionRef) []byte {
	c, off := a.chunks[ref.chunk()], ref.offset()
	size := regionSize(int(c[off+regionClassAt]))
	return c[off : off+size : off+size]
}

// alloc returns a region of the given class with its class byte set. The
// rest is not cleared: a region is only read up to the length its header
// records, and clearing would touch every line of a region that may be
// far larger than what is written into it.
func (a *arena) alloc(class int) (regionRef, []byte, error) {
	size := regionSize(class)
	var ref regionRef
	switch free := a.free[class]; {
	case len(free) > 0:
		ref = free[len(free)-1]
		a.free[class] = free[:len(free)-1]
	case size > chunkSize:
		// A region larger than a chunk gets a chunk of its own.
		if len(a.chunks) == maxChunks {
			return 0, nil, fmt.Errorf("%w: %d chunks", ErrIndexFull, maxChunks)
		}
		a.chunks = append(a.chunks, make([]byte, size))
		ref = makeRegionRef(len(a.chunks)-1, 0)
	default:
		if len(a.chunks) == 0 || a.tail+size > len(a.chunks[len(a.chunks)-1]) || len(a.chunks[len(a.chunks)-1]) > chunkSize {
			if len(a.chunks) == maxChunks {
				return 0, nil, fmt.Errorf("%w: %d chunks", ErrIndexFull, maxChunks)
			}
			a.chunks = append(a.chunks, make([]byte, chunkSize))
			a.tail = 0
		}
		ref = makeRegionRef(len(a.chunks)-1, a.tail)
		a.tail += size
	}
	c, off := a.chunks[ref.chunk()], ref.offset()
	r := c[off : off+size : off+size]
	r[regionClassAt] = byte(class)
	return ref, r, nil
}

// release returns a region to its class's free list.
func (a *arena) release(ref regionRef, r []byte) {
	class := int(r[regionClassAt])
	a.free[class] = append(a.free[class], ref)
}
