package fsm

import (
	"fmt"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

// checkLimits holds a command to the limits of raft/model before its handler writes anything
// (for entries stamped with Header.Limits ≥ 1). Batches of records and documents are checked
// record by record in their handlers, so that one refused record does not refuse the others.
func checkLimits(h command.Header, payload any) error {
	if err := model.CheckText("header.actor", h.Actor, model.MaxIDLength); err != nil {
		return err
	}
	if err := model.CheckText("header.request_id", h.RequestID, model.MaxRequestIDLength); err != nil {
		return err
	}
	switch p := payload.(type) {
	case *command.PatientRegister:
		return model.CheckCount("registrations", len(p.Registrations), model.MaxBatchEntries)
	case *command.DocumentRegister:
		return p.Check()
	case interface{ Check() error }:
		return p.Check()
	case *command.Barrier:
		return nil
	}
	// A command type added without a check refuses itself until it gets one.
	return fmt.Errorf("%w: no limits are defined for %T", model.ErrInvalid, payload)
}
