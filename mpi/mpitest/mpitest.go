// Package mpitest checks an mpi.Store implementation against the contract
// documented on mpi.Store, so the bbolt store of the Raft FSM and
// mpi.MemStore can be held to the same rules: call TestStore from the
// implementation's tests.
//
// It owns test helpers only: it must never import HTTP or Raft code.
package mpitest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/rls-hie/rls/mpi"
)

// TestStore runs the contract checks against stores made by newStore (each
// check gets a fresh, empty store; a transactional store may return one
// view of an open read-write transaction).
func TestStore(t *testing.T, newStore func(t *testing.T) mpi.Store) {
	t.Run("config", func(t *testing.T) {
		s := newStore(t)
		if _, ok, err := s.Config(); err != nil || ok {
			t.Fatalf("empty store: config ok=%v err=%v", ok, err)
		}
		cfg := mpi.DefaultConfig()
		cfg.Version, cfg.Upper = 7, 15.25
		must(t, s.PutConfig(cfg))
		got, ok, err := s.Config()
		if err != nil || !ok || !reflect.DeepEqual(got, cfg) {
			t.Fatalf("config round trip: ok=%v err=%v\n got %+v\nwant %+v", ok, err, got, cfg)
		}
	})
	t.Run("records", func(t *testing.T) {
		s := newStore(t)
		if r, err := s.Record("a|1"); err != nil || r != nil {
			t.Fatalf("missing record: %v %v", r, err)
		}
		rec := mpi.Record{System: "a", Value: "1", Given: []string{"Mary"}, Family: "Jones", BirthDate: "2011-01-22"}
		sr := &mpi.StoredRecord{Key: rec.Key(), EUID: "E1", Record: rec, Norm: mpi.Normalize(rec), Blocks: mpi.BlockingKeys(ptr(mpi.Normalize(rec)))}
		must(t, s.PutRecord(sr))
		got, err := s.Record(rec.Key())
		if err != nil || got == nil || !jsonEqual(got, sr) {
			t.Fatalf("record round trip: %v\n got %+v\nwant %+v", err, got, sr)
		}
	})
	t.Run("blocks", func(t *testing.T) {
		s := newStore(t)
		block := func(sort string) mpi.Block { return mpi.Block{Key: "db:1980|0101", Sort: sort} }
		for _, e := range []struct {
			sort string
			key  mpi.RecordKey
		}{{"b", "x|1"}, {"a", "x|2"}, {"c", "x|3"}, {"a", "x|0"}, {"b", "x|1"}, {"", "x|9"}} {
			must(t, s.AddToBlock(block(e.sort), e.key))
		}
		must(t, s.AddToBlock(mpi.Block{Key: "db:1980|0102"}, "z|1"))
		all, complete, err := s.BlockMembers(block("zzz"), 10, nil)
		if err != nil || !complete || !reflect.DeepEqual(all, []mpi.RecordKey{"x|9", "x|0", "x|2", "x|1", "x|3"}) {
			t.Fatalf("members in sort order, then key order, unique: %v complete=%v err=%v", all, complete, err)
		}
		exact, complete, _ := s.BlockMembers(block(""), 5, nil)
		if !complete || len(exact) != 5 {
			t.Fatalf("limit equal to the size: %v complete=%v", exact, complete)
		}
		must(t, s.RemoveFromBlock(block("b"), "x|1"))
		must(t, s.RemoveFromBlock(block("b"), "x|1"))
		must(t, s.RemoveFromBlock(block("a"), "x|3")) // filed at another sort value
		must(t, s.RemoveFromBlock(mpi.Block{Key: "nope"}, "x|2"))
		after, _, _ := s.BlockMembers(block(""), 10, nil)
		if !reflect.DeepEqual(after, []mpi.RecordKey{"x|9", "x|0", "x|2", "x|3"}) {
			t.Fatalf("after remove: %v", after)
		}
		if none, complete, _ := s.BlockMembers(mpi.Block{Key: "db:1980"}, 10, nil); len(none) != 0 || !complete {
			t.Fatalf("a prefix of a block key is another block: %v", none)
		}
		buf := []mpi.RecordKey{"keep|me"}
		if got, _, _ := s.BlockMembers(block(""), 10, buf); len(got) != 5 || got[0] != "keep|me" {
			t.Fatalf("BlockMembers must append to buf: %v", got)
		}
	})
	t.Run("block windows", func(t *testing.T) {
		s := newStore(t)
		key := "nc:SM0|springfield"
		for i := 9; i >= 0; i-- {
			must(t, s.AddToBlock(mpi.Block{Key: key, Sort: fmt.Sprintf("19%02d", 50+i)}, mpi.RecordKey(fmt.Sprintf("k|%d", i))))
		}
		for _, c := range []struct {
			at   string
			want []int
		}{
			{"1955", []int{3, 4, 5, 6}},  // two before the position, two from it
			{"19555", []int{4, 5, 6, 7}}, // between two sort values
			{"", []int{0, 1, 2, 3}},      // before the first: the first four
			{"1999", []int{6, 7, 8, 9}},  // past the last: the last four
			{"1959", []int{6, 7, 8, 9}},  // near the end: moved back inside the block
		} {
			got, complete, err := s.BlockMembers(mpi.Block{Key: key, Sort: c.at}, 4, []mpi.RecordKey{"keep|me"})
			var want []mpi.RecordKey
			want = append(want, "keep|me")
			for _, i := range c.want {
				want = append(want, mpi.RecordKey(fmt.Sprintf("k|%d", i)))
			}
			if err != nil || complete || !reflect.DeepEqual(got, want) {
				t.Errorf("window at %q: %v complete=%v err=%v, want %v", c.at, got, complete, err, want)
			}
		}
		// A block of another key sorting right after this one does not leak in.
		must(t, s.AddToBlock(mpi.Block{Key: key + "x", Sort: "1900"}, "other|1"))
		if got, _, _ := s.BlockMembers(mpi.Block{Key: key, Sort: "1999"}, 4, nil); !reflect.DeepEqual(got, []mpi.RecordKey{"k|6", "k|7", "k|8", "k|9"}) {
			t.Errorf("window at the end with a neighbouring block: %v", got)
		}
	})
	t.Run("persons", func(t *testing.T) {
		s := newStore(t)
		if _, ok, err := s.Person("E1"); ok || err != nil {
			t.Fatalf("missing person: ok=%v err=%v", ok, err)
		}
		p := mpi.Person{EUID: "E1", Records: []mpi.RecordKey{"a|1", "b|2"}}
		must(t, s.PutPerson(p))
		got, ok, err := s.Person("E1")
		if err != nil || !ok || !reflect.DeepEqual(got, p) {
			t.Fatalf("person round trip: %+v ok=%v err=%v", got, ok, err)
		}
		count := func(want int64) {
			t.Helper()
			if n, err := s.PersonCount(); err != nil || n != want {
				t.Fatalf("person count %d (err %v), want %d", n, err, want)
			}
		}
		count(1)
		must(t, s.PutPerson(mpi.Person{EUID: "E1", Records: []mpi.RecordKey{"a|1"}})) // a replacement is no new person
		must(t, s.PutPerson(mpi.Person{EUID: "E2", Records: []mpi.RecordKey{"c|3"}}))
		count(2)
		must(t, s.DeletePerson("E1"))
		must(t, s.DeletePerson("E1"))
		if _, ok, _ := s.Person("E1"); ok {
			t.Fatal("deleted person still there")
		}
		count(1)
	})
	t.Run("terms", func(t *testing.T) {
		s := newStore(t)
		must(t, s.AddTermCount("given", "mary", 2))
		must(t, s.AddTermCount("given", "mary", -1))
		must(t, s.AddTermCount("given", "", 5))
		for _, c := range []struct {
			field, value string
			want         int64
		}{{"given", "mary", 1}, {"given", "", 5}, {"family", "mary", 0}, {"given", "ann", 0}} {
			if n, err := s.TermCount(c.field, c.value); err != nil || n != c.want {
				t.Errorf("TermCount(%q, %q) = %d, %v; want %d", c.field, c.value, n, err, c.want)
			}
		}
		must(t, s.AddTermCount("given", "mary", -1))
		if n, _ := s.TermCount("given", "mary"); n != 0 {
			t.Errorf("count back to zero reads %d", n)
		}
	})
	t.Run("review", func(t *testing.T) {
		s := newStore(t)
		must(t, s.AppendReview(mpi.ReviewItem{Record: "a|1", EUID: "E1", Reason: mpi.ReviewAmbiguous}))
		must(t, s.AppendReview(mpi.ReviewItem{Record: "a|2", EUID: "E2", Reason: mpi.ReviewHousehold}))
	})
	t.Run("same decisions as MemStore", func(t *testing.T) {
		s := newStore(t)
		ref := mpi.NewMemStore()
		m := mpi.NewMatcher()
		for i, r := range sampleRecords() {
			euid := fmt.Sprintf("E%d", i)
			want, err := m.Register(ref, r, euid)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Register(s, r, euid)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(got, want) {
				t.Fatalf("record %d: decision differs from MemStore's\n got %+v\nwant %+v", i, got, want)
			}
		}
	})
}

// sampleRecords exercise linking, review, household rules and updates.
func sampleRecords() []mpi.Record {
	p := func(sys, val, given, family, birth, sex, line, phone, ssn string) mpi.Record {
		r := mpi.Record{System: sys, Value: val, Given: []string{given}, Family: family, BirthDate: birth, Sex: sex,
			City: "Salem", State: "OR", PostalCode: "97301", SSN: ssn}
		if line != "" {
			r.AddressLines = []string{line}
		}
		if phone != "" {
			r.Phones = []string{phone}
		}
		return r
	}
	return []mpi.Record{
		p("urn:a", "1", "William", "Turner", "1932-01-26", "M", "6730 Oak Court", "5398966397", "123456780"),
		p("urn:b", "1", "Bill", "Turner", "1932-01-27", "M", "6730 Oak Ct", "", ""),
		p("urn:a", "2", "Mary", "Jones", "2011-01-22", "F", "4309 Forest Court", "3356042247", ""),
		p("urn:b", "2", "Judith", "Jones", "2011-01-22", "F", "4309 Forest Court", "3356042247", ""),
		p("urn:c", "1", "Judith", "Jones", "2011-01-22", "F", "4309 Forest Ct", "", ""),
		p("urn:a", "3", "Kenneth", "Moore", "1972-04-01", "M", "8685 Highland Ave", "9338041849", ""),
		p("urn:b", "3", "Kenny", "Moore", "1997-04-01", "M", "8685 Highland Ave", "9338041849", ""),
		p("urn:c", "2", "William", "Turner", "1932-07-03", "M", "1 Elm Street", "", ""),
		p("urn:b", "1", "Ann", "Smith", "1990-09-09", "F", "9 Oak Road", "", ""),
		p("urn:a", "2", "Zed", "Quist", "1901-01-01", "M", "", "", ""),
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
