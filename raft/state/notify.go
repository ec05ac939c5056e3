package state

import (
	"fmt"

	"github.com/rls-hie/rls/raft/model"
)

// Buckets of notifications (FHIR Subscriptions).
var (
	bucketSubscriptions = []byte("subscriptions") // id → model.Subscription
	bucketNotifyEvents  = []byte("notify_events") // seq (8 bytes, big-endian) → model.NotifyEvent

	notifyBuckets = [][]byte{bucketSubscriptions, bucketNotifyEvents}
)

// Subscription returns a subscription by id, or ok=false.
func (t *Tx) Subscription(id string) (model.Subscription, bool, error) {
	var s model.Subscription
	v := t.tx.Bucket(bucketSubscriptions).Get([]byte(id))
	if v == nil {
		return s, false, nil
	}
	if _, err := s.UnmarshalMsg(v); err != nil {
		return s, false, fmt.Errorf("decode subscription %s: %w", id, err)
	}
	return s, true, nil
}

// Subscriptions returns every subscription, in id order.
func (t *Tx) Subscriptions() ([]model.Subscription, error) {
	var out []model.Subscription
	err := t.tx.Bucket(bucketSubscriptions).ForEach(func(k, v []byte) error {
		var s model.Subscription
		if _, err := s.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("decode subscription %s: %w", k, err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// PutSubscription stores a subscription.
func (t *Tx) PutSubscription(s model.Subscription) error {
	v, err := s.MarshalMsg(nil)
	if err != nil {
		return fmt.Errorf("encode subscription %s: %w", s.ID, err)
	}
	return t.tx.Bucket(bucketSubscriptions).Put([]byte(s.ID), v)
}

// NotifyHead is the sequence of the newest notification event ever appended (0 if none).
func (t *Tx) NotifyHead() uint64 { return t.tx.Bucket(bucketNotifyEvents).Sequence() }

// AppendNotifyEvent numbers an event in log order and stores it.
func (t *Tx) AppendNotifyEvent(ev model.NotifyEvent) error {
	b := t.tx.Bucket(bucketNotifyEvents)
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("number notification event: %w", err)
	}
	ev.Seq = seq
	v, err := ev.MarshalMsg(nil)
	if err != nil {
		return fmt.Errorf("encode notification event: %w", err)
	}
	return b.Put(encodeUint(seq), v)
}

// NotifyEventsAfter returns up to limit events with a sequence above after, oldest first.
func (t *Tx) NotifyEventsAfter(after uint64, limit int) ([]model.NotifyEvent, error) {
	var out []model.NotifyEvent
	c := t.tx.Bucket(bucketNotifyEvents).Cursor()
	for k, v := c.Seek(encodeUint(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
		var ev model.NotifyEvent
		if _, err := ev.UnmarshalMsg(v); err != nil {
			return nil, fmt.Errorf("decode notification event %d: %w", decodeUint(k), err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// NotifyEventCount counts the events kept.
func (t *Tx) NotifyEventCount() int { return t.tx.Bucket(bucketNotifyEvents).Stats().KeyN }

// PruneNotifyEvents deletes the events with a sequence at or below through.
func (t *Tx) PruneNotifyEvents(through uint64) error {
	c := t.tx.Bucket(bucketNotifyEvents).Cursor()
	for k, _ := c.First(); k != nil && decodeUint(k) <= through; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("prune notification event %d: %w", decodeUint(k), err)
		}
	}
	return nil
}
