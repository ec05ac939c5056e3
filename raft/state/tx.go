package state

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/rls-hie/rls/raft/model"
)

// Tx is a transaction on the state with typed accessors. Write methods may only be used
// inside Store.Update (the FSM); everything else reads.
type Tx struct {
	tx    *kvTx
	index *participantIndex
	// pending holds the index changes of a write transaction until it commits.
	pending *indexDelta
	// batch is the FSM's write transaction this Tx belongs to (nil for readers), and
	// mpiIndex the in-memory indexes a reader sees (see Tx.MPI).
	batch    *Batch
	mpiIndex *mpiState
	// viewIndex is a reader's applied index, read once when its transaction begins: the
	// state it sees does not change, and its MPI store asks for it on every use.
	viewIndex uint64
}

// Applied returns the index and term of the last applied log entry (0, 0 on a new node).
func (t *Tx) Applied() (index, term uint64) {
	return appliedIndex(t.tx), decodeUint(t.tx.Bucket(bucketMeta).Get(keyAppliedTerm))
}

// appliedIndex is the index of the last log entry the state of tx holds.
func appliedIndex(tx *kvTx) uint64 { return decodeUint(tx.Bucket(bucketMeta).Get(keyAppliedIndex)) }

// SetApplied records the last applied log entry in the same transaction as its effects.
func (t *Tx) SetApplied(index, term uint64) error {
	b := t.tx.Bucket(bucketMeta)
	if err := b.Put(keyAppliedIndex, encodeUint(index)); err != nil {
		return fmt.Errorf("store applied index %d: %w", index, err)
	}
	if err := b.Put(keyAppliedTerm, encodeUint(term)); err != nil {
		return fmt.Errorf("store applied term %d: %w", term, err)
	}
	return nil
}

// Participant returns the participant with the given id, or ErrNotFound.
func (t *Tx) Participant(id string) (model.Participant, error) {
	var p model.Participant
	v := t.tx.Bucket(bucketParticipants).Get([]byte(id))
	if v == nil {
		return p, fmt.Errorf("participant %q: %w", id, ErrNotFound)
	}
	if _, err := p.UnmarshalMsg(v); err != nil {
		return p, fmt.Errorf("decode participant %q: %w", id, err)
	}
	return p, nil
}

// Participants returns every participant, ordered by id.
func (t *Tx) Participants() ([]model.Participant, error) {
	var out []model.Participant
	err := t.tx.Bucket(bucketParticipants).ForEach(func(k, v []byte) error {
		var p model.Participant
		if _, err := p.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("decode participant %q: %w", k, err)
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// HasParticipant reports whether a participant with the given id exists.
func (t *Tx) HasParticipant(id string) bool {
	return t.tx.Bucket(bucketParticipants).Get([]byte(id)) != nil
}

// ParticipantIDByTokenHash returns the id of the participant whose current token hashes to
// hash, as the index has it (the FSM's uniqueness checks need no more).
func (t *Tx) ParticipantIDByTokenHash(hash string) (string, bool) {
	return t.lookup(indexToken, hash)
}

// ParticipantIDBySystem returns the id of the participant whose assigning authority is
// system, as the index has it.
func (t *Tx) ParticipantIDBySystem(system string) (string, bool) {
	return t.lookup(indexSystem, system)
}

// ParticipantByTokenHash returns the participant whose current token hashes to hash.
func (t *Tx) ParticipantByTokenHash(hash string) (model.Participant, error) {
	id, ok := t.lookup(indexToken, hash)
	if !ok {
		return model.Participant{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	p, err := t.Participant(id)
	if err == nil && p.TokenHash != hash {
		// The index moved on after this read transaction began.
		return model.Participant{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	return p, err
}

// ParticipantBySystem returns the participant whose assigning authority is system.
func (t *Tx) ParticipantBySystem(system string) (model.Participant, error) {
	id, ok := t.lookup(indexSystem, system)
	if !ok {
		return model.Participant{}, fmt.Errorf("identifier system %q: %w", system, ErrNotFound)
	}
	p, err := t.Participant(id)
	if err == nil && p.IdentifierSystem != system {
		return model.Participant{}, fmt.Errorf("identifier system %q: %w", system, ErrNotFound)
	}
	return p, err
}

func (t *Tx) lookup(kind indexKind, key string) (string, bool) {
	if t.pending != nil {
		if id, ok := t.pending.get(kind, key); ok {
			return id, id != ""
		}
	}
	return t.index.get(kind, key)
}

// PutParticipant stores p and keeps the token and identifier-system indexes in step with
// it, dropping the entries of the version it replaces.
func (t *Tx) PutParticipant(p model.Participant) error {
	if v := t.tx.Bucket(bucketParticipants).Get([]byte(p.ID)); v != nil {
		var old model.Participant
		if _, err := old.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("decode participant %q: %w", p.ID, err)
		}
		if old.TokenHash != "" && old.TokenHash != p.TokenHash {
			t.pending.set(indexToken, old.TokenHash, "")
		}
		if old.IdentifierSystem != "" && old.IdentifierSystem != p.IdentifierSystem {
			t.pending.set(indexSystem, old.IdentifierSystem, "")
		}
	}
	v, err := p.MarshalMsg(nil)
	if err != nil {
		return fmt.Errorf("encode participant %q: %w", p.ID, err)
	}
	if err := t.tx.Bucket(bucketParticipants).Put([]byte(p.ID), v); err != nil {
		return fmt.Errorf("store participant %q: %w", p.ID, err)
	}
	if p.TokenHash != "" {
		t.pending.set(indexToken, p.TokenHash, p.ID)
	}
	if p.IdentifierSystem != "" {
		t.pending.set(indexSystem, p.IdentifierSystem, p.ID)
	}
	return nil
}

// Node returns the catalog entry of a cluster node, or ErrNotFound.
func (t *Tx) Node(id string) (model.Node, error) {
	var n model.Node
	v := t.tx.Bucket(bucketNodes).Get([]byte(id))
	if v == nil {
		return n, fmt.Errorf("node %q: %w", id, ErrNotFound)
	}
	if _, err := n.UnmarshalMsg(v); err != nil {
		return n, fmt.Errorf("decode node %q: %w", id, err)
	}
	return n, nil
}

// Nodes returns the node catalog, ordered by id.
func (t *Tx) Nodes() ([]model.Node, error) {
	var out []model.Node
	err := t.tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		var n model.Node
		if _, err := n.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("decode node %q: %w", k, err)
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// PutNode stores a node's catalog entry.
func (t *Tx) PutNode(n model.Node) error {
	v, err := n.MarshalMsg(nil)
	if err != nil {
		return fmt.Errorf("encode node %q: %w", n.ID, err)
	}
	if err := t.tx.Bucket(bucketNodes).Put([]byte(n.ID), v); err != nil {
		return fmt.Errorf("store node %q: %w", n.ID, err)
	}
	return nil
}

// DeleteNode removes a node's catalog entry; removing an absent node is not an error.
func (t *Tx) DeleteNode(id string) error {
	if err := t.tx.Bucket(bucketNodes).Delete([]byte(id)); err != nil {
		return fmt.Errorf("delete node %q: %w", id, err)
	}
	return nil
}

func encodeUint(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func decodeUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// deleteKeys deletes the bucket's keys from the first for as long as match says so. The keys
// are gathered first and then deleted: a bbolt cursor skips a key when one is deleted under
// it, and walking the layers again from the first key after every deletion, past the deleted
// ones, is quadratic.
func deleteKeys(b *kvBucket, match func(k []byte) bool, what string) error {
	var dead [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && match(k); k, _ = c.Next() {
		dead = append(dead, bytes.Clone(k))
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// LinkEventsAfter calls fn with the indexed link events after seq, in order, at most
// limit of them.
func (t *Tx) LinkEventsAfter(seq uint64, limit int, fn func(model.LinkEvent) error) error {
	c := t.tx.Bucket(bucketLinkSeq).Cursor()
	history := t.tx.Bucket(bucketLinkHistory)
	n := 0
	for k, euid := c.Seek(encodeUint(seq + 1)); k != nil && n < limit; k, euid = c.Next() {
		key := append(append(append([]byte(nil), euid...), keySep), k...)
		v := history.Get(key)
		if v == nil {
			return fmt.Errorf("link event %d of %s: %w", binary.BigEndian.Uint64(k), euid, ErrNotFound)
		}
		var ev model.LinkEvent
		if _, err := ev.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("decode link event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if err := fn(ev); err != nil {
			return err
		}
		n++
	}
	return nil
}
