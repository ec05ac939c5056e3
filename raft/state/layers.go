package state

import (
	"bytes"
	"fmt"
	"slices"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The state machine writes into memory, not into bbolt. Each batch of applied entries fills
// a layer: the keys it put or deleted, bucket by bucket, in key order. When the batch ends,
// its layer is frozen and readers see it from then on, on top of the state file; a flush
// later writes the frozen layers into the file in one bbolt transaction, in order, and drops
// them. The Raft log is the write-ahead log of this arrangement, as it already was of the
// group commit: after a crash the entries after the file's applied index are applied again.
//
// Why: bbolt has one writer. While a commit wrote and fsynced pages, the next batch could not
// begin, and the state machine spent a quarter to a third of a bulk load waiting (a third at
// 300,000 persons). A registration also puts keys into five randomly ordered trees, so a
// commit of a few hundred registrations rewrote a page per key; a flush of a second's
// registrations, in key order, rewrites each page once.
//
// A layer bucket that was dropped (deleted, or created new) hides everything below it.

// layerEntry is one key of a layer bucket: its value, or a deletion.
type layerEntry struct {
	key, value []byte
	deleted    bool
}

// layerBucket is what one layer changed of one bucket: by key for Get, which reads every
// layer above the file, and in key order for cursors and the flush. The order is made
// lazily: new keys are appended to tail and merged into sorted when something needs the
// order (a cursor of the state machine's own batch, the freeze), because most batches write
// far more keys than they walk, and a search tree cost Apply as much as bbolt's own puts.
// A frozen layer is sorted and never changes again, so readers share it without locks.
type layerBucket struct {
	byKey  map[string]*layerEntry
	sorted []*layerEntry
	tail   []*layerEntry
	// dropped: the bucket was deleted in this layer, and exists says whether it was then
	// created again; nothing of the layers below or of the file shows through.
	dropped, exists bool
	// seq is the bucket's sequence, if the layer set it.
	seq    uint64
	seqSet bool
}

func (lb *layerBucket) get(key []byte) (*layerEntry, bool) {
	e, ok := lb.byKey[string(key)]
	return e, ok
}

func (lb *layerBucket) empty() bool {
	return !lb.dropped && !lb.seqSet && len(lb.byKey) == 0
}

func compareLayerEntries(a, b *layerEntry) int { return bytes.Compare(a.key, b.key) }

// order merges the keys added since the last call into sorted.
func (lb *layerBucket) order() []*layerEntry {
	if len(lb.tail) == 0 {
		return lb.sorted
	}
	slices.SortFunc(lb.tail, compareLayerEntries)
	if len(lb.sorted) == 0 {
		lb.sorted, lb.tail = lb.tail, nil
		return lb.sorted
	}
	merged := make([]*layerEntry, 0, len(lb.sorted)+len(lb.tail))
	i, j := 0, 0
	for i < len(lb.sorted) && j < len(lb.tail) {
		if compareLayerEntries(lb.sorted[i], lb.tail[j]) <= 0 {
			merged = append(merged, lb.sorted[i])
			i++
		} else {
			merged = append(merged, lb.tail[j])
			j++
		}
	}
	merged = append(append(merged, lb.sorted[i:]...), lb.tail[j:]...)
	lb.sorted, lb.tail = merged, nil
	return lb.sorted
}

// ceiling returns the position of the first entry after from (at or after it if inclusive),
// in order().
func (lb *layerBucket) ceiling(from []byte, inclusive bool) int {
	sorted := lb.order()
	if from == nil {
		return 0
	}
	i, found := slices.BinarySearchFunc(sorted, from, func(e *layerEntry, k []byte) int { return bytes.Compare(e.key, k) })
	if found && !inclusive {
		i++
	}
	return i
}

// floor returns the position of the last entry before from (at or before it if inclusive),
// or -1.
func (lb *layerBucket) floor(from []byte, inclusive bool) int {
	sorted := lb.order()
	if from == nil {
		return len(sorted) - 1
	}
	i, found := slices.BinarySearchFunc(sorted, from, func(e *layerEntry, k []byte) int { return bytes.Compare(e.key, k) })
	if found && inclusive {
		return i
	}
	return i - 1
}

// layer is the writes of one batch of entries.
type layer struct {
	buckets map[string]*layerBucket
	// last is the applied index the layer ends at (0 until it is frozen).
	last uint64
	// size approximates the memory the layer holds, for the flush policy.
	size int
	// keys counts the keys the layer put or deleted: what a flush of it makes bbolt touch.
	keys int
	// slab and entries are where the layer keeps the keys, values and entries put into it
	// (see keep): a batch puts several keys per registration, and four allocations per put
	// (key, value, entry, map key) were a fifth of the state machine's allocations, each
	// one more object for the garbage collector to mark while the layer waits for a flush.
	slab    []byte
	entries []layerEntry
}

func newLayer() *layer { return &layer{buckets: map[string]*layerBucket{}} }

func (l *layer) bucket(name []byte) *layerBucket {
	lb := l.buckets[string(name)]
	if lb == nil {
		lb = &layerBucket{}
		l.buckets[string(name)] = lb
	}
	return lb
}

// Slab sizes: a layer copies keys and values into chunks of layerSlabChunk bytes (a
// value larger than a quarter of that gets an allocation of its own, so that a chunk is
// not abandoned half empty) and makes entries layerEntryChunk at a time.
const (
	layerSlabChunk  = 64 << 10
	layerEntryChunk = 256
)

// keep returns the layer's own copy of b (nil for nil). The copy is never written again
// and its capacity ends where it does, so an append to it cannot reach a neighbour.
func (l *layer) keep(b []byte) []byte {
	if b == nil {
		return nil
	}
	if len(b) > layerSlabChunk/4 {
		return bytes.Clone(b)
	}
	if len(b) > cap(l.slab)-len(l.slab) {
		l.slab = make([]byte, 0, layerSlabChunk)
	}
	start := len(l.slab)
	l.slab = append(l.slab, b...)
	return l.slab[start:len(l.slab):len(l.slab)]
}

// newEntry returns a zero entry from the layer's current chunk of entries.
func (l *layer) newEntry() *layerEntry {
	if len(l.entries) == cap(l.entries) {
		l.entries = make([]layerEntry, 0, layerEntryChunk)
	}
	l.entries = l.entries[:len(l.entries)+1]
	return &l.entries[len(l.entries)-1]
}

// put sets key to a copy of value (or deletes it) in lb. The layer keeps its own copies
// of key and value, so the caller may reuse both.
func (l *layer) put(lb *layerBucket, key, value []byte, deleted bool) {
	if e, ok := lb.byKey[string(key)]; ok {
		// The old value stays in the slab until the layer is dropped: count the new one
		// in full.
		e.value, e.deleted = l.keep(value), deleted
		l.size += len(value)
		return
	}
	if lb.byKey == nil {
		lb.byKey = map[string]*layerEntry{}
	}
	e := l.newEntry()
	e.key, e.value, e.deleted = l.keep(key), l.keep(value), deleted
	// The map's key shares the bytes of e.key: they are never written again, which is all
	// a string asks of its bytes.
	lb.byKey[unsafe.String(unsafe.SliceData(e.key), len(e.key))] = e
	lb.tail = append(lb.tail, e)
	l.size += layerEntryOverhead + len(key) + len(value)
	l.keys++
}

// freeze puts every bucket of the layer in order and leaves out those it only read: from
// then on it is only read.
func (l *layer) freeze() {
	for name, lb := range l.buckets {
		if lb.empty() {
			delete(l.buckets, name)
			continue
		}
		lb.order()
	}
}

// layerEntryOverhead is a rough per-key cost of a layer (the map's slot, the entry and its
// place in the ordered slice), so that many small keys count for something.
const layerEntryOverhead = 64

func (l *layer) empty() bool {
	for _, lb := range l.buckets {
		if !lb.empty() {
			return false
		}
	}
	return true
}

// appliedIndex is the applied index the layer wrote, if it wrote one.
func (l *layer) appliedIndex() (uint64, bool) {
	lb := l.buckets[string(bucketMeta)]
	if lb == nil {
		return 0, false
	}
	e, ok := lb.get(keyAppliedIndex)
	if !ok || e.deleted {
		return 0, false
	}
	return decodeUint(e.value), true
}

// writeTo applies the layer to a bbolt write transaction, bucket by bucket in name order and
// key by key in key order.
func (l *layer) writeTo(tx *bolt.Tx) error {
	names := make([]string, 0, len(l.buckets))
	for name := range l.buckets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		lb := l.buckets[name]
		if lb.empty() {
			continue
		}
		if lb.dropped {
			if tx.Bucket([]byte(name)) != nil {
				if err := tx.DeleteBucket([]byte(name)); err != nil {
					return fmt.Errorf("drop bucket %s: %w", name, err)
				}
			}
			if !lb.exists {
				continue
			}
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		b := tx.Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("bucket %s: %w", name, berrors.ErrBucketNotFound)
		}
		if appended(name) {
			b.FillPercent = appendedFill
		}
		for _, e := range lb.order() {
			var err error
			if e.deleted {
				err = b.Delete(e.key)
			} else {
				err = b.Put(e.key, e.value)
			}
			if err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		if lb.seqSet {
			if err := b.SetSequence(lb.seq); err != nil {
				return fmt.Errorf("bucket %s: set sequence: %w", name, err)
			}
		}
	}
	return nil
}

// appended reports whether a bucket's new keys come after every key it holds (slots and
// sequence numbers). bbolt splits a full page in half, which for keys that only ever come
// at the end leaves every page half empty: the state file of a million persons was 5.6 GB,
// and a flush wrote the pages of its new records half empty. Their pages are filled to
// appendedFill instead (bbolt's Bucket.FillPercent, for mostly appended buckets); a page a
// later update grows is split as any other.
func appended(bucket string) bool {
	switch bucket {
	case string(bucketMPIRecords), string(bucketPatients), string(bucketLinkEventOrder), string(bucketAudit):
		return true
	}
	return false
}

// appendedFill is how full the pages of the buckets appended reports are filled before a split.
const appendedFill = 0.95

// kvTx is a transaction on the state as bbolt's API offers it, reading through layers.
//
// A reader's kvTx is a bbolt read transaction and the frozen layers above its applied index.
// The state machine's adds the layer it writes (top). A kvTx over a bbolt write transaction
// and no layers writes straight into the file (opening a file, clearing a snapshot's applied
// index).
type kvTx struct {
	bolt *bolt.Tx
	// layers are the frozen layers the transaction sees, oldest first.
	layers []*layer
	top    *layer
	// buckets caches what Bucket found through the layers (state accessors ask for a
	// bucket on every call); creating or deleting a bucket clears it.
	buckets map[string]*kvBucket
	// encoded is the buffer the typed accessors encode a value into before Put, which
	// copies it (see encodeBuffer).
	encoded []byte
}

// encodeBuffer returns the transaction's buffer for encoding a value, emptied; the caller
// hands back what it encoded with keepBuffer, so that the next value reuses its capacity.
// A value encoded here is only valid until the next encodeBuffer: it is for Put, which
// keeps its own copy.
func (t *kvTx) encodeBuffer() []byte { return t.encoded[:0] }

// keepBuffer keeps an encoded value's capacity for the next encodeBuffer.
func (t *kvTx) keepBuffer(v []byte) { t.encoded = v }

// keyBufferSize covers the keys the state machine writes for every registration (record
// keys, EUIDs and the composite keys made of them), so that keyBytes builds them on the
// stack.
const keyBufferSize = 96

// keyBytes returns s as bytes in buf, for a Get, Seek or Put, none of which keeps the key:
// with buf a local array, the conversion costs no allocation for a key that fits.
func keyBytes(buf *[keyBufferSize]byte, s string) []byte { return append(buf[:0], s...) }

// levels returns the layer buckets of name that the transaction sees, newest first, ending
// at the first that was dropped, and whether the file's bucket shows through beneath them.
func (t *kvTx) levels(name []byte) (levels []*layerBucket, throughToFile bool) {
	add := func(l *layer) bool {
		lb := l.buckets[string(name)]
		if lb == nil {
			return true
		}
		levels = append(levels, lb)
		return !lb.dropped
	}
	if t.top != nil && !add(t.top) {
		return levels, false
	}
	for i := len(t.layers) - 1; i >= 0; i-- {
		if !add(t.layers[i]) {
			return levels, false
		}
	}
	return levels, true
}

// Bucket returns the bucket of that name, or nil if there is none.
func (t *kvTx) Bucket(name []byte) *kvBucket {
	if t.top == nil && len(t.layers) == 0 {
		b := t.bolt.Bucket(name)
		if b == nil {
			return nil
		}
		return &kvBucket{tx: t, base: b}
	}
	if kb := t.buckets[string(name)]; kb != nil {
		return kb
	}
	levels, through := t.levels(name)
	kb := &kvBucket{tx: t, levels: levels}
	if through {
		kb.base = t.bolt.Bucket(name)
		if kb.base == nil && len(levels) == 0 {
			return nil
		}
	} else if !levels[len(levels)-1].exists {
		return nil
	}
	if t.top != nil {
		kb.top = t.top.bucket(name)
		if len(kb.levels) == 0 || kb.levels[0] != kb.top {
			kb.levels = append([]*layerBucket{kb.top}, kb.levels...)
		}
	}
	if t.buckets == nil {
		t.buckets = map[string]*kvBucket{}
	}
	t.buckets[string(name)] = kb
	return kb
}

// writable reports whether the transaction may write, and errors as bbolt does if not.
func (t *kvTx) writable() error {
	if t.top == nil && !t.bolt.Writable() {
		return berrors.ErrTxNotWritable
	}
	return nil
}

// CreateBucketIfNotExists returns the bucket, creating it if needed.
func (t *kvTx) CreateBucketIfNotExists(name []byte) (*kvBucket, error) {
	if err := t.writable(); err != nil {
		return nil, err
	}
	if t.top == nil {
		b, err := t.bolt.CreateBucketIfNotExists(name)
		if err != nil {
			return nil, err
		}
		return &kvBucket{tx: t, base: b}, nil
	}
	if len(name) == 0 {
		return nil, berrors.ErrBucketNameRequired
	}
	if b := t.Bucket(name); b != nil {
		return b, nil
	}
	lb := t.top.bucket(name)
	lb.dropped, lb.exists = true, true
	clear(t.buckets)
	return t.Bucket(name), nil
}

// DeleteBucket deletes the bucket and everything in it.
func (t *kvTx) DeleteBucket(name []byte) error {
	if err := t.writable(); err != nil {
		return err
	}
	if t.top == nil {
		return t.bolt.DeleteBucket(name)
	}
	if t.Bucket(name) == nil {
		return berrors.ErrBucketNotFound
	}
	lb := t.top.bucket(name)
	for _, e := range lb.byKey {
		t.top.size -= len(e.key) + len(e.value) + layerEntryOverhead
	}
	*lb = layerBucket{dropped: true}
	clear(t.buckets)
	return nil
}

// ForEach calls fn for every bucket, in name order.
func (t *kvTx) ForEach(fn func(name []byte, b *kvBucket) error) error {
	var names [][]byte
	err := t.bolt.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, slices.Clone(name))
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range append(slices.Clone(t.layers), t.top) {
		if l == nil {
			continue
		}
		for name := range l.buckets {
			names = append(names, []byte(name))
		}
	}
	slices.SortFunc(names, bytes.Compare)
	names = slices.CompactFunc(names, bytes.Equal)
	for _, name := range names {
		if b := t.Bucket(name); b != nil {
			if err := fn(name, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// kvBucket is a bucket seen through the transaction's layers.
type kvBucket struct {
	tx *kvTx
	// levels are the bucket's layer buckets, newest (the writable one, if any) first.
	levels []*layerBucket
	top    *layerBucket
	// base is the file's bucket, nil if none shows through.
	base *bolt.Bucket
}

// Get returns the value of key, or nil. The value is valid for the transaction's life and
// must not be modified.
func (b *kvBucket) Get(key []byte) []byte {
	for _, lb := range b.levels {
		if e, ok := lb.get(key); ok {
			if e.deleted {
				return nil
			}
			return e.value
		}
		if lb.dropped {
			return nil
		}
	}
	if b.base == nil {
		return nil
	}
	return b.base.Get(key)
}

// direct returns the file's bucket of a transaction that writes straight into the file (no
// layer to write into), or bbolt's error for a transaction that may not write.
func (b *kvBucket) direct() (*bolt.Bucket, error) {
	if b.base == nil || !b.tx.bolt.Writable() {
		return nil, berrors.ErrTxNotWritable
	}
	return b.base, nil
}

// Put sets key to value, refusing what bbolt would refuse. It keeps its own copies of key
// and value: the caller may reuse their bytes (the typed accessors encode values into a
// buffer of the transaction, see kvTx.encodeBuffer).
func (b *kvBucket) Put(key, value []byte) error {
	if b.top == nil {
		file, err := b.direct()
		if err != nil {
			return err
		}
		// bbolt keeps the value until the transaction commits. It copies the key, but
		// handing it the caller's would make every caller's key escape to the heap
		// (keyBytes); this path only runs while a file is opened or restored.
		return file.Put(bytes.Clone(key), bytes.Clone(value))
	}
	switch {
	case len(key) == 0:
		return berrors.ErrKeyRequired
	case len(key) > bolt.MaxKeySize:
		return berrors.ErrKeyTooLarge
	case int64(len(value)) > bolt.MaxValueSize:
		return berrors.ErrValueTooLarge
	}
	// The layer outlives the transaction: it keeps its own copies (a value read from the
	// file is only valid while the read transaction is open).
	// (A nil value reads back as nil, as bbolt gives it back inside the transaction that
	// put it; rls tells such keys apart by their presence under a cursor, never by Get.)
	b.tx.top.put(b.top, key, value, false)
	return nil
}

// Delete removes key, if present.
func (b *kvBucket) Delete(key []byte) error {
	if b.top == nil {
		file, err := b.direct()
		if err != nil {
			return err
		}
		return file.Delete(key)
	}
	b.tx.top.put(b.top, key, nil, true)
	return nil
}

// Sequence returns the bucket's sequence.
func (b *kvBucket) Sequence() uint64 {
	for _, lb := range b.levels {
		if lb.seqSet {
			return lb.seq
		}
		if lb.dropped {
			return 0
		}
	}
	if b.base == nil {
		return 0
	}
	return b.base.Sequence()
}

// NextSequence increments the bucket's sequence and returns it.
func (b *kvBucket) NextSequence() (uint64, error) {
	if b.top == nil {
		file, err := b.direct()
		if err != nil {
			return 0, err
		}
		return file.NextSequence()
	}
	next := b.Sequence() + 1
	b.top.seq, b.top.seqSet = next, true
	return next, nil
}

// kvStats is the part of bbolt's bucket statistics rls reads.
type kvStats struct{ KeyN int }

// Stats counts the bucket's keys.
func (b *kvBucket) Stats() kvStats {
	n := 0
	if b.base != nil {
		n = b.base.Stats().KeyN
	}
	if len(b.levels) == 0 {
		return kvStats{KeyN: n}
	}
	// Each key a layer holds counts by its newest version, against the file's.
	seen := map[string]bool{}
	for _, lb := range b.levels {
		for k, e := range lb.byKey {
			if seen[k] {
				continue
			}
			seen[k] = true
			if !e.deleted {
				n++
			}
			if b.base != nil && b.base.Get(e.key) != nil {
				n--
			}
		}
		if lb.dropped {
			break
		}
	}
	return kvStats{KeyN: n}
}

// ForEach calls fn for every key in key order.
func (b *kvBucket) ForEach(fn func(k, v []byte) error) error {
	if len(b.levels) == 0 {
		return b.base.ForEach(fn)
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Cursor returns a cursor over the bucket.
func (b *kvBucket) Cursor() *kvCursor {
	c := &kvCursor{b: b}
	if b.base != nil {
		c.file = b.base.Cursor()
	}
	return c
}

// kvCursor walks a bucket through its layers: at each step it takes the nearest key of the
// file and of every layer and shows the newest version of it, skipping deletions. It keeps
// its place by key, so the bucket may change under it. (It has no Delete: bbolt's cursor
// skips a key when one is deleted under it, so rls deletes by key; see deleteKeys.)
type kvCursor struct {
	b    *kvBucket
	file *bolt.Cursor
	// key is the key the cursor is on (nil: none).
	key []byte
	// fileKey, fileValue are the file cursor's item; forward says the file cursor was last
	// moved forward, so that fileKey is the file's first key at or after key.
	fileKey, fileValue []byte
	forward            bool
}

// First moves to the first key.
func (c *kvCursor) First() ([]byte, []byte) {
	if len(c.b.levels) == 0 {
		return c.file.First()
	}
	c.forward = false
	return c.next(nil, true)
}

// Seek moves to the first key at or after seek.
func (c *kvCursor) Seek(seek []byte) ([]byte, []byte) {
	if len(c.b.levels) == 0 {
		return c.file.Seek(seek)
	}
	c.forward = false
	return c.next(seek, true)
}

// Next moves to the next key.
func (c *kvCursor) Next() ([]byte, []byte) {
	if len(c.b.levels) == 0 {
		return c.file.Next()
	}
	if c.key == nil {
		return nil, nil
	}
	return c.next(c.key, false)
}

// Last moves to the last key.
func (c *kvCursor) Last() ([]byte, []byte) {
	if len(c.b.levels) == 0 {
		return c.file.Last()
	}
	return c.prev(nil, true)
}

// Prev moves to the previous key.
func (c *kvCursor) Prev() ([]byte, []byte) {
	if len(c.b.levels) == 0 {
		return c.file.Prev()
	}
	if c.key == nil {
		return nil, nil
	}
	return c.prev(c.key, false)
}

// after reports whether k lies after from (at or after it if inclusive); a nil from is
// before every key.
func after(k, from []byte, inclusive bool) bool {
	if from == nil {
		return true
	}
	cmp := bytes.Compare(k, from)
	return cmp > 0 || inclusive && cmp == 0
}

// before is after's mirror: whether k lies before from (at or before it if inclusive).
func before(k, from []byte, inclusive bool) bool {
	if from == nil {
		return true
	}
	cmp := bytes.Compare(k, from)
	return cmp < 0 || inclusive && cmp == 0
}

// next moves to the first live key after from.
func (c *kvCursor) next(from []byte, inclusive bool) ([]byte, []byte) {
	for {
		if c.file != nil {
			if !c.forward || from == nil {
				if from == nil {
					c.fileKey, c.fileValue = c.file.First()
				} else {
					c.fileKey, c.fileValue = c.file.Seek(from)
				}
				c.forward = true
			}
			for c.fileKey != nil && !after(c.fileKey, from, inclusive) {
				c.fileKey, c.fileValue = c.file.Next()
			}
		}
		var least []byte
		if c.file != nil {
			least = c.fileKey
		}
		for _, lb := range c.b.levels {
			if i := lb.ceiling(from, inclusive); i < len(lb.sorted) {
				if k := lb.sorted[i].key; least == nil || bytes.Compare(k, least) < 0 {
					least = k
				}
			}
			if lb.dropped {
				break
			}
		}
		if least == nil {
			c.key = nil
			return nil, nil
		}
		if v, live := c.resolve(least); live {
			c.key = least
			return least, v
		}
		from, inclusive = least, false
	}
}

// prev moves to the last live key before from.
func (c *kvCursor) prev(from []byte, inclusive bool) ([]byte, []byte) {
	c.forward = false
	for {
		var fileKey, fileValue []byte
		if c.file != nil {
			if from == nil {
				fileKey, fileValue = c.file.Last()
			} else if fileKey, fileValue = c.file.Seek(from); fileKey == nil {
				fileKey, fileValue = c.file.Last()
			}
			for fileKey != nil && !before(fileKey, from, inclusive) {
				fileKey, fileValue = c.file.Prev()
			}
		}
		greatest := fileKey
		for _, lb := range c.b.levels {
			if i := lb.floor(from, inclusive); i >= 0 {
				if k := lb.sorted[i].key; greatest == nil || bytes.Compare(k, greatest) > 0 {
					greatest = k
				}
			}
			if lb.dropped {
				break
			}
		}
		if greatest == nil {
			c.key = nil
			return nil, nil
		}
		if bytes.Equal(greatest, fileKey) {
			c.fileKey, c.fileValue = fileKey, fileValue
		}
		if v, live := c.resolve(greatest); live {
			c.key = greatest
			return greatest, v
		}
		from, inclusive = greatest, false
	}
}

// resolve returns the newest version of key and whether it is live.
func (c *kvCursor) resolve(key []byte) ([]byte, bool) {
	for _, lb := range c.b.levels {
		if e, ok := lb.get(key); ok {
			return e.value, !e.deleted
		}
		if lb.dropped {
			return nil, false
		}
	}
	if c.file == nil {
		return nil, false
	}
	if c.fileKey != nil && bytes.Equal(c.fileKey, key) {
		return c.fileValue, true
	}
	v := c.b.base.Get(key)
	return v, v != nil
}
