package state

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// TestRecentLinkEventsNewestFirstAndBounded appends events of many persons interleaved and
// requires the newest ones back in reverse log order, no more than the limit read, and each
// person's own history unchanged.
func TestRecentLinkEventsNewestFirstAndBounded(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := st.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 50 {
		// EUIDs in an order unrelated to time, as random EUIDs are.
		euid := fmt.Sprintf("E%02d", (i*7)%13)
		ev := model.LinkEvent{Time: t0.Add(time.Duration(i) * time.Second), Action: "registered", EUID: euid, Record: fmt.Sprintf("s|%d", i), Score: float64(i), Actor: "a"}
		if err := b.Tx().AppendLinkEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx *Tx) error {
		var got []float64
		if err := tx.RecentLinkEvents(10, func(ev model.LinkEvent) bool { got = append(got, ev.Score); return true }); err != nil {
			return err
		}
		if len(got) != 10 || got[0] != 49 || got[9] != 40 {
			t.Errorf("newest 10 scores: got %v, want 49 down to 40", got)
		}
		got = got[:0]
		if err := tx.RecentLinkEvents(100, func(ev model.LinkEvent) bool { got = append(got, ev.Score); return len(got) < 3 }); err != nil {
			return err
		}
		if len(got) != 3 || got[2] != 47 {
			t.Errorf("stopping early: got %v", got)
		}
		h, err := tx.LinkHistory("E00")
		if err != nil {
			return err
		}
		if len(h) != 4 || h[0].Score != 0 || h[3].Score != 39 {
			t.Errorf("history of E00: %+v", h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
