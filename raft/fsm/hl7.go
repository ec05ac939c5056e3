package fsm

import (
	"errors"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/state"
)

// Business outcomes of the HL7 endpoint commands.
var (
	// ErrEndpointExists: an endpoint with that id is registered already.
	ErrEndpointExists = errors.New("HL7 endpoint already exists")
	// ErrUnknownEndpoint: no endpoint has that id.
	ErrUnknownEndpoint = errors.New("HL7 endpoint does not exist")
)

func hl7Handlers() map[command.Type]handler {
	return map[command.Type]handler{
		command.TypeHL7EndpointSet:    typed(applyHL7EndpointSet),
		command.TypeHL7EndpointCursor: typed(applyHL7EndpointCursor),
	}
}

// applyHL7EndpointSet registers or changes an endpoint. A new endpoint, or one turned
// active again, is notified of what changes from this entry on, not of the history before.
func applyHL7EndpointSet(tx *state.Tx, h command.Header, c command.HL7EndpointSet) (any, error) {
	next := c.Endpoint
	if err := next.Validate(); err != nil {
		return nil, business("HL7 endpoint: %w", err)
	}
	if !tx.HasParticipant(next.Participant) {
		return nil, business("HL7 endpoint %s: participant %q: %w", next.ID, next.Participant, state.ErrNotFound)
	}
	old, exists, err := tx.HL7Endpoint(next.ID)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Create && exists:
		return nil, business("HL7 endpoint %s: %w", next.ID, ErrEndpointExists)
	case !c.Create && !exists:
		return nil, business("HL7 endpoint %s: %w", next.ID, ErrUnknownEndpoint)
	case exists && c.ExpectedVersion != 0 && c.ExpectedVersion != old.Version:
		return nil, business("HL7 endpoint %s: %w: expected version %d, current %d", next.ID, ErrVersionConflict, c.ExpectedVersion, old.Version)
	}
	next.Version = old.Version + 1
	next.Created, next.Cursor, next.Delivered, next.Rejected = old.Created, old.Cursor, old.Delivered, old.Rejected
	if !exists {
		next.Created = h.Time
	}
	if next.Active() && !(exists && old.Active()) {
		next.Cursor = tx.LastLinkSeq()
	}
	next.Updated = h.Time
	if err := tx.PutHL7Endpoint(next); err != nil {
		return nil, err
	}
	return next, nil
}

// applyHL7EndpointCursor moves an endpoint's cursor forward. A cursor at or behind the
// stored one (a deposed leader's, or a retry) changes nothing, counts included.
func applyHL7EndpointCursor(tx *state.Tx, h command.Header, c command.HL7EndpointCursor) (any, error) {
	e, ok, err := tx.HL7Endpoint(c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, business("HL7 endpoint %s: %w", c.ID, ErrUnknownEndpoint)
	}
	if c.Cursor <= e.Cursor || c.Cursor > tx.LastLinkSeq() {
		return e, nil
	}
	e.Cursor = c.Cursor
	e.Delivered += c.Delivered
	e.Rejected += c.Rejected
	if err := tx.PutHL7Endpoint(e); err != nil {
		return nil, err
	}
	return e, nil
}
