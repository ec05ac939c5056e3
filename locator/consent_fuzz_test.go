package locator

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/rls-hie/rls/locator/fhir"
)

// FuzzConsentResource feeds arbitrary bodies to the Consent parser: it must never panic,
// and a directive it accepts must survive rendering and reading back unchanged (what a
// client reads is what is enforced).
func FuzzConsentResource(f *testing.F) {
	for _, seed := range []map[string]any{
		consentJSON("Patient/x", true, nil, nil),
		consentJSON("Person/Eabc", false, []string{"hosp-b", "hosp-c"}, nil),
		consentJSON("Patient/y", false, nil, []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "ETH"}, {Code: "PSY"}}),
		consentJSON("Patient/z", true, []string{"a"}, []fhir.Coding{{Code: "HIV"}}),
	} {
		b, _ := json.Marshal(seed)
		f.Add(b)
	}
	f.Add([]byte(`{"resourceType":"Consent","status":"active","provision":{"type":"permit","provision":[{"type":"permit"}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var c fhir.Consent
		if err := fhir.Decode(bytes.NewReader(body), "Consent", &c); err != nil {
			return
		}
		m, err := consentFromResource(c)
		if err != nil {
			return
		}
		m.ID, m.Records = "c1", []string{"urn:a|1"}
		back, err := consentFromResource(consentResource(m))
		if err != nil {
			t.Fatalf("a rendered directive does not parse: %v", err)
		}
		back.ID, back.Records = m.ID, m.Records
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip changed the directive:\n%+v\n%+v", m, back)
		}
	})
}
