package hl7

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Charset is a character set of HL7 table 0211 (MSH-18) in which every delimiter is the
// ASCII byte it is, so that a message can be split before its text is decoded.
type Charset struct {
	// Name is the MSH-18 value rls writes for it.
	Name string
	// single is the single-byte table (nil for ASCII and UTF-8).
	single *charmap.Charmap
	utf8   bool
}

// The character sets rls reads and writes.
var (
	ASCII  = Charset{Name: "ASCII"}
	Latin1 = Charset{Name: "8859/1", single: charmap.ISO8859_1}
	UTF8   = Charset{Name: "UNICODE UTF-8", utf8: true}
)

// charsets maps every accepted MSH-18 spelling (upper case) to its character set. HL7
// table 0211 names the ISO 8859 parts "8859/n"; DICOM's "ISO IR n" terms are accepted as
// the same sets.
var charsets = map[string]Charset{
	"":              ASCII,
	"ASCII":         ASCII,
	"ISO IR6":       ASCII,
	"8859/1":        Latin1,
	"ISO IR100":     Latin1,
	"8859/2":        {Name: "8859/2", single: charmap.ISO8859_2},
	"8859/3":        {Name: "8859/3", single: charmap.ISO8859_3},
	"8859/4":        {Name: "8859/4", single: charmap.ISO8859_4},
	"8859/5":        {Name: "8859/5", single: charmap.ISO8859_5},
	"8859/6":        {Name: "8859/6", single: charmap.ISO8859_6},
	"8859/7":        {Name: "8859/7", single: charmap.ISO8859_7},
	"8859/8":        {Name: "8859/8", single: charmap.ISO8859_8},
	"8859/9":        {Name: "8859/9", single: charmap.ISO8859_9},
	"8859/15":       {Name: "8859/15", single: charmap.ISO8859_15},
	"UNICODE UTF-8": UTF8,
	"ISO IR192":     UTF8,
}

// ErrCharset is the error of a message whose MSH-18 names a character set rls does not
// support, or whose bytes are not text in the set it names.
var ErrCharset = errors.New("character set")

// LookupCharset returns the character set an MSH-18 value names.
func LookupCharset(name string) (Charset, error) {
	cs, ok := charsets[strings.ToUpper(strings.TrimSpace(name))]
	if !ok {
		return Charset{}, fmt.Errorf("%w %q is not supported (ASCII, 8859/1 to 8859/9, 8859/15 or UNICODE UTF-8)", ErrCharset, name)
	}
	return cs, nil
}

// decode turns bytes of the set into UTF-8.
func (c Charset) decode(b []byte) (string, error) {
	switch {
	case c.utf8:
		if !utf8.Valid(b) {
			return "", fmt.Errorf("%w: the message declares UNICODE UTF-8 but is not valid UTF-8", ErrCharset)
		}
		return string(b), nil
	case c.single != nil:
		out, err := c.single.NewDecoder().Bytes(b)
		if err != nil {
			return "", fmt.Errorf("%w: not %s text: %v", ErrCharset, c.Name, err)
		}
		return string(out), nil
	default:
		for _, x := range b {
			if x >= 0x80 {
				return "", fmt.Errorf("%w: byte 0x%02X is not ASCII; declare the character set in MSH-18 (8859/1 or UNICODE UTF-8)", ErrCharset, x)
			}
		}
		return string(b), nil
	}
}

// encode turns UTF-8 text into bytes of the set; it fails on a character the set lacks.
func (c Charset) encode(s string) ([]byte, error) {
	switch {
	case c.utf8:
		return []byte(s), nil
	case c.single != nil:
		out, err := c.single.NewEncoder().Bytes([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("%w: text has characters %s lacks", ErrCharset, c.Name)
		}
		return out, nil
	default:
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return nil, fmt.Errorf("%w: text has characters ASCII lacks", ErrCharset)
			}
		}
		return []byte(s), nil
	}
}
