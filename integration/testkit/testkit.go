// Package testkit is what rls's test suites share and that needs nothing of rls: waiting for
// a condition with a deadline, loopback listeners handed over open, the path of the
// repository's test data, and the process's CPU time for benchmarks.
//
// It is imported by tests only, and it imports only the standard library, so that the tests
// of every package (mpi's, raft's and the FSM's among them) can use it without a cycle.
// The in-process node starter, which needs raft, is raft/rafttest.
package testkit

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Poll calls cond every interval until it holds, or fails once timeout has passed.
func Poll(timeout, interval time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(interval)
	}
	return nil
}

// WaitFor waits until cond holds, polling every 10 ms, and fails the test, naming what it
// waited for, once timeout has passed.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Poll(timeout, 10*time.Millisecond, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Listen returns an open TCP listener on a free loopback port, closed when the test ends.
// Hand it over open to whatever serves on it: choosing a port by listening, closing and
// listening again lets another listener take it in between (it once gave one node the same
// port for HTTP and Raft).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Testdata returns the path of a file under the repository's testdata directory, found by
// walking up from the package directory to go.mod. The data is part of the repository: a
// missing file fails the test.
func Testdata(t testing.TB, elem ...string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory: cannot find the repository's testdata")
		}
		dir = parent
	}
	p := filepath.Join(append([]string{dir, "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test data: %v", err)
	}
	return p
}
