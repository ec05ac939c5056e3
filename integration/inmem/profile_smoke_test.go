//go:build !chaos

package inmem

// fullChaos is false in the default build: scenario 1 waits for fewer commands. Build with
// -tags chaos (or set RLS_CHAOS=full) for the full 10,000.
const fullChaos = false
