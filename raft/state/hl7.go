package state

import (
	"encoding/binary"
	"fmt"

	"github.com/rls-hie/rls/raft/model"
)

// Buckets of the HL7 v2 interface's notifications (ITI-10).
var (
	bucketHL7Endpoints = []byte("hl7_endpoints") // id → model.HL7Endpoint
	// bucketLinkSeq indexes the link history by sequence (seq → EUID) for the notifier,
	// which reads it in order from an endpoint's cursor. Events are indexed only while
	// some endpoint is registered, and an entry goes once every active endpoint is past it,
	// so the index holds the notifications still to deliver and no more.
	bucketLinkSeq = []byte("link_seq")

	hl7Buckets = [][]byte{bucketHL7Endpoints, bucketLinkSeq}
)

// HL7Endpoint returns an endpoint by id, or ok=false.
func (t *Tx) HL7Endpoint(id string) (model.HL7Endpoint, bool, error) {
	var e model.HL7Endpoint
	v := t.tx.Bucket(bucketHL7Endpoints).Get([]byte(id))
	if v == nil {
		return e, false, nil
	}
	if _, err := e.UnmarshalMsg(v); err != nil {
		return e, false, fmt.Errorf("decode HL7 endpoint %s: %w", id, err)
	}
	return e, true, nil
}

// HL7Endpoints returns every endpoint, in id order.
func (t *Tx) HL7Endpoints() ([]model.HL7Endpoint, error) {
	var out []model.HL7Endpoint
	err := t.tx.Bucket(bucketHL7Endpoints).ForEach(func(k, v []byte) error {
		var e model.HL7Endpoint
		if _, err := e.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("decode HL7 endpoint %s: %w", k, err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// PutHL7Endpoint stores an endpoint, then drops the index entries every active endpoint
// is past.
func (t *Tx) PutHL7Endpoint(e model.HL7Endpoint) error {
	v, err := e.MarshalMsg(nil)
	if err != nil {
		return fmt.Errorf("encode HL7 endpoint %s: %w", e.ID, err)
	}
	if err := t.tx.Bucket(bucketHL7Endpoints).Put([]byte(e.ID), v); err != nil {
		return fmt.Errorf("store HL7 endpoint %s: %w", e.ID, err)
	}
	return t.pruneLinkSeq()
}

// LastLinkSeq is the sequence number of the newest link event (0 if none).
func (t *Tx) LastLinkSeq() uint64 { return t.tx.Bucket(bucketLinkHistory).Sequence() }

// keyActiveHL7Endpoints (in the meta bucket) counts the active endpoints, so that
// recording a link event reads one key to know whether to index it.
var keyActiveHL7Endpoints = []byte("hl7_active_endpoints")

// indexLinkEvent adds a link event to the notifier's index while some endpoint is active.
func (t *Tx) indexLinkEvent(seq uint64, euid string) error {
	if v := t.tx.Bucket(bucketMeta).Get(keyActiveHL7Endpoints); len(v) != 8 || binary.BigEndian.Uint64(v) == 0 {
		return nil
	}
	var seqKey [8]byte
	var eb [keyBufferSize]byte
	binary.BigEndian.PutUint64(seqKey[:], seq)
	return t.tx.Bucket(bucketLinkSeq).Put(seqKey[:], keyBytes(&eb, euid))
}

// pruneLinkSeq counts the active endpoints and drops the index entries at or below the
// least cursor among them (every entry when none is active).
func (t *Tx) pruneLinkSeq() error {
	low := t.LastLinkSeq()
	endpoints, err := t.HL7Endpoints()
	if err != nil {
		return err
	}
	active := uint64(0)
	for _, e := range endpoints {
		if e.Active() {
			low = min(low, e.Cursor)
			active++
		}
	}
	if err := t.tx.Bucket(bucketMeta).Put(keyActiveHL7Endpoints, encodeUint(active)); err != nil {
		return fmt.Errorf("count active HL7 endpoints: %w", err)
	}
	return deleteKeys(t.tx.Bucket(bucketLinkSeq), func(k []byte) bool { return binary.BigEndian.Uint64(k) <= low }, "prune link index")
}
