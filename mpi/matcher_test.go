package mpi

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

func register(t *testing.T, m *Matcher, s Store, r Record, euid string) Decision {
	t.Helper()
	d, err := m.Register(s, r, euid)
	if err != nil {
		t.Fatalf("register %s: %v", r.Key(), err)
	}
	return d
}

func TestRegisterLinksNewAndReview(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	a := person("A1", "William", "James", "Turner", "1932-01-26", "M", "6730 Oak Court", "62760", "5398966397", "")
	d := register(t, m, s, a, "E1")
	if d.Outcome != OutcomeNew || d.EUID != "E1" || len(d.Candidates) != 0 {
		t.Fatalf("first record: %+v", d)
	}
	// The same man at another hospital, as "Bill", one digit off in his birth date.
	b := person("B1", "Bill", "J", "Turner", "1932-01-27", "M", "6730 Oak Ct", "62760", "(539) 896-6397", "")
	b.System = "urn:other"
	d = register(t, m, s, b, "E2")
	if d.Outcome != OutcomeLinked || d.EUID != "E1" || d.Score < defaultCompiled.cfg.Upper {
		t.Fatalf("nickname record: %+v", d)
	}
	// A weak resemblance: same name and birth year only.
	c := person("C1", "William", "", "Turner", "1932-07-03", "M", "1 Elm Street", "10001", "2125550000", "")
	d = register(t, m, s, c, "E3")
	if d.Outcome == OutcomeLinked {
		t.Fatalf("weak resemblance linked: %+v", d)
	}
	p, ok, _ := s.Person("E1")
	if !ok || !reflect.DeepEqual(p.Records, []RecordKey{b.Key(), a.Key()}) {
		t.Fatalf("person E1 = %+v", p)
	}
	if js, err := json.Marshal(d); err != nil || len(js) == 0 {
		t.Fatalf("decision does not marshal: %v", err)
	}
}

func TestRegisterBetweenThresholdsGoesToReview(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	cfg := DefaultConfig()
	cfg.Upper, cfg.Lower = 1000, -1000 // everyone found is "between"
	if err := s.PutConfig(cfg); err != nil {
		t.Fatal(err)
	}
	register(t, m, s, person("A1", "Mary", "", "Jones", "2011-01-22", "F", "", "", "", ""), "E1")
	d := register(t, m, s, person("A2", "Mary", "", "Jones", "2011-01-22", "F", "", "", "", ""), "E2")
	if d.Outcome != OutcomeReview || d.EUID != "E2" || d.Review == nil || d.Review.Reason != ReviewBetweenThresholds ||
		len(d.Review.Candidates) != 1 || d.Review.Candidates[0].EUID != "E1" {
		t.Fatalf("decision %+v", d)
	}
	if got := s.Reviews(); len(got) != 1 || got[0].EUID != "E2" || got[0].Record != d.Record {
		t.Fatalf("review queue %+v", got)
	}
}

// bridgeSplitPair registers two copies of one record under other systems as two persons
// (first and second: a duplicate nobody merged yet), then a third copy, which matches both
// alike, and returns the third's decision and record.
func bridgeSplitPair(t *testing.T, s *MemStore, first, second string) (Decision, Record) {
	t.Helper()
	m := NewMatcher()
	r1 := person("A1", "Mary", "", "Jones", "2011-01-22", "F", "4309 Forest Court", "80255", "3356042247", "")
	r2 := r1
	r2.System = "urn:other"
	keptApart(t, s, func() {
		register(t, m, s, r1, first)
		register(t, m, s, r2, second)
	})
	r3 := r1
	r3.System = "urn:third"
	return register(t, m, s, r3, "E3"), r3
}

// TestSplitPersonIsBridged: a record that matches two persons who are
// themselves one person split in two joins the best of them, and a review
// item asks for their merge, instead of founding a third person.
func TestSplitPersonIsBridged(t *testing.T) {
	s := NewMemStore()
	d, _ := bridgeSplitPair(t, s, "E1", "E2")
	// Both score alike: the tie goes to the person whose best record has the smaller
	// key (urn:other|A1, person E2), whatever the EUIDs.
	if d.Outcome != OutcomeLinked || d.EUID != "E2" || d.Review == nil || d.Review.Reason != ReviewDuplicatePersons ||
		len(d.Review.Candidates) != 1 || d.Review.Candidates[0].EUID != "E1" || d.Review.EUID != "E2" {
		t.Fatalf("bridging record: %+v", d)
	}
	if got := s.Reviews(); len(got) == 0 || got[len(got)-1].Reason != ReviewDuplicatePersons {
		t.Fatalf("review queue %+v", got)
	}
}

// TestAmbiguousBetweenTwinsIsNeverLinked: a record that matches two persons
// who are twins of each other (it names neither's given name) is not
// linked to either.
func TestAmbiguousBetweenTwinsIsNeverLinked(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	mary := person("A1", "Mary", "", "Jones", "2011-01-22", "F", "4309 Forest Court", "80255", "3356042247", "")
	judith := person("A2", "Judith", "", "Jones", "2011-01-22", "F", "4309 Forest Court", "80255", "3356042247", "")
	keptApart(t, s, func() {
		register(t, m, s, mary, "E1")
		register(t, m, s, judith, "E2")
	})
	unnamed := mary
	unnamed.System, unnamed.Given = "urn:third", nil
	d := register(t, m, s, unnamed, "E3")
	if d.Outcome != OutcomeReview || d.EUID != "E3" || d.Review.Reason != ReviewAmbiguous || len(d.Review.Candidates) != 2 {
		t.Fatalf("ambiguous record: %+v", d)
	}
}

// keptApart runs setup with linking turned off.
func keptApart(t *testing.T, s *MemStore, setup func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Upper = 1000
	if err := s.PutConfig(cfg); err != nil {
		t.Fatal(err)
	}
	setup()
	if err := s.PutConfig(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
}

func TestTwinsAndJuniorsAreNotLinked(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	register(t, m, s, person("A1", "Mary", "", "Jones", "2011-01-22", "F", "4309 Forest Court", "80255", "3356042247", ""), "E1")
	d := register(t, m, s, person("A2", "Judith", "", "Jones", "2011-01-22", "F", "4309 Forest Court", "80255", "3356042247", ""), "E2")
	if d.Outcome == OutcomeLinked || d.EUID != "E2" {
		t.Fatalf("twin linked: %+v", d)
	}
	if len(d.Candidates) != 1 || d.Candidates[0].Household != HouseholdTwin || d.Candidates[0].Grade != GradeCertainlyNot {
		t.Fatalf("twin candidate: %+v", d.Candidates)
	}
	if d.Candidates[0].Probability != 0 {
		t.Fatalf("a twin takes no share of the probability: %+v", d.Candidates[0])
	}
	// Judith again, elsewhere: links to Judith, not to Mary.
	d = register(t, m, s, person("B1", "Judith", "", "Jones", "2011-01-22", "F", "4309 Forest Ct", "80255", "", ""), "E3")
	if d.Outcome != OutcomeLinked || d.EUID != "E2" {
		t.Fatalf("second Judith record: %+v", d)
	}

	register(t, m, s, person("C1", "Kenneth", "", "Moore", "1972-04-01", "M", "8685 Highland Avenue", "97323", "9338041849", ""), "E4")
	d = register(t, m, s, person("C2", "Kenny", "", "Moore", "1997-04-01", "M", "8685 Highland Avenue", "97323", "9338041849", ""), "E5")
	if d.Outcome == OutcomeLinked || d.Candidates[0].Household != HouseholdGeneration {
		t.Fatalf("junior linked to senior: %+v", d)
	}
}

func TestReregistrationUpdatesAndReevaluates(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	mary := person("A1", "Mary", "", "Jones", "1980-05-05", "F", "1 Elm Street", "97301", "5035550101", "111223333")
	ann := person("B1", "Ann", "", "Smith", "1990-09-09", "F", "9 Oak Road", "97302", "5035550199", "444556666")
	register(t, m, s, mary, "E1")
	register(t, m, s, ann, "E2")
	other := mary
	other.System = "urn:other"
	if d := register(t, m, s, other, "E3"); d.EUID != "E1" {
		t.Fatalf("second Mary record: %+v", d)
	}
	// The other hospital corrects its record: it was Ann all along.
	fixed := ann
	fixed.System, fixed.Value = other.System, other.Value
	d := register(t, m, s, fixed, "E4")
	if !d.Updated || d.PreviousEUID != "E1" || d.Outcome != OutcomeLinked || d.EUID != "E2" {
		t.Fatalf("corrected record: %+v", d)
	}
	if p, _, _ := s.Person("E1"); !reflect.DeepEqual(p.Records, []RecordKey{mary.Key()}) {
		t.Fatalf("E1 still lists %v", p.Records)
	}
	// Mary's only record changes to an unknown person: her EUID stays.
	stranger := person("A1", "Zed", "", "Quist", "1901-01-01", "M", "", "", "", "")
	d = register(t, m, s, stranger, "E5")
	if d.EUID != "E1" || d.Outcome != OutcomeNew {
		t.Fatalf("sole record replaced: %+v", d)
	}
	if n, _ := s.TermCount(FieldGiven, "mary"); n != 0 {
		t.Errorf("term count of the replaced name is %d", n)
	}
	keys, _, _ := s.BlockMembers(Block{Key: "ssn:111223333"}, 10, nil)
	if len(keys) != 0 {
		t.Errorf("old blocking key still lists %v", keys)
	}
}

func TestRegisterErrors(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	if _, err := m.Register(s, Record{Value: "1"}, "E1"); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("missing system: %v", err)
	}
	if _, err := m.Register(s, Record{System: "a|b", Value: "1"}, "E1"); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("system with '|': %v", err)
	}
	if _, err := m.Register(s, Record{System: "a", Value: "1"}, ""); !errors.Is(err, ErrInvalidEUID) {
		t.Errorf("empty EUID: %v", err)
	}
	register(t, m, s, Record{System: "a", Value: "1", Family: "Xu"}, "E1")
	if _, err := m.Register(s, Record{System: "a", Value: "2", Family: "Zu"}, "E1"); !errors.Is(err, ErrInvalidEUID) {
		t.Errorf("reused EUID: %v", err)
	}
	bad := DefaultConfig()
	bad.Fields = bad.Fields[1:]
	_ = s.PutConfig(bad)
	if _, err := m.Register(s, Record{System: "a", Value: "3"}, "E3"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("invalid config: %v", err)
	}
}

func TestMatchIsReadOnly(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	gen := newPersonGenerator(9)
	for i := 0; i < 200; i++ {
		register(t, m, s, gen.person(i), "E"+strconv.Itoa(i))
	}
	before := s.Stats()
	q := gen.person(17)
	q.System, q.Value = "", ""
	cands, err := m.Match(s, q, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) == 0 || cands[0].EUID != "E17" || cands[0].Grade != GradeCertain {
		t.Fatalf("match: %+v", cands)
	}
	if len(cands) > 3 {
		t.Errorf("limit ignored: %d candidates", len(cands))
	}
	if after := s.Stats(); after != before {
		t.Errorf("Match wrote: %+v → %+v", before, after)
	}
}

// TestRegistrationIsDeterministic replays the same registrations into two
// stores, one of them holding a JSON round trip of the configuration (as a
// follower decoding it from bbolt would), and expects identical decisions.
func TestRegistrationIsDeterministic(t *testing.T) {
	gen := newPersonGenerator(4)
	var recs []Record
	rng := newTestRand(8)
	for i := 0; i < 400; i++ {
		r := gen.person(i)
		recs = append(recs, r)
		if i%3 == 0 {
			recs = append(recs, gen.variant(rng, r, "dup"+strconv.Itoa(i)))
		}
	}
	cfg, _, err := Train(recs, DefaultConfig(), TrainOptions{RandomPairs: 20000})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(cfg)
	var decoded Config
	if err := json.Unmarshal(js, &decoded); err != nil {
		t.Fatal(err)
	}
	run := func(c Config) []byte {
		s := NewMemStore()
		_ = s.PutConfig(c)
		m := NewMatcher()
		var out []Decision
		for i, r := range recs {
			out = append(out, register(t, m, s, r, "E"+strconv.Itoa(i)))
		}
		b, _ := json.Marshal(out)
		return b
	}
	if a, b := run(cfg), run(decoded); string(a) != string(b) {
		t.Fatal("the same registrations gave different decisions")
	}
}

// TestTiesDoNotDependOnEUIDs: the leader draws EUIDs at random, so two persons that score
// alike must be ordered by something every run of the same records shares. With the EUIDs
// drawn the other way round, the bridging record still joins the person holding the same
// record.
func TestTiesDoNotDependOnEUIDs(t *testing.T) {
	joined := func(first, second string) RecordKey {
		s := NewMemStore()
		d, r3 := bridgeSplitPair(t, s, first, second)
		p, ok, err := s.Person(d.EUID)
		if err != nil || !ok || len(p.Records) != 2 {
			t.Fatalf("person %s of the bridging record: %+v %v %v", d.EUID, p, ok, err)
		}
		for _, k := range p.Records {
			if k != r3.Key() {
				return k
			}
		}
		return ""
	}
	if a, b := joined("E1", "E2"), joined("E9", "E0"); a != b {
		t.Fatalf("the bridging record joined %s with one draw of EUIDs and %s with the other", a, b)
	}
}

// TestMisspeltRecordDoesNotForbidItsPerson: a person with a record whose
// given name is mistyped past the twin rule (Jodel for Joel) is still the
// person of a query that one of its other records names alike (Jeol): the
// mistyped record says no more about a twin than the others. A twin
// (Brian beside Joel), whom none of the person's records names alike, is
// still forbidden, and so is a query whose conflicting record is two
// keying errors from the one that names it alike (Caden beside Cad, query
// Chad: Cad may be Chad's own record joined to his twin Caden by mistake).
func TestMisspeltRecordDoesNotForbidItsPerson(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	// onePerson registers two records and puts the second on the first's person.
	onePerson := func(first, second Record, euid, other string) {
		register(t, m, s, first, euid)
		register(t, m, s, second, other)
		if _, err := Relink(s, second.Key(), euid, false); err != nil {
			t.Fatal(err)
		}
	}
	onePerson(person("A1", "Joel", "James", "Wojcik", "1966-08-01", "M", "392 Elm Street", "97301", "5035550142", ""),
		person("A2", "Jodel", "James", "Wojcik", "1966-08-01", "M", "392 Elm Street", "97301", "5035550142", ""), "E1", "E2")
	query := person("B1", "Jeol", "James", "Wojcik", "1966-08-01", "M", "392 Elm St", "97301", "5035550142", "")
	query.System = "urn:other"
	d := register(t, m, s, query, "E3")
	if d.Outcome != OutcomeLinked || d.EUID != "E1" {
		t.Fatalf("Jeol with Joel and Jodel: %+v", d)
	}
	brian := person("C1", "Brian", "James", "Wojcik", "1966-08-01", "M", "392 Elm St", "97301", "5035550142", "")
	brian.System = "urn:third"
	d = register(t, m, s, brian, "E4")
	if d.Outcome == OutcomeLinked || len(d.Candidates) == 0 || d.Candidates[0].Household != HouseholdTwin {
		t.Fatalf("Brian with Joel's person: %+v", d)
	}

	onePerson(person("D1", "Caden", "", "Mcgowaniell", "1995-07-17", "M", "2711 Deer Run Pike", "83239", "2086041659", ""),
		person("D2", "Cad", "", "Mcgowaniell", "1995-07-17", "M", "2711 Deer Run Pike", "83239", "2086041659", ""), "E5", "E6")
	chad := person("D3", "Chad", "", "Mcgowaniell", "1995-07-17", "M", "2711 Deer Run Pike", "83239", "2086041659", "")
	chad.System = "urn:other"
	d = register(t, m, s, chad, "E7")
	if d.Outcome == OutcomeLinked || len(d.Candidates) == 0 || d.Candidates[0].Household != HouseholdTwin {
		t.Fatalf("Chad with Caden's person: %+v", d)
	}
}

// TestTwinsAreNotBridged: a record that matches two persons alike (it gives
// only an initial, K Brown) is not taken for one person split in two when a
// record of one person is a twin's of a record of the other, though their
// best records do not conflict (Karza, a misspelling, next to Kayla): the
// record goes to review instead of joining either twin.
func TestTwinsAreNotBridged(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	kayla := person("A1", "Kayla", "", "Brown", "2003-10-06", "F", "4826 Chapel Ln", "06002", "2034783220", "")
	karza := person("B1", "Karza", "", "Brown", "2003-10-06", "F", "4826 Chapel Ln", "06002", "2039036453", "")
	kara := person("B2", "Kara", "", "Brown", "2003-10-06", "F", "4826 Chapel Ln", "06002", "2039036453", "")
	keptApart(t, s, func() {
		register(t, m, s, kayla, "E1")
		register(t, m, s, karza, "E2")
		register(t, m, s, kara, "E3")
	})
	if _, err := Relink(s, kara.Key(), "E2", false); err != nil {
		t.Fatal(err)
	}
	initial := person("C1", "K", "", "Brown", "2003-10-06", "F", "4826 Chapel Ln", "06002", "", "")
	d := register(t, m, s, initial, "E4")
	if d.Outcome != OutcomeReview || d.EUID != "E4" || d.Review.Reason != ReviewAmbiguous || len(d.Review.Candidates) != 2 {
		t.Fatalf("record of either twin: %+v", d)
	}
}

// TestTwinOfOtherSexIsForbiddenWhateverTheNames: Gabriel is parted from
// Gabriella by sex, and a record of her person that the twin rule does not
// reach (a birth date two keying errors off) does not explain the conflict
// away as a misspelling, though the two names are also each a name in its
// own right (generated population seed 19 at 1,000 persons).
func TestTwinOfOtherSexIsForbiddenWhateverTheNames(t *testing.T) {
	m := NewMatcher()
	s := NewMemStore()
	first := person("A1", "Gabriella", "", "Hinlock", "1995-10-19", "F", "3439 10th Road", "24701", "3049763738", "")
	second := person("A2", "Gabriella", "H", "Hinolck", "1995-10-20", "F", "3439 10th Road", "24701", "3049763738", "")
	keptApart(t, s, func() {
		register(t, m, s, first, "E1")
		register(t, m, s, second, "E2")
	})
	if _, err := Relink(s, second.Key(), "E1", false); err != nil {
		t.Fatal(err)
	}
	gabriel := person("B1", "Gabriel", "", "Hinlock", "1995-10-20", "M", "846 N Spring St", "24701", "3049956770", "")
	gabriel.System = "urn:other"
	d := register(t, m, s, gabriel, "E3")
	if d.Outcome == OutcomeLinked || len(d.Candidates) == 0 || d.Candidates[0].Household != HouseholdTwin {
		t.Fatalf("Gabriel with Gabriella's person: %+v", d)
	}
}
