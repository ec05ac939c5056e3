//go:build !unix

package fsm

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
