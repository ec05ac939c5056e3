package mpi

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestRegisterDecidedWritesWhatRegisterPreparedWrites registers a workload of new records,
// variants, re-registrations under another person and steward relinks into one index with
// RegisterPrepared, and into a second with RegisterDecided given each decision as another
// node receives it (JSON): the second index must end with the same records, blocks, term
// counts, persons and review items, and every registration must return the same decision.
func TestRegisterDecidedWritesWhatRegisterPreparedWrites(t *testing.T) {
	const n = 3000
	matched, decided := NewMemStore(), NewMemStore()
	m := NewMatcher()
	gen := newPersonGenerator(5)
	rng := rand.New(rand.NewPCG(5, 5))
	var keys []RecordKey
	updates := 0
	for i := 0; i < n; i++ {
		var r Record
		switch {
		case i%3 == 0 && i > 0:
			r = gen.variant(rng, gen.person(rng.IntN(i)), "V"+strconv.Itoa(i))
		case i%7 == 0 && i > 0:
			// The identifier of an earlier record with another person's demographics: the
			// record moves, and its old person may be left empty.
			r = gen.person(rng.IntN(i))
			r.System, r.Value = keys[rng.IntN(len(keys))].Split()
		default:
			r = gen.person(i)
		}
		euid := "P" + strconv.Itoa(i)
		p := Prepare(r)
		want, err := m.RegisterPrepared(matched, r, &p, euid)
		if err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
		if want.Updated {
			updates++
		}
		wire, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var hint Decision
		if err := json.Unmarshal(wire, &hint); err != nil {
			t.Fatal(err)
		}
		got, err := m.RegisterDecided(decided, r, &p, euid, hint)
		if err != nil {
			t.Fatalf("register %d with the decision: %v", i, err)
		}
		if g, _ := json.Marshal(got); string(g) != string(wire) {
			t.Fatalf("register %d: decided\n%s\nwant\n%s", i, g, wire)
		}
		keys = append(keys, r.Key())
		if i%97 == 96 {
			key := keys[rng.IntN(len(keys))]
			for _, s := range []Store{matched, decided} {
				if _, err := Relink(s, key, "M"+strconv.Itoa(i), true); err != nil {
					t.Fatalf("relink %d: %v", i, err)
				}
			}
		}
	}
	if updates == 0 {
		t.Fatal("the workload re-registered no record")
	}
	same := func(what string, a, b any) {
		t.Helper()
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("%s differ:\n%s\n%s", what, ja, jb)
		}
	}
	same("persons", matched.Persons(), decided.Persons())
	same("review items", matched.Reviews(), decided.Reviews())
	for _, key := range keys {
		a, _ := matched.Record(key)
		b, _ := decided.Record(key)
		same("record "+string(key), a, b)
		for _, blk := range a.Blocks {
			ma, _, _ := matched.BlockMembers(blk, 1<<20, nil)
			mb, _, _ := decided.BlockMembers(blk, 1<<20, nil)
			same("block "+blk.Key, ma, mb)
		}
		for _, f := range []struct{ field, value string }{{FieldGiven, a.Norm.Given}, {FieldFamily, a.Norm.Family}, {FieldGiven, ""}} {
			ca, _ := matched.TermCount(f.field, f.value)
			cb, _ := decided.TermCount(f.field, f.value)
			if ca != cb {
				t.Fatalf("term count %s %q: %d and %d", f.field, f.value, ca, cb)
			}
		}
	}
}

// TestRegisterDecidedRefusesWhatDoesNotFit gives RegisterDecided decisions that do not fit
// the index: each is refused with ErrDecisionMismatch before anything is written.
func TestRegisterDecidedRefusesWhatDoesNotFit(t *testing.T) {
	s := NewMemStore()
	m := NewMatcher()
	gen := newPersonGenerator(9)
	first := gen.person(1)
	d0, err := m.Register(s, first, "P1")
	if err != nil {
		t.Fatal(err)
	}
	fresh := gen.person(2)
	moved := gen.person(3)
	moved.System, moved.Value = first.System, first.Value
	cases := []struct {
		name  string
		rec   Record
		euid  string
		alter func(d *Decision)
	}{
		{"another record", fresh, "P2", func(d *Decision) { d.Record = "x|y" }},
		{"another configuration", fresh, "P2", func(d *Decision) { d.ConfigVersion++ }},
		{"a link to nobody", fresh, "P2", func(d *Decision) { d.Outcome, d.EUID = OutcomeLinked, "NOBODY" }},
		{"a new person under another EUID", fresh, "P2", func(d *Decision) { d.EUID = "P9" }},
		{"an update of a new record", fresh, "P2", func(d *Decision) { d.Updated, d.PreviousEUID = true, "P1" }},
		{"a new EUID in use", fresh, "P1", func(d *Decision) { d.EUID = "P1" }},
		{"an unknown outcome", fresh, "P2", func(d *Decision) { d.Outcome = "maybe" }},
		{"a re-registration taken for new", moved, "P3", func(d *Decision) { d.Updated, d.PreviousEUID = false, "" }},
		{"a link to the emptied person", moved, "P3", func(d *Decision) { d.Outcome, d.EUID = OutcomeLinked, "P1" }},
		{"a review item of another person", fresh, "P2", func(d *Decision) {
			d.Outcome, d.Review = OutcomeReview, &ReviewItem{Record: d.Record, EUID: "P1"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decision{Record: c.rec.Key(), Outcome: OutcomeNew, EUID: c.euid, ConfigVersion: d0.ConfigVersion}
			if old, _ := s.Record(c.rec.Key()); old != nil {
				d.Updated, d.PreviousEUID, d.EUID = true, old.EUID, old.EUID
			}
			c.alter(&d)
			before, _ := json.Marshal([]any{s.Persons(), s.Reviews()})
			_, err := m.RegisterDecided(s, c.rec, nil, c.euid, d)
			if !errors.Is(err, ErrDecisionMismatch) {
				t.Fatalf("got %v, want ErrDecisionMismatch", err)
			}
			after, _ := json.Marshal([]any{s.Persons(), s.Reviews()})
			if string(before) != string(after) {
				t.Fatal("a refused decision changed the index")
			}
			if rec, _ := s.Record(first.Key()); rec == nil || rec.EUID != "P1" || rec.Record.Family != first.Family {
				t.Fatal("a refused decision changed the registered record")
			}
		})
	}
}
