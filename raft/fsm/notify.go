package fsm

import (
	"errors"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Business outcomes of the notification commands.
var (
	// ErrSubscriptionExists: a new subscription's id is taken (the leader draws it at random).
	ErrSubscriptionExists = errors.New("subscription already exists")
	// ErrUnknownSubscription: no subscription has the id.
	ErrUnknownSubscription = errors.New("no such subscription")
	// ErrCursorAhead: a progress report names an event the log does not hold yet.
	ErrCursorAhead = errors.New("subscription cursor beyond the newest event")
)

// notifyHandlers are the handlers of the notification commands (command/subscription.go).
func notifyHandlers() map[command.Type]handler {
	return map[command.Type]handler{
		command.TypeSubscriptionSet:    typed(applySubscriptionSet),
		command.TypeSubscriptionCursor: typed(applySubscriptionCursor),
	}
}

// applySubscriptionSet creates or changes a subscription. A subscription that starts being
// live (new, or turned on again after off) starts after the newest event: it is told of
// what happens from now on. One that stays live keeps its cursor, so a subscription in
// error that its owner fixes resumes where it stopped.
func applySubscriptionSet(tx *state.Tx, h command.Header, c command.SubscriptionSet) (any, error) {
	next := c.Subscription
	old, exists, err := tx.Subscription(next.ID)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Create && exists:
		return nil, business("subscription %s: %w", next.ID, ErrSubscriptionExists)
	case !c.Create && !exists:
		return nil, business("subscription %s: %w", next.ID, ErrUnknownSubscription)
	case !c.Create && c.ExpectedVersion != 0 && c.ExpectedVersion != old.Version:
		return nil, business("subscription %s: %w: expected version %d, current %d", next.ID, ErrVersionConflict, c.ExpectedVersion, old.Version)
	case !c.Create && old.Participant != next.Participant:
		return nil, business("subscription %s: %w: the subscriber cannot change", next.ID, model.ErrInvalid)
	}
	if _, err := loadParticipant(tx, next.Participant); err != nil {
		return nil, err
	}
	if c.Create {
		next.Version, next.Created = 1, h.Time
		next.Cursor, next.Delivered = tx.NotifyHead(), 0
	} else {
		next.Version, next.Created = old.Version+1, old.Created
		next.Delivered, next.LastDelivered = old.Delivered, old.LastDelivered
		next.Cursor = old.Cursor
		if !old.Live() && next.Live() {
			next.Cursor = tx.NotifyHead()
		}
	}
	if next.Status == model.SubscriptionRequested {
		next.Status = model.SubscriptionActive
	}
	next.Failures, next.LastError, next.Updated = 0, "", h.Time
	if err := tx.PutSubscription(next); err != nil {
		return nil, err
	}
	return next, pruneNotifyEvents(tx)
}

// applySubscriptionCursor records a delivery round. The cursor never moves back: a report
// from a deposed leader that is behind changes nothing. A subscription turned off keeps
// its status.
func applySubscriptionCursor(tx *state.Tx, h command.Header, c command.SubscriptionCursor) (any, error) {
	s, ok, err := tx.Subscription(c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, business("subscription %s: %w", c.ID, ErrUnknownSubscription)
	}
	if head := tx.NotifyHead(); c.Cursor > head {
		return nil, business("subscription %s: %w: %d > %d", c.ID, ErrCursorAhead, c.Cursor, head)
	}
	if c.Cursor < s.Cursor || !s.Live() {
		return s, nil
	}
	s.Cursor = c.Cursor
	if c.Delivered > s.Delivered {
		s.Delivered, s.LastDelivered = c.Delivered, h.Time
	}
	s.Status, s.LastError, s.Failures = c.Status, c.LastError, c.Failures
	if err := tx.PutSubscription(s); err != nil {
		return nil, err
	}
	return s, pruneNotifyEvents(tx)
}

// pruneNotifyEvents drops the events every live subscription is past (all of them when no
// subscription is live).
func pruneNotifyEvents(tx *state.Tx) error {
	subs, err := tx.Subscriptions()
	if err != nil {
		return err
	}
	through := tx.NotifyHead()
	for _, s := range subs {
		if s.Live() {
			through = min(through, s.Cursor)
		}
	}
	return tx.PruneNotifyEvents(through)
}

// deriveNotifyEvents appends the notification events of an applied entry: from its
// command type and its result only, in the result's order, so every node derives the same
// events with the same sequence numbers. Nothing is kept while no subscription is live.
func deriveNotifyEvents(tx *state.Tx, e command.Entry, index uint64, result any) error {
	switch e.Type.Base() {
	case command.TypePatientRegister, command.TypeDocumentRegister, command.TypeDocumentProvide, command.TypeRecordLink,
		command.TypeRecordUnlink, command.TypePersonMerge, command.TypePersonUnmerge, command.TypeReviewResolve,
		command.TypeMPIRematch:
	default:
		return nil
	}
	if !tx.AnyLiveSubscription() {
		return nil
	}
	h, err := command.DecodeHeader(e)
	if err != nil {
		return err
	}
	base := model.NotifyEvent{Index: index, Time: h.Time, Actor: h.Actor}
	identity := func(action, record, euid, previous string) error {
		if euid == previous {
			return nil
		}
		ev := base
		ev.Topic, ev.Action, ev.Record, ev.EUID, ev.Previous = model.TopicIdentity, action, record, euid, previous
		if meta, ok, err := tx.PatientMeta(record); err != nil {
			return err
		} else if ok {
			ev.Owner = meta.Owner
		}
		return tx.AppendNotifyEvent(ev)
	}
	documentEvents := func(v []DocumentRegistered) error {
		for _, r := range v {
			if r.Err != nil {
				continue
			}
			d := r.Document.Document
			ev := base
			ev.Topic, ev.Action, ev.Record, ev.Owner, ev.Document = model.TopicDocument, "registered", d.PatientRecord, d.Holder, d.ID
			ev.EUID = d.PersonEUID
			if ev.Record != "" {
				if sr, err := tx.MPI().Record(mpi.RecordKey(ev.Record)); err != nil {
					return err
				} else if sr != nil {
					ev.EUID = sr.EUID
				}
			}
			if len(r.Superseded) > 0 {
				ev.Action = "replaced"
			}
			if err := tx.AppendNotifyEvent(ev); err != nil {
				return err
			}
		}
		return nil
	}
	switch v := result.(type) {
	case []Registered:
		for _, r := range v {
			if r.Err != nil {
				continue
			}
			ev := base
			ev.Topic, ev.Action, ev.Record, ev.Owner, ev.EUID = model.TopicEncounter, "registered", r.Patient.Key, r.Patient.Owner, r.Decision.EUID
			if r.Patient.Version > 1 {
				ev.Action = "updated"
			}
			if err := tx.AppendNotifyEvent(ev); err != nil {
				return err
			}
			if d := r.Decision; d.Updated && d.PreviousEUID != "" {
				if err := identity("linked", r.Patient.Key, d.EUID, d.PreviousEUID); err != nil {
					return err
				}
			}
		}
	case []DocumentRegistered:
		return documentEvents(v)
	case DocumentsProvided:
		return documentEvents(v.Documents)
	case Relinked:
		if e.Type.Base() == command.TypeReviewResolve {
			_, rr, err := command.DecodeBody[command.ReviewResolve](e)
			if err != nil {
				return err
			}
			if rr.Decision == "separate" {
				return nil // the record stays where it is; only future matching changes
			}
		}
		action := map[command.Type]string{
			command.TypeRecordLink: "linked", command.TypeRecordUnlink: "unlinked", command.TypePersonMerge: "merged",
			command.TypePersonUnmerge: "unmerged", command.TypeReviewResolve: "linked",
		}[e.Type.Base()]
		for _, rec := range v.Records {
			if err := identity(action, rec, v.EUID, v.From); err != nil {
				return err
			}
		}
	case []Rematched:
		for _, r := range v {
			if r.Err == nil && !r.Gone && r.From != "" {
				if err := identity("rematched", r.Record, r.To, r.From); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
