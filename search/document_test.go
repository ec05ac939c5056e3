package search

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidateNamesTheBadField(t *testing.T) {
	cases := []struct {
		field  string
		change func(d *Document)
	}{
		{"id", func(d *Document) { d.ID = "" }},
		{"id", func(d *Document) { d.ID = "has space" }},
		{"id", func(d *Document) { d.ID = strings.Repeat("x", 65) }},
		{"status", func(d *Document) { d.Status = "final" }},
		{"patient_record", func(d *Document) { d.PatientRecord = "MRN-1" }},
		{"patient_record", func(d *Document) { d.PatientRecord = "|MRN-1" }},
		{"patient_record", func(d *Document) { d.PatientRecord = "a|b|c" }},
		{"person_euid", func(d *Document) { d.PersonEUID = " E1" }},
		{"holder", func(d *Document) { d.Holder = "" }},
		{"holder", func(d *Document) { d.Holder = "st\x1fmary" }},
		{"master_identifier", func(d *Document) { d.MasterIdentifier = Identifier{System: "s"} }},
		{"type", func(d *Document) { d.Type = Code{System: loinc} }},
		{"type", func(d *Document) { d.Type = Code{System: "a|b", Code: "c"} }},
		{"format", func(d *Document) { d.Format.Code = "x|y" }},
		{"facility_type", func(d *Document) { d.FacilityType.Display = "bad\xff" }},
		{"practice_setting", func(d *Document) { d.PracticeSetting.Code = "tab\there" }},
		{"category[0]", func(d *Document) { d.Category = []Code{{}} }},
		{"events[1]", func(d *Document) { d.Events = []Code{{Code: "ok"}, {System: "s"}} }},
		{"security_labels[0]", func(d *Document) { d.SecurityLabels = []Code{{Code: ""}} }},
		{"created", func(d *Document) { d.Created = time.Date(1799, 12, 31, 0, 0, 0, 0, time.UTC) }},
		{"created", func(d *Document) { d.Created = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"service_period.start", func(d *Document) { d.ServicePeriod.Start = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"service_period.end", func(d *Document) { d.ServicePeriod.End = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"service_period", func(d *Document) { d.ServicePeriod = Period{Start: day("2024-02-01"), End: day("2024-01-01")} }},
		{"authors[0].given[0]", func(d *Document) { d.Authors[0].Given = []string{"\x00"} }},
		{"authors[0].family", func(d *Document) { d.Authors[0].Family = "bad\xff" }},
		{"title", func(d *Document) { d.Title = "bell\a" }},
		{"description", func(d *Document) { d.Description = "\xc3" }},
		{"size", func(d *Document) { d.Size = -1 }},
		{"relates_to[0]", func(d *Document) { d.RelatesTo = []Relation{{Code: "replaces"}} }},
	}
	for _, c := range cases {
		d := baseDoc("doc1")
		c.change(&d)
		err := d.Validate()
		var de *DocumentError
		if !errors.As(err, &de) || !errors.Is(err, ErrInvalidDocument) {
			t.Errorf("%s: err = %v, want a DocumentError", c.field, err)
			continue
		}
		if de.Field != c.field {
			t.Errorf("err %q names field %q, want %q", err, de.Field, c.field)
		}
	}
}

func TestValidateAcceptsMinimalAndFullDocuments(t *testing.T) {
	minimal := Document{ID: "m1", Status: StatusCurrent, PatientRecord: "sys|v", Holder: "h"}
	if err := minimal.Validate(); err != nil {
		t.Fatalf("minimal: %v", err)
	}
	full := baseDoc("f1")
	full.ServicePeriod = Period{Start: day("2024-01-01")}
	full.RelatesTo = []Relation{{Code: "replaces", Target: "f0"}}
	full.Description = "line one\nline two\ttabbed"
	if err := full.Validate(); err != nil {
		t.Fatalf("full: %v", err)
	}
	ix := openTest(t)
	mustApply(t, ix, 1, minimal, full)
	if got := searchIDs(t, ix, Query{Holders: []string{"h"}}); len(got) != 1 || got[0] != "m1" {
		t.Fatalf("minimal document not found by holder: %v", got)
	}
}

func TestDocumentJSONRoundTrip(t *testing.T) {
	d := baseDoc("j1")
	d.ServicePeriod = Period{Start: day("2024-01-01"), End: day("2024-01-03")}
	d.RelatesTo = []Relation{{Code: "replaces", Target: "j0"}}
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back Document
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Fatalf("round trip changed the document:\n%s\n%+v", raw, back)
	}
	var empty Document
	raw, _ = json.Marshal(Document{ID: "x", Status: StatusCurrent, PatientRecord: "s|v", Holder: "h"})
	if strings.Contains(string(raw), "created") || strings.Contains(string(raw), "service_period") {
		t.Errorf("absent dates are written: %s", raw)
	}
	_ = json.Unmarshal(raw, &empty)
}
