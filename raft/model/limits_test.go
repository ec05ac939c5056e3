package model

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCheckText(t *testing.T) {
	for _, c := range []struct {
		value string
		max   int
		want  error
	}{
		{"O'Brien", 10, nil},
		{"Müller-Lüdenscheidt", 19, nil},
		{strings.Repeat("é", 11), 10, ErrTooLong},
		{"a\x00b", 10, ErrForbiddenCharacter},
		{"a\tb", 10, ErrForbiddenCharacter},
		{"abc\u202edcb", 20, ErrForbiddenCharacter},
		{"x\u2067y", 20, ErrForbiddenCharacter},
		{"\ufeffx", 20, ErrForbiddenCharacter},
		{"bad \xff utf8", 20, ErrForbiddenCharacter},
		{"\u0085", 20, ErrForbiddenCharacter},
	} {
		err := CheckText("f", c.value, c.max)
		if !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
			t.Errorf("CheckText(%q, %d) = %v, want %v", c.value, c.max, err, c.want)
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), c.value)) {
			t.Errorf("CheckText(%q): %v should wrap ErrInvalid and not repeat the value", c.value, err)
		}
	}
	if err := CheckFreeText("f", "line 1\nline 2\ttab", 100); err != nil {
		t.Errorf("free text with line breaks: %v", err)
	}
	if err := CheckFreeText("f", "x\x00", 100); !errors.Is(err, ErrForbiddenCharacter) {
		t.Errorf("free text with NUL: %v", err)
	}
}

func TestCheckSystemAndRecordKey(t *testing.T) {
	if err := CheckSystem("s", "urn:oid:1.2|3"); !errors.Is(err, ErrInvalid) {
		t.Errorf("system with '|': %v", err)
	}
	if err := ValidateSystemURI("s", "urn:oid:1.2|3"); !errors.Is(err, ErrInvalid) {
		t.Errorf("URI with '|': %v", err)
	}
	if err := CheckRecordKey("k", "urn:oid:1.2|MRN|1"); err == nil {
		// The value may hold '|' (the key splits at the first one); the system may not.
	} else {
		t.Errorf("value with '|': %v", err)
	}
	if err := CheckRecordKey("k", "urn:oid:1.2|"+strings.Repeat("9", MaxIdentifierValueLength+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("long value: %v", err)
	}
}

func TestCheckBirthDate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, ok := range []string{"", "1961-07-04", "1961", "1961-07", "19610704", "19611392", "2026-03-02"} {
		if err := CheckBirthDate("b", ok, now); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"0000-01-01", "9999-12-31", "1849-12-31", "2027", "2026-03-04", "1961-7-4", "1961/07/04", "19610704x", "abcd"} {
		if err := CheckBirthDate("b", bad, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzCheckText: whatever the value, CheckText and CheckFreeText never panic, accept only
// valid UTF-8 of at most max characters without a forbidden character, and never repeat
// the value in their error.
//
// Run it longer with: go test -run '^$' -fuzz FuzzCheckText -fuzztime 5m ./raft/model/
func FuzzCheckText(f *testing.F) {
	f.Add("O'Brien", uint8(10))
	f.Add("a\x00b\u202e\xff\ufeff", uint8(3))
	f.Fuzz(func(t *testing.T, s string, max uint8) {
		for _, multiline := range []bool{false, true} {
			err := checkString("f", s, int(max), multiline)
			if err != nil {
				if len(s) > 200 && strings.Contains(err.Error(), s) {
					t.Fatalf("the error repeats the value: %v", err)
				}
				continue
			}
			if !utf8.ValidString(s) || utf8.RuneCountInString(s) > int(max) {
				t.Fatalf("accepted %q (max %d)", s, max)
			}
			for _, r := range s {
				if ForbiddenRune(r, multiline) {
					t.Fatalf("accepted %q holding %U", s, r)
				}
			}
		}
	})
}
