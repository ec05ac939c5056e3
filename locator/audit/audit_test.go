package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// TestBatcherGroupsConcurrentEntries: entries recorded concurrently share commits (each
// request does not wait for a commit of its own), every entry is committed exactly once,
// and nobody returns before the commit holding its entry has finished.
func TestBatcherGroupsConcurrentEntries(t *testing.T) {
	var mu sync.Mutex
	committed := map[string]int{}
	var commits atomic.Int64
	b := NewBatcher(func(ctx context.Context, es []model.AuditEntry) error {
		time.Sleep(10 * time.Millisecond) // a Raft round trip
		mu.Lock()
		defer mu.Unlock()
		for _, e := range es {
			committed[e.ID]++
		}
		commits.Add(1)
		return nil
	}, BatcherOptions{MaxInFlight: 2})
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint(i)
			if err := b.Record(context.Background(), model.AuditEntry{ID: id}); err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if committed[id] != 1 {
				t.Errorf("entry %s returned before it was committed (%d)", id, committed[id])
			}
		}()
	}
	wg.Wait()
	if len(committed) != n {
		t.Fatalf("%d entries committed, want %d", len(committed), n)
	}
	if c := commits.Load(); c > n/4 {
		t.Errorf("%d commits for %d concurrent entries: not batched", c, n)
	}
	t.Logf("%d entries in %d commits", n, commits.Load())
}

// TestBatcherReportsFailure: every waiter of a batch that could not be committed learns it.
func TestBatcherReportsFailure(t *testing.T) {
	down := errors.New("no quorum")
	b := NewBatcher(func(ctx context.Context, es []model.AuditEntry) error { return down }, BatcherOptions{})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Record(context.Background(), model.AuditEntry{ID: fmt.Sprint(i)}); !errors.Is(err, ErrNotRecorded) || !errors.Is(err, down) {
				t.Errorf("Record: %v", err)
			}
		}()
	}
	wg.Wait()
}

// TestIDsGrowWithTime: an entry id is 32 hex digits beginning with the second it was drawn
// (model.TimeOrderedID), so that the state's index by id grows at its end.
func TestIDsGrowWithTime(t *testing.T) {
	before := time.Now().Unix()
	id, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Unix()
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("id %q is not 32 hex digits", id)
	}
	if sec, err := strconv.ParseInt(id[:8], 16, 64); err != nil || sec < before || sec > after {
		t.Fatalf("id %q does not begin with the second it was drawn (%d..%d)", id, before, after)
	}
}
