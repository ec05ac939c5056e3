package mpi

import (
	"fmt"
	"slices"
)

// Relink moves a registered record to the person euid, for a data steward's link, unlink,
// merge or unmerge. The person must exist unless create is set (then it is founded with
// this record). The old person disappears when the record was its last. It returns the
// EUID the record left ("" when it was already on euid).
//
// Only the person side changes: the record's blocks and term counts do not depend on which
// person it belongs to. Like Register it writes through s in several calls; on error the
// caller must discard the store's transaction.
func Relink(s Store, key RecordKey, euid string, create bool) (string, error) {
	sr, err := s.Record(key)
	if err != nil {
		return "", fmt.Errorf("relink %s: read record: %w", key, err)
	}
	if sr == nil {
		return "", fmt.Errorf("relink %s: %w", key, ErrNotFound)
	}
	from := sr.EUID
	if from == euid {
		return "", nil
	}
	target, ok, err := s.Person(euid)
	if err != nil {
		return "", fmt.Errorf("relink %s: read person %s: %w", key, euid, err)
	}
	if !ok && !create {
		return "", fmt.Errorf("relink %s: person %s: %w", key, euid, ErrNotFound)
	}
	if ok && create {
		return "", fmt.Errorf("relink %s: %w: %s already names a person", key, ErrInvalidEUID, euid)
	}
	old, ok, err := s.Person(from)
	if err != nil {
		return "", fmt.Errorf("relink %s: read person %s: %w", key, from, err)
	}
	if ok {
		rest := slices.DeleteFunc(slices.Clone(old.Records), func(k RecordKey) bool { return k == key })
		if len(rest) == 0 {
			err = s.DeletePerson(from)
		} else {
			err = s.PutPerson(Person{EUID: from, Records: rest})
		}
		if err != nil {
			return "", fmt.Errorf("relink %s: update person %s: %w", key, from, err)
		}
	}
	recs := slices.Clone(target.Records)
	if i, found := slices.BinarySearch(recs, key); !found {
		recs = slices.Insert(recs, i, key)
	}
	if err := s.PutPerson(Person{EUID: euid, Records: recs}); err != nil {
		return "", fmt.Errorf("relink %s: update person %s: %w", key, euid, err)
	}
	moved := *sr // the store's value is read-only
	moved.EUID = euid
	if err := s.PutRecord(&moved); err != nil {
		return "", fmt.Errorf("relink %s: write record: %w", key, err)
	}
	return from, nil
}
