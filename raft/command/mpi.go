package command

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file mpi.go -o mpi_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import (
	"fmt"

	"github.com/rls-hie/rls/raft/model"
)

// Master patient index maintenance commands, numbered from 20 (after the privacy
// commands); the numbers are as permanent as those in command.go.
const (
	// TypeMPIRematch decides the links of registered records again under the current
	// match configuration (after training, or a release that changes how records are
	// blocked and scored), respecting every steward decision.
	TypeMPIRematch Type = 20
)

// mpiTypeName names the index maintenance commands for Type.String.
func mpiTypeName(t Type) (string, bool) {
	if t.Base() == TypeMPIRematch {
		return "mpi-rematch", true
	}
	return "", false
}

// MPIRematch re-registers each of Records (record keys, in order) from the record the
// index holds, as if its participant had sent it again: the record is filed under the
// current blocking keys and its link decided anew. A record a steward put on a person is
// left where it is. NewEUIDs, drawn by the leader, holds one EUID per record for the
// records that leave for a person of their own. DropLegacyBlocks removes the blocking
// index of releases before scoring model 2 (sent with a rematch's first batch).
type MPIRematch struct {
	Records          []string `json:"records"`
	NewEUIDs         []string `json:"new_euids"`
	DropLegacyBlocks bool     `json:"drop_legacy_blocks,omitempty"`
}

// Check holds the command to the limits: at most model.MaxBatchEntries records, one new
// EUID for each, every key and EUID well formed.
func (c *MPIRematch) Check() error {
	if err := model.CheckCount("records", len(c.Records), model.MaxBatchEntries); err != nil {
		return err
	}
	if len(c.NewEUIDs) != len(c.Records) {
		return fmt.Errorf("%w: %d records but %d new EUIDs", model.ErrInvalid, len(c.Records), len(c.NewEUIDs))
	}
	for i := range c.Records {
		if err := model.CheckRecordKey(fmt.Sprintf("records[%d]", i), c.Records[i]); err != nil {
			return err
		}
		if err := model.CheckID(fmt.Sprintf("new_euids[%d]", i), c.NewEUIDs[i]); err != nil {
			return err
		}
	}
	return nil
}
