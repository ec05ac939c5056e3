package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Buckets of the submission sets (MHD SubmissionSet Lists).
var (
	bucketLists         = []byte("lists")           // id → StoredList
	bucketListsByRecord = []byte("lists_by_record") // patient record key 0x00 id → empty

	listBuckets = [][]byte{bucketLists, bucketListsByRecord}
)

// StoredList is a registered FHIR List (an MHD SubmissionSet) as the replicated state keeps
// it: the resource as its holder sent it, with the patient record it is about.
type StoredList struct {
	ID            string    `json:"id"`
	PatientRecord string    `json:"patient_record"`
	Holder        string    `json:"holder"`
	Resource      []byte    `json:"resource"`
	Version       uint64    `json:"version"`
	Updated       time.Time `json:"updated"`
}

func listRecordKey(record, id string) []byte {
	return append(append([]byte(record), 0), id...)
}

// List returns a stored List, or ok=false.
func (t *Tx) List(id string) (StoredList, bool, error) {
	var l StoredList
	v := t.tx.Bucket(bucketLists).Get([]byte(id))
	if v == nil {
		return l, false, nil
	}
	if err := json.Unmarshal(v, &l); err != nil {
		return l, false, fmt.Errorf("decode list %s: %w", id, err)
	}
	return l, true, nil
}

// PutList stores a List and files it under its patient record (dropping the filing of the
// version it replaces).
func (t *Tx) PutList(l StoredList) error {
	old, ok, err := t.List(l.ID)
	if err != nil {
		return err
	}
	byRecord := t.tx.Bucket(bucketListsByRecord)
	if ok {
		if err := byRecord.Delete(listRecordKey(old.PatientRecord, old.ID)); err != nil {
			return fmt.Errorf("unfile list %s: %w", l.ID, err)
		}
	}
	v, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode list %s: %w", l.ID, err)
	}
	if err := t.tx.Bucket(bucketLists).Put([]byte(l.ID), v); err != nil {
		return fmt.Errorf("store list %s: %w", l.ID, err)
	}
	if err := byRecord.Put(listRecordKey(l.PatientRecord, l.ID), nil); err != nil {
		return fmt.Errorf("file list %s: %w", l.ID, err)
	}
	return nil
}

// ListsOfRecords returns the Lists about any of the patient records, by record then id.
func (t *Tx) ListsOfRecords(records []string) ([]StoredList, error) {
	var out []StoredList
	cur := t.tx.Bucket(bucketListsByRecord).Cursor()
	for _, rec := range records {
		prefix := listRecordKey(rec, "")
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			l, ok, err := t.List(string(k[len(prefix):]))
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, l)
			}
		}
	}
	return out, nil
}
