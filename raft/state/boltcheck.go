package state

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's on-disk constants (go.etcd.io/bbolt/internal/common): every page starts with a
// 16-byte header (id, flags, count, overflow); pages 0 and 1 hold the two meta pages.
const (
	boltPageHeaderSize = 16
	boltElementSize    = 16 // branch and leaf page elements alike
	boltBucketHeader   = 16 // a bucket value starts with {root pgid, sequence}
	boltMagic          = 0xED0CDAED
	boltVersion        = 2
	boltMetaSize       = 64 // magic, version, pageSize, flags, root{pgid, seq}, freelist, pgid, txid, checksum
	boltMinPageSize    = 1024
	boltMaxPageSize    = 64 << 10
	boltNoFreelist     = ^uint64(0)
	boltMaxDepth       = 64 // far beyond any real tree; bounds a crafted chain of buckets

	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltFreelistPage = 0x10
	boltBucketLeaf   = 0x01
)

var le = binary.LittleEndian

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// boltFile is a bbolt file read through plain reads, never a memory map, so damage is an
// error rather than a fault.
type boltFile struct {
	f    *os.File
	size int64
	meta boltMeta
}

// checkBoltFile verifies, before bbolt maps a file, that the file holds every page its meta
// page counts. bbolt reads the pages a meta page names through its memory map, and a page
// past the end of a truncated file faults (SIGBUS) and kills the process instead of
// returning an error; a half-uploaded snapshot did exactly that. It reads two pages, so
// Open runs it every time.
func checkBoltFile(path string) error {
	bf, err := openBoltFile(path)
	if err != nil {
		return err
	}
	return bf.f.Close()
}

// walkBoltFile runs checkBoltFile's checks and then walks every page reachable from the
// root bucket, refusing what bbolt's own Check lets through but its cursors cannot survive:
// a branch page without elements (a cursor then follows a garbage child, looping forever
// and growing its stack until the node runs out of memory; FuzzRestoreSnapshot found one),
// pages referenced twice or in a cycle, headers naming another page, elements or keys
// outside their page, inline buckets that are not leaves, and a freelist longer than its
// page. It reads each reachable page once, so it runs where bbolt's Check runs.
func walkBoltFile(path string) error {
	bf, err := openBoltFile(path)
	if err != nil {
		return err
	}
	defer bf.f.Close()
	w := boltWalker{file: bf, seen: make(map[uint64]bool)}
	if err := w.freelist(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotState, err)
	}
	if err := w.page(bf.meta.root, 0); err != nil {
		return fmt.Errorf("%w: %v", ErrNotState, err)
	}
	return nil
}

func openBoltFile(path string) (*boltFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotState, err)
	}
	bf := &boltFile{f: f}
	if err := bf.readMeta(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %v", ErrNotState, err)
	}
	return bf, nil
}

func (bf *boltFile) readMeta() error {
	info, err := bf.f.Stat()
	if err != nil {
		return err
	}
	bf.size = info.Size()
	first := make([]byte, boltPageHeaderSize+boltMetaSize)
	if _, err := io.ReadFull(bf.f, first); err != nil {
		return fmt.Errorf("%d bytes is too short for a bbolt file", bf.size)
	}
	var metas []boltMeta
	if m, ok := decodeBoltMeta(first); ok {
		metas = append(metas, m)
	}
	// The second meta page sits one page further on; take the page size from the first
	// meta page when it is intact, else try the sizes bbolt uses.
	for _, size := range candidatePageSizes(metas) {
		second := make([]byte, boltPageHeaderSize+boltMetaSize)
		if _, err := bf.f.ReadAt(second, int64(size)); err == nil {
			if m, ok := decodeBoltMeta(second); ok && m.pageSize == size {
				metas = append(metas, m)
				break
			}
		}
	}
	if len(metas) == 0 {
		return fmt.Errorf("no intact bbolt meta page")
	}
	// bbolt uses the intact meta page with the higher transaction id.
	best := metas[0]
	for _, m := range metas[1:] {
		if m.txid > best.txid {
			best = m
		}
	}
	if best.pageSize < boltMinPageSize || best.pageSize > boltMaxPageSize || best.pageSize&(best.pageSize-1) != 0 {
		return fmt.Errorf("implausible page size %d", best.pageSize)
	}
	if need := int64(best.pgid) * int64(best.pageSize); best.pgid > uint64(bf.size) || bf.size < need {
		return fmt.Errorf("truncated: %d bytes, but its meta page counts %d pages of %d bytes", bf.size, best.pgid, best.pageSize)
	}
	if best.root < 2 || best.root >= best.pgid || (best.freelist != boltNoFreelist && (best.freelist < 2 || best.freelist >= best.pgid)) {
		return fmt.Errorf("meta page points outside the file's pages")
	}
	bf.meta = best
	return nil
}

// decodeBoltMeta decodes and verifies a meta page (little-endian, as bbolt writes it on the
// platforms rls runs on).
func decodeBoltMeta(page []byte) (boltMeta, bool) {
	if len(page) < boltPageHeaderSize+boltMetaSize {
		return boltMeta{}, false
	}
	m := page[boltPageHeaderSize : boltPageHeaderSize+boltMetaSize]
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

func candidatePageSizes(metas []boltMeta) []uint32 {
	if len(metas) > 0 {
		return []uint32{metas[0].pageSize}
	}
	return []uint32{4096, 8192, 16384, 65536, 1024, 2048, 32768}
}

// readPage reads page id with its overflow pages and checks that its header names it.
func (bf *boltFile) readPage(id uint64) (flags, count uint16, data []byte, err error) {
	ps := uint64(bf.meta.pageSize)
	if id < 2 || id >= bf.meta.pgid {
		return 0, 0, nil, fmt.Errorf("page %d is outside the file's %d pages", id, bf.meta.pgid)
	}
	header := make([]byte, boltPageHeaderSize)
	if _, err := bf.f.ReadAt(header, int64(id*ps)); err != nil {
		return 0, 0, nil, fmt.Errorf("read page %d: %w", id, err)
	}
	if got := le.Uint64(header[0:]); got != id {
		return 0, 0, nil, fmt.Errorf("page %d has the header of page %d", id, got)
	}
	flags, count = le.Uint16(header[8:]), le.Uint16(header[10:])
	overflow := uint64(le.Uint32(header[12:]))
	if id+overflow >= bf.meta.pgid {
		return 0, 0, nil, fmt.Errorf("page %d runs %d pages past the file's %d pages", id, overflow, bf.meta.pgid)
	}
	data = make([]byte, (overflow+1)*ps)
	if _, err := bf.f.ReadAt(data, int64(id*ps)); err != nil {
		return 0, 0, nil, fmt.Errorf("read page %d: %w", id, err)
	}
	return flags, count, data, nil
}

type boltWalker struct {
	file *boltFile
	seen map[uint64]bool
}

func (w *boltWalker) freelist() error {
	id := w.file.meta.freelist
	if id == boltNoFreelist {
		return nil
	}
	flags, count, data, err := w.file.readPage(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if flags != boltFreelistPage {
		return fmt.Errorf("freelist page %d has flags %#x", id, flags)
	}
	n, start := uint64(count), uint64(boltPageHeaderSize)
	if count == 0xFFFF { // the real count is the first element
		if len(data) < boltPageHeaderSize+8 {
			return fmt.Errorf("freelist page %d is too short", id)
		}
		n, start = le.Uint64(data[boltPageHeaderSize:]), boltPageHeaderSize+8
	}
	if n > uint64(len(data)) || start+n*8 > uint64(len(data)) {
		return fmt.Errorf("freelist page %d lists %d pages, more than it holds", id, n)
	}
	return nil
}

// page walks the b-tree page id and every bucket below it.
func (w *boltWalker) page(id uint64, depth int) error {
	if depth > boltMaxDepth {
		return fmt.Errorf("page %d: tree deeper than %d", id, boltMaxDepth)
	}
	if w.seen[id] {
		return fmt.Errorf("page %d is referenced twice", id)
	}
	flags, count, data, err := w.file.readPage(id)
	if err != nil {
		return err
	}
	for p := id; p < id+uint64(len(data))/uint64(w.file.meta.pageSize); p++ {
		if w.seen[p] {
			return fmt.Errorf("page %d is referenced twice", p)
		}
		w.seen[p] = true
	}
	switch flags {
	case boltBranchPage:
		if count == 0 {
			return fmt.Errorf("branch page %d has no elements", id)
		}
		children, err := branchChildren(data, count)
		if err != nil {
			return fmt.Errorf("branch page %d: %w", id, err)
		}
		for _, child := range children {
			if err := w.page(child, depth+1); err != nil {
				return err
			}
		}
		return nil
	case boltLeafPage:
		if err := w.leaf(data, count, depth); err != nil {
			return fmt.Errorf("leaf page %d: %w", id, err)
		}
		return nil
	default:
		return fmt.Errorf("page %d has flags %#x where a branch or leaf page belongs", id, flags)
	}
}

func branchChildren(data []byte, count uint16) ([]uint64, error) {
	if boltPageHeaderSize+int(count)*boltElementSize > len(data) {
		return nil, fmt.Errorf("%d elements do not fit", count)
	}
	children := make([]uint64, count)
	for i := range int(count) {
		at := boltPageHeaderSize + i*boltElementSize
		pos, ksize := uint64(le.Uint32(data[at:])), uint64(le.Uint32(data[at+4:]))
		if uint64(at)+pos+ksize > uint64(len(data)) {
			return nil, fmt.Errorf("element %d's key lies outside the page", i)
		}
		children[i] = le.Uint64(data[at+8:])
	}
	return children, nil
}

// leaf checks a leaf page (or an inline bucket's page, which is a leaf held in a value) and
// walks the buckets it holds.
func (w *boltWalker) leaf(data []byte, count uint16, depth int) error {
	if boltPageHeaderSize+int(count)*boltElementSize > len(data) {
		return fmt.Errorf("%d elements do not fit", count)
	}
	for i := range int(count) {
		at := boltPageHeaderSize + i*boltElementSize
		flags := le.Uint32(data[at:])
		pos, ksize, vsize := uint64(le.Uint32(data[at+4:])), uint64(le.Uint32(data[at+8:])), uint64(le.Uint32(data[at+12:]))
		end := uint64(at) + pos + ksize + vsize
		if end > uint64(len(data)) {
			return fmt.Errorf("element %d lies outside the page", i)
		}
		if flags&boltBucketLeaf == 0 {
			continue
		}
		if err := w.bucket(data[uint64(at)+pos+ksize:end], depth+1); err != nil {
			return fmt.Errorf("bucket %q: %w", data[uint64(at)+pos:uint64(at)+pos+ksize], err)
		}
	}
	return nil
}

func (w *boltWalker) bucket(value []byte, depth int) error {
	if depth > boltMaxDepth {
		return fmt.Errorf("buckets nested deeper than %d", boltMaxDepth)
	}
	if len(value) < boltBucketHeader {
		return fmt.Errorf("bucket header is %d bytes", len(value))
	}
	if root := le.Uint64(value); root != 0 {
		return w.page(root, depth)
	}
	inline := value[boltBucketHeader:]
	if len(inline) < boltPageHeaderSize {
		return fmt.Errorf("inline bucket is %d bytes", len(inline))
	}
	if flags := le.Uint16(inline[8:]); flags != boltLeafPage {
		return fmt.Errorf("inline bucket has flags %#x, not a leaf", flags)
	}
	return w.leaf(inline, le.Uint16(inline[10:]), depth)
}
