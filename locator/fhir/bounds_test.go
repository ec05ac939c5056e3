package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rls-hie/rls/raft/model"
)

func TestCheckBounds(t *testing.T) {
	nested := func(n int) string { return `{"a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}` }
	for _, c := range []struct {
		name, doc  string
		status     int
		expression string
	}{
		{"fine", `{"resourceType":"Patient","name":[{"family":"O'Brien","given":["Ann"]}],"text":{"div":"<div>a\nb\tc</div>"}}`, 0, ""},
		{"deep", nested(100), 400, "X.a" + strings.Repeat("[0]", MaxDepth-1)},
		{"at the limit", nested(MaxDepth - 1), 0, ""},
		{"NUL escaped", `{"name":[{"family":"a\u0000b"}]}`, 400, "X.name[0].family"},
		{"bidi raw", "{\"name\":[{\"family\":\"a\u202eb\"}]}", 400, "X.name[0].family"},
		{"bidi escaped", `{"x":"\u2066"}`, 400, "X.x"},
		{"noncharacter", `{"x":"\uffff"}`, 400, "X.x"},
		{"invalid UTF-8", "{\"x\":\"\xff\"}", 400, "X.x"},
		{"many elements", `[` + strings.Repeat(`1,`, MaxElements) + `1]`, 400, ""},
		{"too big", `{"x":"` + strings.Repeat("a", model.MaxResourceBytes) + `"}`, 413, "X"},
		{"malformed is the decoder's", `{"x":"\u00`, 0, ""},
		{"surrogate pair", `{"x":"\ud83d\ude00"}`, 0, ""},
	} {
		err := CheckBounds([]byte(c.doc), "X", ResourceBounds)
		if c.status == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var fe *Error
		if !errors.As(err, &fe) || fe.Status != c.status {
			t.Errorf("%s: %v, want %d", c.name, err, c.status)
			continue
		}
		if c.expression != "" && (len(fe.Issue.Expression) == 0 || fe.Issue.Expression[0] != c.expression) {
			t.Errorf("%s: expression %v, want %s", c.name, fe.Issue.Expression, c.expression)
		}
	}
}

// measure returns the nesting depth, the number of values and whether a string holds a
// character CheckBounds refuses, by decoding with encoding/json.
func measure(data []byte) (depth, elements int, forbidden bool, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	cur := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return depth, elements, forbidden, err.Error() == "EOF" && cur == 0
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				elements++
				cur++
				depth = max(depth, cur)
			} else {
				cur--
			}
		case string:
			for _, r := range v {
				forbidden = forbidden || model.ForbiddenRune(r, true)
			}
			elements++
		default:
			elements++
		}
	}
}

// FuzzCheckBounds compares CheckBounds with encoding/json: whatever the input, it never
// panics, and on a well-formed document it refuses exactly the ones nested deeper than
// MaxDepth or holding a character rls does not store (and accepts a small, shallow, clean
// one).
//
// Run it longer with: go test -run '^$' -fuzz FuzzCheckBounds -fuzztime 5m ./locator/fhir/
// (or .ci/fuzz, which runs every target).
func FuzzCheckBounds(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","name":[{"family":"Smith","given":["Mary"]}]}`))
	f.Add([]byte(`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`))
	f.Add([]byte(`{"x":"a\u0000b","y":"\u202e"}`))
	f.Add([]byte(`{"k\"ey":"v\\","n":-1.5e3,"t":true,"f":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckBounds(data, "X", Bounds{MaxDepth: MaxDepth})
		if !json.Valid(data) || !utf8.Valid(data) {
			return
		}
		depth, _, forbidden, ok := measure(data)
		if !ok {
			return
		}
		refuse := depth > MaxDepth || forbidden
		if refuse != (err != nil) {
			t.Fatalf("depth %d, forbidden %v: CheckBounds says %v", depth, forbidden, err)
		}
	})
}
