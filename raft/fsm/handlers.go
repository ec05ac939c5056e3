package fsm

import (
	"errors"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

func applyBootstrapAdmin(tx *state.Tx, h command.Header, c command.BootstrapAdmin) (any, error) {
	all, err := tx.Participants()
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.IsAdmin() {
			return nil, business("bootstrap admin %q: %w (%q)", c.Participant.ID, ErrAlreadyBootstrapped, p.ID)
		}
	}
	return addParticipant(tx, h, c.Participant)
}

func applyParticipantAdd(tx *state.Tx, h command.Header, c command.ParticipantAdd) (any, error) {
	return addParticipant(tx, h, c.Participant)
}

func addParticipant(tx *state.Tx, h command.Header, p model.Participant) (any, error) {
	if tx.HasParticipant(p.ID) {
		return nil, business("add participant %q: %w", p.ID, ErrParticipantExists)
	}
	if err := checkSystemFree(tx, p.ID, p.IdentifierSystem); err != nil {
		return nil, err
	}
	if err := checkTokenFree(tx, p.TokenHash); err != nil {
		return nil, err
	}
	p.Version = 1
	p.Created, p.Updated, p.TokenIssued = h.Time, h.Time, h.Time
	if err := tx.PutParticipant(p); err != nil {
		return nil, err
	}
	return p, nil
}

func applyParticipantUpdate(tx *state.Tx, h command.Header, c command.ParticipantUpdate) (any, error) {
	old, err := loadParticipant(tx, c.Participant.ID)
	if err != nil {
		return nil, err
	}
	if c.ExpectedVersion != 0 && c.ExpectedVersion != old.Version {
		return nil, business("update participant %q: %w: expected version %d, current %d", old.ID, ErrVersionConflict, c.ExpectedVersion, old.Version)
	}
	if err := checkSystemFree(tx, old.ID, c.Participant.IdentifierSystem); err != nil {
		return nil, err
	}
	next := old
	next.Name = c.Participant.Name
	next.Kind = c.Participant.Kind
	next.Role = c.Participant.Role
	next.Endpoint = c.Participant.Endpoint
	next.IdentifierSystem = c.Participant.IdentifierSystem
	next.Active = c.Participant.Active
	next.Purposes = c.Participant.Purposes
	if err := checkAdminRemains(tx, old, next); err != nil {
		return nil, err
	}
	return storeChanged(tx, h, next)
}

func applyParticipantSetActive(tx *state.Tx, h command.Header, c command.ParticipantSetActive) (any, error) {
	old, err := loadParticipant(tx, c.ID)
	if err != nil {
		return nil, err
	}
	if old.Active == c.Active {
		return old, nil
	}
	next := old
	next.Active = c.Active
	if err := checkAdminRemains(tx, old, next); err != nil {
		return nil, err
	}
	return storeChanged(tx, h, next)
}

func applyParticipantRotateToken(tx *state.Tx, h command.Header, c command.ParticipantRotateToken) (any, error) {
	old, err := loadParticipant(tx, c.ID)
	if err != nil {
		return nil, err
	}
	if err := checkTokenFree(tx, c.TokenHash); err != nil {
		return nil, err
	}
	next := old
	next.TokenHash = c.TokenHash
	next.TokenIssued = h.Time
	return storeChanged(tx, h, next)
}

func applyNodeRegister(tx *state.Tx, h command.Header, c command.NodeRegister) (any, error) {
	n := c.Node
	n.Registered = h.Time
	if err := tx.PutNode(n); err != nil {
		return nil, err
	}
	return n, nil
}

func applyNodeDeregister(tx *state.Tx, h command.Header, c command.NodeDeregister) (any, error) {
	return nil, tx.DeleteNode(c.ID)
}

func loadParticipant(tx *state.Tx, id string) (model.Participant, error) {
	p, err := tx.Participant(id)
	if errors.Is(err, state.ErrNotFound) {
		return p, business("%w", err)
	}
	return p, err
}

func storeChanged(tx *state.Tx, h command.Header, p model.Participant) (any, error) {
	p.Version++
	p.Updated = h.Time
	if err := tx.PutParticipant(p); err != nil {
		return nil, err
	}
	return p, nil
}

func checkSystemFree(tx *state.Tx, id, system string) error {
	if system == "" {
		return nil
	}
	if owner, ok := tx.ParticipantIDBySystem(system); ok && owner != id {
		return business("identifier system %q: %w (%q)", system, ErrSystemInUse, owner)
	}
	return nil
}

func checkTokenFree(tx *state.Tx, hash string) error {
	if _, ok := tx.ParticipantIDByTokenHash(hash); ok {
		return business("%w", ErrTokenInUse)
	}
	return nil
}

// checkAdminRemains refuses a change that takes away the last active admin: the cluster
// could then never be administered again.
func checkAdminRemains(tx *state.Tx, old, next model.Participant) error {
	wasAdmin := old.Active && old.IsAdmin()
	staysAdmin := next.Active && next.IsAdmin()
	if !wasAdmin || staysAdmin {
		return nil
	}
	all, err := tx.Participants()
	if err != nil {
		return err
	}
	for _, p := range all {
		if p.ID != old.ID && p.Active && p.IsAdmin() {
			return nil
		}
	}
	return business("participant %q: %w", old.ID, ErrLastAdmin)
}

func applyBarrier(*state.Tx, command.Header, command.Barrier) (any, error) { return nil, nil }
