package mpi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Binary forms of the index's values. A store keeps a stored record, a person and a
// prepared record in these rather than in JSON: the Raft FSM decodes every candidate it
// reads, and JSON decoding through reflection cost more than the matching itself (28% of
// the leader's CPU during an import, against 4% for the comparisons).
//
// Layout: one format byte (binaryFormat), then the fields in the order of their struct
// declarations; a string is a uvarint length and its bytes, an integer a zigzag varint, a
// list a uvarint of its length plus one (0 for a nil list, so that nil and empty survive
// a round trip apart). Decoding copies the input once into one string and slices every
// field out of it, so a decoded value holds no reference to the caller's bytes (a bbolt
// page, a log entry) and costs one allocation for all its strings and one per list.
//
// JSON values written before this encoding start with '{' and are told apart by their
// first byte (see IsBinary). A field added to one of these types must be added here, at
// the end of its struct's fields: TestBinaryRoundTripCoversEveryField fails until it is.
const binaryFormat = 0x01

// ErrBadEncoding is returned (wrapped) when binary data is not a value of the expected
// type: truncated, of an unknown format, or with bytes left over.
var ErrBadEncoding = errors.New("malformed binary value")

// IsBinary reports whether data holds a value in this binary form (rather than JSON).
func IsBinary(data []byte) bool { return len(data) > 0 && data[0] == binaryFormat }

// AppendBinary appends the binary form of the stored record to b.
func (sr *StoredRecord) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, binaryFormat)
	b = appendString(b, string(sr.Key))
	b = appendString(b, sr.EUID)
	b = appendRecord(b, &sr.Record)
	b = appendNormalized(b, &sr.Norm)
	return appendBlocks(b, sr.Blocks), nil
}

// UnmarshalBinary decodes a stored record from its binary form.
func (sr *StoredRecord) UnmarshalBinary(data []byte) error {
	d, err := newDecoder(data)
	if err != nil {
		return err
	}
	*sr = StoredRecord{}
	sr.Key = RecordKey(d.string())
	sr.EUID = d.string()
	d.record(&sr.Record)
	d.normalized(&sr.Norm)
	sr.Blocks = d.blocks()
	return d.finish("stored record")
}

// StoredRecordKey returns the key of a stored record in its binary form without decoding
// the rest of it. The key is copied alone: a decoder would copy the whole value, and keep it alive for as
// long as the key.
func StoredRecordKey(data []byte) (RecordKey, error) {
	if !IsBinary(data) {
		return "", fmt.Errorf("%w: unknown format", ErrBadEncoding)
	}
	n, size := binary.Uvarint(data[1:])
	if size <= 0 || n > uint64(len(data)-1-size) {
		return "", fmt.Errorf("%w: truncated key", ErrBadEncoding)
	}
	return RecordKey(data[1+size : 1+size+int(n)]), nil
}

// AppendBinary appends the binary form of the person to b.
func (p *Person) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, binaryFormat)
	b = appendString(b, p.EUID)
	b = appendLen(b, len(p.Records), p.Records == nil)
	for _, k := range p.Records {
		b = appendString(b, string(k))
	}
	return b, nil
}

// UnmarshalBinary decodes a person from its binary form.
func (p *Person) UnmarshalBinary(data []byte) error {
	d, err := newDecoder(data)
	if err != nil {
		return err
	}
	*p = Person{EUID: d.string()}
	if n, isNil := d.len(); !isNil {
		p.Records = make([]RecordKey, n)
		for i := range p.Records {
			p.Records[i] = RecordKey(d.string())
		}
	}
	return d.finish("person")
}

// AppendBinary appends the binary form of the prepared record to b.
func (p *Prepared) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, binaryFormat)
	b = appendNormalized(b, &p.Norm)
	return appendBlocks(b, p.Blocks), nil
}

// UnmarshalBinary decodes a prepared record from its binary form.
func (p *Prepared) UnmarshalBinary(data []byte) error {
	d, err := newDecoder(data)
	if err != nil {
		return err
	}
	*p = Prepared{}
	d.normalized(&p.Norm)
	p.Blocks = d.blocks()
	return d.finish("prepared record")
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendLen(b []byte, n int, isNil bool) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

func appendStrings(b []byte, list []string) []byte {
	b = appendLen(b, len(list), list == nil)
	for _, s := range list {
		b = appendString(b, s)
	}
	return b
}

func appendRecord(b []byte, r *Record) []byte {
	b = appendString(b, r.System)
	b = appendString(b, r.Value)
	b = appendStrings(b, r.Given)
	b = appendString(b, r.Family)
	b = appendString(b, r.Suffix)
	b = appendString(b, r.BirthDate)
	b = appendString(b, r.Sex)
	b = appendStrings(b, r.AddressLines)
	b = appendString(b, r.City)
	b = appendString(b, r.State)
	b = appendString(b, r.PostalCode)
	b = appendStrings(b, r.Phones)
	b = appendString(b, r.Email)
	return appendString(b, r.SSN)
}

func appendNormalized(b []byte, n *Normalized) []byte {
	b = binary.AppendVarint(b, int64(n.Version))
	b = appendString(b, n.Given)
	b = appendStrings(b, n.GivenParts)
	b = appendString(b, n.Middle)
	b = appendString(b, n.Family)
	b = appendStrings(b, n.FamilyParts)
	b = appendString(b, n.Suffix)
	b = appendString(b, n.GivenCode)
	b = appendString(b, n.FamilyCode)
	b = appendStrings(b, n.FormalCodes)
	b = appendStrings(b, n.FamilyPartCodes)
	b = appendString(b, n.Birth)
	b = binary.AppendVarint(b, int64(n.BirthYear))
	b = binary.AppendVarint(b, int64(n.BirthMonth))
	b = binary.AppendVarint(b, int64(n.BirthDay))
	b = appendString(b, n.Sex)
	b = appendLen(b, len(n.Addresses), n.Addresses == nil)
	for i := range n.Addresses {
		a := &n.Addresses[i]
		b = appendString(b, a.Full)
		b = appendString(b, a.Number)
		b = appendString(b, a.Street)
		b = appendString(b, a.StreetCode)
	}
	b = appendString(b, n.City)
	b = appendString(b, n.State)
	b = appendString(b, n.Postal)
	b = appendStrings(b, n.Phones)
	b = appendString(b, n.Email)
	b = appendString(b, n.SSN)
	return appendString(b, n.SSNLast4)
}

func appendBlocks(b []byte, blocks []Block) []byte {
	b = appendLen(b, len(blocks), blocks == nil)
	for _, bl := range blocks {
		b = appendString(b, bl.Key)
		b = appendString(b, bl.Sort)
	}
	return b
}

// decoder reads fields from one string holding a copy of the input; every string it
// returns is a slice of that copy. The first error sticks and every later read returns a
// zero value, so decoding code checks once, at finish.
type decoder struct {
	s   string
	pos int
	err error
	// lists, when set, provides the string and address lists instead of new allocations.
	lists *RecordArena
}

func newDecoder(data []byte) (*decoder, error) {
	if !IsBinary(data) {
		return nil, fmt.Errorf("%w: unknown format", ErrBadEncoding)
	}
	return &decoder{s: string(data), pos: 1}, nil
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated at byte %d", ErrBadEncoding, d.pos)
	}
	d.pos = len(d.s)
}

func (d *decoder) uvarint() uint64 {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.pos >= len(d.s) {
			d.fail()
			return 0
		}
		c := d.s[d.pos]
		d.pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	d.fail()
	return 0
}

func (d *decoder) int() int {
	u := d.uvarint()
	return int(int64(u>>1) ^ -int64(u&1))
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.pos) {
		d.fail()
		return ""
	}
	s := d.s[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return s
}

// len reads a list length; a length larger than the bytes left (each element takes at
// least one) is malformed, so no decoding allocates more than its input justifies.
func (d *decoder) len() (n int, isNil bool) {
	v := d.uvarint()
	if v == 0 {
		return 0, true
	}
	if v-1 > uint64(len(d.s)-d.pos) {
		d.fail()
		return 0, true
	}
	return int(v - 1), false
}

func (d *decoder) strings() []string {
	n, isNil := d.len()
	if isNil {
		return nil
	}
	var out []string
	if d.lists != nil {
		out = d.lists.stringList(n)
	} else {
		out = make([]string, n)
	}
	for i := range out {
		out[i] = d.string()
	}
	return out
}

func (d *decoder) record(r *Record) {
	r.System = d.string()
	r.Value = d.string()
	r.Given = d.strings()
	r.Family = d.string()
	r.Suffix = d.string()
	r.BirthDate = d.string()
	r.Sex = d.string()
	r.AddressLines = d.strings()
	r.City = d.string()
	r.State = d.string()
	r.PostalCode = d.string()
	r.Phones = d.strings()
	r.Email = d.string()
	r.SSN = d.string()
}

func (d *decoder) normalized(n *Normalized) {
	n.Version = d.int()
	n.Given = d.string()
	n.GivenParts = d.strings()
	n.Middle = d.string()
	n.Family = d.string()
	n.FamilyParts = d.strings()
	n.Suffix = d.string()
	n.GivenCode = d.string()
	n.FamilyCode = d.string()
	n.FormalCodes = d.strings()
	n.FamilyPartCodes = d.strings()
	n.Birth = d.string()
	n.BirthYear = d.int()
	n.BirthMonth = d.int()
	n.BirthDay = d.int()
	n.Sex = d.string()
	if count, isNil := d.len(); isNil {
		n.Addresses = nil
	} else {
		if d.lists != nil {
			n.Addresses = d.lists.addressList(count)
		} else {
			n.Addresses = make([]AddressLine, count)
		}
		for i := range n.Addresses {
			a := &n.Addresses[i]
			a.Full, a.Number, a.Street, a.StreetCode = d.string(), d.string(), d.string(), d.string()
		}
	}
	n.City = d.string()
	n.State = d.string()
	n.Postal = d.string()
	n.Phones = d.strings()
	n.Email = d.string()
	n.SSN = d.string()
	n.SSNLast4 = d.string()
}

func (d *decoder) blocks() []Block {
	n, isNil := d.len()
	if isNil {
		return nil
	}
	out := make([]Block, n)
	for i := range out {
		out[i].Key = d.string()
		out[i].Sort = d.string()
	}
	return out
}

func (d *decoder) finish(what string) error {
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	if d.pos != len(d.s) {
		return fmt.Errorf("decode %s: %w: %d bytes left over", what, ErrBadEncoding, len(d.s)-d.pos)
	}
	return nil
}
