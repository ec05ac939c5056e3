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

// keyLiveSubscriptions (in the meta bucket) counts the live subscriptions, so that Apply
// reads one key per entry to know whether events are kept at all.
var keyLiveSubscriptions = []byte("notify_live_subscriptions")

// PutSubscription stores a subscription and counts the live ones anew.
func (t *Tx) PutSubscription(s model.Subscription) error {
	v, err := s.MarshalMsg(nil)
	if err != nil {
		return fmt.Errorf("encode subscription %s: %w", s.ID, err)
	}
	if err := t.tx.Bucket(bucketSubscriptions).Put([]byte(s.ID), v); err != nil {
		return fmt.Errorf("store subscription %s: %w", s.ID, err)
	}
	subs, err := t.Subscriptions()
	if err != nil {
		return err
	}
	live := uint64(0)
	for _, s := range subs {
		if s.Live() {
			live++
		}
	}
	if err := t.tx.Bucket(bucketMeta).Put(keyLiveSubscriptions, encodeUint(live)); err != nil {
		return fmt.Errorf("count live subscriptions: %w", err)
	}
	return nil
}

// AnyLiveSubscription reports whether some subscription is live (active or in error).
func (t *Tx) AnyLiveSubscription() bool {
	v := t.tx.Bucket(bucketMeta).Get(keyLiveSubscriptions)
	return len(v) == 8 && decodeUint(v) > 0
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

// PruneNotifyEvents deletes the events with a sequence at or below through.
func (t *Tx) PruneNotifyEvents(through uint64) error {
	return deleteKeys(t.tx.Bucket(bucketNotifyEvents), func(k []byte) bool { return decodeUint(k) <= through }, "prune notification events")
}
