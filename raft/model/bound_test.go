package model

import (
	"strings"
	"testing"
)

// FuzzBoundText: whatever a request carries, what the audit entry keeps of it passes the
// FSM's check of the same limit, so that one request can never make the FSM refuse a whole
// batch of audit entries.
func FuzzBoundText(f *testing.F) {
	f.Add("dr-house", uint16(256))
	f.Add("a\x00b\u202e\xff", uint16(5))
	f.Add(strings.Repeat("é", 300), uint16(256))
	f.Fuzz(func(t *testing.T, s string, max uint16) {
		n := int(max%1024) + 1
		if err := CheckText("f", BoundText(s, n), n); err != nil {
			t.Fatalf("BoundText(%q, %d): %v", s, n, err)
		}
		if err := CheckFreeText("f", BoundFreeText(s, n), n); err != nil {
			t.Fatalf("BoundFreeText(%q, %d): %v", s, n, err)
		}
	})
}
