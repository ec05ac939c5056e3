package fsm

import (
	"errors"
	"fmt"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// ErrConsentExists: a new directive's id is taken (the leader draws ids at random; a
// collision is refused rather than overwriting another patient's directive).
var ErrConsentExists = errors.New("consent directive already exists")

// privacyHandlers are the handlers of the privacy commands (command/consent.go).
func privacyHandlers() map[command.Type]handler {
	return map[command.Type]handler{
		command.TypeConsentSet:             typed(applyConsentSet),
		command.TypeParticipantRevokeToken: typed(applyParticipantRevokeToken),
	}
}

// applyConsentSet stores a directive. Its records, id and contents were checked and
// resolved by the leader; Apply only enforces what depends on the state (existence and
// version), so every node reaches the same outcome.
func applyConsentSet(tx *state.Tx, h command.Header, c command.ConsentSet) (any, error) {
	next := c.Consent
	if next.ID == "" || len(next.Records) == 0 {
		return nil, business("consent: %w: id and records are required", model.ErrInvalid)
	}
	if next.Status != model.ConsentActive && next.Status != model.ConsentInactive {
		return nil, business("consent %s: %w: status %q", next.ID, model.ErrInvalid, next.Status)
	}
	old, exists, err := tx.Consent(next.ID)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Create && exists:
		return nil, business("consent %s: %w", next.ID, ErrConsentExists)
	case !c.Create && !exists:
		return nil, business("consent %s: %w", next.ID, state.ErrNotFound)
	case exists && c.ExpectedVersion != 0 && c.ExpectedVersion != old.Version:
		return nil, business("consent %s: %w: expected version %d, current %d", next.ID, ErrVersionConflict, c.ExpectedVersion, old.Version)
	}
	next.Version = old.Version + 1
	next.Created = old.Created
	if !exists {
		next.Created = h.Time
	}
	next.Updated = h.Time
	next.RecordedBy = h.Actor
	if err := tx.PutConsent(next); err != nil {
		return nil, fmt.Errorf("consent %s: %w", next.ID, err)
	}
	return next, nil
}

// applyParticipantRevokeToken drops a participant's token: from this entry on, no node
// knows a token that authenticates as it. Revoking an absent token changes nothing.
func applyParticipantRevokeToken(tx *state.Tx, h command.Header, c command.ParticipantRevokeToken) (any, error) {
	old, err := loadParticipant(tx, c.ID)
	if err != nil {
		return nil, err
	}
	if old.TokenHash == "" {
		return old, nil
	}
	if old.Active && old.IsAdmin() {
		if err := checkTokenAdminRemains(tx, old.ID); err != nil {
			return nil, err
		}
	}
	next := old
	next.TokenHash = ""
	return storeChanged(tx, h, next)
}

// checkTokenAdminRemains refuses to leave the cluster without an active admin holding a
// token. An admin who authenticates only by client certificate does not count: the
// replicated state cannot tell whether one exists, and a locked-out cluster is worse than a
// refused revocation (rotate the token instead).
func checkTokenAdminRemains(tx *state.Tx, id string) error {
	all, err := tx.Participants()
	if err != nil {
		return err
	}
	for _, p := range all {
		if p.ID != id && p.Active && p.IsAdmin() && p.TokenHash != "" {
			return nil
		}
	}
	return business("participant %q: %w", id, ErrLastAdmin)
}
