// Package inmem holds scenario 1 of rls's fault-injection harness: five rls Raft nodes in
// one process, talking over hashicorp/raft's in-memory transport, whose Connect and
// Disconnect make partitions exact and instant. It has only tests; it imports the raft
// package and its command and model packages, and nothing of the HTTP API.
package inmem
