package state

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

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

// TestLinkEventOrderBackfilled: a state file written before the log-ordered index of link
// events existed (history, no index) gets the whole index when opened, and the same state
// hash as a file that had it all along.
func TestLinkEventOrderBackfilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		ev := model.LinkEvent{Time: t0.Add(time.Duration(i) * time.Second), Action: "registered", EUID: fmt.Sprintf("E%02d", (i*7)%5), Record: fmt.Sprintf("s|%d", i), Score: float64(i), Actor: "a"}
		if err := b.Tx().AppendLinkEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	want, err := st.Hash()
	if err != nil {
		t.Fatal(err)
	}
	// The file as an older release left it: the index bucket empty.
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	err = st.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketLinkEventOrder); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketLinkEventOrder)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := st.Hash(); h == want {
		t.Fatal("emptying the index left the state hash unchanged: the test proves nothing")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := st.Hash(); err != nil || got != want {
		t.Fatalf("hash after the backfill: %v %v, want %v", got, err, want)
	}
	var scores []float64
	err = st.View(func(tx *Tx) error {
		return tx.RecentLinkEvents(100, func(ev model.LinkEvent) bool { scores = append(scores, ev.Score); return true })
	})
	if err != nil || len(scores) != 20 || scores[0] != 19 || scores[19] != 0 {
		t.Fatalf("recent events after the backfill: %v %v", scores, err)
	}
}
