package hl7

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// Header is what a message's MSH says about it.
type Header struct {
	SendingApplication, SendingFacility     Repetition
	ReceivingApplication, ReceivingFacility Repetition
	// Type, Trigger and Structure are MSH-9's components (ADT, A04, ADT_A01).
	Type, Trigger, Structure string
	ControlID                string
	ProcessingID             string
	Version                  string
	// AcceptAck and ApplicationAck are MSH-15 and MSH-16 (AL, NE, ER, SU): either set
	// puts the exchange in enhanced acknowledgement mode.
	AcceptAck, ApplicationAck string
	// Charset is MSH-18 as written.
	Charset string
	Delims  Delimiters
}

// Header reads the message's MSH.
func (m *Message) Header() Header {
	h := m.MSH()
	if h == nil {
		return Header{Delims: m.Delims}
	}
	return Header{
		SendingApplication: h.Field(3).Rep(1), SendingFacility: h.Field(4).Rep(1),
		ReceivingApplication: h.Field(5).Rep(1), ReceivingFacility: h.Field(6).Rep(1),
		Type: h.Value(9, 1), Trigger: h.Value(9, 2), Structure: h.Value(9, 3),
		ControlID: h.Value(10, 1), ProcessingID: h.Value(11, 1), Version: h.Value(12, 1),
		AcceptAck: h.Value(15, 1), ApplicationAck: h.Value(16, 1), Charset: h.Value(18, 1),
		Delims: m.Delims,
	}
}

// PeekHeader reads the header of a message that may not parse as a whole (its MSH alone
// is parsed), so that even a refused message is answered with its control id, version
// and character set. What cannot be read is left empty.
func PeekHeader(raw []byte) Header {
	raw = bytes.TrimLeft(bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF")), "\r\n")
	if i := bytes.IndexAny(raw, "\r\n"); i >= 0 {
		raw = raw[:i]
	}
	m, err := Parse(raw)
	if err != nil {
		return Header{Delims: DefaultDelimiters}
	}
	return m.Header()
}

// Enhanced reports whether the sender asked for enhanced-mode acknowledgements.
func (h Header) Enhanced() bool { return h.AcceptAck != "" || h.ApplicationAck != "" }

// AtLeast reports whether the header's version is v or later (2.3.1 < 2.5 < 2.5.1).
// An unreadable version counts as 2.5, the version rls writes.
func (h Header) AtLeast(v string) bool {
	version := h.Version
	if version == "" {
		version = "2.5"
	}
	a, b := versionParts(version), versionParts(v)
	for i := range max(len(a), len(b)) {
		x, y := 0, 0
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x > y
		}
	}
	return true
}

func versionParts(v string) []int {
	var out []int
	for _, p := range strings.Split(v, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}

// Responder names the application answering (MSH-3 and MSH-4 of its answers).
type Responder struct {
	Application, Facility string
}

// FormatTime writes a time as HL7's DTM with seconds and zone: 20261101093000-0500.
func FormatTime(t time.Time) string { return t.Format("20060102150405-0700") }

// Reply starts the answer to the message h describes: an MSH from the responder to the
// sender (applications and facilities swapped), of type typ (ACK^A04^ACK, RSP^K23^RSP_K23),
// with the original's processing id, version, delimiters and character set.
func Reply(h Header, from Responder, typ Repetition, controlID string, now time.Time) *Message {
	m := NewMessage()
	if h.Delims.Field != 0 {
		m.Delims = h.Delims
		m.Segments[0].Set(1, Text(string(h.Delims.Field)))
		m.Segments[0].Set(2, Text(h.Delims.EncodingCharacters()))
	}
	msh := m.Segments[0]
	msh.Set(3, Reps(Comps(from.Application)))
	msh.Set(4, Reps(Comps(from.Facility)))
	msh.Set(5, Reps(h.SendingApplication))
	msh.Set(6, Reps(h.SendingFacility))
	msh.SetText(7, FormatTime(now))
	msh.Set(9, Reps(typ))
	msh.SetText(10, controlID)
	msh.SetText(11, or(h.ProcessingID, "P"))
	msh.SetText(12, or(h.Version, "2.5"))
	if cs, err := LookupCharset(h.Charset); err == nil && h.Charset != "" {
		msh.SetText(18, cs.Name)
		m.Charset = cs
	}
	return m
}

// Acknowledgement codes (MSA-1): original mode AA/AE/AR, enhanced mode commit
// acknowledgements CA/CE/CR.
const (
	AA = "AA"
	AE = "AE"
	AR = "AR"
	CA = "CA"
	CE = "CE"
	CR = "CR"
)

// MSA is the acknowledgement segment: code, the acknowledged control id and, for versions
// before 2.7 (which withdrew it), a short text.
func MSA(h Header, code, text string) *Segment {
	s := NewSegment("MSA", Text(code), Text(h.ControlID))
	if text != "" && !h.AtLeast("2.7") {
		s.SetText(3, cut(text, 80))
	}
	return s
}

// ERR renders an error as the ERR segment of the header's version: ERR-1 (segment,
// sequence, field, code) before 2.5; from 2.5 on, ERR-2 (location), ERR-3 (code),
// ERR-4 (severity) and ERR-8 (the message).
func ERR(h Header, e *Error) *Segment {
	code := Subs(strconv.Itoa(e.Code), CodeText(e.Code), "HL70357")
	l := e.Location
	if !h.AtLeast("2.5") {
		eld := Repetition{Component{l.Segment}, Component{seqText(l)}, Component{posText(l.Field)}, code}
		if l.Segment == "" {
			eld = Repetition{nil, nil, nil, code}
		}
		return NewSegment("ERR", Reps(eld))
	}
	s := NewSegment("ERR")
	if l.Segment != "" {
		s.Set(2, Reps(erl(l)))
	}
	s.Set(3, Reps(Comps(strconv.Itoa(e.Code), CodeText(e.Code), "HL70357")))
	s.SetText(4, or(e.Severity, "E"))
	s.SetText(8, cut(e.Message, 250))
	return s
}

func seqText(l Location) string {
	if l.Segment == "" {
		return ""
	}
	return strconv.Itoa(max(l.Sequence, 1))
}

func posText(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func erl(l Location) Repetition {
	parts := strings.Split(l.String(), "^")
	return Comps(parts...)
}

// Ack builds an acknowledgement of the message h describes: MSH, MSA with code, and one
// ERR per error. text goes to MSA-3 (first error's message when empty).
func Ack(h Header, from Responder, code, controlID string, now time.Time, text string, errs ...*Error) *Message {
	typ := Comps("ACK", h.Trigger)
	if h.AtLeast("2.3.1") {
		typ = Comps("ACK", h.Trigger, "ACK")
	}
	m := Reply(h, from, typ, controlID, now)
	if text == "" && len(errs) > 0 {
		text = errs[0].Message
	}
	m.Add(MSA(h, code, text))
	for _, e := range errs {
		m.Add(ERR(h, e))
	}
	return m
}

// cut shortens text to n characters.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}
