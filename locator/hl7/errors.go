package hl7

import (
	"fmt"
	"strconv"
	"strings"
)

// Error codes of HL7 table 0357 (Message error condition codes), as ERR-3 and ERR-1
// carry them.
const (
	CodeSegmentSequence        = 100
	CodeRequiredFieldMissing   = 101
	CodeDataType               = 102
	CodeTableValueNotFound     = 103
	CodeValueTooLong           = 104
	CodeUnsupportedMessageType = 200
	CodeUnsupportedEvent       = 201
	CodeUnsupportedProcessing  = 202
	CodeUnsupportedVersion     = 203
	CodeUnknownKey             = 204
	CodeDuplicateKey           = 205
	CodeRecordLocked           = 206
	CodeInternal               = 207
)

// codeText is the table's text of each code, written beside it in ERR-3.
var codeText = map[int]string{
	0:                          "Message accepted",
	CodeSegmentSequence:        "Segment sequence error",
	CodeRequiredFieldMissing:   "Required field missing",
	CodeDataType:               "Data type error",
	CodeTableValueNotFound:     "Table value not found",
	CodeValueTooLong:           "Value too long",
	CodeUnsupportedMessageType: "Unsupported message type",
	CodeUnsupportedEvent:       "Unsupported event code",
	CodeUnsupportedProcessing:  "Unsupported processing id",
	CodeUnsupportedVersion:     "Unsupported version id",
	CodeUnknownKey:             "Unknown key identifier",
	CodeDuplicateKey:           "Duplicate key identifier",
	CodeRecordLocked:           "Application record locked",
	CodeInternal:               "Application internal error",
}

// CodeText returns the text HL7 table 0357 gives a code.
func CodeText(code int) string { return codeText[code] }

// Location is where in a message an error lies (the ERL data type of ERR-2): a segment
// by name and occurrence (1 for the first PID), and optionally a field, repetition,
// component and subcomponent, all counted from 1. Zero means "the whole".
type Location struct {
	Segment  string
	Sequence int
	Field    int
	Rep      int
	Comp     int
	Sub      int
}

// String renders the location as HL7 writes it: PID^1^7, QPD^1^3^1^4.
func (l Location) String() string {
	if l.Segment == "" {
		return ""
	}
	parts := []string{l.Segment, strconv.Itoa(max(l.Sequence, 1))}
	if l.Field == 0 {
		return strings.Join(parts, "^")
	}
	parts = append(parts, strconv.Itoa(l.Field))
	rep := l.Rep
	if rep == 0 && (l.Comp != 0 || l.Sub != 0) {
		rep = 1 // a component of a field that does not repeat: its one repetition
	}
	for _, n := range []int{rep, l.Comp, l.Sub} {
		if n == 0 {
			break
		}
		parts = append(parts, strconv.Itoa(n))
	}
	return strings.Join(parts, "^")
}

// At is a location given in the notation HL7 writes: At("PID", 7) is PID-7 of the first
// PID; At("QPD", 3, 1, 4) the fourth component of QPD-3's first repetition.
func At(segment string, positions ...int) Location {
	l := Location{Segment: segment, Sequence: 1}
	dst := []*int{&l.Field, &l.Rep, &l.Comp, &l.Sub}
	for i, p := range positions {
		if i < len(dst) {
			*dst[i] = p
		}
	}
	return l
}

// Error is an error about a message, as an acknowledgement reports it: where (ERR-2), the
// table 0357 code (ERR-3), and a message for the people who read interface logs (ERR-8).
// Severity is E (error) unless set to W (warning) or I (information).
type Error struct {
	Location Location
	Code     int
	Severity string
	Message  string
}

func (e *Error) Error() string {
	where := e.Location.String()
	if where == "" {
		return fmt.Sprintf("%s (%d)", e.Message, e.Code)
	}
	return fmt.Sprintf("%s: %s (%d)", where, e.Message, e.Code)
}

// Errorf builds an Error.
func Errorf(loc Location, code int, format string, args ...any) *Error {
	return &Error{Location: loc, Code: code, Severity: "E", Message: fmt.Sprintf(format, args...)}
}
