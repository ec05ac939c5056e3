// Package integration holds rls's multi-node tests: they build the rls binary, run real
// processes on loopback with their own data dirs and ports, kill and restart them, and
// check what every node holds afterwards. It speaks to the nodes only over HTTP and the
// CLI, as operators and member systems do; of rls's own packages it imports only the
// matching library (mpi), to compute what the evaluation path decides. To check a stopped
// node's files it reads them with bbolt, raft-boltdb and Bleve directly, never through rls
// code.
//
// It is also the fault-injection harness (README.md): a cluster helper that kills, freezes,
// restarts and partitions nodes (each Raft link through a proxy of its own), clients whose
// operations are recorded and checked with porcupine (a register per participant
// endpoint, a grow-only set of identifiers per person read through strong PIXm queries),
// and the scenarios of issue 7, short by default and in full with -tags chaos.
package integration
