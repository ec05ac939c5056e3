package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rls-hie/rls/mpi"
)

// Buckets of the data steward's decisions, which automatic matching must respect.
var (
	bucketPins        = []byte("mpi_pins")        // record key → EUID the steward put it on
	bucketSeparations = []byte("mpi_separations") // record key 0x00 EUID → empty: never link them
	bucketResolutions = []byte("mpi_resolutions") // review seq → Resolution
	// bucketRecordSeparations: record key 0x00 record key → empty, both ways round: the
	// two records must never share a person through automatic matching.
	bucketRecordSeparations = []byte("mpi_record_separations")

	stewardBuckets = [][]byte{bucketPins, bucketSeparations, bucketResolutions, bucketRecordSeparations}
)

// Pin returns the person a steward put a record on, if any.
func (t *Tx) Pin(key mpi.RecordKey) (string, bool) {
	var kb [keyBufferSize]byte
	v := t.tx.Bucket(bucketPins).Get(keyBytes(&kb, string(key)))
	return string(v), v != nil
}

// SetPin keeps a record on a person whatever later automatic matching decides.
func (t *Tx) SetPin(key mpi.RecordKey, euid string) error {
	return t.tx.Bucket(bucketPins).Put([]byte(key), []byte(euid))
}

func separationKey(key mpi.RecordKey, euid string) []byte {
	return append(append([]byte(key), keySep), euid...)
}

// Separate records that a record must never be linked to a person automatically: neither
// to the person (whatever records it later holds) nor to any record the person holds now,
// wherever automatic matching later puts that record. The second half is what keeps the
// steward's word when the person's records move: a rematch that gathers them on another
// person, or on the separated record's own, must still keep them apart.
func (t *Tx) Separate(key mpi.RecordKey, euid string) error {
	if err := t.tx.Bucket(bucketSeparations).Put(separationKey(key, euid), nil); err != nil {
		return fmt.Errorf("separate %s from %s: %w", key, euid, err)
	}
	return t.eachRecordOf(euid, key, func(other []byte) error {
		b := t.tx.Bucket(bucketRecordSeparations)
		if err := b.Put(separationKey(key, string(other)), nil); err != nil {
			return fmt.Errorf("separate %s from %s: %w", key, other, err)
		}
		return b.Put(append(append(other, keySep), key...), nil)
	})
}

// Unseparate lifts a separation (a steward linked the two after all): from the person and
// from every record it holds now.
func (t *Tx) Unseparate(key mpi.RecordKey, euid string) error {
	if err := t.tx.Bucket(bucketSeparations).Delete(separationKey(key, euid)); err != nil {
		return fmt.Errorf("unseparate %s from %s: %w", key, euid, err)
	}
	return t.eachRecordOf(euid, key, func(other []byte) error {
		b := t.tx.Bucket(bucketRecordSeparations)
		if err := b.Delete(separationKey(key, string(other))); err != nil {
			return fmt.Errorf("unseparate %s from %s: %w", key, other, err)
		}
		return b.Delete(append(append(other, keySep), key...))
	})
}

// eachRecordOf calls fn with (a copy of) the key of every record of a person but skip.
func (t *Tx) eachRecordOf(euid string, skip mpi.RecordKey, fn func(key []byte) error) error {
	p, ok, err := t.MPI().Person(euid)
	if err != nil || !ok {
		return err
	}
	for _, k := range p.Records {
		if k != skip {
			if err := fn([]byte(k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// SeparatedRecords returns the records a record must never share a person with.
func (t *Tx) SeparatedRecords(key mpi.RecordKey) []mpi.RecordKey {
	prefix := append([]byte(key), keySep)
	var out []mpi.RecordKey
	c := t.tx.Bucket(bucketRecordSeparations).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, mpi.RecordKey(k[len(prefix):]))
	}
	return out
}

// Separations returns the persons a record must never be linked to.
func (t *Tx) Separations(key mpi.RecordKey) []string {
	prefix := append([]byte(key), keySep)
	var out []string
	c := t.tx.Bucket(bucketSeparations).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, string(k[len(prefix):]))
	}
	return out
}

// ReviewEntry is a review queue item with its sequence number and resolution, if any.
type ReviewEntry struct {
	Seq        uint64         `json:"seq"`
	Item       mpi.ReviewItem `json:"item"`
	Resolution *Resolution    `json:"resolution,omitempty"`
}

// Resolution is how a steward settled a review item.
type Resolution struct {
	Decision string    `json:"decision"` // link or separate
	EUID     string    `json:"euid,omitempty"`
	Actor    string    `json:"actor"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// Review returns one review queue item.
func (t *Tx) Review(seq uint64) (ReviewEntry, bool, error) {
	e := ReviewEntry{Seq: seq}
	v := t.tx.Bucket(bucketMPIReviews).Get(encodeUint(seq))
	if v == nil {
		return e, false, nil
	}
	if err := json.Unmarshal(v, &e.Item); err != nil {
		return e, false, fmt.Errorf("decode review item %d: %w", seq, err)
	}
	if r := t.tx.Bucket(bucketResolutions).Get(encodeUint(seq)); r != nil {
		e.Resolution = &Resolution{}
		if err := json.Unmarshal(r, e.Resolution); err != nil {
			return e, false, fmt.Errorf("decode resolution of review item %d: %w", seq, err)
		}
	}
	return e, true, nil
}

// Reviews calls fn for every review item in queue order.
func (t *Tx) Reviews(fn func(ReviewEntry) error) error {
	c := t.tx.Bucket(bucketMPIReviews).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		e, _, err := t.Review(binary.BigEndian.Uint64(k))
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Resolve records how a review item was settled.
func (t *Tx) Resolve(seq uint64, r Resolution) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode resolution: %w", err)
	}
	return t.tx.Bucket(bucketResolutions).Put(encodeUint(seq), v)
}
