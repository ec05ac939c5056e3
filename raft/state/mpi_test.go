package state

import (
	"path/filepath"
	"testing"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/mpitest"
)

// TestMPIStoreContract runs the matcher's storage contract (including byte-identical
// decisions to the in-memory store) against the bbolt implementation.
func TestMPIStoreContract(t *testing.T) {
	mpitest.TestStore(t, func(t *testing.T) mpi.Store {
		st, err := Open(filepath.Join(t.TempDir(), "state.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Begin()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			b.Rollback()
			st.Close()
		})
		return b.Tx().MPI()
	})
}
