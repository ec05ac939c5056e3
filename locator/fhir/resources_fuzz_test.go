package fhir

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeResources decodes arbitrary JSON as each resource rls accepts besides
// Organization (FuzzDecodeOrganization): Patient (create, update, bulk import) and
// Parameters ($match). Decoding never panics, and every refusal is a 400 OperationOutcome
// naming what is wrong.
//
// Run it longer with: go test -run '^$' -fuzz FuzzDecodeResources -fuzztime 5m ./locator/fhir/
func FuzzDecodeResources(f *testing.F) {
	f.Add(uint8(0), []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2","value":"mrn-1"}],"name":[{"family":"Smith","given":["Mary"]}],"birthDate":"1980-02-29","gender":"female"}`))
	f.Add(uint8(0), []byte(`{"resourceType":"Patient","telecom":[{"system":"phone","value":"555"}],"address":[{"line":["1 Main"],"postalCode":"02134"}]}`))
	f.Add(uint8(1), []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient"}},{"name":"count","valueInteger":3}]}`))
	f.Add(uint8(1), []byte(`{"resourceType":"Parameters","parameter":[{"name":"onlyCertainMatches","valueBoolean":true}]}`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		var err error
		switch kind % 2 {
		case 0:
			var p Patient
			err = Decode(strings.NewReader(string(data)), "Patient", &p)
		default:
			var p Parameters
			err = Decode(strings.NewReader(string(data)), "Parameters", &p)
		}
		if err == nil {
			return
		}
		var fe *Error
		if !errors.As(err, &fe) || (fe.Status != 400 && fe.Status != 413) {
			t.Fatalf("decode error is not a 400 (413 for its size) OperationOutcome: %v", err)
		}
	})
}
