package mpi_test

import (
	"testing"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/mpitest"
)

func TestMemStoreContract(t *testing.T) {
	mpitest.TestStore(t, func(*testing.T) mpi.Store { return mpi.NewMemStore() })
}
