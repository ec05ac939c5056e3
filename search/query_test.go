package search

import (
	"context"
	"slices"
	"testing"
	"time"
)

// corpus is a handful of documents that differ in every searched field.
func corpus() []Document {
	d1 := baseDoc("d1")

	d2 := baseDoc("d2")
	d2.PatientRecord = mrnCity + "|MRN-9"
	d2.Type = Code{System: loinc, Code: "18842-5", Display: "Discharge summary"}
	d2.Category = []Code{{System: classCodes, Code: "CLINICAL"}}
	d2.Format = Code{System: formatCodes, Code: "urn:ihe:iti:xds:2017:mimeTypeSufficient"}
	d2.FacilityType = Code{System: facilities, Code: "225732001", Display: "Community hospital"}
	d2.PracticeSetting = Code{System: facilities, Code: "394579002", Display: "Cardiology"}
	d2.Events = []Code{{System: facilities, Code: "73211009"}, {System: facilities, Code: "84114007"}}
	d2.SecurityLabels = []Code{{System: confCodes, Code: "R"}, {System: actCodes, Code: "HIV"}}
	d2.Created = day("2023-06-01").Add(8 * time.Hour)
	d2.ServicePeriod = Period{Start: day("2023-05-20"), End: day("2023-06-01")}
	d2.Authors = []Author{{Given: []string{"Zoë", "Anne"}, Family: "Müller"}}
	d2.Title = "Discharge summary"
	d2.Description = "Heart failure with reduced ejection fraction"
	d2.Holder = "city-hospital"

	d3 := baseDoc("d3")
	d3.PatientRecord = mrnStMary + "|MRN-2"
	d3.PersonEUID = "E2"
	d3.Status = StatusSuperseded
	d3.Created = day("2022-01-10")
	d3.ServicePeriod = Period{Start: day("2021-12-01")}
	d3.Authors = []Author{{Given: []string{"Bob"}, Family: "Jones"}}
	d3.Title = "Progress notes"
	d3.Description = "Fractures of the left arm"

	d4 := baseDoc("d4")
	d4.Status = StatusEnteredInError
	d4.Type = Code{Code: "LOCAL1"}
	d4.SecurityLabels = nil
	d4.Holder = "lab-x"
	d4.Title = "Lab result"
	d4.Description = ""

	d5 := baseDoc("d5")
	d5.Created = time.Time{}
	d5.Title = ""
	d5.Description = ""
	d5.Authors = nil
	return []Document{d1, d2, d3, d4, d5}
}

func corpusIndex(t *testing.T) *Index {
	t.Helper()
	ix := openTest(t)
	mustApply(t, ix, 7, corpus()...)
	return ix
}

func mustDate(t *testing.T, s string) DateParam {
	t.Helper()
	p, err := ParseDateParam(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSearchParameters(t *testing.T) {
	ix := corpusIndex(t)
	date := func(ss ...string) []DateParam {
		var out []DateParam
		for _, s := range ss {
			out = append(out, mustDate(t, s))
		}
		return out
	}
	cases := []struct {
		name string
		q    Query
		want []string
	}{
		{"everything, newest first, ties by id, undated last", Query{}, []string{"d1", "d4", "d2", "d3", "d5"}},
		{"oldest first, undated still last", Query{Sort: OldestFirst}, []string{"d3", "d2", "d1", "d4", "d5"}},
		{"patient record", Query{PatientRecords: []string{mrnStMary + "|MRN-1"}}, []string{"d1", "d4", "d5"}},
		{"two records", Query{PatientRecords: []string{mrnStMary + "|MRN-2", mrnCity + "|MRN-9"}}, []string{"d2", "d3"}},
		{"person", Query{PersonEUIDs: []string{"E1"}}, []string{"d1", "d4", "d2", "d5"}},
		{"person or record", Query{PersonEUIDs: []string{"E1"}, PatientRecords: []string{mrnStMary + "|MRN-2"}}, []string{"d1", "d4", "d2", "d3", "d5"}},
		{"unknown patient", Query{PatientRecords: []string{mrnStMary + "|nobody"}}, nil},
		{"identifier token", Query{Identifiers: []string{"urn:ietf:rfc:3986|urn:oid:1.2.3.d2"}}, []string{"d2"}},
		{"identifier value", Query{Identifiers: []string{"urn:oid:1.2.3.d3"}}, []string{"d3"}},
		{"status current", Query{Statuses: []Status{StatusCurrent}}, []string{"d1", "d2", "d5"}},
		{"status current or superseded", Query{Statuses: []Status{StatusCurrent, StatusSuperseded}}, []string{"d1", "d2", "d3", "d5"}},
		{"status entered-in-error", Query{Statuses: []Status{StatusEnteredInError}}, []string{"d4"}},
		{"type system|code", Query{Types: []string{loinc + "|11506-3"}}, []string{"d1", "d3", "d5"}},
		{"type code of any system", Query{Types: []string{"11506-3"}}, []string{"d1", "d3", "d5"}},
		{"type any code of a system", Query{Types: []string{loinc + "|"}}, []string{"d1", "d2", "d3", "d5"}},
		{"type without system", Query{Types: []string{"|LOCAL1"}}, []string{"d4"}},
		{"type bare code without system", Query{Types: []string{"LOCAL1"}}, []string{"d4"}},
		{"type in another system", Query{Types: []string{loinc + "|LOCAL1"}}, nil},
		{"type either", Query{Types: []string{loinc + "|18842-5", "|LOCAL1"}}, []string{"d4", "d2"}},
		{"category", Query{Categories: []string{classCodes + "|CLINICAL"}}, []string{"d2"}},
		{"facility", Query{FacilityTypes: []string{facilities + "|225732001"}}, []string{"d2"}},
		{"setting", Query{PracticeSettings: []string{"394579002"}}, []string{"d2"}},
		{"event", Query{Events: []string{facilities + "|84114007"}}, []string{"d2"}},
		{"format", Query{Formats: []string{formatCodes + "|urn:ihe:iti:xds:2017:mimeTypeSufficient"}}, []string{"d2"}},
		{"security label", Query{SecurityLabels: []string{actCodes + "|HIV"}}, []string{"d2"}},
		{"confidentiality as a label", Query{SecurityLabels: []string{confCodes + "|N"}}, []string{"d1", "d3", "d5"}},
		{"without a label (consent)", Query{ExcludeSecurityLabels: []string{actCodes + "|HIV"}}, []string{"d1", "d4", "d3", "d5"}},
		{"without either label", Query{ExcludeSecurityLabels: []string{"R", confCodes + "|N"}}, []string{"d4"}},
		{"holder", Query{Holders: []string{"city-hospital", "lab-x"}}, []string{"d4", "d2"}},
		{"author given, prefix, accents and case folded", Query{AuthorGiven: []string{"ZO"}}, []string{"d2"}},
		{"author given, second name", Query{AuthorGiven: []string{"anne"}}, []string{"d2"}},
		{"author given does not match inside", Query{AuthorGiven: []string{"nn"}}, nil},
		{"author family with accent", Query{AuthorFamily: []string{"Mül"}}, []string{"d2"}},
		{"author family folded", Query{AuthorFamily: []string{"muller"}}, []string{"d2"}},
		{"author family", Query{AuthorFamily: []string{"smith", "jon"}}, []string{"d1", "d4", "d3"}},
		{"text word", Query{Text: "heart"}, []string{"d2"}},
		{"text stemmed", Query{Text: "fracture"}, []string{"d3"}},
		{"text all words", Query{Text: "progress arm"}, []string{"d3"}},
		{"text title", Query{Text: "NOTE"}, []string{"d1", "d3"}},
		{"text phrase", Query{Text: `"ejection fraction"`}, []string{"d2"}},
		{"text phrase order matters", Query{Text: `"fraction ejection"`}, nil},
		{"text exclusion", Query{Text: "note -routine"}, []string{"d3"}},
		{"text with stop words", Query{Text: "the heart"}, []string{"d2"}},
		{"date eq day", Query{Created: date("2024-03-15")}, []string{"d1", "d4"}},
		{"date eq year", Query{Created: date("eq2023")}, []string{"d2"}},
		{"date ne", Query{Created: date("ne2024-03-15")}, []string{"d2", "d3"}},
		{"date ge", Query{Created: date("ge2023-06-01")}, []string{"d1", "d4", "d2"}},
		{"date gt excludes the day", Query{Created: date("gt2023-06-01")}, []string{"d1", "d4"}},
		{"date le includes the day", Query{Created: date("le2023-06-01")}, []string{"d2", "d3"}},
		{"date lt", Query{Created: date("lt2023")}, []string{"d3"}},
		{"date sa", Query{Created: date("sa2023-06")}, []string{"d1", "d4"}},
		{"date eb", Query{Created: date("eb2023-06")}, []string{"d3"}},
		{"date range", Query{Created: date("ge2022-01-10", "lt2024")}, []string{"d2", "d3"}},
		{"date to the second", Query{Created: date("eq2024-03-15T10:00:00Z")}, []string{"d1", "d4"}},
		{"date with zone", Query{Created: date("lt2024-03-15T11:00:00+02:00")}, []string{"d2", "d3"}},
		{"period overlap", Query{Period: Overlapping(TimeRange{From: day("2023-05-25"), To: day("2023-05-26")})}, []string{"d2", "d3"}},
		{"period overlap before any", Query{Period: Overlapping(TimeRange{From: day("2020-01-01"), To: day("2021-01-01")})}, nil},
		{"period within", Query{Period: date("eq2023")}, []string{"d2"}},
		{"period starts after", Query{Period: date("sa2022")}, []string{"d2"}},
		{"period ends before", Query{Period: date("eb2024")}, []string{"d2"}},
		{"period still running", Query{Period: date("gt2030")}, []string{"d3"}},
		{"period started before", Query{Period: date("lt2022")}, []string{"d3"}},
		{"patient, type and date", Query{PersonEUIDs: []string{"E1", "E2"}, Types: []string{loinc + "|11506-3"}, Created: date("ge2022", "lt2025")}, []string{"d1", "d3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := searchIDs(t, ix, c.q); !sameIDs(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestSearchHitsCarryCreated(t *testing.T) {
	ix := corpusIndex(t)
	res, err := ix.Search(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]time.Time{}
	for _, d := range corpus() {
		byID[d.ID] = d.Created.UTC()
	}
	for _, h := range res.Hits {
		if !h.Created.Equal(byID[h.ID]) {
			t.Errorf("%s: created %v, want %v", h.ID, h.Created, byID[h.ID])
		}
	}
	if res.Total != 5 {
		t.Errorf("total %d, want 5", res.Total)
	}
}

func TestSearchPaging(t *testing.T) {
	ix := openTest(t)
	var docs []Document
	for i := range 23 {
		d := baseDoc(string(rune('a'+i)) + "x")
		// Several share a date so ties must be broken by id across pages.
		d.Created = day("2024-01-01").Add(time.Duration(i/3) * time.Hour)
		docs = append(docs, d)
	}
	mustApply(t, ix, 1, docs...)
	all := searchIDs(t, ix, Query{Limit: 100})
	if len(all) != 23 {
		t.Fatalf("%d hits", len(all))
	}
	for _, sort := range []SortOrder{NewestFirst, OldestFirst} {
		want := searchIDs(t, ix, Query{Limit: 100, Sort: sort})
		if got := allIDs(t, ix, Query{Limit: 4, Sort: sort}); !slices.Equal(got, want) {
			t.Errorf("sort %d: cursor pages %v, want %v", sort, got, want)
		}
		var byOffset []string
		for off := 0; off < 23; off += 5 {
			byOffset = append(byOffset, searchIDs(t, ix, Query{Limit: 5, Offset: off, Sort: sort})...)
		}
		if !slices.Equal(byOffset, want) {
			t.Errorf("sort %d: offset pages %v, want %v", sort, byOffset, want)
		}
	}
	res, err := ix.Search(context.Background(), Query{CountOnly: true, Created: []DateParam{mustDate(t, "ge2024-01-01T02:00:00Z")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 17 || len(res.Hits) != 0 {
		t.Errorf("count only: total %d hits %d, want 17 and 0", res.Total, len(res.Hits))
	}
	full, err := ix.Search(context.Background(), Query{Limit: 23})
	if err != nil {
		t.Fatal(err)
	}
	if full.Next != "" {
		t.Errorf("a page holding the last hit has a next cursor")
	}
}

func TestSearchRejectsBadQueries(t *testing.T) {
	ix := corpusIndex(t)
	newest, err := ix.Search(context.Background(), Query{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]Query{
		"record key without system": {PatientRecords: []string{"MRN-1"}},
		"empty EUID":                {PersonEUIDs: []string{""}},
		"status":                    {Statuses: []Status{"final"}},
		"empty token":               {Types: []string{""}},
		"bar only":                  {Types: []string{"|"}},
		"two bars":                  {Types: []string{"a|b|c"}},
		"empty author":              {AuthorFamily: []string{" "}},
		"stop words only":           {Text: "the of"},
		"only exclusions":           {Text: "-heart"},
		"negative limit":            {Limit: -1},
		"limit too big":             {Limit: MaxLimit + 1},
		"offset too deep":           {Offset: MaxOffset + 1},
		"offset and cursor":         {Offset: 1, After: newest.Next},
		"cursor of another order":   {Sort: OldestFirst, After: newest.Next},
		"garbage cursor":            {After: "n.!!.??"},
		"gt without end":            {Created: []DateParam{{Prefix: DateGt, Range: TimeRange{From: day("2020-01-01")}}}},
		"eq without range":          {Created: []DateParam{{Prefix: DateEq}}},
		"inverted range":            {Period: []DateParam{{Prefix: DateEq, Range: TimeRange{From: day("2021-01-01"), To: day("2020-01-01")}}}},
		"unknown prefix":            {Created: []DateParam{{Prefix: "xx", Range: TimeRange{From: day("2020-01-01")}}}},
		"sort order":                {Sort: 7},
	}
	for name, q := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ix.Search(context.Background(), q)
			wantInvalid(t, err)
		})
	}
}

func TestLocate(t *testing.T) {
	ix := openTest(t)
	docs := corpus()
	extra := baseDoc("d6")
	extra.Type = Code{System: loinc, Code: "34133-9"}
	extra.Created = day("2024-05-01")
	extra.Holder = "st-mary"
	sameDay := baseDoc("d7") // same holder, date and type as d1: one facet term counted twice
	docs = append(docs, extra, sameDay)
	mustApply(t, ix, 3, docs...)

	got, err := ix.Locate(context.Background(), LocateQuery{PersonEUIDs: []string{"E1"}})
	if err != nil {
		t.Fatal(err)
	}
	// E1 has d1, d2, d4 (entered in error: not counted), d5 (undated), d6, d7.
	want := []Holding{
		{Holder: "city-hospital", CurrentDocuments: 1, Newest: docs[1].Created, Types: []string{loinc + "|18842-5"}},
		{Holder: "st-mary", CurrentDocuments: 4, Newest: day("2024-05-01"), Types: []string{loinc + "|11506-3", loinc + "|34133-9"}},
	}
	if !equalHoldings(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// The facet over doc values, used for patients with many documents,
	// gives the same answer.
	ix.locateStoredCap = 0
	viaFacet, err := ix.Locate(context.Background(), LocateQuery{PersonEUIDs: []string{"E1"}})
	if err != nil || !equalHoldings(viaFacet, want) {
		t.Fatalf("via the facet: %+v, %v; want %+v", viaFacet, err, want)
	}
	ix.locateStoredCap = defaultLocateStoredCap
	// So does asking for a page too small for the patient's documents
	// first, then again for all of them.
	ix.firstPage = 1
	viaSecondAsk, err := ix.Locate(context.Background(), LocateQuery{PersonEUIDs: []string{"E1"}})
	if err != nil || !equalHoldings(viaSecondAsk, want) {
		t.Fatalf("after a short first page: %+v, %v; want %+v", viaSecondAsk, err, want)
	}
	ix.firstPage = defaultFirstPage

	consented, err := ix.Locate(context.Background(), LocateQuery{
		PatientRecords:        []string{mrnCity + "|MRN-9", mrnStMary + "|MRN-2"},
		ExcludeSecurityLabels: []string{actCodes + "|HIV"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(consented) != 0 {
		t.Fatalf("d2 carries HIV and d3 is superseded, got %+v", consented)
	}
	_, err = ix.Locate(context.Background(), LocateQuery{})
	wantInvalid(t, err)
}

func equalHoldings(a, b []Holding) bool {
	return slices.EqualFunc(a, b, func(x, y Holding) bool {
		return x.Holder == y.Holder && x.CurrentDocuments == y.CurrentDocuments &&
			x.Newest.Equal(y.Newest) && slices.Equal(x.Types, y.Types)
	})
}

func TestCursorPagesPastUndatedDocuments(t *testing.T) {
	ix := corpusIndex(t)
	for _, sort := range []SortOrder{NewestFirst, OldestFirst} {
		want := searchIDs(t, ix, Query{Sort: sort})
		for _, limit := range []int{1, 2, 3} {
			if got := allIDs(t, ix, Query{Sort: sort, Limit: limit}); !slices.Equal(got, want) {
				t.Errorf("sort %d limit %d: %v, want %v", sort, limit, got, want)
			}
		}
	}
}

// TestPatientDateFilterMatchesBleve checks that patient searches with
// creation-date conditions give the same totals, pages and cursors whether
// the dates are applied outside Bleve or by Bleve's range queries.
func TestPatientDateFilterMatchesBleve(t *testing.T) {
	ix := openTest(t)
	gen := newCorpusGen(7, 200, 20)
	var changes []Change
	for i := range 1000 {
		d := gen.doc(i)
		if i%50 == 0 {
			d.Created = time.Time{} // some undated documents
		}
		changes = append(changes, Put(d))
	}
	if err := ix.Apply(changes, 1); err != nil {
		t.Fatal(err)
	}
	rng := newCorpusGen(8, 200, 20).rng
	prefixes := []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"}
	precisions := []string{"2006", "2006-01", "2006-01-02", "2006-01-02T15:04Z07:00"}
	for n := range 100 {
		person := gen.euid(rng.IntN(gen.chronic * 3))
		var created []DateParam
		for range 1 + rng.IntN(2) {
			when := corpusEpoch.Add(time.Duration(rng.Int64N(int64(16 * 365 * 24 * time.Hour))))
			created = append(created, mustDate(t, prefixes[rng.IntN(len(prefixes))]+when.Format(precisions[rng.IntN(len(precisions))])))
		}
		q := Query{PersonEUIDs: []string{person}, Created: created, Sort: SortOrder(n % 2), Limit: 1 + rng.IntN(4)}
		if n%3 == 0 {
			q.Statuses = []Status{StatusCurrent}
		}
		ix.patientDateCap = defaultPatientDateCap
		// Persons 0 and 1 have more documents than the first page; a
		// first page of 1 makes every other person's search ask twice too.
		ix.firstPage = []int{defaultFirstPage, 1}[n/2%2]
		fast := allIDs(t, ix, q)
		fastCount, err := ix.Search(context.Background(), Query{PersonEUIDs: q.PersonEUIDs, Created: created, CountOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		offset := q
		offset.Offset = q.Limit
		fastOffset := searchIDs(t, ix, offset)
		ix.patientDateCap = 0
		slow := allIDs(t, ix, q)
		slowCount, err := ix.Search(context.Background(), Query{PersonEUIDs: q.PersonEUIDs, Created: created, CountOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if !sameIDs(fast, slow) || fastCount.Total != slowCount.Total || !sameIDs(fastOffset, searchIDs(t, ix, offset)) {
			t.Fatalf("%s %v sort %d: outside Bleve %v (total %d), in Bleve %v (total %d)",
				person, created, q.Sort, fast, fastCount.Total, slow, slowCount.Total)
		}
	}
	// A cursor from one path continues on the other.
	q := Query{PersonEUIDs: []string{gen.euid(0)}, Created: []DateParam{mustDate(t, "ge2010")}, Limit: 3}
	ix.patientDateCap = defaultPatientDateCap
	want := allIDs(t, ix, q)
	first, err := ix.Search(context.Background(), q)
	if err != nil || first.Next == "" {
		t.Fatalf("first page: %v, %v", first, err)
	}
	ix.patientDateCap = 0
	q.After = first.Next
	rest := allIDs(t, ix, q)
	if got := append(searchIDs(t, ix, Query{PersonEUIDs: q.PersonEUIDs, Created: q.Created, Limit: 3}), rest...); !slices.Equal(got, want) {
		t.Fatalf("mixed paths: %v, want %v", got, want)
	}
}
