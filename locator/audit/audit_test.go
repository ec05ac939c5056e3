package audit

import (
	"context"
	"errors"
	"fmt"
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

func TestNodeCredential(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	cred := Sign(key, "n2", now, "POST", "/v1/internal/audit", []byte("batch"))
	if node, err := Verify(key, cred, now.Add(time.Second), "POST", "/v1/internal/audit", []byte("batch")); err != nil || node != "n2" {
		t.Fatalf("valid credential: %q %v", node, err)
	}
	bad := []struct {
		name              string
		key               []byte
		at                time.Time
		method, uri, cred string
		body              string
	}{
		{"another key", []byte("another key of 32 bytes, exactly"), now, "POST", "/v1/internal/audit", cred, "batch"},
		{"no key", nil, now, "POST", "/v1/internal/audit", cred, "batch"},
		{"another body", key, now, "POST", "/v1/internal/audit", cred, "forged"},
		{"another path", key, now, "POST", "/v1/locate", cred, "batch"},
		{"replayed later", key, now.Add(2 * MaxSkew), "POST", "/v1/internal/audit", cred, "batch"},
		{"garbage", key, now, "POST", "/v1/internal/audit", "n2 x y", "batch"},
	}
	for _, c := range bad {
		if _, err := Verify(c.key, c.cred, c.at, c.method, c.uri, []byte(c.body)); !errors.Is(err, ErrBadCredential) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// FuzzVerifyNodeCredential feeds arbitrary X-Rls-Node-Credential values to Verify: it
// never panics and accepts nothing but a credential Sign made with the key, for that
// request, within the allowed skew.
//
// Run it longer with: go test -run '^$' -fuzz FuzzVerifyNodeCredential -fuzztime 5m ./locator/audit/
func FuzzVerifyNodeCredential(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	good := Sign(key, "n2", now, "GET", "/v1/cluster/fence", nil)
	f.Add(good)
	f.Add("n2 1 deadbeef")
	f.Add("")
	f.Add("a b c d")
	f.Add("n2 99999999999999999999 x")
	f.Fuzz(func(t *testing.T, cred string) {
		node, err := Verify(key, cred, now, "GET", "/v1/cluster/fence", nil)
		if err == nil && cred != good {
			// Only the exact credential Sign made may verify (its MAC covers node and time).
			if Sign(key, node, now, "GET", "/v1/cluster/fence", nil) != cred {
				t.Fatalf("forged credential %q verified as %q", cred, node)
			}
		}
	})
}
