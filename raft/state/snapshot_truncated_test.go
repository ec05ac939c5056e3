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
// copy) is refused with ErrNotState. Today it is not: FuzzRestoreSnapshot found within
// seconds that ValidateSnapshotFile crashes the whole process with SIGBUS, because bbolt
// maps the file and reads the freelist page its meta page names, past the end of the
// truncated file (a fault no recover can catch). Through POST /v1/cluster/restore this
// kills the node that received the upload. The validation runs in a child process, so the
// crash fails this test instead of killing the package's test binary.
//
// Skipped unless RLS_KNOWN_BUGS=1 until ValidateSnapshotFile refuses files shorter than
// their meta page's high-water mark (see the issue 7 report).
func TestTruncatedSnapshotIsRefused(t *testing.T) {
	if path := os.Getenv("RLS_VALIDATE_SNAPSHOT_CHILD"); path != "" {
		err := ValidateSnapshotFile(path)
		if !errors.Is(err, ErrNotState) {
			t.Fatalf("truncated snapshot: err = %v, want ErrNotState", err)
		}
		return
	}
	if os.Getenv("RLS_KNOWN_BUGS") == "" {
		t.Skip("known bug: a truncated snapshot crashes ValidateSnapshotFile with SIGBUS; set RLS_KNOWN_BUGS=1 to run")
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
