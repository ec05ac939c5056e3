package search

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

const (
	loinc       = "http://loinc.org"
	classCodes  = "urn:oid:1.3.6.1.4.1.19376.1.2.6.1"
	facilities  = "http://snomed.info/sct"
	formatCodes = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
	confCodes   = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	actCodes    = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	mrnStMary   = "urn:oid:2.16.840.1.113883.3.1001"
	mrnCity     = "urn:oid:2.16.840.1.113883.3.2002"
)

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

// baseDoc is a valid document; tests change what they look at.
func baseDoc(id string) Document {
	return Document{
		ID:               id,
		MasterIdentifier: Identifier{System: "urn:ietf:rfc:3986", Value: "urn:oid:1.2.3." + id},
		Status:           StatusCurrent,
		PatientRecord:    mrnStMary + "|MRN-1",
		PersonEUID:       "E1",
		Type:             Code{System: loinc, Code: "11506-3", Display: "Progress note"},
		Category:         []Code{{System: classCodes, Code: "REPORTS"}},
		Format:           Code{System: formatCodes, Code: "urn:ihe:pcc:xds-ms:2007"},
		FacilityType:     Code{System: facilities, Code: "22232009", Display: "Hospital"},
		PracticeSetting:  Code{System: facilities, Code: "394802001", Display: "General medicine"},
		SecurityLabels:   []Code{{System: confCodes, Code: "N"}},
		Created:          day("2024-03-15").Add(10 * time.Hour),
		Authors:          []Author{{Given: []string{"Ann"}, Family: "Smith", Institution: "St Mary's"}},
		Title:            "Progress note",
		Description:      "Routine follow-up visit",
		MIMEType:         "application/pdf",
		Size:             1024,
		Hash:             "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
		Language:         "en",
		Holder:           "st-mary",
		RepositoryID:     "1.2.3.4",
		URL:              "https://fhir.stmary.example/r4/Binary/" + id,
	}
}

func openTest(t testing.TB) *Index {
	t.Helper()
	ix, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	return ix
}

func mustApply(t testing.TB, ix *Index, applied uint64, docs ...Document) {
	t.Helper()
	changes := make([]Change, 0, len(docs))
	for _, d := range docs {
		changes = append(changes, Put(d))
	}
	if err := ix.Apply(changes, applied); err != nil {
		t.Fatal(err)
	}
}

func searchIDs(t testing.TB, ix *Index, q Query) []string {
	t.Helper()
	res, err := ix.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("search %+v: %v", q, err)
	}
	ids := make([]string, 0, len(res.Hits))
	for _, h := range res.Hits {
		ids = append(ids, h.ID)
	}
	return ids
}

// allIDs pages through every result of q with the cursor.
func allIDs(t testing.TB, ix *Index, q Query) []string {
	t.Helper()
	var ids []string
	for {
		res, err := ix.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("search %+v: %v", q, err)
		}
		for _, h := range res.Hits {
			ids = append(ids, h.ID)
		}
		if res.Next == "" {
			return ids
		}
		q.After = res.Next
	}
}

func sameIDs(got, want []string) bool {
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	return slices.Equal(got, want)
}

func wantInvalid(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidQuery) {
		t.Fatalf("err = %v, want ErrInvalidQuery", err)
	}
}
