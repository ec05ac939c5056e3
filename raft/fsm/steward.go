package fsm

import (
	"errors"
	"slices"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Business outcomes of the data steward's actions.
var (
	// ErrUnknownRecord: no record is registered with that key.
	ErrUnknownRecord = errors.New("record is not registered")
	// ErrUnknownPerson: no person has that EUID.
	ErrUnknownPerson = errors.New("person does not exist")
	// ErrNothingToUndo: the person was not merged away (nothing to unmerge).
	ErrNothingToUndo = errors.New("nothing to undo")
	// ErrUnknownReview: no review item has that number.
	ErrUnknownReview = errors.New("review item does not exist")
	// ErrAlreadyResolved: the review item was settled before.
	ErrAlreadyResolved = errors.New("review item already resolved")
	// ErrInvalidAction: the action's arguments do not make sense (merging a person into
	// itself, an unknown decision).
	ErrInvalidAction = errors.New("invalid steward action")
)

// Relinked reports what a steward action changed.
type Relinked struct {
	// EUID is the person the records now belong to; From the one they left.
	EUID    string
	From    string
	Records []string
}

func requireRecord(tx *state.Tx, key string) (*mpi.StoredRecord, error) {
	sr, err := tx.MPI().Record(mpi.RecordKey(key))
	if err != nil {
		return nil, err
	}
	if sr == nil {
		return nil, business("%w: %s", ErrUnknownRecord, key)
	}
	return sr, nil
}

func requirePerson(tx *state.Tx, euid string) (mpi.Person, error) {
	p, ok, err := tx.MPI().Person(euid)
	if err != nil {
		return p, err
	}
	if !ok {
		return p, business("%w: %s", ErrUnknownPerson, euid)
	}
	return p, nil
}

// relink moves a record and pins it where the steward put it.
func relink(tx *state.Tx, key, euid string, create bool) (string, error) {
	from, err := mpi.Relink(tx.MPI(), mpi.RecordKey(key), euid, create)
	if err != nil {
		return "", err
	}
	return from, tx.SetPin(mpi.RecordKey(key), euid)
}

// confirmPerson pins every record of a person to it: a steward who puts a record on a
// person, or merges two, says these records are one person, and a later rematch (which
// decides unpinned records again) must not take any of them away from the others.
func confirmPerson(tx *state.Tx, euid string) error {
	p, ok, err := tx.MPI().Person(euid)
	if err != nil || !ok {
		return err
	}
	for _, k := range p.Records {
		if err := tx.SetPin(k, euid); err != nil {
			return err
		}
	}
	return nil
}

func history(tx *state.Tx, h command.Header, action, euid, other, reason string, records ...string) error {
	ev := model.LinkEvent{Time: h.Time, Action: action, EUID: euid, Other: other, Actor: h.Actor, Reason: reason}
	if len(records) == 1 {
		ev.Record = records[0]
	} else {
		ev.Records = records
	}
	return tx.AppendLinkEvent(ev)
}

func applyRecordLink(tx *state.Tx, h command.Header, c command.RecordLink) (any, error) {
	sr, err := requireRecord(tx, c.Record)
	if err != nil {
		return nil, err
	}
	if _, err := requirePerson(tx, c.EUID); err != nil {
		return nil, err
	}
	from, err := relink(tx, c.Record, c.EUID, false)
	if err != nil {
		return nil, err
	}
	if err := tx.Unseparate(mpi.RecordKey(c.Record), c.EUID); err != nil {
		return nil, err
	}
	if err := confirmPerson(tx, c.EUID); err != nil {
		return nil, err
	}
	if from == "" {
		from = sr.EUID // already there: the pin still records the steward's decision
	} else if err := history(tx, h, "unlinked", from, c.EUID, c.Reason, c.Record); err != nil {
		return nil, err
	}
	return Relinked{EUID: c.EUID, From: from, Records: []string{c.Record}}, history(tx, h, "linked", c.EUID, from, c.Reason, c.Record)
}

func applyRecordUnlink(tx *state.Tx, h command.Header, c command.RecordUnlink) (any, error) {
	sr, err := requireRecord(tx, c.Record)
	if err != nil {
		return nil, err
	}
	if err := model.ValidateID("EUID", c.NewEUID); err != nil {
		return nil, business("%w: %v", ErrInvalidAction, err)
	}
	if _, ok, err := tx.MPI().Person(c.NewEUID); err != nil {
		return nil, err
	} else if ok {
		return nil, business("%w: %s", ErrEUIDInUse, c.NewEUID)
	}
	from := sr.EUID
	if _, err := relink(tx, c.Record, c.NewEUID, true); err != nil {
		return nil, err
	}
	if err := tx.Separate(mpi.RecordKey(c.Record), from); err != nil {
		return nil, err
	}
	if err := history(tx, h, "unlinked", from, c.NewEUID, c.Reason, c.Record); err != nil {
		return nil, err
	}
	return Relinked{EUID: c.NewEUID, From: from, Records: []string{c.Record}}, history(tx, h, "linked", c.NewEUID, from, c.Reason, c.Record)
}

func applyPersonMerge(tx *state.Tx, h command.Header, c command.PersonMerge) (any, error) {
	if c.From == c.Into {
		return nil, business("%w: a person cannot be merged into itself", ErrInvalidAction)
	}
	from, err := requirePerson(tx, c.From)
	if err != nil {
		return nil, err
	}
	if _, err := requirePerson(tx, c.Into); err != nil {
		return nil, err
	}
	moved, err := mergeInto(tx, from, c.Into)
	if err != nil {
		return nil, err
	}
	if err := history(tx, h, "merged", c.From, c.Into, c.Reason, moved...); err != nil {
		return nil, err
	}
	return Relinked{EUID: c.Into, From: c.From, Records: moved}, history(tx, h, "merged", c.Into, c.From, c.Reason, moved...)
}

// mergeInto moves every record of person from onto into and confirms into's records.
func mergeInto(tx *state.Tx, from mpi.Person, into string) ([]string, error) {
	var moved []string
	for _, key := range from.Records {
		if _, err := relink(tx, string(key), into, false); err != nil {
			return nil, err
		}
		moved = append(moved, string(key))
	}
	return moved, confirmPerson(tx, into)
}

func applyPersonUnmerge(tx *state.Tx, h command.Header, c command.PersonUnmerge) (any, error) {
	if _, ok, err := tx.MPI().Person(c.EUID); err != nil {
		return nil, err
	} else if ok {
		return nil, business("%w: %s exists (it was not merged away, or was already unmerged)", ErrNothingToUndo, c.EUID)
	}
	events, err := tx.LinkHistory(c.EUID)
	if err != nil {
		return nil, err
	}
	var merge *model.LinkEvent
	for j := len(events) - 1; j >= 0; j-- {
		if events[j].Action == "merged" {
			merge = &events[j]
			break
		}
	}
	if merge == nil {
		return nil, business("%w: %s was never merged", ErrNothingToUndo, c.EUID)
	}
	records := merge.Records
	if merge.Record != "" {
		records = []string{merge.Record}
	}
	// Move back the records still where the merge put them.
	var back []string
	for _, key := range records {
		sr, err := tx.MPI().Record(mpi.RecordKey(key))
		if err != nil {
			return nil, err
		}
		if sr != nil && sr.EUID == merge.Other {
			back = append(back, key)
		}
	}
	if len(back) == 0 {
		return nil, business("%w: none of the records merged into %s is still there", ErrNothingToUndo, merge.Other)
	}
	for n, key := range back {
		if _, err := relink(tx, key, c.EUID, n == 0); err != nil {
			return nil, err
		}
		if err := tx.Separate(mpi.RecordKey(key), merge.Other); err != nil {
			return nil, err
		}
	}
	if err := history(tx, h, "unmerged", merge.Other, c.EUID, c.Reason, back...); err != nil {
		return nil, err
	}
	return Relinked{EUID: c.EUID, From: merge.Other, Records: back}, history(tx, h, "unmerged", c.EUID, merge.Other, c.Reason, back...)
}

func applyReviewResolve(tx *state.Tx, h command.Header, c command.ReviewResolve) (any, error) {
	entry, ok, err := tx.Review(c.Seq)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, business("%w: %d", ErrUnknownReview, c.Seq)
	}
	if entry.Resolution != nil {
		return nil, business("%w: %d (%s by %s)", ErrAlreadyResolved, c.Seq, entry.Resolution.Decision, entry.Resolution.Actor)
	}
	key := string(entry.Item.Record)
	sr, err := requireRecord(tx, key)
	if err != nil {
		return nil, err
	}
	res := state.Resolution{Decision: c.Decision, Actor: h.Actor, Reason: c.Reason, Time: h.Time}
	var out Relinked
	switch {
	case c.Decision == "link" && entry.Item.Reason == mpi.ReviewDuplicatePersons:
		// The record joined the best of several persons it matched, which looked like one
		// person split: linking merges the others into the record's person.
		var merged []string
		for _, cand := range entry.Item.Candidates {
			if cand.EUID == sr.EUID {
				continue
			}
			p, ok, err := tx.MPI().Person(cand.EUID)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // merged or emptied since
			}
			moved, err := mergeInto(tx, p, sr.EUID)
			if err != nil {
				return nil, err
			}
			if err := history(tx, h, "merged", cand.EUID, sr.EUID, c.Reason, moved...); err != nil {
				return nil, err
			}
			if err := history(tx, h, "merged", sr.EUID, cand.EUID, c.Reason, moved...); err != nil {
				return nil, err
			}
			merged = append(merged, moved...)
		}
		if err := confirmPerson(tx, sr.EUID); err != nil {
			return nil, err
		}
		res.EUID, out = sr.EUID, Relinked{EUID: sr.EUID, Records: merged}
	case c.Decision == "link":
		target := c.EUID
		if target == "" && len(entry.Item.Candidates) > 0 {
			target = entry.Item.Candidates[0].EUID
		}
		if target == "" {
			return nil, business("%w: the item names no candidate; give the EUID to link to", ErrInvalidAction)
		}
		if _, err := requirePerson(tx, target); err != nil {
			return nil, err
		}
		from, err := relink(tx, key, target, false)
		if err != nil {
			return nil, err
		}
		if err := tx.Unseparate(mpi.RecordKey(key), target); err != nil {
			return nil, err
		}
		if err := confirmPerson(tx, target); err != nil {
			return nil, err
		}
		if from != "" {
			if err := history(tx, h, "unlinked", from, target, c.Reason, key); err != nil {
				return nil, err
			}
		}
		res.EUID, out = target, Relinked{EUID: target, From: from, Records: []string{key}}
	case c.Decision == "separate":
		for _, cand := range entry.Item.Candidates {
			if cand.EUID != sr.EUID {
				if err := tx.Separate(mpi.RecordKey(key), cand.EUID); err != nil {
					return nil, err
				}
			}
		}
		if err := tx.SetPin(mpi.RecordKey(key), sr.EUID); err != nil {
			return nil, err
		}
		res.EUID, out = sr.EUID, Relinked{EUID: sr.EUID, Records: []string{key}}
	default:
		return nil, business("%w: decision %q must be link or separate", ErrInvalidAction, c.Decision)
	}
	if err := tx.Resolve(c.Seq, res); err != nil {
		return nil, err
	}
	return out, history(tx, h, "review-resolved", res.EUID, "", c.Decision+": "+c.Reason, key)
}

// ruledStore is the store Register sees for one record: block members the steward's
// decisions rule out are hidden, so automatic matching never proposes them.
type ruledStore struct {
	mpi.Store
	hide func(mpi.RecordKey) (bool, error)
}

func (r ruledStore) BlockMembers(block mpi.Block, limit int, buf []mpi.RecordKey) ([]mpi.RecordKey, bool, error) {
	start := len(buf)
	out, complete, err := r.Store.BlockMembers(block, limit, buf)
	if err != nil {
		return out, complete, err
	}
	kept := out[:start]
	for _, k := range out[start:] {
		hidden, err := r.hide(k)
		if err != nil {
			return out, complete, err
		}
		if !hidden {
			kept = append(kept, k)
		}
	}
	return kept, complete, nil
}

// storeFor returns the store Register should use for key, and the person a steward pinned
// the record to ("" if none). A pinned record sees no candidates (it stays where the
// steward put it); a separated record sees no record of the persons it was separated from,
// nor of the persons that now hold the records it was separated from.
func storeFor(tx *state.Tx, key mpi.RecordKey) (mpi.Store, string, error) {
	store := tx.MPI()
	if pin, ok := tx.Pin(key); ok {
		if _, exists, err := store.Person(pin); err != nil {
			return nil, "", err
		} else if exists {
			return ruledStore{Store: store, hide: func(mpi.RecordKey) (bool, error) { return true, nil }}, pin, nil
		}
	}
	forbidden := tx.Separations(key)
	for _, other := range tx.SeparatedRecords(key) {
		sr, err := store.Record(other)
		if err != nil {
			return nil, "", err
		}
		if sr != nil && !slices.Contains(forbidden, sr.EUID) {
			forbidden = append(forbidden, sr.EUID)
		}
	}
	if len(forbidden) == 0 {
		return store, "", nil
	}
	return ruledStore{Store: store, hide: func(k mpi.RecordKey) (bool, error) {
		sr, err := store.Record(k)
		if err != nil || sr == nil {
			return false, err
		}
		return slices.Contains(forbidden, sr.EUID), nil
	}}, "", nil
}
