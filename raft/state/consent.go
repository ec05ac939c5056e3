package state

import (
	"bytes"
	"fmt"

	"github.com/rls-hie/rls/raft/model"
)

// Buckets of consent directives.
var (
	bucketConsents        = []byte("consents")           // id → model.Consent
	bucketConsentByRecord = []byte("consents_by_record") // record key 0x00 id → empty

	consentBuckets = [][]byte{bucketConsents, bucketConsentByRecord}
)

func consentRecordKey(record, id string) []byte {
	k := make([]byte, 0, len(record)+1+len(id))
	k = append(k, record...)
	k = append(k, 0)
	return append(k, id...)
}

// Consent returns a directive by id, or ok=false.
func (t *Tx) Consent(id string) (model.Consent, bool, error) {
	var c model.Consent
	v := t.tx.Bucket(bucketConsents).Get([]byte(id))
	if v == nil {
		return c, false, nil
	}
	if _, err := c.UnmarshalMsg(v); err != nil {
		return c, false, fmt.Errorf("decode consent %s: %w", id, err)
	}
	return c, true, nil
}

// Consents returns every directive, in id order.
func (t *Tx) Consents() ([]model.Consent, error) {
	var out []model.Consent
	err := t.tx.Bucket(bucketConsents).ForEach(func(k, v []byte) error {
		var c model.Consent
		if _, err := c.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("decode consent %s: %w", k, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// AnyConsent reports whether any directive is stored: most registrations meet none, and
// need not look for the directives of their person.
func (t *Tx) AnyConsent() bool {
	k, _ := t.tx.Bucket(bucketConsents).Cursor().First()
	return k != nil
}

// ConsentsOfRecords returns the directives anchored to any of the records (each once, in
// the order first found), active or not: the caller decides what applies.
func (t *Tx) ConsentsOfRecords(records []string) ([]model.Consent, error) {
	var out []model.Consent
	seen := map[string]bool{}
	cur := t.tx.Bucket(bucketConsentByRecord).Cursor()
	for _, rec := range records {
		prefix := consentRecordKey(rec, "")
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			id := string(k[len(prefix):])
			if seen[id] {
				continue
			}
			seen[id] = true
			c, ok, err := t.Consent(id)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// PutConsent stores a directive and re-files it under its records (dropping the entries of
// the version it replaces).
func (t *Tx) PutConsent(c model.Consent) error {
	old, ok, err := t.Consent(c.ID)
	if err != nil {
		return err
	}
	idx := t.tx.Bucket(bucketConsentByRecord)
	if ok {
		for _, rec := range old.Records {
			if err := idx.Delete(consentRecordKey(rec, c.ID)); err != nil {
				return fmt.Errorf("unindex consent %s: %w", c.ID, err)
			}
		}
	}
	v, err := c.MarshalMsg(nil)
	if err != nil {
		return fmt.Errorf("encode consent %s: %w", c.ID, err)
	}
	if err := t.tx.Bucket(bucketConsents).Put([]byte(c.ID), v); err != nil {
		return fmt.Errorf("store consent %s: %w", c.ID, err)
	}
	for _, rec := range c.Records {
		if err := idx.Put(consentRecordKey(rec, c.ID), nil); err != nil {
			return fmt.Errorf("index consent %s: %w", c.ID, err)
		}
	}
	return nil
}
