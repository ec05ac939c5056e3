package fsm

import (
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// AuditAppended is the outcome of an audit batch: the entries as stored (numbered and
// chained), duplicates of entries already in the log left out.
type AuditAppended struct {
	Entries    []model.AuditEntry
	Duplicates int
}

// applyAuditAppend appends the batch's entries in order, each recorded at the leader's
// time on the command header. Numbering and chaining read only the stored head, so every
// node builds the same chain.
func applyAuditAppend(tx *state.Tx, h command.Header, c command.AuditAppend) (any, error) {
	if err := tx.SetClusterKey(c.ClusterKey); err != nil {
		return nil, err
	}
	out := AuditAppended{Entries: make([]model.AuditEntry, 0, len(c.Entries))}
	for _, e := range c.Entries {
		if e.ID == "" {
			// The leader never proposes one; skipping keeps Apply from stopping on it.
			out.Duplicates++
			continue
		}
		stored, appended, err := tx.AppendAudit(e, h.Time)
		if err != nil {
			return nil, err
		}
		if !appended {
			out.Duplicates++
			continue
		}
		out.Entries = append(out.Entries, stored)
	}
	return out, nil
}
