//go:build chaos

package inmem

// fullChaos is true with -tags chaos: scenario 1 waits for 10,000 acknowledged commands.
const fullChaos = true
