//go:build chaos

package integration

// fullChaos is true with -tags chaos: every scenario runs at full length.
const fullChaos = true
