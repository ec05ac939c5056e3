package model

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTimeOrderedIDsSortByTime: ids of later seconds sort after earlier ones whatever their
// random bits, ids of one second differ by them, and the second is the id's first 8 digits.
func TestTimeOrderedIDsSortByTime(t *testing.T) {
	start := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	highest, lowest := [12]byte{}, [12]byte{}
	for i := range highest {
		highest[i] = 0xff
	}
	earlier := TimeOrderedID(start, highest)
	later := TimeOrderedID(start.Add(time.Second), lowest)
	if later <= earlier {
		t.Errorf("id of the next second %s sorts before %s", later, earlier)
	}
	if len(earlier) != 32 || strings.Trim(earlier, "0123456789abcdef") != "" {
		t.Errorf("id %q is not 32 hex digits", earlier)
	}
	if want := fmt.Sprintf("%08x", start.Unix()); !strings.HasPrefix(earlier, want) || !strings.HasSuffix(earlier, strings.Repeat("f", 24)) {
		t.Errorf("id %q: want the second %s then the 96 random bits", earlier, want)
	}
	if TimeOrderedID(start, lowest) == earlier {
		t.Error("ids of one second with different random bits are equal")
	}
}

// TestValidateIDFollowsTheFHIRGrammar checks the id grammar (FHIR R4 "id": 1–64 of
// A-Z, a-z, 0-9, '-', '.') on edge cases and on random strings against the regular
// expression the specification gives, which the check once was.
func TestValidateIDFollowsTheFHIRGrammar(t *testing.T) {
	grammar := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	cases := []string{"", "a", "A-1.b", strings.Repeat("x", 64), strings.Repeat("x", 65), "a b", "a_b", "é", "a\n",
		"\na", "a/b", "E0000000000000000000000000000001", "-", ".", "a\x00"}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "aZ09-._/ \n\xc3\xa9\x00"
	for range 20000 {
		b := make([]byte, rng.IntN(70))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, id := range cases {
		if got, want := ValidateID("id", id) == nil, grammar.MatchString(id); got != want {
			t.Errorf("ValidateID(%q) valid = %v, the grammar says %v", id, got, want)
		}
	}
}
