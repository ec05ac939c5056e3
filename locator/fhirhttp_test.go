package locator

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
)

// usCorePatient is a US Core Patient as a hospital's feed sends it: meta.profile, an
// identifier typed MR with its assigner, a coding with version and userSelected, the
// birth-sex extension and a primitive extension on birthDate.
func usCorePatient(system, mrn string) map[string]any {
	p := patientJSON(system, mrn, "Jane Q", "Public", "1970-02-03", "female", "62704", "")
	p["meta"] = map[string]any{"profile": []string{"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}, "source": "urn:example:adt"}
	p["identifier"] = []any{map[string]any{"use": "usual", "system": system, "value": mrn,
		"type":     map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "version": "2.9", "code": "MR", "userSelected": true}}},
		"assigner": map[string]any{"display": "St Mary"}, "period": map[string]any{"start": "2001-01-01"}}}
	p["extension"] = []any{map[string]any{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"}}
	p["_birthDate"] = map[string]any{"extension": []any{map[string]any{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1970-02-03T04:05:00Z"}}}
	return p
}

func TestValidR4IsRegisteredAndInvalidR4Refused(t *testing.T) {
	w := newDocWorld(t)
	a := w.a
	code, body, h := a.do("POST", "/fhir/Patient", w.tokA, usCorePatient(sysA, "US-1"), nil)
	if code != 201 {
		t.Fatalf("US Core Patient: %d %s", code, body)
	}
	loc := h.Get("Location")
	if !strings.HasPrefix(loc, a.url+"/fhir/Patient/") || !strings.HasSuffix(loc, "/_history/1") {
		t.Fatalf("Location %q: want an absolute vread URL", loc)
	}
	code, body, _ = a.do("GET", strings.TrimPrefix(loc, a.url), w.tokA, nil, nil)
	if code != 200 {
		t.Fatalf("the Location does not resolve: %d %s", code, body)
	}
	for _, want := range []string{"us-core-patient", `"MR"`, "patient-birthTime", "us-core-birthsex", `"assigner"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the served Patient lost %s: %s", want, body)
		}
	}
	if code, body, _ = a.do("GET", strings.TrimSuffix(strings.TrimPrefix(loc, a.url), "1")+"7", w.tokA, nil, nil); code != 404 {
		t.Errorf("vread of a version never written: %d %s", code, body)
	}

	doc := docJSON("urn:oid:1.2.3.4.5.1", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "Summary")
	doc["meta"] = map[string]any{"profile": []string{"https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"}}
	code, body, h = a.do("POST", "/fhir/DocumentReference", w.tokA, doc, nil)
	if code != 201 || !strings.Contains(string(body), "IHE.MHD.Comprehensive.DocumentReference") {
		t.Fatalf("MHD DocumentReference with meta.profile: %d %s", code, body)
	}
	if code, body, _ = a.do("GET", strings.TrimPrefix(h.Get("Location"), a.url), w.tokA, nil, nil); code != 200 {
		t.Fatalf("DocumentReference Location does not resolve: %d %s", code, body)
	}

	bad := []struct {
		name, path string
		body       map[string]any
		expression string
	}{
		{"document date not an instant", "/fhir/DocumentReference", with(docJSON("urn:oid:1.2.3.4.5.2", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "x"), "date", "2026-06-01"), "DocumentReference.date"},
		{"hash not base64", "/fhir/DocumentReference", with(docJSON("urn:oid:1.2.3.4.5.3", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "x"), "content", []any{map[string]any{"attachment": map[string]any{"url": "https://d.example/x", "hash": "zz!!"}}}), "DocumentReference.content[0].attachment.hash"},
		{"docStatus", "/fhir/DocumentReference", with(docJSON("urn:oid:1.2.3.4.5.4", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "x"), "docStatus", "done"), "DocumentReference.docStatus"},
		{"address.use", "/fhir/Patient", with(patientJSON(sysA, "BAD-1", "A", "B", "1970-01-01", "male", "", ""), "address", []any{map[string]any{"use": "house"}}), "Patient.address[0].use"},
		{"name.use", "/fhir/Patient", with(patientJSON(sysA, "BAD-2", "A", "B", "1970-01-01", "male", "", ""), "name", []any{map[string]any{"use": "legal", "family": "B"}}), "Patient.name[0].use"},
		{"deceasedDateTime", "/fhir/Patient", with(patientJSON(sysA, "BAD-3", "A", "B", "1970-01-01", "male", "", ""), "deceasedDateTime", "yesterday"), "Patient.deceasedDateTime"},
		{"meta.profil", "/fhir/Patient", with(patientJSON(sysA, "BAD-4", "A", "B", "1970-01-01", "male", "", ""), "meta", map[string]any{"profil": []string{"x"}}), "Patient.meta.profil"},
	}
	for _, c := range bad {
		code, body, _ := a.do("POST", c.path, w.tokA, c.body, nil)
		expectOutcome(t, c.name, code, body, 400, c.expression)
	}
	// Nothing of the refused ones was written.
	for _, mrn := range []string{"BAD-1", "BAD-2", "BAD-3", "BAD-4"} {
		if code, _, _ := a.do("GET", "/fhir/Patient/"+model.PatientID(sysA+"|"+mrn), w.tokA, nil, nil); code != 404 {
			t.Errorf("refused Patient %s was written: %d", mrn, code)
		}
	}
}

func with(m map[string]any, key string, v any) map[string]any {
	m[key] = v
	return m
}

func TestFHIRHTTPSemantics(t *testing.T) {
	a := newTestAPI(t)
	tokA, _ := a.participants()
	p := patientJSON(sysA, "H-1", "Ada", "Lovelace", "1915-12-10", "female", "62704", "")
	code, body, _ := a.do("POST", "/fhir/Patient", tokA, p, map[string]string{"Content-Type": "application/fhir+json; charset=utf-8"})
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	id := model.PatientID(sysA + "|H-1")

	// A stale If-Match is 412 (R4), and changes nothing.
	p["gender"] = "other"
	code, body, _ = a.do("PUT", "/fhir/Patient/"+id, tokA, with(p, "id", id), map[string]string{"If-Match": `W/"7"`})
	expectOutcome(t, "stale If-Match", code, body, 412, "")
	_, body, _ = a.do("GET", "/fhir/Patient/"+id, tokA, nil, nil)
	if !strings.Contains(string(body), `"gender": "female"`) {
		t.Fatalf("a refused update changed the Patient: %s", body)
	}

	// Absolute links and fullUrl; _format=json is accepted on searches and reads.
	for i := 2; i <= 3; i++ {
		a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "H-"+string(rune('0'+i)), "Ada", "Lovelace", "1915-12-10", "female", "62704", ""), nil)
	}
	code, body, _ = a.do("GET", "/fhir/Patient?family=Lovelace&birthdate=1915-12-10&_count=1&_format=json", tokA, nil, nil)
	if code != 200 {
		t.Fatalf("search with _format=json: %d %s", code, body)
	}
	var b fhir.Bundle
	json.Unmarshal(body, &b)
	if len(b.Entry) != 1 || !strings.HasPrefix(b.Entry[0].FullURL, a.url+"/fhir/Patient/") {
		t.Fatalf("entries %+v: want one with an absolute fullUrl", b.Entry)
	}
	var next string
	for _, l := range b.Link {
		if !strings.HasPrefix(l.URL, a.url+"/fhir/Patient?") {
			t.Errorf("link %s %s is not absolute", l.Relation, l.URL)
		}
		if l.Relation == "next" {
			next = l.URL
		}
	}
	if next == "" {
		t.Fatalf("no next link in %s", body)
	}
	if code, body, _ = a.do("GET", strings.TrimPrefix(next, a.url), tokA, nil, nil); code != 200 {
		t.Fatalf("following next: %d %s", code, body)
	}
	for _, f := range []string{"application/fhir%2Bjson", "application/fhir+json", "json"} {
		if code, body, _ = a.do("GET", "/fhir/Patient/"+id+"?_format="+f, tokA, nil, nil); code != 200 {
			t.Fatalf("read with _format=%s: %d %s", f, code, body)
		}
	}

	// Formats rls does not serve.
	code, body, _ = a.do("GET", "/fhir/Patient/"+id+"?_format=xml", tokA, nil, nil)
	expectOutcome(t, "_format=xml", code, body, 406, "_format")
	code, body, _ = a.do("GET", "/fhir/Patient/"+id, tokA, nil, map[string]string{"Accept": "application/fhir+xml"})
	expectOutcome(t, "Accept XML", code, body, 406, "")
	if code, body, _ = a.do("GET", "/fhir/Patient/"+id, tokA, nil, map[string]string{"Accept": "application/fhir+xml;q=1, application/fhir+json;q=0.5"}); code != 200 {
		t.Fatalf("Accept admitting JSON: %d %s", code, body)
	}
	code, body, _ = a.do("POST", "/fhir/Patient", tokA, `<Patient xmlns="http://hl7.org/fhir"/>`, map[string]string{"Content-Type": "application/fhir+xml"})
	expectOutcome(t, "XML body", code, body, 415, "")
	code, body, _ = a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "H-9", "A", "B", "1970-01-01", "male", "", ""), map[string]string{"Content-Type": "text/plain"})
	expectOutcome(t, "text/plain body", code, body, 415, "")
}

func TestPDQmSupplierParameters(t *testing.T) {
	a := newTestAPI(t)
	tokA, _ := a.participants()
	ada := patientJSON(sysA, "Q-1", "Ada", "Lovelace", "1915-12-10", "female", "62704", "")
	ada["extension"] = []any{map[string]any{"url": MothersMaidenNameURL, "valueString": "Milbanke"}}
	ada["address"] = []any{map[string]any{"use": "home", "line": []string{"12 St James's Square"}, "city": "Springfield", "state": "IL", "postalCode": "62704"}}
	ann := patientJSON(sysA, "Q-2", "Ann", "Lovelace", "1917-03-01", "female", "62704", "")
	ann["active"] = false
	ann["address"] = []any{map[string]any{"use": "home", "line": []string{"3 Oak Lane"}, "city": "Springfield", "state": "MO", "postalCode": "62704"}}
	for _, p := range []map[string]any{ada, ann} {
		if code, body, _ := a.do("POST", "/fhir/Patient", tokA, p, nil); code != 201 {
			t.Fatalf("register: %d %s", code, body)
		}
	}
	ids := func(body []byte) []string {
		var b fhir.Bundle
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range b.Entry {
			raw, _ := json.Marshal(e.Resource)
			var p fhir.Patient
			json.Unmarshal(raw, &p)
			out = append(out, p.Identifier[0].Value)
		}
		return out
	}
	cases := []struct {
		query string
		want  string
	}{
		{"family=Lovelace&address-postalcode=62704", "Q-1 Q-2"},
		{"family=Lovelace&address-postalcode=62704&active=true", "Q-1"},
		{"family=Lovelace&address-postalcode=62704&active=false", "Q-2"},
		{"family=Lovelace&address-postalcode=62704&address=12%20st%20james", "Q-1"},
		{"family=Lovelace&address-postalcode=62704&address=springfield", "Q-1 Q-2"},
		{"family=Lovelace&address-postalcode=62704&address-state=MO", "Q-2"},
		{"family=Lovelace&given=Ada&gender=female", "Q-1"},
		{"family=Lovelace&given=Ada&gender=male", ""},
		{"family=Lovelace&address-postalcode=62704&mothersMaidenName=milb", "Q-1"},
	}
	for _, c := range cases {
		code, body, _ := a.do("GET", "/fhir/Patient?"+c.query, tokA, nil, nil)
		if code != 200 {
			t.Errorf("%s: %d %s", c.query, code, body)
			continue
		}
		if got := strings.Join(ids(body), " "); got != c.want {
			t.Errorf("%s: got [%s], want [%s]", c.query, got, c.want)
		}
	}
	// POST _search with form parameters answers as GET, with links a client can follow.
	code, body, _ := a.do("POST", "/fhir/Patient/_search", tokA, "family=Lovelace&address-postalcode=62704&active=true", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if code != 200 || strings.Join(ids(body), " ") != "Q-1" || !strings.Contains(string(body), a.url+"/fhir/Patient?") {
		t.Fatalf("POST _search: %d %s", code, body)
	}
	// The supplier policy: criteria the index does not key never stand in for the minimum.
	for _, q := range []string{"gender=female", "address-state=IL", "active=true", "mothersMaidenName=Milbanke", "family=Lovelace&gender=female"} {
		code, body, _ := a.do("GET", "/fhir/Patient?"+q, tokA, nil, nil)
		expectOutcome(t, "too broad: "+q, code, body, 400, "")
	}
}

func TestConsentRoundTrips(t *testing.T) {
	w := newDocWorld(t)
	body := consentJSON("Patient/"+w.patA, false, []string{"hosp-b"}, nil)
	body["category"] = []any{map[string]any{"coding": []any{
		map[string]any{"system": fhir.LOINCSystem, "code": fhir.ConsentCategoryLOINC},
		map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentcategorycodes", "code": "hipaa-restrictions"}}}}
	body["policy"] = []any{map[string]any{"authority": "https://hie.example", "uri": "https://hie.example/policy/v2"}}
	body["policyRule"] = map[string]any{"coding": []any{map[string]any{"system": fhir.ActCodeSystem, "code": "OPTINR"}}}
	sub := body["provision"].(map[string]any)["provision"].([]any)[0].(map[string]any)
	sub["actor"].([]any)[0].(map[string]any)["role"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "PROV"}}}
	c := w.a.consent(t, w.tokA, body)
	code, got, _ := w.a.do("GET", "/fhir/Consent/"+c.ID, w.tokA, nil, nil)
	if code != 200 {
		t.Fatalf("read: %d %s", code, got)
	}
	for _, want := range []string{"hipaa-restrictions", "https://hie.example/policy/v2", `"OPTINR"`, `"PROV"`, "patient-privacy"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the Consent lost %s: %s", want, got)
		}
	}
	// ppc-1: a Consent with neither policy nor policyRule is not R4.
	bad := consentJSON("Patient/"+w.patA, true, nil, nil)
	delete(bad, "policyRule")
	code, got, _ = w.a.do("POST", "/fhir/Consent", w.tokA, bad, nil)
	expectOutcome(t, "Consent without policy or policyRule", code, got, 400, "Consent")
	// actor.role is required (1..1).
	bad = consentJSON("Patient/"+w.patA, false, []string{"hosp-b"}, nil)
	delete(bad["provision"].(map[string]any)["provision"].([]any)[0].(map[string]any)["actor"].([]any)[0].(map[string]any), "role")
	code, got, _ = w.a.do("POST", "/fhir/Consent", w.tokA, bad, nil)
	expectOutcome(t, "actor without role", code, got, 400, "Consent.provision.provision[0].actor[0].role")
}

func TestPublicBaseURLMakesTheLinks(t *testing.T) {
	const base = "https://rls.hie.example/fhir"
	a := newTestAPI(t, func(o *Options) { o.PublicBaseURL = base + "/" })
	tokA, _ := a.participants()
	code, body, h := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "PB-1", "Ada", "Lovelace", "1915-12-10", "female", "62704", ""), nil)
	if code != 201 || !strings.HasPrefix(h.Get("Location"), base+"/Patient/") {
		t.Fatalf("create: %d Location %q %s", code, h.Get("Location"), body)
	}
	_, body, _ = a.do("GET", "/fhir/Patient?family=Lovelace&given=Ada", tokA, nil, nil)
	var b fhir.Bundle
	json.Unmarshal(body, &b)
	if len(b.Entry) != 1 || !strings.HasPrefix(b.Entry[0].FullURL, base+"/Patient/") || len(b.Link) == 0 || !strings.HasPrefix(b.Link[0].URL, base+"/Patient?") {
		t.Fatalf("links under the public base: %s", body)
	}
}
