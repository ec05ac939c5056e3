package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// validSnapshot returns the bytes of a snapshot of a small state file with one entry of
// every kind the fuzz seeds can mutate.
func validSnapshot(tb testing.TB) []byte {
	tb.Helper()
	s, err := Open(filepath.Join(tb.TempDir(), "state.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := (&Tx{tx: &kvTx{bolt: tx}}).SetApplied(42, 3); err != nil {
			return err
		}
		return tx.Bucket(bucketNodes).Put([]byte("n1"), []byte(`{"id":"n1"}`))
	})
	if err != nil {
		tb.Fatal(err)
	}
	sn, err := s.BeginSnapshot()
	if err != nil {
		tb.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzRestoreSnapshot feeds arbitrary bytes to the two ways a snapshot enters a node: the
// check a user upload passes (ValidateSnapshotFile) and the restore raft drives
// (Store.Replace, which validates before it swaps). Whatever the bytes, neither may panic
// or hang; a refused snapshot must leave the node's state exactly as it was (same digest,
// same applied index), and one that is accepted must leave a state that can be read and
// hashed. Seeds: a valid snapshot, non-files, bit flips in its meta pages and truncations
// (which once crashed the process with SIGBUS; see TestTruncatedSnapshotIsRefused).
//
// Run it longer with: go test -run '^$' -fuzz FuzzRestoreSnapshot -fuzztime 5m ./raft/state/
func FuzzRestoreSnapshot(f *testing.F) {
	good := validSnapshot(f)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("not a bbolt file"))
	for _, offset := range []int{0x10, 0x20, 0x1000 + 0x20, 0x40} {
		flipped := bytes.Clone(good)
		flipped[offset] ^= 0xff
		f.Add(flipped)
	}
	for _, cut := range []int{len(good) / 2, len(good) - 1, 0x2000, 0x1000 + 0x50} {
		if cut < len(good) {
			f.Add(bytes.Clone(good[:cut]))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		upload := filepath.Join(dir, "upload.db")
		if err := os.WriteFile(upload, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ValidateSnapshotFile(upload); err != nil && !errors.Is(err, ErrNotState) {
			t.Fatalf("validate: error not marked ErrNotState: %v", err)
		}

		s, err := Open(filepath.Join(dir, "state.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		before, err := s.Hash()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Replace(bytes.NewReader(data)); err != nil {
			after, herr := s.Hash()
			if herr != nil {
				t.Fatalf("state unreadable after a refused restore (%v): %v", err, herr)
			}
			if after != before {
				t.Fatalf("refused restore (%v) changed the state: %+v -> %+v", err, before, after)
			}
			return
		}
		if _, err := s.Hash(); err != nil {
			t.Fatalf("accepted snapshot gives an unreadable state: %v", err)
		}
		if _, _, err := s.Applied(); err != nil {
			t.Fatalf("accepted snapshot has no readable applied index: %v", err)
		}
	})
}
