package fhir

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeNamesTheElement(t *testing.T) {
	cases := []struct {
		body, expression string
	}{
		{`{"resourceType":"Organization","colour":"blue"}`, "Organization.colour"},
		{`{"resourceType":"Organization","name":7}`, "Organization.name"},
		{`{"resourceType":"Patient"}`, "Organization.resourceType"},
		{`{"resourceType":"Organization"} {}`, "Organization"},
		{`   `, "Organization"},
		{`[{"resourceType":"Organization"}]`, "Organization"},
		{`{"resourceType":5}`, "Organization.resourceType"},
		{`{"name":"no type"}`, "Organization.resourceType"},
		// A resource inside another is checked against its own type, named under the outer.
		{`{"resourceType":"Organization","contained":[{"resourceType":"Endpoint"}]}`, "Organization.contained[0].payloadType"},
	}
	for _, tc := range cases {
		var o Organization
		err := Decode(strings.NewReader(tc.body), "Organization", &o)
		var fe *Error
		if !errors.As(err, &fe) || fe.Status != 400 || len(fe.Issue.Expression) != 1 || fe.Issue.Expression[0] != tc.expression {
			t.Errorf("%s: err = %#v, want a 400 about %s", tc.body, err, tc.expression)
		}
	}
	var o Organization
	if err := Decode(strings.NewReader(`{"resourceType":"Organization",`), "Organization", &o); err == nil || !strings.Contains(err.Error(), "malformed JSON") {
		t.Errorf("truncated JSON: %v", err)
	}
}

func FuzzDecodeOrganization(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Organization","id":"a","name":"A","type":[{"coding":[{"system":"` + ParticipantKindSystem + `","code":"lab"}]}]}`))
	f.Add([]byte(`{"resourceType":"Organization","contained":[{"resourceType":"Endpoint"}],"endpoint":[{"reference":"#x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var o Organization
		err := Decode(strings.NewReader(string(data)), "Organization", &o)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || (fe.Status != 400 && fe.Status != 413) {
				t.Fatalf("decode error is not a 400 (413 for its size) OperationOutcome: %v", err)
			}
		}
	})
}
