package integration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// DiskState is what a stopped node's data dir holds: the applied entry recorded in its
// state file and the range of its Raft log.
type DiskState struct {
	AppliedIndex, AppliedTerm   uint64
	FirstLogIndex, LastLogIndex uint64
	// LogTermAtApplied is the term of the log entry at AppliedIndex (0 if compacted away).
	LogTermAtApplied uint64
}

// inspectDataDir opens a stopped node's state file and Raft log read-only, runs bbolt's
// consistency check on the state file and reports what both hold. It reads the files'
// layout directly (the meta bucket's applied_index and applied_term, raft-boltdb's log) so
// that it checks what is on disk, not what the node's code says about it.
func inspectDataDir(dir string) (DiskState, error) {
	var d DiskState
	state, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return d, fmt.Errorf("open state file: %w", err)
	}
	defer state.Close()
	err = state.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt consistency check of the state file: %w", errors.Join(errs...))
		}
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return errors.New("state file has no meta bucket")
		}
		d.AppliedIndex = bigEndian(meta.Get([]byte("applied_index")))
		d.AppliedTerm = bigEndian(meta.Get([]byte("applied_term")))
		return nil
	})
	if err != nil {
		return d, err
	}

	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: &bolt.Options{ReadOnly: true, Timeout: time.Second}})
	if err != nil {
		return d, fmt.Errorf("open raft log: %w", err)
	}
	defer logs.Close()
	if d.FirstLogIndex, err = logs.FirstIndex(); err != nil {
		return d, fmt.Errorf("raft log first index: %w", err)
	}
	if d.LastLogIndex, err = logs.LastIndex(); err != nil {
		return d, fmt.Errorf("raft log last index: %w", err)
	}
	if d.AppliedIndex >= d.FirstLogIndex && d.AppliedIndex <= d.LastLogIndex && d.AppliedIndex > 0 {
		var entry hraft.Log
		if err := logs.GetLog(d.AppliedIndex, &entry); err != nil {
			return d, fmt.Errorf("raft log entry %d: %w", d.AppliedIndex, err)
		}
		d.LogTermAtApplied = entry.Term
	}
	return d, nil
}

func bigEndian(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
