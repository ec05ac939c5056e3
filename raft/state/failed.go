package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// bucketFailed holds the log entries the FSM could not apply (raft index → FailedEntry). It
// is created with the first such entry, not with the others, so that the state of a cluster
// that never met one hashes as it did before the bucket existed.
var bucketFailed = []byte("failed_entries")

// FailedEntry is a committed log entry that every node met and could not apply: its effects
// were rolled back and the entry was skipped, identically on every node. Reason is a fixed
// description of the failure (never the entry's contents, which may hold demographics).
type FailedEntry struct {
	Index  uint64 `json:"index"`
	Term   uint64 `json:"term"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// RecordFailedEntry files an entry the FSM skipped.
func (t *Tx) RecordFailedEntry(e FailedEntry) error {
	b, err := t.tx.CreateBucketIfNotExists(bucketFailed)
	if err != nil {
		return fmt.Errorf("create %s bucket: %w", bucketFailed, err)
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode failed entry %d: %w", e.Index, err)
	}
	if err := b.Put(binary.BigEndian.AppendUint64(nil, e.Index), v); err != nil {
		return fmt.Errorf("record failed entry %d: %w", e.Index, err)
	}
	return nil
}

// FailedEntries lists the entries the FSM skipped, in log order.
func (t *Tx) FailedEntries() ([]FailedEntry, error) {
	b := t.tx.Bucket(bucketFailed)
	if b == nil {
		return nil, nil
	}
	var out []FailedEntry
	err := b.ForEach(func(k, v []byte) error {
		var e FailedEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode failed entry: %w", err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}
