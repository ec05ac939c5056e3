package synth

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/rls-hie/rls/mpi/dataset"
)

func generate(t testing.TB, persons int, seed uint64, k Knobs) ([]byte, Summary) {
	t.Helper()
	var buf bytes.Buffer
	s, err := Write(context.Background(), &buf, Options{Persons: persons, Seed: seed, Knobs: k})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), s
}

func TestDeterministic(t *testing.T) {
	a, _ := generate(t, 3000, 7, DefaultKnobs())
	b, _ := generate(t, 3000, 7, DefaultKnobs())
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave different files")
	}
	c, _ := generate(t, 3000, 8, DefaultKnobs())
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same file")
	}
	k := DefaultKnobs()
	k.GivenTypo = 0.5
	d, _ := generate(t, 3000, 7, k)
	if bytes.Equal(a, d) {
		t.Fatal("different knobs gave the same file")
	}
}

// population reads a generated file back as the evaluation does.
func population(t testing.TB, persons int, seed uint64, k Knobs) ([]dataset.Row, Summary) {
	t.Helper()
	data, s := generate(t, persons, seed, k)
	f, err := dataset.Read(bytes.NewReader(data), "synth.csv", dataset.CSV)
	if err != nil {
		t.Fatalf("the generated file does not load: %v", err)
	}
	if !f.Labelled || len(f.Rows) != s.Records {
		t.Fatalf("labelled %v, %d rows read, %d written", f.Labelled, len(f.Rows), s.Records)
	}
	return f.Rows, s
}

func TestLabels(t *testing.T) {
	const n = 10000
	rows, s := population(t, n, 11, DefaultKnobs())
	byLabel := map[string][]dataset.Row{}
	ids := map[string]bool{}
	keys := map[string]bool{}
	for _, r := range rows {
		byLabel[r.Label] = append(byLabel[r.Label], r)
		if ids[r.ID] {
			t.Fatalf("rec_id %s repeats", r.ID)
		}
		ids[r.ID] = true
		keys[string(r.Record.Key())] = true
	}
	if len(byLabel) != n || s.Persons != n {
		t.Fatalf("%d labels, summary %d persons, want %d", len(byLabel), s.Persons, n)
	}
	if len(keys) != len(rows) {
		t.Fatalf("%d distinct facility|MRN keys for %d records", len(keys), len(rows))
	}
	label := regexp.MustCompile(`^P[0-9]+[tj]?$`)
	twins, juniors, twinSameBirth, juniorGap, juniorName := 0, 0, 0, 0, 0
	for l, rs := range byLabel {
		if !label.MatchString(l) {
			t.Fatalf("label %q", l)
		}
		base := strings.TrimRight(l, "tj")
		if base == l {
			continue
		}
		partner := byLabel[base]
		if len(partner) == 0 {
			t.Fatalf("%s has no %s beside it", l, base)
		}
		switch l[len(l)-1] {
		case 't':
			twins++
			if shareBirth(rs, partner) {
				twinSameBirth++
			}
		case 'j':
			juniors++
			a, b := modalYear(rs), modalYear(partner)
			if d := a - b; d >= 18 && d <= 45 || -d >= 18 && -d <= 45 {
				juniorGap++
			}
			if sameGiven(rs, partner) {
				juniorName++
			}
		}
	}
	if twins != s.Twins || juniors != s.Juniors {
		t.Fatalf("labels show %d twins and %d juniors, the summary %d and %d", twins, juniors, s.Twins, s.Juniors)
	}
	if twins < 150 || juniors < 25 {
		t.Fatalf("%d twins and %d juniors in %d persons", twins, juniors, n)
	}
	if juniorName < juniors*6/10 {
		t.Errorf("only %d of %d juniors share a given name with their father on some records", juniorName, juniors)
	}
	if twinSameBirth < twins*8/10 {
		t.Errorf("only %d of %d twin pairs share a birth date on some records", twinSameBirth, twins)
	}
	if juniorGap < juniors*8/10 {
		t.Errorf("only %d of %d juniors are 18 to 45 years from their father", juniorGap, juniors)
	}
}

func shareBirth(a, b []dataset.Row) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Record.BirthDate == y.Record.BirthDate {
				return true
			}
		}
	}
	return false
}

func modalYear(rs []dataset.Row) int {
	count := map[string]int{}
	best := ""
	for _, r := range rs {
		y := r.Record.BirthDate[:4]
		count[y]++
		if count[y] > count[best] {
			best = y
		}
	}
	n := 0
	for _, c := range best {
		n = n*10 + int(c-'0')
	}
	return n
}

func sameGiven(a, b []dataset.Row) bool {
	for _, x := range a {
		for _, y := range b {
			if len(x.Record.Given) > 0 && len(y.Record.Given) > 0 && strings.EqualFold(x.Record.Given[0], y.Record.Given[0]) {
				return true
			}
		}
	}
	return false
}

// TestRates checks the default rates (README.md) on 10,000 persons.
func TestRates(t *testing.T) {
	const n = 10000
	rows, _ := population(t, n, 5, DefaultKnobs())
	perPerson := map[string]int{}
	var noSSN, email, sexU, upper, parens, smith int
	addr := map[string]map[string]bool{} // address → base labels
	for _, r := range rows {
		perPerson[r.Label]++
		rec := r.Record
		if rec.SSN == "" {
			noSSN++
		}
		if rec.Email != "" {
			email++
		}
		if rec.Sex == "U" {
			sexU++
		}
		if g := rec.Given[0]; len(g) > 1 && g == strings.ToUpper(g) {
			upper++
		}
		if len(rec.Phones) > 0 && strings.HasPrefix(rec.Phones[0], "(") {
			parens++
		}
		if strings.EqualFold(rec.Family, "smith") {
			smith++
		}
		if len(rec.AddressLines) > 0 {
			a := strings.ToLower(rec.AddressLines[0]) + "|" + rec.PostalCode
			if addr[a] == nil {
				addr[a] = map[string]bool{}
			}
			addr[a][strings.TrimRight(r.Label, "tj")] = true
		}
	}
	dist := make([]int, 5)
	for _, c := range perPerson {
		dist[min(c, 4)]++
	}
	records := float64(len(rows))
	within := func(name string, got, want, tol float64) {
		t.Helper()
		if got < want-tol || got > want+tol {
			t.Errorf("%s: %.4f, want %.3f ± %.3f", name, got, want, tol)
		}
	}
	within("one record", float64(dist[1])/n, 0.45, 0.03)
	within("two records", float64(dist[2])/n, 0.35, 0.03)
	within("three records", float64(dist[3])/n, 0.15, 0.02)
	within("four records", float64(dist[4])/n, 0.05, 0.015)
	within("SSN missing", float64(noSSN)/records, 0.47, 0.04)
	within("e-mail present", float64(email)/records, 0.33, 0.04)
	within("sex U", float64(sexU)/records, 0.01, 0.005)
	within("given name in capitals", float64(upper)/records, 0.24, 0.02)
	within("phone (xxx) xxx-xxxx", float64(parens)/records, 0.235, 0.02)
	within("Smith", float64(smith)/records, 0.007, 0.004) // households cluster it: a wide band at 10k
	// The rates read from population-20k (README.md), measured the same way.
	prof := ProfileRows(rows)
	within("records per person 1", prof.RecordsPerPerson[0], 0.45, 0.03)
	within("given name typo", prof.Changes["given_name"]["typo"], 0.147, 0.02)
	within("given name nickname", prof.Changes["given_name"]["nickname"], 0.03, 0.02)
	within("given/family swap", prof.Changes["given_name"]["given/family swap"], 0.02, 0.008)
	within("family name typo", prof.Changes["family_name"]["typo"], 0.144, 0.02)
	within("birth day", prof.Changes["birth_date"]["day"], 0.06, 0.015)
	within("birth day/month swap", prof.Changes["birth_date"]["day and month swapped"], 0.01, 0.005)
	within("birth year ±10", prof.Changes["birth_date"]["year ±10"], 0.011, 0.005)
	within("address moved", prof.Changes["address_line"]["moved"], 0.248, 0.03)
	within("street type abbreviated", prof.Changes["address_line"]["abbreviated or unit"], 0.106, 0.02)
	within("phone changed", prof.Changes["phone"]["changed"], 0.19, 0.03)
	within("SSN typo", prof.Changes["ssn"]["typo"], 0.015, 0.006)
	within("middle name missing", prof.Changes["middle_name"]["missing"], 0.406, 0.03)
	within("sex unknown", prof.Changes["sex"]["unknown"], 0.01, 0.005)
	if prof.Twins == 0 || prof.Juniors == 0 || prof.Persons != n {
		t.Errorf("profile: %d persons, %d twins, %d juniors", prof.Persons, prof.Twins, prof.Juniors)
	}
	shared := map[string]bool{}
	for _, labels := range addr {
		if len(labels) > 1 && len(labels) < 20 {
			for l := range labels {
				shared[l] = true
			}
		}
	}
	if f := float64(len(shared)) / n; f < 0.35 || f > 0.7 {
		t.Errorf("%.3f of persons share an address with another household", f)
	}
}

// TestScale checks what must grow with the population: towns, ZIP codes,
// facilities; and the US surname tail at a million persons.
func TestScale(t *testing.T) {
	small, err := newGenerator(Options{Persons: 10000, Seed: 1, Knobs: DefaultKnobs()})
	if err != nil {
		t.Fatal(err)
	}
	large, err := newGenerator(Options{Persons: 1000000, Seed: 1, Knobs: DefaultKnobs()})
	if err != nil {
		t.Fatal(err)
	}
	if len(large.geo.zips) < 10*len(small.geo.zips) || len(large.geo.towns) < 5*len(small.geo.towns) {
		t.Errorf("ZIPs %d → %d, towns %d → %d from 10k to 1M persons", len(small.geo.zips), len(large.geo.zips), len(small.geo.towns), len(large.geo.towns))
	}
	if per := 1e6 / float64(len(large.geo.zips)); per < 1000 || per > 15000 {
		t.Errorf("%.0f persons per ZIP at a million", per)
	}
	if len(large.facilityCum) <= len(small.facilityCum) {
		t.Errorf("facilities %d → %d", len(small.facilityCum), len(large.facilityCum))
	}
	// Draw a million family names: Smith near 0.8%, about half of persons
	// with a name that at most ten others share.
	tab, err := loadTables()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	count := map[string]int{}
	const draws = 1000000
	for range draws {
		name, _ := tab.surnames.name(tab.surnames.rank(r.Float64()))
		count[name]++
	}
	if s := float64(count["Smith"]) / draws; s < 0.006 || s > 0.011 {
		t.Errorf("Smith %.4f", s)
	}
	rare, few := 0, 0
	for _, c := range count {
		if c <= 11 {
			rare += c
		}
		if c <= 51 {
			few += c
		}
	}
	if f := float64(rare) / draws; f < 0.25 || f > 0.5 {
		t.Errorf("%.3f of a million persons have a family name at most ten others share", f)
	}
	if f := float64(few) / draws; f < 0.4 || f > 0.7 {
		t.Errorf("%.3f of a million persons have a family name at most fifty others share", f)
	}
	t.Logf("a million family names: %d distinct, %.3f shared by at most 10 others, %.3f by at most 50", len(count), float64(rare)/draws, float64(few)/draws)
}

func TestKnobs(t *testing.T) {
	k := DefaultKnobs()
	if err := UnmarshalKnobs([]byte(`{"given_typo": 0.4, "home_state": "OR"}`), &k); err != nil {
		t.Fatal(err)
	}
	if k.GivenTypo != 0.4 || k.HomeState != "OR" || k.FamilyTypo != DefaultKnobs().FamilyTypo {
		t.Fatalf("partial knobs: %+v", k)
	}
	for _, bad := range []string{`{"given_typos": 0.4}`, `{"given_typo": 1.5}`, `{"home_state": "XX"}`, `{"records_per_person": [0, 0]}`, `{"coverage": 0}`} {
		k := DefaultKnobs()
		if err := UnmarshalKnobs([]byte(bad), &k); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	k = DefaultKnobs()
	k.ScaleErrors(2)
	if k.GivenTypo != 2*DefaultKnobs().GivenTypo || k.UpperCase != DefaultKnobs().UpperCase {
		t.Fatalf("ScaleErrors(2): given typo %.3f, upper case %.3f", k.GivenTypo, k.UpperCase)
	}
	if _, err := Write(context.Background(), &bytes.Buffer{}, Options{Persons: 0, Knobs: DefaultKnobs()}); err == nil {
		t.Fatal("zero persons accepted")
	}
	// With every error at zero, a person's records agree on name and birth date.
	clean := DefaultKnobs()
	clean.ScaleErrors(0)
	clean.GivenFamilySwap, clean.NicknamePerson, clean.MarriagesPerDecade, clean.UpperCase, clean.MiddleShown = 0, 0, 0, 0, 1
	rows, _ := population(t, 2000, 3, clean)
	first := map[string]dataset.Row{}
	for _, r := range rows {
		f, ok := first[r.Label]
		if !ok {
			first[r.Label] = r
			continue
		}
		if f.Record.Given[0] != r.Record.Given[0] || f.Record.BirthDate != r.Record.BirthDate {
			t.Fatalf("%s: %v %s and %v %s without errors", r.Label, f.Record.Given, f.Record.BirthDate, r.Record.Given, r.Record.BirthDate)
		}
	}
}

func TestPermute(t *testing.T) {
	for _, n := range []uint64{1, 2, 7, 1000, 4097} {
		seen := make([]bool, n)
		for x := range n {
			y := permute(x, n, 42)
			if y >= n || seen[y] {
				t.Fatalf("permute over %d: %d → %d repeats or escapes", n, x, y)
			}
			seen[y] = true
		}
	}
	for _, d := range []int{days(1900, 3, 1), days(1970, 1, 1), days(2000, 2, 29), days(2025, 12, 31)} {
		y, m, dd := civil(d)
		if days(y, m, dd) != d {
			t.Fatalf("civil(%d) = %d-%d-%d", d, y, m, dd)
		}
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, &bytes.Buffer{}, Options{Persons: 20000, Knobs: DefaultKnobs()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write after cancel: %v", err)
	}
	if _, _, err := Rows(ctx, Options{Persons: 20000, Knobs: DefaultKnobs()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Rows after cancel: %v", err)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"abc", "abd", 1}, {"abc", "acb", 1}, {"abc", "ab", 1},
		{"ab", "abc", 1}, {"", "abc", 3}, {"kevin", "krvin", 1}, {"kevn", "krvin", 2}, {"mary", "margaret", 5},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := editDistance(c.b, c.a); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.b, c.a, got, c.want)
		}
	}
}
