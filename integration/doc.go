// Package integration holds rls's multi-node tests: they build the rls binary, run real
// processes on loopback with their own data dirs and ports, kill and restart them, and
// check what every node holds afterwards. It speaks to the nodes only over HTTP and the
// CLI, as operators and member systems do; of rls's own packages it imports only the
// matching library (mpi), to compute what the evaluation path decides.
package integration
