package search

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseDateParam(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return v.UTC()
	}
	cases := []struct {
		in       string
		prefix   DatePrefix
		from, to string
	}{
		{"2024", DateEq, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"ge2024-02", DateGe, "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"lt2024-12", DateLt, "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"le2024-02-29", DateLe, "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"gt2024-03-15T10:30", DateGt, "2024-03-15T10:30:00Z", "2024-03-15T10:31:00Z"},
		{"eq2024-03-15T10:30:05Z", DateEq, "2024-03-15T10:30:05Z", "2024-03-15T10:30:06Z"},
		{"ne2024-03-15T10:30:05.25+02:00", DateNe, "2024-03-15T08:30:05.25Z", "2024-03-15T08:30:05.26Z"},
		{"sa2024-03-15T23:00:00-05:30", DateSa, "2024-03-16T04:30:00Z", "2024-03-16T04:30:01Z"},
		{"eb1999", DateEb, "1999-01-01T00:00:00Z", "2000-01-01T00:00:00Z"},
	}
	for _, c := range cases {
		got, err := ParseDateParam(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		want := DateParam{Prefix: c.prefix, Range: TimeRange{From: utc(c.from), To: utc(c.to)}}
		if got.Prefix != want.Prefix || !got.Range.From.Equal(want.Range.From) || !got.Range.To.Equal(want.Range.To) {
			t.Errorf("%s: got %s, want %s", c.in, got, want)
		}
	}
	for _, bad := range []string{
		"", "ge", "ap2024", "xx2024", "24", "2024-2", "2024-13", "2024-02-30", "2023-02-29",
		"2024-01-01T", "2024-01-01T25:00", "2024-01-01T10:60", "2024-01-01T10:00:61",
		"2024-01-01T10:00+15:00", "2024-01-01 10:00", "2024-01-01T10:00:00.1234567890Z",
		"GE2024", "2024-01-01Z", " 2024",
	} {
		if _, err := ParseDateParam(bad); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%q: err = %v, want ErrInvalidQuery", bad, err)
		}
	}
}

func TestParseText(t *testing.T) {
	cases := []struct {
		in       string
		words    []string
		phrases  []string
		excluded []textClause
	}{
		{"heart failure", []string{"heart", "failure"}, nil, nil},
		{`  "ejection fraction"  reduced `, []string{"reduced"}, []string{"ejection fraction"}, nil},
		{`note -routine -"left arm"`, []string{"note"}, nil, []textClause{{"routine", false}, {"left arm", true}}},
		{`"unterminated phrase`, nil, []string{"unterminated phrase"}, nil},
		{`a "" - b`, []string{"a", "b"}, nil, nil},
		{"x-ray", []string{"x-ray"}, nil, nil},
	}
	for _, c := range cases {
		got, err := parseText(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !slices.Equal(got.words, c.words) || !slices.Equal(got.phrases, c.phrases) || !slices.Equal(got.excluded, c.excluded) {
			t.Errorf("%q: got %+v", c.in, got)
		}
	}
	for _, bad := range []string{"", "   ", "-only", `-"only this"`, "\xff", strings.Repeat("w ", 33), strings.Repeat("x", maxTextLength+1)} {
		if _, err := parseText(bad); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%q: err = %v, want ErrInvalidQuery", bad, err)
		}
	}
}

func FuzzParseDateParam(f *testing.F) {
	for _, s := range []string{"2024", "ge2024-02", "eq2024-03-15T10:30:05.25+02:00", "sa2024-03-15T23:00", "ap2020", "2024-02-30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseDateParam(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("%q: error %v does not wrap ErrInvalidQuery", s, err)
			}
			return
		}
		if !p.Range.From.Before(p.Range.To) {
			t.Fatalf("%q: empty range %s", s, p)
		}
		if _, err := dateCondition("date", fieldCreated, fieldCreated, p); err != nil {
			t.Fatalf("%q: parsed %s but cannot be queried: %v", s, p, err)
		}
	})
}

func FuzzParseText(f *testing.F) {
	for _, s := range []string{"heart failure", `"ejection fraction" -routine`, `-"a b" c`, `"`, "-", "x-ray"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseText(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("%q: error %v does not wrap ErrInvalidQuery", s, err)
			}
			return
		}
		if len(q.words)+len(q.phrases) == 0 {
			t.Fatalf("%q: accepted with nothing to look for", s)
		}
		if n := len(q.words) + len(q.phrases) + len(q.excluded); n > maxTextClauses {
			t.Fatalf("%q: %d clauses", s, n)
		}
		all := slices.Concat(q.words, q.phrases)
		for _, c := range q.excluded {
			all = append(all, c.text)
		}
		for _, w := range all {
			if w == "" || !utf8.ValidString(w) || !strings.Contains(s, w) {
				t.Fatalf("%q: clause %q is not a piece of the input", s, w)
			}
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add("n.MjAyNA.ZDE")
	f.Add(encodeCursor(OldestFirst, []string{"\U0010ffff\U0010ffff\U0010ffff", "d5"}))
	f.Add("n..")
	f.Add("o.!!.??")
	f.Fuzz(func(t *testing.T, s string) {
		for _, order := range []SortOrder{NewestFirst, OldestFirst} {
			values, err := decodeCursor(s, order)
			if err != nil {
				if !errors.Is(err, ErrInvalidQuery) {
					t.Fatalf("%q: error %v does not wrap ErrInvalidQuery", s, err)
				}
				continue
			}
			if len(values) != 2 {
				t.Fatalf("%q: %d sort values", s, len(values))
			}
			if _, err := decodeCursor(encodeCursor(order, values), order); err != nil {
				t.Fatalf("%q: re-encoded cursor does not decode: %v", s, err)
			}
		}
	})
}

// FuzzSearchText runs fuzzed _text and author values through a real index:
// anything is either a result or ErrInvalidQuery, never another error or a
// panic.
func FuzzSearchText(f *testing.F) {
	ix := openTest(f)
	mustApply(f, ix, 1, corpus()...)
	for _, s := range []string{"heart", `"ejection fraction"`, "note -routine", "*", "~", "a:b", "+x", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, q := range []Query{{Text: s}, {AuthorFamily: []string{s}}, {Types: []string{s}}, {After: s}} {
			_, err := ix.Search(context.Background(), q)
			if err != nil && !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("%+v: %v", q, err)
			}
		}
	})
}
