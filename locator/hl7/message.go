package hl7

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
)

// Delimiters are a message's separators and escape character, as MSH-1 and MSH-2 declare
// them.
type Delimiters struct {
	Field, Component, Repetition, Escape, Subcomponent byte
	// Truncation is v2.7's truncation character (MSH-2's fifth character); 0 if the
	// message declares none.
	Truncation byte
}

// DefaultDelimiters are the ones every message in practice uses: |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// EncodingCharacters is MSH-2.
func (d Delimiters) EncodingCharacters() string {
	s := string([]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent})
	if d.Truncation != 0 {
		s += string(d.Truncation)
	}
	return s
}

// Bounds on what one message may hold, so that a small message cannot make the parser
// allocate without limit (every delimiter opens an element).
const (
	MaxSegments = 10_000
	MaxElements = 200_000
)

// Message is an HL7 v2 message: its delimiters, character set and segments, with every
// value unescaped and in UTF-8.
type Message struct {
	Delims   Delimiters
	Charset  Charset
	Segments []*Segment
}

// Segment is one segment. Fields[i] is field i+1; in MSH, Fields[0] is MSH-1 (the field
// separator) and Fields[1] is MSH-2 (the encoding characters), both kept as written.
type Segment struct {
	Name   string
	Fields []Field
}

// Field is a field's repetitions.
type Field []Repetition

// Repetition is one occurrence of a field: its components.
type Repetition []Component

// Component is one component: its subcomponents.
type Component []string

// Field returns field n (from 1); an absent field is empty.
func (s *Segment) Field(n int) Field {
	if s == nil || n < 1 || n > len(s.Fields) {
		return nil
	}
	return s.Fields[n-1]
}

// Value returns the first subcomponent of component comp of field n's first repetition.
func (s *Segment) Value(n, comp int) string { return s.Field(n).Rep(1).Comp(comp).String() }

// Set replaces field n (from 1), growing the segment as needed.
func (s *Segment) Set(n int, f Field) {
	for len(s.Fields) < n {
		s.Fields = append(s.Fields, nil)
	}
	s.Fields[n-1] = f
}

// SetText sets field n to one value.
func (s *Segment) SetText(n int, v string) { s.Set(n, Text(v)) }

// Rep returns repetition n (from 1); an absent one is empty.
func (f Field) Rep(n int) Repetition {
	if n < 1 || n > len(f) {
		return nil
	}
	return f[n-1]
}

// Empty reports a field with no value in any repetition.
func (f Field) Empty() bool {
	for _, r := range f {
		if !r.Empty() {
			return false
		}
	}
	return true
}

// Comp returns component n (from 1); an absent one is empty.
func (r Repetition) Comp(n int) Component {
	if n < 1 || n > len(r) {
		return nil
	}
	return r[n-1]
}

// Empty reports a repetition with no value in any component.
func (r Repetition) Empty() bool {
	for _, c := range r {
		if strings.Join(c, "") != "" {
			return false
		}
	}
	return true
}

// Sub returns subcomponent n (from 1); an absent one is "".
func (c Component) Sub(n int) string {
	if n < 1 || n > len(c) {
		return ""
	}
	return c[n-1]
}

// String is the component's first subcomponent (its whole value when it has no others).
func (c Component) String() string { return c.Sub(1) }

// Text is a field of one value.
func Text(v string) Field {
	if v == "" {
		return nil
	}
	return Field{Repetition{Component{v}}}
}

// Comps is a repetition of components, each a single value.
func Comps(values ...string) Repetition {
	r := make(Repetition, len(values))
	for i, v := range values {
		r[i] = Component{v}
	}
	return r
}

// Subs is a component of subcomponents.
func Subs(values ...string) Component { return Component(values) }

// Reps is a field of repetitions.
func Reps(reps ...Repetition) Field { return Field(reps) }

// NewSegment is a segment with the given fields, the first being field 1.
func NewSegment(name string, fields ...Field) *Segment {
	return &Segment{Name: name, Fields: fields}
}

// Segment returns the first segment named name, or nil.
func (m *Message) Segment(name string) *Segment {
	for _, s := range m.Segments {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// All returns every segment named name, in order.
func (m *Message) All(name string) []*Segment {
	var out []*Segment
	for _, s := range m.Segments {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// MSH returns the message header (the first segment).
func (m *Message) MSH() *Segment {
	if len(m.Segments) == 0 || m.Segments[0].Name != "MSH" {
		return nil
	}
	return m.Segments[0]
}

// NewMessage starts a message with the default delimiters and an MSH whose MSH-1 and
// MSH-2 are set; the caller fills the rest of the header.
func NewMessage() *Message {
	d := DefaultDelimiters
	msh := NewSegment("MSH", Text(string(d.Field)), Text(d.EncodingCharacters()))
	return &Message{Delims: d, Charset: ASCII, Segments: []*Segment{msh}}
}

// Add appends segments.
func (m *Message) Add(segs ...*Segment) { m.Segments = append(m.Segments, segs...) }

// Parse reads one message. Segments may end with CR (the standard), LF or CRLF (as files
// and some senders write them). The character set is the one MSH-18 names (ASCII when
// empty); every value comes back unescaped, in UTF-8. Errors are *Error, locating what is
// wrong as an ERR segment would.
func Parse(data []byte) (*Message, error) {
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	data = bytes.TrimLeft(data, "\r\n")
	msh := At("MSH", 0)
	if len(data) < 3 || string(data[:3]) != "MSH" {
		return nil, Errorf(At("MSH", 0), CodeSegmentSequence, "the message does not begin with an MSH segment")
	}
	if len(data) < 8 {
		return nil, Errorf(msh, CodeRequiredFieldMissing, "the MSH segment is cut short")
	}
	d := Delimiters{Field: data[3]}
	enc := data[4:]
	if end := bytes.IndexAny(enc, string([]byte{d.Field, '\r', '\n'})); end >= 0 {
		enc = enc[:end]
	}
	if len(enc) != 4 && len(enc) != 5 {
		return nil, Errorf(At("MSH", 2), CodeDataType, "MSH-2 must hold the 4 encoding characters (^~\\& as a rule), or 5 with v2.7's truncation character; it holds %d", len(enc))
	}
	d.Component, d.Repetition, d.Escape, d.Subcomponent = enc[0], enc[1], enc[2], enc[3]
	if len(enc) == 5 {
		d.Truncation = enc[4]
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	cs, err := declaredCharset(data, d)
	if err != nil {
		return nil, err
	}
	text, err := cs.decode(data)
	if err != nil {
		return nil, Errorf(At("MSH", 18), CodeDataType, "%v", err)
	}
	p := parser{d: d, cs: cs}
	m := &Message{Delims: d, Charset: cs}
	seqs := map[string]int{}
	for line := range splitSegments(text) {
		if len(m.Segments) == MaxSegments {
			return nil, Errorf(Location{}, CodeSegmentSequence, "the message holds more than %d segments", MaxSegments)
		}
		seg, err := p.segment(line, seqs)
		if err != nil {
			return nil, err
		}
		m.Segments = append(m.Segments, seg)
	}
	return m, nil
}

// check refuses delimiters that cannot work: letters, digits, spaces, line ends and
// repeats.
func (d Delimiters) check() error {
	all := []struct {
		b    byte
		loc  Location
		name string
	}{{d.Field, At("MSH", 1), "field separator"}, {d.Component, At("MSH", 2), "component separator"},
		{d.Repetition, At("MSH", 2), "repetition separator"}, {d.Escape, At("MSH", 2), "escape character"},
		{d.Subcomponent, At("MSH", 2), "subcomponent separator"}}
	if d.Truncation != 0 {
		all = append(all, struct {
			b    byte
			loc  Location
			name string
		}{d.Truncation, At("MSH", 2), "truncation character"})
	}
	for i, x := range all {
		if x.b <= ' ' || x.b >= 0x7F || ('0' <= x.b && x.b <= '9') || ('A' <= x.b && x.b <= 'Z') || ('a' <= x.b && x.b <= 'z') {
			return Errorf(x.loc, CodeDataType, "the %s %q must be a printable character other than a letter or digit", x.name, string(x.b))
		}
		for _, y := range all[:i] {
			if x.b == y.b {
				return Errorf(x.loc, CodeDataType, "the %s and the %s are both %q", y.name, x.name, string(x.b))
			}
		}
	}
	return nil
}

// declaredCharset reads MSH-18 out of the raw header (ASCII in every supported set).
func declaredCharset(data []byte, d Delimiters) (Charset, error) {
	line := data
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	fields := bytes.Split(line, []byte{d.Field})
	// fields[0] is "MSH", fields[1] MSH-2, fields[i] MSH-(i+1).
	if len(fields) < 18 {
		return ASCII, nil
	}
	raw := fields[17]
	if i := bytes.IndexByte(raw, d.Repetition); i >= 0 {
		raw = raw[:i] // later repetitions name alternate sets for \C..\ escapes
	}
	if i := bytes.IndexByte(raw, d.Component); i >= 0 {
		raw = raw[:i]
	}
	cs, err := LookupCharset(string(raw))
	if err != nil {
		return cs, Errorf(At("MSH", 18), CodeTableValueNotFound, "%v", err)
	}
	return cs, nil
}

// splitSegments yields the segments of a message, ending each at CR, LF or CRLF and
// skipping empty lines.
func splitSegments(text string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(text) > 0 {
			i := strings.IndexAny(text, "\r\n")
			line := text
			if i >= 0 {
				line, text = text[:i], text[i+1:]
			} else {
				text = ""
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if !yield(line) {
				return
			}
		}
	}
}

type parser struct {
	d        Delimiters
	cs       Charset
	elements int
}

func (p *parser) segment(line string, seqs map[string]int) (*Segment, error) {
	name := line
	if i := strings.IndexByte(line, p.d.Field); i >= 0 {
		name = line[:i]
	}
	if !segmentName(name) {
		return nil, Errorf(Location{}, CodeSegmentSequence, "segment name %q is not three capital letters or digits (a wrong field separator, or a line break inside a value)", clip(name))
	}
	seqs[name]++
	seq := seqs[name]
	if name == "MSH" && seq > 1 {
		return nil, Errorf(Location{Segment: "MSH", Sequence: seq}, CodeSegmentSequence, "a second MSH segment: send one message per MLLP frame (batches are not supported)")
	}
	seg := &Segment{Name: name}
	rest := line[len(name):]
	if rest == "" {
		return seg, nil
	}
	rest = rest[1:] // the field separator after the name
	first := 1
	if name == "MSH" {
		enc, after, more := strings.Cut(rest, string(p.d.Field))
		seg.Fields = []Field{Text(string(p.d.Field)), Text(enc)}
		if !more {
			return seg, nil
		}
		rest, first = after, 3
	}
	for n := first; ; n++ {
		raw, after, more := strings.Cut(rest, string(p.d.Field))
		f, err := p.field(raw, Location{Segment: name, Sequence: seq, Field: n})
		if err != nil {
			return nil, err
		}
		seg.Fields = append(seg.Fields, f)
		if !more {
			break
		}
		rest = after
	}
	return seg, nil
}

func segmentName(s string) bool {
	if len(s) != 3 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < 3; i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
}

func (p *parser) count(loc Location) error {
	p.elements++
	if p.elements > MaxElements {
		return Errorf(loc, CodeValueTooLong, "the message holds more than %d values", MaxElements)
	}
	return nil
}

func (p *parser) field(raw string, loc Location) (Field, error) {
	if raw == "" {
		return nil, p.count(loc)
	}
	var f Field
	for ri, rraw := range strings.Split(raw, string(p.d.Repetition)) {
		loc.Rep, loc.Comp, loc.Sub = ri+1, 0, 0
		var rep Repetition
		for ci, craw := range strings.Split(rraw, string(p.d.Component)) {
			loc.Comp, loc.Sub = ci+1, 0
			var comp Component
			for si, sraw := range strings.Split(craw, string(p.d.Subcomponent)) {
				loc.Sub = si + 1
				if err := p.count(loc); err != nil {
					return nil, err
				}
				v, err := p.unescape(sraw)
				if err != nil {
					return nil, Errorf(loc, CodeDataType, "%v", err)
				}
				comp = append(comp, v)
			}
			rep = append(rep, comp)
		}
		f = append(f, rep)
	}
	return f, nil
}

// unescape resolves the escape sequences of one value: \F\ \S\ \T\ \R\ \E\ (and \P\, the
// truncation character) stand for the delimiters, \Xhh…\ for bytes in the message's
// character set, \.br\ and \.sp\ for line breaks; highlighting (\H\ \N\), other
// formatting commands and locally defined sequences (\Z…\) carry no text and are dropped,
// as the standard lets a receiver ignore a sequence it does not use. Switching character
// sets inside a value (\C…\, \M…\) is refused: the message declares one set in MSH-18.
func (p *parser) unescape(s string) (string, error) {
	if strings.IndexByte(s, p.d.Escape) < 0 {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, p.d.Escape)
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i+1:], p.d.Escape)
		if j < 0 {
			return "", fmt.Errorf("escape sequence %q is not closed by a second %q (write the escape character itself as %cE%c)", clip(s[i:]), string(p.d.Escape), p.d.Escape, p.d.Escape)
		}
		seq := s[i+1 : i+1+j]
		s = s[i+2+j:]
		switch {
		case seq == "F":
			b.WriteByte(p.d.Field)
		case seq == "S":
			b.WriteByte(p.d.Component)
		case seq == "T":
			b.WriteByte(p.d.Subcomponent)
		case seq == "R":
			b.WriteByte(p.d.Repetition)
		case seq == "E":
			b.WriteByte(p.d.Escape)
		case seq == "P" && p.d.Truncation != 0:
			b.WriteByte(p.d.Truncation)
		case strings.HasPrefix(seq, "X"):
			raw, err := hex.DecodeString(seq[1:])
			if err != nil || len(raw) == 0 {
				return "", fmt.Errorf("hexadecimal escape %cX%s%c must hold pairs of hex digits", p.d.Escape, clip(seq[1:]), p.d.Escape)
			}
			text, err := p.cs.decode(raw)
			if err != nil {
				return "", fmt.Errorf("hexadecimal escape %cX%s%c: %v", p.d.Escape, clip(seq[1:]), p.d.Escape, err)
			}
			b.WriteString(text)
		case seq == ".br" || strings.HasPrefix(seq, ".sp"):
			b.WriteByte('\n')
		case strings.HasPrefix(seq, "C") || strings.HasPrefix(seq, "M"):
			return "", fmt.Errorf("character set escape %c%s%c is not supported: declare one character set in MSH-18", p.d.Escape, clip(seq), p.d.Escape)
		case seq == "":
			return "", fmt.Errorf("empty escape sequence %c%c (write the escape character itself as %cE%c)", p.d.Escape, p.d.Escape, p.d.Escape, p.d.Escape)
		default:
			// \H\, \N\, formatting commands, \Z…\: no text.
		}
	}
}

// clip shortens a value an error message repeats.
func clip(s string) string {
	const max = 32
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// String renders the message in ER7, segments ended by CR, in UTF-8.
func (m *Message) String() string {
	var b strings.Builder
	for _, s := range m.Segments {
		m.writeSegment(&b, s)
		b.WriteByte('\r')
	}
	return b.String()
}

// Encode renders the message in the character set its MSH-18 names. If the text holds a
// character that set lacks, the message is written in UTF-8 instead, with MSH-18 saying
// so: a reply must carry every character of the data it answers with.
func (m *Message) Encode() []byte {
	cs := ASCII
	if h := m.MSH(); h != nil {
		if c, err := LookupCharset(h.Value(18, 1)); err == nil {
			cs = c
		}
	}
	if out, err := cs.encode(m.String()); err == nil {
		return out
	}
	if h := m.MSH(); h != nil {
		h.SetText(18, UTF8.Name)
	}
	m.Charset = UTF8
	return []byte(m.String())
}

func (m *Message) writeSegment(b *strings.Builder, s *Segment) {
	d := m.Delims
	b.WriteString(s.Name)
	fields := s.Fields
	if s.Name == "MSH" {
		b.WriteByte(d.Field)
		b.WriteString(d.EncodingCharacters())
		if len(fields) > 2 {
			fields = fields[2:]
		} else {
			fields = nil
		}
	}
	fields = trimFields(fields)
	for _, f := range fields {
		b.WriteByte(d.Field)
		for ri, r := range trimReps(f) {
			if ri > 0 {
				b.WriteByte(d.Repetition)
			}
			for ci, c := range trimComps(r) {
				if ci > 0 {
					b.WriteByte(d.Component)
				}
				for si, v := range trimSubs(c) {
					if si > 0 {
						b.WriteByte(d.Subcomponent)
					}
					b.WriteString(Escape(v, d))
				}
			}
		}
	}
}

func trimFields(fs []Field) []Field {
	for len(fs) > 0 && fs[len(fs)-1].Empty() {
		fs = fs[:len(fs)-1]
	}
	return fs
}

func trimReps(f Field) Field {
	for len(f) > 0 && f[len(f)-1].Empty() {
		f = f[:len(f)-1]
	}
	return f
}

func trimComps(r Repetition) Repetition {
	for len(r) > 0 && strings.Join(r[len(r)-1], "") == "" {
		r = r[:len(r)-1]
	}
	return r
}

func trimSubs(c Component) Component {
	for len(c) > 0 && c[len(c)-1] == "" {
		c = c[:len(c)-1]
	}
	return c
}

// Escape writes a value for a message with delimiters d: each delimiter and the escape
// character become their escape sequence, and line breaks and other control characters
// become \Xhh\ (a CR would otherwise end the segment).
func Escape(v string, d Delimiters) string {
	if !needsEscape(v, d) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == d.Escape:
			b.Write([]byte{d.Escape, 'E', d.Escape})
		case c == d.Field:
			b.Write([]byte{d.Escape, 'F', d.Escape})
		case c == d.Component:
			b.Write([]byte{d.Escape, 'S', d.Escape})
		case c == d.Subcomponent:
			b.Write([]byte{d.Escape, 'T', d.Escape})
		case c == d.Repetition:
			b.Write([]byte{d.Escape, 'R', d.Escape})
		case d.Truncation != 0 && c == d.Truncation:
			b.Write([]byte{d.Escape, 'P', d.Escape})
		case c < 0x20 || c == 0x7F:
			fmt.Fprintf(&b, "%cX%02X%c", d.Escape, c, d.Escape)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(v string, d Delimiters) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7F || c == d.Escape || c == d.Field || c == d.Component || c == d.Subcomponent || c == d.Repetition ||
			(d.Truncation != 0 && c == d.Truncation) {
			return true
		}
	}
	return false
}
