package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// usCorePatient carries what US Core and PIX feeds send: meta.profile/tag/security/source,
// an identifier typed MR with an assigner and period, a coding with version and
// userSelected, extensions, and a primitive extension on birthDate.
const usCorePatient = `{
  "resourceType": "Patient",
  "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
           "tag": [{"system": "urn:example:tags", "code": "feed"}],
           "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}],
           "source": "urn:example:adt"},
  "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"}],
  "identifier": [{"use": "usual",
     "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "version": "2.9", "code": "MR", "userSelected": true}]},
     "system": "urn:oid:1.2.3", "value": "MRN-1", "period": {"start": "2001-01-01"},
     "assigner": {"display": "St Mary"}}],
  "name": [{"use": "official", "family": "Doe", "given": ["Jane"], "_given": [{"extension": [{"url": "urn:x", "valueString": "y"}]}]}],
  "birthDate": "1970-02-03",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1970-02-03T04:05:00Z"}]},
  "address": [{"use": "home", "city": "Springfield", "period": {"start": "2001", "extension": [{"url": "urn:x", "valueString": "y"}]}}]
}`

func TestValidR4IsAcceptedAndKept(t *testing.T) {
	var p Patient
	if err := Decode(strings.NewReader(usCorePatient), "Patient", &p); err != nil {
		t.Fatalf("a valid US Core Patient was refused: %v", err)
	}
	canon, err := CanonicalPatient(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"us-core-patient", `"source":"urn:example:adt"`, `"code":"MR"`, `"version":"2.9"`, `"userSelected":true`, `"assigner"`, "patient-birthTime", "us-core-birthsex"} {
		if !bytes.Contains(canon, []byte(want)) {
			t.Errorf("the stored Patient lost %s: %s", want, canon)
		}
	}
	stamped := Stamped(p.Meta, "3", "2026-01-01T00:00:00Z")
	if stamped.VersionID != "3" || len(stamped.Profile) != 1 || len(stamped.Tag) != 1 || stamped.Source != "urn:example:adt" {
		t.Errorf("served meta %+v: want rls's version with the sender's profile, tag and source", stamped)
	}
}

func TestInvalidR4IsRefusedWithItsFHIRPath(t *testing.T) {
	doc := `{"resourceType":"DocumentReference","status":"current","content":[{"attachment":{"url":"https://x.example/d"}}]`
	cases := []struct {
		name, resourceType, body, expression, code string
	}{
		{"unknown element in meta", "Patient", `{"resourceType":"Patient","meta":{"profil":["x"]}}`, "Patient.meta.profil", "structure"},
		{"unknown top-level element", "Organization", `{"resourceType":"Organization","colour":"red"}`, "Organization.colour", "structure"},
		{"profile not a canonical list", "Patient", `{"resourceType":"Patient","meta":{"profile":"x"}}`, "Patient.meta.profile", "structure"},
		{"address.use", "Patient", `{"resourceType":"Patient","address":[{"use":"home"},{"use":"house"}]}`, "Patient.address[1].use", "code-invalid"},
		{"name.use", "Patient", `{"resourceType":"Patient","name":[{"use":"legal","family":"X"}]}`, "Patient.name[0].use", "code-invalid"},
		{"deceasedDateTime", "Patient", `{"resourceType":"Patient","deceasedDateTime":"yesterday"}`, "Patient.deceasedDateTime", "value"},
		{"birthDate", "Patient", `{"resourceType":"Patient","birthDate":"1970-13-01"}`, "Patient.birthDate", "value"},
		{"primitive extension shape", "Patient", `{"resourceType":"Patient","_birthDate":{"colour":1}}`, "Patient.birthDate.colour", "structure"},
		{"date must be an instant", "DocumentReference", doc + `,"date":"2026-06-01"}`, "DocumentReference.date", "value"},
		{"hash must be base64", "DocumentReference", `{"resourceType":"DocumentReference","status":"current","content":[{"attachment":{"hash":"zz!!"}}]}`, "DocumentReference.content[0].attachment.hash", "value"},
		{"docStatus", "DocumentReference", doc + `,"docStatus":"done"}`, "DocumentReference.docStatus", "code-invalid"},
		{"required content", "DocumentReference", `{"resourceType":"DocumentReference","status":"current"}`, "DocumentReference.content", "required"},
		{"contained resource element", "DocumentReference", doc + `,"contained":[{"resourceType":"Practitioner","id":"a","nam":[]}]}`, "DocumentReference.contained[0].nam", "structure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateR4([]byte(c.body), c.resourceType)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FHIR error", err)
			}
			if fe.Status != 400 || fe.Issue.Code != c.code || len(fe.Issue.Expression) != 1 || fe.Issue.Expression[0] != c.expression {
				out, _ := json.Marshal(fe.Outcome())
				t.Fatalf("got %d %s, want 400 %s at %s", fe.Status, out, c.code, c.expression)
			}
		})
	}
}

func TestFHIRPath(t *testing.T) {
	if got := FHIRPath("Patient", []string{"meta", "profile", "0"}); got != "Patient.meta.profile[0]" {
		t.Errorf("got %s", got)
	}
	if got := FHIRPath("Patient", []string{"_birthDate", "extension", "2"}); got != "Patient.birthDate.extension[2]" {
		t.Errorf("got %s", got)
	}
}

// BenchmarkDecodeMatchParameters decodes a $match body (Parameters holding a Patient) as
// every $match request does: bounds, one parse checked against the R4 schema (the Patient
// inside against its own), one parse into the Go types.
func BenchmarkDecodeMatchParameters(b *testing.B) {
	body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient",` +
		`"identifier":[{"system":"urn:oid:2.16.840.1.113883.3.1001","value":"MRN5475125"}],` +
		`"name":[{"family":"Lopez","given":["Brian","Wayne"]}],"gender":"male","birthDate":"1954-03-18",` +
		`"address":[{"line":["5377 Lakeview St"],"city":"Glendale","state":"ID","postalCode":"83206"}],` +
		`"telecom":[{"system":"phone","value":"2086801200"}]}},{"name":"count","valueInteger":5},` +
		`{"name":"onlyCertainMatches","valueBoolean":false}]}`)
	for b.Loop() {
		var p Parameters
		if err := Decode(bytes.NewReader(body), "Parameters", &p); err != nil {
			b.Fatal(err)
		}
	}
}
