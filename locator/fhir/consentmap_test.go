package fhir

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzConsentResource feeds arbitrary bodies to the Consent parser: it must never panic,
// and a directive it accepts must survive rendering and reading back unchanged (what a
// client reads is what is enforced).
func FuzzConsentResource(f *testing.F) {
	for _, seed := range []string{
		`{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/x"},"provision":{"type":"deny"}}`,
		`{"resourceType":"Consent","status":"active","patient":{"reference":"Person/Eabc"},"provision":{"type":"permit","provision":[{"type":"deny","actor":[{"reference":{"reference":"Organization/hosp-b"}},{"reference":{"reference":"Organization/hosp-c"}}]}]}}`,
		`{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/y"},"provision":{"type":"permit","provision":[{"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"ETH"},{"code":"PSY"}]}]}}`,
		`{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/z"},"provision":{"type":"deny","provision":[{"type":"deny","actor":[{"reference":{"reference":"Organization/a"}}]},{"type":"deny","securityLabel":[{"code":"HIV"}]}]}}`,
		`{"resourceType":"Consent","status":"active","provision":{"type":"permit","provision":[{"type":"permit"}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var c Consent
		if err := Decode(bytes.NewReader(body), "Consent", &c); err != nil {
			return
		}
		m, err := DirectiveOf(c)
		if err != nil {
			return
		}
		m.ID, m.Records = "c1", []string{"urn:a|1"}
		back, err := DirectiveOf(ConsentOf(m))
		if err != nil {
			t.Fatalf("a rendered directive does not parse: %v", err)
		}
		back.ID, back.Records = m.ID, m.Records
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip changed the directive:\n%+v\n%+v", m, back)
		}
	})
}
