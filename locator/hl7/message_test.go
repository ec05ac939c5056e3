package hl7

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const a04 = "MSH|^~\\&|ADT1|STMARY|RLS|HIE|20261101093000||ADT^A04^ADT_A01|MSG00001|P|2.5\r" +
	"EVN|A04|20261101093000\r" +
	"PID|1||MRN-4471^^^STMARY&2.16.840.1.113883.3.1001&ISO^MR~123-45-6789^^^SSA^SS||O'BRIEN^MARGARET^ANN^^MRS^^L~SMITH^MAGGIE^^^^^M||19610704|F|||12 OAK ST^APT 2^SPRINGFIELD^IL^62704^USA^H||^PRN^PH^^1^217^5550101~^NET^Internet^maggie@example.org\r" +
	"PV1|1|N\r"

func mustParse(t *testing.T, s string) *Message {
	t.Helper()
	m, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseStructure(t *testing.T) {
	m := mustParse(t, a04)
	if got := len(m.Segments); got != 4 {
		t.Fatalf("%d segments, want 4", got)
	}
	h := m.Header()
	want := Header{
		SendingApplication: Comps("ADT1"), SendingFacility: Comps("STMARY"),
		ReceivingApplication: Comps("RLS"), ReceivingFacility: Comps("HIE"),
		Type: "ADT", Trigger: "A04", Structure: "ADT_A01", ControlID: "MSG00001", ProcessingID: "P", Version: "2.5",
		Delims: DefaultDelimiters,
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	pid := m.Segment("PID")
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"PID-3[1].1", pid.Field(3).Rep(1).Comp(1).String(), "MRN-4471"},
		{"PID-3[1].4.1", pid.Field(3).Rep(1).Comp(4).Sub(1), "STMARY"},
		{"PID-3[1].4.2", pid.Field(3).Rep(1).Comp(4).Sub(2), "2.16.840.1.113883.3.1001"},
		{"PID-3[1].4.3", pid.Field(3).Rep(1).Comp(4).Sub(3), "ISO"},
		{"PID-3[2].5", pid.Field(3).Rep(2).Comp(5).String(), "SS"},
		{"PID-5[1].1", pid.Field(5).Rep(1).Comp(1).String(), "O'BRIEN"},
		{"PID-5[1].7", pid.Field(5).Rep(1).Comp(7).String(), "L"},
		{"PID-5[2].2", pid.Field(5).Rep(2).Comp(2).String(), "MAGGIE"},
		{"PID-7", pid.Value(7, 1), "19610704"},
		{"PID-11.3", pid.Value(11, 3), "SPRINGFIELD"},
		{"PID-13[2].4", pid.Field(13).Rep(2).Comp(4).String(), "maggie@example.org"},
		{"absent field", pid.Value(40, 1), ""},
		{"absent rep", pid.Field(3).Rep(9).Comp(1).String(), ""},
		{"MSH-1", m.MSH().Value(1, 1), "|"},
		{"MSH-2", m.MSH().Value(2, 1), "^~\\&"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestEscapes(t *testing.T) {
	tests := []struct {
		name, raw, want string
		charset         string
	}{
		{"field", `A\F\B`, "A|B", ""},
		{"component", `A\S\B`, "A^B", ""},
		{"subcomponent", `A\T\B`, "A&B", ""},
		{"repetition", `A\R\B`, "A~B", ""},
		{"escape", `C:\E\temp`, `C:\temp`, ""},
		{"hex ascii", `A\X0D0A\B`, "A\r\nB", ""},
		{"hex latin1", `M\XFC\ller`, "Müller", "8859/1"},
		{"hex utf8", `M\XC3BC\ller`, "Müller", "UNICODE UTF-8"},
		{"line break", `one\.br\two`, "one\ntwo", ""},
		{"highlight dropped", `\H\bold\N\`, "bold", ""},
		{"local dropped", `a\Zlocal\b`, "ab", ""},
		{"two in a row", `\F\\S\`, "|^", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5||||||" + tc.charset + "\rNTE|1||" + tc.raw + "\r"
			m, err := Parse([]byte(msg))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Segment("NTE").Value(3, 1); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

func TestCharsets(t *testing.T) {
	latin1 := []byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5||||||8859/1\rPID|1||X^^^Y||M\xfcller^J\xf6rg\r")
	m, err := Parse(latin1)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Segment("PID").Value(5, 1) + " " + m.Segment("PID").Value(5, 2); got != "Müller Jörg" {
		t.Errorf("8859/1 name = %q", got)
	}
	if m.Charset.Name != "8859/1" {
		t.Errorf("charset = %q", m.Charset.Name)
	}
	// Written back in 8859/1, byte for byte.
	if got := m.Encode(); string(got) != string(latin1) {
		t.Errorf("re-encoded:\n%q\nwant\n%q", got, latin1)
	}

	utf := "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5||||||UNICODE UTF-8\rPID|1||X^^^Y||Łukasiewicz^Zoë\r"
	m = mustParse(t, utf)
	if got := m.Segment("PID").Value(5, 1); got != "Łukasiewicz" {
		t.Errorf("UTF-8 family = %q", got)
	}

	// A reply in 8859/1 that must carry a character 8859/1 lacks is written in UTF-8.
	m = mustParse(t, "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5||||||8859/1\rPID|1\r")
	m.Segment("PID").SetText(5, "Łukasiewicz")
	out := m.Encode()
	back := mustParse(t, string(out))
	if back.Charset.Name != UTF8.Name || back.Segment("PID").Value(5, 1) != "Łukasiewicz" {
		t.Errorf("fallback: charset %q, name %q", back.Charset.Name, back.Segment("PID").Value(5, 1))
	}

	errCases := []struct {
		name string
		msg  []byte
		loc  string
		code int
	}{
		{"ASCII declared, byte above 0x7F", []byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rPID|1||X||M\xfcller\r"), "MSH^1^18", CodeDataType},
		{"UTF-8 declared, invalid", []byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5||||||UNICODE UTF-8\rPID|1||X||M\xfcller\r"), "MSH^1^18", CodeDataType},
		{"unknown set", []byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5||||||EBCDIC\rPID|1\r"), "MSH^1^18", CodeTableValueNotFound},
	}
	for _, tc := range errCases {
		_, err := Parse(tc.msg)
		var he *Error
		if !errors.As(err, &he) || he.Location.String() != tc.loc || he.Code != tc.code {
			t.Errorf("%s: err = %v, want %s code %d", tc.name, err, tc.loc, tc.code)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		loc  string
		code int
	}{
		{"no MSH", "PID|1||X\r", "MSH^1", CodeSegmentSequence},
		{"empty", "", "MSH^1", CodeSegmentSequence},
		{"garbage", "\x00\x01\x02garbage", "MSH^1", CodeSegmentSequence},
		{"header cut short", "MSH|^~", "MSH^1", CodeRequiredFieldMissing},
		{"letter as field separator", "MSHX^~\\&XAXB\r", "MSH^1^1", CodeDataType},
		{"three encoding characters", "MSH|^~\\|A|B\r", "MSH^1^2", CodeDataType},
		{"repeated delimiter", "MSH|^^\\&|A|B\r", "MSH^1^2", CodeDataType},
		{"wrong field separator in a segment", "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rPID!1!!X\r", "", CodeSegmentSequence},
		{"second MSH", "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rMSH|^~\\&|A\r", "MSH^2", CodeSegmentSequence},
		{"unterminated escape", "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rPID|1||X||O\\BRIEN\r", "PID^1^5^1^1^1", CodeDataType},
		{"odd hex", "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rPID|1||X||\\X0\\\r", "PID^1^5^1^1^1", CodeDataType},
		{"charset switch", "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rPID|1||X||\\C2842\\\r", "PID^1^5^1^1^1", CodeDataType},
		{"too many values", "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rNTE|1||" + strings.Repeat("~", MaxElements) + "\r", "NTE^1^3", CodeValueTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.msg))
			var he *Error
			if !errors.As(err, &he) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if loc := he.Location.String(); (tc.loc != "" && !strings.HasPrefix(loc, tc.loc)) || he.Code != tc.code {
				t.Errorf("err = %v (at %q), want at %s code %d", he, loc, tc.loc, tc.code)
			}
		})
	}
}

func TestSegmentEndings(t *testing.T) {
	for _, sep := range []string{"\r", "\n", "\r\n"} {
		m := mustParse(t, strings.ReplaceAll(a04, "\r", sep))
		if len(m.Segments) != 4 || m.Segment("PID").Value(5, 1) != "O'BRIEN" {
			t.Errorf("segments ended with %q: %d segments", sep, len(m.Segments))
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	m := NewMessage()
	msh := m.MSH()
	msh.Set(3, Reps(Comps("RLS")))
	msh.Set(9, Reps(Comps("RSP", "K23", "RSP_K23")))
	msh.SetText(10, "42")
	msh.SetText(12, "2.5")
	pid := NewSegment("PID")
	pid.Set(3, Reps(
		Repetition{Component{"A|B^C"}, nil, nil, Subs("NS", "1.2.3", "ISO")},
		Repetition{Component{"line\rbreak"}, nil, nil, Subs("", "urn:x&y", "URI")},
	))
	pid.Set(5, Reps(nil, Repetition{nil, nil, nil, nil, nil, nil, Component{"S"}}))
	pid.SetText(8, `back\slash~tilde`)
	m.Add(pid)
	out := string(m.Encode())
	wantPID := "PID|||A\\F\\B\\S\\C^^^NS&1.2.3&ISO~line\\X0D\\break^^^&urn:x\\T\\y&URI||~^^^^^^S|||back\\E\\slash\\R\\tilde\r"
	if !strings.Contains(out, wantPID) {
		t.Errorf("encoded:\n%q\nwant segment\n%q", out, wantPID)
	}
	back := mustParse(t, out)
	if diff := cmp.Diff(m.String(), back.String()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got := back.Segment("PID").Field(3).Rep(2).Comp(1).String(); got != "line\rbreak" {
		t.Errorf("value with CR = %q", got)
	}
}

func TestLocation(t *testing.T) {
	tests := []struct {
		loc  Location
		want string
	}{
		{At("PID", 7), "PID^1^7"},
		{At("QPD", 3, 1, 4), "QPD^1^3^1^4"},
		{Location{Segment: "PID", Sequence: 2, Field: 5, Comp: 1}, "PID^2^5^1^1"},
		{At("MSH"), "MSH^1"},
		{Location{}, ""},
	}
	for _, tc := range tests {
		if got := tc.loc.String(); got != tc.want {
			t.Errorf("%+v = %q, want %q", tc.loc, got, tc.want)
		}
	}
}

func TestAckByVersion(t *testing.T) {
	now := time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC)
	from := Responder{Application: "RLS", Facility: "HIE"}
	e := Errorf(At("PID", 7), CodeDataType, "PID-7 is not a date")
	v25 := mustParse(t, a04).Header()
	ack := string(Ack(v25, from, AE, "A1", now, "", e).Encode())
	want := "MSH|^~\\&|RLS|HIE|ADT1|STMARY|20261101093000+0000||ACK^A04^ACK|A1|P|2.5\r" +
		"MSA|AE|MSG00001|PID-7 is not a date\r" +
		"ERR||PID^1^7|102^Data type error^HL70357|E||||PID-7 is not a date\r"
	if ack != want {
		t.Errorf("2.5 ACK:\n%q\nwant\n%q", ack, want)
	}
	v231 := mustParse(t, strings.Replace(a04, "|2.5\r", "|2.3.1\r", 1)).Header()
	ack = string(Ack(v231, from, AE, "A2", now, "", e).Encode())
	if !strings.Contains(ack, "\rERR|PID^1^7^102&Data type error&HL70357\r") {
		t.Errorf("2.3.1 ACK has no ERR-1:\n%q", ack)
	}
	// The original's delimiters and character set carry over.
	odd := mustParse(t, "MSH#$%\\*#A#B#C#D#20260101##ADT$A04#7#P#2.5######8859/1\r").Header()
	ack = string(Ack(odd, from, AA, "A3", now, "").Encode())
	if !strings.HasPrefix(ack, "MSH#$%\\*#RLS#HIE#A#B#") || !strings.Contains(ack, "#8859/1\r") || !strings.Contains(ack, "MSA#AA#7") {
		t.Errorf("ACK with the original's delimiters:\n%q", ack)
	}
}

func TestPeekHeaderOfBrokenMessage(t *testing.T) {
	h := PeekHeader([]byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A04|CTRL9|P|2.3.1\rPID|1||X||\\X0\\\r"))
	if h.ControlID != "CTRL9" || h.Version != "2.3.1" || h.Trigger != "A04" {
		t.Errorf("header = %+v", h)
	}
	if h := PeekHeader([]byte("garbage")); h.ControlID != "" || h.Delims != DefaultDelimiters {
		t.Errorf("header of garbage = %+v", h)
	}
}
