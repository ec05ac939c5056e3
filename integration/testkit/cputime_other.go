//go:build !unix

package testkit

import "time"

// ProcessCPU is not available here: benchmarks report wall-clock rates only.
func ProcessCPU() (time.Duration, bool) { return 0, false }
