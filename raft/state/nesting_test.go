package state

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestCheckNestingPanicsOnASecondTransaction: with the check on, a goroutine holding a
// transaction (a View, or the state machine's batch while it applies) panics when it opens
// another; transactions one after the other, and on other goroutines meanwhile, are fine.
func TestCheckNestingPanicsOnASecondTransaction(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.CheckNesting()
	nested := func(name string, outer func(inner func())) {
		t.Helper()
		var got any
		func() {
			defer func() { got = recover() }()
			outer(func() { _ = st.View(func(*Tx) error { return nil }) })
		}()
		if msg, _ := got.(string); !strings.Contains(msg, "while holding a transaction of the state") {
			t.Errorf("%s: a second transaction on the holding goroutine gave %v, want the nesting panic", name, got)
		}
	}
	nested("View in View", func(inner func()) { _ = st.View(func(*Tx) error { inner(); return nil }) })
	nested("View in ViewFile", func(inner func()) { _ = st.ViewFile(func(*Tx) error { inner(); return nil }) })
	nested("View while applying", func(inner func()) { done := st.Applying(); defer done(); inner() })

	// Not nested: in turn, and on another goroutine while one is held.
	for range 3 {
		if err := st.View(func(*Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	err = st.View(func(*Tx) error {
		var wg sync.WaitGroup
		wg.Go(func() { _ = st.View(func(*Tx) error { return nil }) })
		wg.Wait()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.nesting.holding); n != 0 {
		t.Errorf("%d goroutines still noted as holding a transaction after all ended", n)
	}
}
