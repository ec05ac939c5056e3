// Package integration holds rls's multi-node tests: they build the rls binary, run real
// processes on loopback with their own data dirs and ports, kill and restart them, and
// check what every node holds afterwards. It imports no rls package; it speaks to the
// nodes only over HTTP, as operators and member systems do.
package integration
