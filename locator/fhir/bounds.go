package fhir

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rls-hie/rls/raft/model"
)

// Bounds on every FHIR resource rls accepts, checked in one pass over the bytes before they
// are decoded: a resource nested thousands of levels deep, or holding hundreds of thousands
// of elements, costs seconds and gigabytes to decode, store and render again (indented JSON
// grows with the square of the depth) long before it reaches any other limit.
const (
	// MaxDepth is the deepest nesting of objects and arrays (a contained Practitioner's
	// name with an extension holding a coding is about 8 deep).
	MaxDepth = 32
	// MaxElements is the number of JSON values in one resource.
	MaxElements = 4096
	// maxKeyBytes bounds an element name.
	maxKeyBytes = 128
)

// Bounds are the limits CheckBounds applies.
type Bounds struct {
	MaxBytes    int
	MaxDepth    int
	MaxElements int
}

// ResourceBounds are the bounds of one resource.
var ResourceBounds = Bounds{MaxBytes: model.MaxResourceBytes, MaxDepth: MaxDepth, MaxElements: MaxElements}

type frame struct {
	array     bool
	index     int
	key       string
	expectKey bool
}

// CheckBounds walks JSON without building it and refuses a document beyond b (413 for its
// size, 400 otherwise), or holding a string with a character rls does not store (NUL and
// other control characters but tab and line breaks, bidirectional overrides, noncharacters,
// invalid UTF-8). The error's expression names the element, from root (a resource type).
// Malformed JSON is left to the decoder, which names the error better: CheckBounds stops at
// it and returns nil.
func CheckBounds(data []byte, root string, b Bounds) error {
	if b.MaxBytes > 0 && len(data) > b.MaxBytes {
		return Errorf(http.StatusRequestEntityTooLarge, "too-long", root, "%s is %d bytes; at most %d are accepted", root, len(data), b.MaxBytes)
	}
	var stack []frame
	elements := 0
	path := func() string {
		var sb strings.Builder
		sb.WriteString(root)
		for _, f := range stack {
			if f.array {
				sb.WriteString("[" + strconv.Itoa(f.index) + "]")
			} else if f.key != "" {
				sb.WriteString("." + f.key)
			}
		}
		return sb.String()
	}
	value := func() error {
		elements++
		if b.MaxElements > 0 && elements > b.MaxElements {
			return Errorf(http.StatusBadRequest, "too-long", path(), "%s holds more than %d elements", root, b.MaxElements)
		}
		return nil
	}
	for i := 0; i < len(data); {
		c := data[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
		case '{', '[':
			if err := value(); err != nil {
				return err
			}
			if len(stack) >= b.MaxDepth {
				return Errorf(http.StatusBadRequest, "too-long", path(), "%s nests deeper than %d levels", root, b.MaxDepth)
			}
			stack = append(stack, frame{array: c == '[', expectKey: c == '{'})
			i++
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			stack = stack[:len(stack)-1]
			i++
		case ',':
			if len(stack) == 0 {
				return nil
			}
			top := &stack[len(stack)-1]
			if top.array {
				top.index++
			} else {
				top.expectKey, top.key = true, ""
			}
			i++
		case ':':
			if len(stack) == 0 {
				return nil
			}
			stack[len(stack)-1].expectKey = false
			i++
		case '"':
			isKey := len(stack) > 0 && !stack[len(stack)-1].array && stack[len(stack)-1].expectKey
			s, end, err := scanString(data, i)
			if end < 0 {
				return nil // unterminated: the decoder's error
			}
			if isKey {
				if len(s) > maxKeyBytes {
					return Errorf(http.StatusBadRequest, "structure", path(), "an element name in %s is longer than %d bytes", root, maxKeyBytes)
				}
				stack[len(stack)-1].key = s
			} else if verr := value(); verr != nil {
				return verr
			}
			if err != "" {
				return Errorf(http.StatusBadRequest, "invalid", path(), "%s %s", path(), err)
			}
			i = end
		default:
			// A number, true, false or null: one element up to the next delimiter.
			if err := value(); err != nil {
				return err
			}
			for i < len(data) && !strings.ContainsRune(" \t\n\r,:]}[{\"", rune(data[i])) {
				i++
			}
		}
	}
	return nil
}

// scanString reads the JSON string starting at data[start] (a quote). It returns its first
// maxKeyBytes+1 bytes (element names are what the path needs), the index after its closing
// quote (-1 if there is none), and what is wrong with its characters, if anything.
func scanString(data []byte, start int) (head string, end int, problem string) {
	var sb []byte
	note := func(r rune) {
		if problem == "" && model.ForbiddenRune(r, true) {
			problem = fmt.Sprintf("holds the character %U, which rls does not store (control, bidirectional override or noncharacter)", r)
		}
		if len(sb) <= maxKeyBytes {
			sb = utf8.AppendRune(sb, r)
		}
	}
	for i := start + 1; i < len(data); {
		c := data[i]
		switch {
		case c == '"':
			return string(sb), i + 1, problem
		case c == '\\':
			if i+1 >= len(data) {
				return "", -1, ""
			}
			r, n := rune(data[i+1]), 2
			switch data[i+1] {
			case 'n':
				r = '\n'
			case 't':
				r = '\t'
			case 'r':
				r = '\r'
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'u':
				if r, n = unicodeEscape(data, i); n == 0 {
					return "", -1, ""
				}
			}
			note(r)
			i += n
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				if problem == "" {
					problem = "is not valid UTF-8"
				}
				i++
				continue
			}
			note(r)
			i += size
		}
	}
	return "", -1, ""
}

// unicodeEscape decodes \uXXXX at data[i] (and the low half of a surrogate pair after it),
// returning the rune and the bytes consumed, or 0 bytes if the escape is malformed.
func unicodeEscape(data []byte, i int) (rune, int) {
	hex := func(at int) (rune, bool) {
		if at+6 > len(data) || data[at] != '\\' || data[at+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(data[at+2:at+6]), 16, 32)
		return rune(v), err == nil
	}
	r, ok := hex(i)
	if !ok {
		return 0, 0
	}
	if r >= 0xD800 && r < 0xDC00 {
		if lo, ok := hex(i + 6); ok && lo >= 0xDC00 && lo < 0xE000 {
			return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 12
		}
		return utf8.RuneError, 6
	}
	return r, 6
}
