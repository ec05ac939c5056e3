package mpi

import (
	"errors"
	"reflect"
	"testing"
)

func TestRelinkMovesRecordsBetweenPersons(t *testing.T) {
	s := NewMemStore()
	m := NewMatcher()
	reg := func(value, given, euid string) Decision {
		d, err := m.Register(s, Record{System: "urn:a", Value: value, Given: []string{given}, Family: "Ibsen", BirthDate: "1970-01-0" + value}, euid)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := reg("1", "Nora", "E1"), reg("2", "Hedda", "E2")
	if a.EUID == b.EUID {
		t.Fatal("setup: two people linked")
	}
	person := func(euid string) []RecordKey {
		p, ok, err := s.Person(euid)
		if err != nil || !ok {
			return nil
		}
		return p.Records
	}
	// Link b into a's person: b's person disappears.
	from, err := Relink(s, b.Record, a.EUID, false)
	if err != nil || from != b.EUID {
		t.Fatalf("relink: from %q, %v", from, err)
	}
	if got := person(a.EUID); !reflect.DeepEqual(got, []RecordKey{a.Record, b.Record}) {
		t.Fatalf("person %s holds %v", a.EUID, got)
	}
	if person(b.EUID) != nil {
		t.Fatalf("emptied person %s still exists", b.EUID)
	}
	if sr, _ := s.Record(b.Record); sr.EUID != a.EUID {
		t.Fatalf("record %s still names %s", b.Record, sr.EUID)
	}
	// Unlink it again into a new person.
	if _, err := Relink(s, b.Record, "E9", true); err != nil {
		t.Fatal(err)
	}
	if got := person("E9"); !reflect.DeepEqual(got, []RecordKey{b.Record}) {
		t.Fatalf("new person holds %v", got)
	}
	if got := person(a.EUID); !reflect.DeepEqual(got, []RecordKey{a.Record}) {
		t.Fatalf("old person holds %v", got)
	}
	// Refusals change nothing.
	if _, err := Relink(s, b.Record, "E404", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("relink to a missing person: %v", err)
	}
	if _, err := Relink(s, b.Record, a.EUID, true); !errors.Is(err, ErrInvalidEUID) {
		t.Fatalf("create over an existing person: %v", err)
	}
	if _, err := Relink(s, "urn:a|nobody", a.EUID, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("relink of a missing record: %v", err)
	}
	if from, err := Relink(s, a.Record, a.EUID, false); err != nil || from != "" {
		t.Fatalf("relink in place: %q %v", from, err)
	}
}
