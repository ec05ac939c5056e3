package state

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTruncatedSnapshotIsRefused checks that a snapshot cut short (an interrupted upload or
// copy) is refused with ErrNotState. FuzzRestoreSnapshot found that it used to crash the
// whole process with SIGBUS: bbolt maps the file and reads the freelist page its meta page
// names, past the end of the truncated file, a fault no recover can catch; through
// POST /v1/cluster/restore that killed the node that received the upload. checkBoltFile now
// refuses such files before bbolt maps them. The validation runs in a child process, so a
// regression fails this test instead of killing the package's test binary.
func TestTruncatedSnapshotIsRefused(t *testing.T) {
	if path := os.Getenv("RLS_VALIDATE_SNAPSHOT_CHILD"); path != "" {
		err := ValidateSnapshotFile(path)
		if !errors.Is(err, ErrNotState) {
			t.Fatalf("truncated snapshot: err = %v, want ErrNotState", err)
		}
		return
	}
	good := validSnapshot(t)
	path := filepath.Join(t.TempDir(), "truncated.db")
	if err := os.WriteFile(path, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestTruncatedSnapshotIsRefused$", "-test.count=1")
	child.Env = append(os.Environ(), "RLS_VALIDATE_SNAPSHOT_CHILD="+path)
	out, err := child.CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Fatalf("validating a truncated snapshot failed the process (%v):\n%s", err, strings.Join(lines[:min(6, len(lines))], "\n"))
	}
}
