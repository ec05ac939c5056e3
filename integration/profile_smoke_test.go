//go:build !chaos

package integration

// fullChaos is false in the default build: scenarios 2–4 run their smoke versions and the
// others are skipped. Build with -tags chaos (or set RLS_CHAOS=full) for the full set.
const fullChaos = false
