//go:build !unix

package mpi

import "time"

// processCPU is not available here: the benchmark reports wall-clock rates
// only.
func processCPU() (time.Duration, bool) { return 0, false }
