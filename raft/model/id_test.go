package model

import (
	"fmt"
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
