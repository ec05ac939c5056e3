package fsm

import (
	"fmt"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Rematched is the outcome of one record of an MPIRematch command.
type Rematched struct {
	Record string
	// From and To are the persons the record belonged to before and after.
	From, To string
	// Outcome is the matcher's decision; empty when the record was not decided again.
	Outcome mpi.Outcome
	// Review is the reason of the review item the decision queued, if any (an item the
	// record already had open is not queued twice).
	Review string
	// Kept: a steward put the record on its person, so it stays. Gone: the record was
	// not registered any more when the command applied.
	Kept, Gone bool
	// Err is the business error that refused the record (it then changed nothing).
	Err error
}

// applyMPIRematch decides again, under the current configuration, the links of the
// records named, in order: each is re-filed under the current blocking keys and matched
// against everything else as its participant's own re-registration would be, except that
// nothing about the record itself changes (its registry entry and version stay). Steward
// decisions hold: a pinned record stays, a separated one never joins the person it was
// separated from.
func (f *FSM) applyMPIRematch(tx *state.Tx, h command.Header, c command.MPIRematch) (any, error) {
	if len(c.NewEUIDs) != len(c.Records) {
		return nil, business("%w: %d records but %d new EUIDs", ErrInvalidAction, len(c.Records), len(c.NewEUIDs))
	}
	if c.DropLegacyBlocks {
		if err := tx.DropLegacyBlocks(); err != nil {
			return nil, err
		}
	}
	store := tx.MPI()
	cfg, ok, err := store.Config()
	if err != nil {
		return nil, err
	}
	reason := fmt.Sprintf("rematch under match configuration version %d", mpi.EffectiveConfig(cfg, ok).Version)
	out := make([]Rematched, len(c.Records))
	for i, key := range c.Records {
		r := &out[i]
		r.Record = key
		if err := model.ValidateID("EUID", c.NewEUIDs[i]); err != nil {
			r.Err = business("rematch %s: %w: %v", key, ErrInvalidAction, err)
			continue
		}
		sr, err := store.Record(mpi.RecordKey(key))
		if err != nil {
			return nil, err
		}
		if sr == nil {
			r.Gone = true
			continue
		}
		r.From, r.To = sr.EUID, sr.EUID
		if pin, pinned := tx.Pin(mpi.RecordKey(key)); pinned && pin == sr.EUID {
			r.Kept = true
			continue
		}
		if _, exists, err := store.Person(c.NewEUIDs[i]); err != nil {
			return nil, err
		} else if exists {
			r.Err = business("rematch %s: %w: %s", key, ErrEUIDInUse, c.NewEUIDs[i])
			continue
		}
		ruled, pin, err := storeFor(tx, mpi.RecordKey(key))
		if err != nil {
			return nil, err
		}
		oldNorm := sr.Norm
		open := tx.HasOpenReview(mpi.RecordKey(key))
		d, err := f.matcher.Register(onceReviewed{Store: ruled, open: open}, sr.Record, c.NewEUIDs[i])
		if err != nil {
			return nil, err // storage failure: the node stops and replays
		}
		if pin != "" && d.EUID != pin {
			if _, err := mpi.Relink(store, mpi.RecordKey(key), pin, false); err != nil {
				return nil, err
			}
			d.EUID, d.Outcome = pin, mpi.OutcomeLinked
		}
		norm, ok := tx.IndexedNorm(mpi.RecordKey(key))
		if !ok {
			return nil, fmt.Errorf("read back %s: %w", key, state.ErrNotFound)
		}
		if err := tx.IndexPatient(mpi.RecordKey(key), &oldNorm, norm); err != nil {
			return nil, err
		}
		r.To, r.Outcome = d.EUID, d.Outcome
		if d.Review != nil && !open {
			r.Review = d.Review.Reason
		}
		if r.To != r.From {
			if err := history(tx, h, "unlinked", r.From, r.To, reason, key); err != nil {
				return nil, err
			}
			if err := tx.AppendLinkEvent(model.LinkEvent{Time: h.Time, Action: "linked", EUID: r.To, Other: r.From, Record: key,
				Outcome: string(d.Outcome), Score: d.Score, Actor: h.Actor, Reason: reason}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// onceReviewed is the store a rematched record is decided through: a review item is not
// queued again for a record that already has one open.
type onceReviewed struct {
	mpi.Store
	open bool
}

func (o onceReviewed) AppendReview(item mpi.ReviewItem) error {
	if o.open {
		return nil
	}
	return o.Store.AppendReview(item)
}

func notFound(err error) error {
	if err != nil {
		return err
	}
	return state.ErrNotFound
}
