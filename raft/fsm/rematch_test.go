package fsm

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/state"
)

// TestRematchLinksUnderTheNewConfigurationAndKeepsStewardDecisions registers the labelled
// sample under a configuration that links nothing, has a steward link two strangers and
// take a record off its true person, then puts the default configuration back and
// rematches every record in batches. The records of one person come together, the
// steward's decisions all stand, and a second FSM fed the same log ends in the same state.
func TestRematchLinksUnderTheNewConfigurationAndKeepsStewardDecisions(t *testing.T) {
	file, err := dataset.Load(testkit.Testdata(t, "synthetic", "sample.csv"), dataset.CSV)
	if err != nil {
		t.Fatal(err)
	}
	rows := file.Rows[:600] // the bbolt path decides a few hundred records a second
	w := &logWriter{t: t}
	var log []*hraft.Log
	var systems []string
	for _, row := range rows {
		if !slices.Contains(systems, row.Record.System) {
			systems = append(systems, row.Record.System)
		}
	}
	for i, sys := range systems {
		p := testParticipant(100 + i)
		p.IdentifierSystem = sys
		log = append(log, w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p}))
	}
	strict := mpi.DefaultConfig()
	strict.Version, strict.Upper, strict.Lower = 1, 1000, 999
	log = append(log, w.entry(command.TypeMatchConfigSet, &command.MatchConfigSet{Config: mustJSON(t, strict)}))
	for i := 0; i < len(rows); i += 50 {
		var regs []command.PatientRegistration
		for j := i; j < min(i+50, len(rows)); j++ {
			regs = append(regs, command.PatientRegistration{Record: commandRecord(rows[j].Record), NewEUID: fmt.Sprintf("E%06d", j)})
		}
		log = append(log, w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: regs}))
	}
	// Every record is its own person now. A steward links two strangers (rows 0 and 1 are
	// different people) and takes one record of a person with several off to a new person.
	if rows[0].Label == rows[1].Label {
		t.Fatal("the test needs rows 0 and 1 to be different people")
	}
	stranger, host := string(rows[1].Record.Key()), "E000000"
	byLabel := map[string][]int{}
	for i, row := range rows {
		byLabel[row.Label] = append(byLabel[row.Label], i)
	}
	var separated, sibling string
	for _, row := range rows {
		if idx := byLabel[row.Label]; len(idx) >= 3 {
			separated, sibling = string(rows[idx[0]].Record.Key()), string(rows[idx[1]].Record.Key())
			break
		}
	}
	siblingEUID := fmt.Sprintf("E%06d", byLabel[labelOf(rows, sibling)][1])
	log = append(log,
		w.entry(command.TypeRecordLink, &command.RecordLink{Record: stranger, EUID: host, Reason: "steward"}),
		w.entry(command.TypeRecordLink, &command.RecordLink{Record: separated, EUID: siblingEUID, Reason: "steward"}),
		w.entry(command.TypeRecordUnlink, &command.RecordUnlink{Record: separated, NewEUID: "S1", Reason: "not the same"}))
	loose := mpi.DefaultConfig()
	loose.Version = 2
	log = append(log, w.entry(command.TypeMatchConfigSet, &command.MatchConfigSet{Config: mustJSON(t, loose)}))
	// Pass one decides every record; each further pass the records the one before moved
	// (as POST /v1/mpi/rematch does), until none moves.
	a, b := newFSM(t), newFSM(t)
	applyInBatches(a, log, func() int { return 3 })
	applyInBatches(b, log, func() int { return 11 })
	pending := make([]string, len(rows))
	for i, row := range rows {
		pending[i] = string(row.Record.Key())
	}
	kept, moved, passes := 0, map[string]bool{}, 0
	for n := 0; len(pending) > 0 && passes < 4; n++ {
		passes++
		var entries []*hraft.Log
		for i := 0; i < len(pending); i += 97 {
			var keys, euids []string
			for j := i; j < min(i+97, len(pending)); j++ {
				keys, euids = append(keys, pending[j]), append(euids, fmt.Sprintf("R%d-%06d", n, j))
			}
			entries = append(entries, w.entry(command.TypeMPIRematch, &command.MPIRematch{Records: keys, NewEUIDs: euids, DropLegacyBlocks: n == 0 && i == 0}))
		}
		results := applyInBatches(a, entries, func() int { return 3 })
		applyInBatches(b, entries, func() int { return 11 })
		pending = nil
		for _, res := range results {
			r := res.(Response)
			if r.Err != nil {
				t.Fatalf("rematch batch refused: %v", r.Err)
			}
			for _, o := range r.Value.([]Rematched) {
				if o.Err != nil || o.Gone {
					t.Fatalf("record %s: %+v", o.Record, o)
				}
				if o.Kept && n == 0 {
					kept++
				}
				if o.From != o.To {
					moved[o.Record] = true
					pending = append(pending, o.Record)
				}
			}
		}
	}
	a.commitOpen()
	b.commitOpen()

	// The steward's links pinned the records of both persons they touched.
	if kept != 4 {
		t.Errorf("%d records kept by a steward, want 4", kept)
	}
	err = a.store.View(func(tx *state.Tx) error {
		euidOf := func(key string) string {
			sr, err := tx.MPI().Record(mpi.RecordKey(key))
			if err != nil || sr == nil {
				t.Fatalf("record %s: %v", key, err)
			}
			return sr.EUID
		}
		if got := euidOf(stranger); got != host {
			t.Errorf("the steward's link of %s to %s was undone: now on %s", stranger, host, got)
		}
		if got := euidOf(separated); got != "S1" || got == euidOf(sibling) {
			t.Errorf("the record the steward took off its person is on %s (the record it was separated from on %s)", got, euidOf(sibling))
		}
		var truePairs, predicted, correct int64
		for _, idx := range byLabel {
			n := int64(len(idx))
			truePairs += n * (n - 1) / 2
		}
		err := tx.ForEachPerson(func(p mpi.Person) error {
			// The stranger the steward linked on purpose is left out of the count.
			var keys []mpi.RecordKey
			for _, k := range p.Records {
				if string(k) != stranger {
					keys = append(keys, k)
				}
			}
			n := int64(len(keys))
			predicted += n * (n - 1) / 2
			counts := map[string]int64{}
			for _, k := range keys {
				counts[labelOf(rows, string(k))]++
			}
			for _, c := range counts {
				correct += c * (c - 1) / 2
			}
			if p.EUID == "S1" && slices.Contains(p.Records, mpi.RecordKey(sibling)) {
				t.Errorf("the record the steward separated shares a person with %s again: %v", sibling, p.Records)
			}
			return nil
		})
		// Registering the same records with the same configuration from scratch is what a
		// rematch should come close to (it decides them in another order, and the steward's
		// separation holds two records apart).
		mem, m := mpi.NewMemStore(), mpi.NewMatcher()
		if err := mem.PutConfig(loose); err != nil {
			t.Fatal(err)
		}
		for i, row := range rows {
			if _, err := m.Register(mem, row.Record, fmt.Sprintf("F%06d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if os.Getenv("DEBUG_REMATCH") != "" {
			euid := map[string]string{}
			tx.ForEachPerson(func(p mpi.Person) error {
				for _, k := range p.Records {
					euid[string(k)] = p.EUID
				}
				return nil
			})
			for label, idx := range byLabel {
				for x := 0; x < len(idx); x++ {
					for y := x + 1; y < len(idx); y++ {
						ka, kb := string(rows[idx[x]].Record.Key()), string(rows[idx[y]].Record.Key())
						if euid[ka] != euid[kb] {
							t.Logf("split %s: %s on %s, %s on %s", label, ka, euid[ka], kb, euid[kb])
						}
					}
				}
			}
		}
		var fresh int64
		for _, p := range mem.Persons() {
			counts := map[string]int64{}
			for _, k := range p.Records {
				counts[labelOf(rows, string(k))]++
			}
			for _, c := range counts {
				fresh += c * (c - 1) / 2
			}
		}
		precision, recall := float64(correct)/float64(predicted), float64(correct)/float64(truePairs)
		freshRecall := float64(fresh) / float64(truePairs)
		if precision < 0.99 || recall < freshRecall-0.03 {
			t.Errorf("after rematch: precision %.4f, recall %.4f (%d correct of %d linked, %d true pairs); registered afresh: recall %.4f",
				precision, recall, correct, predicted, truePairs, freshRecall)
		}
		t.Logf("after rematch: precision %.4f, recall %.4f; registered afresh: recall %.4f", precision, recall, freshRecall)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) == 0 {
		t.Error("no record moved under the linking configuration")
	}
	checkIndexes(t, a)
	checkIndexes(t, b)
	ha, _ := a.store.Hash()
	hb, _ := b.store.Hash()
	if ha != hb {
		t.Errorf("two FSMs fed the same rematch log differ: %v and %v", ha, hb)
	}
	t.Logf("%d records rematched in %d passes: %d moved, %d kept by a steward; state %v", len(rows), passes, len(moved), kept, ha)
}

func labelOf(rows []dataset.Row, key string) string {
	for _, r := range rows {
		if string(r.Record.Key()) == key {
			return r.Label
		}
	}
	return ""
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDuplicatePersonsReviewLinkMerges: a record that bridged two persons (one person split
// in two) is linked to the best of them with a review item; resolving it as "link" merges
// the other person in and keeps the three records together from then on.
func TestDuplicatePersonsReviewLinkMerges(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	var log []*hraft.Log
	var systems []string
	for i := 0; i < 3; i++ {
		p := testParticipant(200 + i)
		systems = append(systems, p.IdentifierSystem)
		log = append(log, w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p}))
	}
	rec := func(i int) command.PatientRecord {
		return command.PatientRecord{System: systems[i], Value: fmt.Sprintf("M%d", i), Given: []string{"Mary"}, Family: "Jones",
			BirthDate: "2011-01-22", Sex: "F", AddressLines: []string{"4309 Forest Court"}, PostalCode: "80255", Phones: []string{"3356042247"}}
	}
	strict := mpi.DefaultConfig()
	strict.Version, strict.Upper = 1, 1000
	loose := mpi.DefaultConfig()
	loose.Version = 2
	log = append(log,
		w.entry(command.TypeMatchConfigSet, &command.MatchConfigSet{Config: mustJSON(t, strict)}),
		w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: rec(0), NewEUID: "E1"}}}),
		w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: rec(1), NewEUID: "E2"}}}),
		w.entry(command.TypeMatchConfigSet, &command.MatchConfigSet{Config: mustJSON(t, loose)}),
		w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: rec(2), NewEUID: "E3"}}}))
	res := f.ApplyBatch(log)
	d := res[len(res)-1].(Response).Value.([]Registered)[0].Decision
	if d.Outcome != mpi.OutcomeLinked || d.Review == nil || d.Review.Reason != mpi.ReviewDuplicatePersons {
		t.Fatalf("bridging registration: %+v", d)
	}
	var seq uint64
	f.commitOpen()
	f.store.View(func(tx *state.Tx) error {
		return tx.Reviews(func(e state.ReviewEntry) error {
			if e.Item.Reason == mpi.ReviewDuplicatePersons {
				seq = e.Seq
			}
			return nil
		})
	})
	out := f.ApplyBatch([]*hraft.Log{w.entry(command.TypeReviewResolve, &command.ReviewResolve{Seq: seq, Decision: "link", Reason: "one person"})})
	if r := out[0].(Response); r.Err != nil {
		t.Fatalf("resolve: %v", r.Err)
	}
	checkIndexes(t, f)
	f.store.View(func(tx *state.Tx) error {
		p, ok, err := tx.MPI().Person(d.EUID)
		if err != nil || !ok || len(p.Records) != 3 {
			t.Fatalf("after the merge, person %s: %+v %v %v", d.EUID, p, ok, err)
		}
		for _, k := range p.Records {
			if pin, ok := tx.Pin(k); !ok || pin != d.EUID {
				t.Errorf("record %s is not pinned to the merged person (%q)", k, pin)
			}
		}
		return nil
	})
}
