package locator

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
)

// TestWalkthroughResponsesAreR4 calls every FHIR route (every resource type, search,
// operation and error) the way an integration engine would, and holds every answer to FHIR
// R4: the body is a resource of its type that fhir.ValidateR4 accepts. With
// RLS_FHIR_RECORD_DIR set it also writes each answer there (NNN-name.json), for the
// independent R4 validator CI runs over them (.ci/validate-fhir.cjs).
func TestWalkthroughResponsesAreR4(t *testing.T) {
	dir := os.Getenv("RLS_FHIR_RECORD_DIR")
	w := newDocWorld(t)
	a := w.a
	n := 0
	check := func(name string, code, wantCode int, body []byte) {
		t.Helper()
		n++
		if code != wantCode {
			t.Errorf("%s: %d, want %d: %.400s", name, code, wantCode, body)
			return
		}
		var probe struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(body, &probe); err != nil || probe.ResourceType == "" {
			t.Errorf("%s: not a FHIR resource: %.300s", name, body)
			return
		}
		if err := fhir.ValidateR4(body, probe.ResourceType); err != nil {
			t.Errorf("%s: the answer is not valid R4: %v\n%.600s", name, err, body)
		}
		if dir != "" {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d-%s.json", n, name)), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	step := func(name, method, path, tok string, body any, header map[string]string, want int) []byte {
		t.Helper()
		code, data, _ := a.do(method, path, tok, body, header)
		check(name, code, want, data)
		return data
	}

	step("metadata", "GET", "/fhir/metadata", "", nil, nil, 200)

	// Patient: create (US Core), read, vread, update, conditional update (PIXm feed).
	us := usCorePatient(sysA, "W-1")
	step("patient-create", "POST", "/fhir/Patient", w.tokA, us, nil, 201)
	id := model.PatientID(sysA + "|W-1")
	step("patient-read", "GET", "/fhir/Patient/"+id, w.tokA, nil, nil, 200)
	step("patient-vread", "GET", "/fhir/Patient/"+id+"/_history/1", w.tokA, nil, nil, 200)
	us["id"] = id
	us["telecom"] = []any{map[string]any{"system": "phone", "value": "217-555-0142", "use": "home"}}
	step("patient-update", "PUT", "/fhir/Patient/"+id, w.tokA, us, map[string]string{"If-Match": `W/"1"`}, 200)
	step("patient-conditional-update", "PUT", "/fhir/Patient?identifier="+url.QueryEscape(sysA+"|W-2"), w.tokA, patientJSON(sysA, "W-2", "Walt", "Whitman", "1919-05-31", "male", "11201", ""), nil, 201)

	// PDQm, $match, PIXm, Person.
	step("pdqm-search", "GET", "/fhir/Patient?family=Okonjo&given=Margaret&_count=1", w.tokA, nil, nil, 200)
	step("pdqm-post-search", "POST", "/fhir/Patient/_search", w.tokA, "family=Okonjo&birthdate=1958-02-14&gender=female", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 200)
	match := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "resource", "resource": patientJSON(sysA, "probe", "Maggie", "Okonjo", "1958-02-14", "female", "62704", "")},
		map[string]any{"name": "count", "valueInteger": 5}}}
	step("patient-match", "POST", "/fhir/Patient/$match", w.tokA, match, nil, 200)
	step("pixm-query", "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier="+url.QueryEscape(sysA+"|A-1"), w.tokA, nil, nil, 200)
	step("person-read", "GET", "/fhir/Person/"+w.euid, w.tokA, nil, nil, 200)

	// DocumentReference (MHD).
	doc := docJSON("urn:oid:1.2.3.4.9.1", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "Summary")
	doc["meta"] = map[string]any{"profile": []string{"https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"}}
	created := step("document-create", "POST", "/fhir/DocumentReference", w.tokA, doc, nil, 201)
	var d struct {
		ID string `json:"id"`
	}
	json.Unmarshal(created, &d)
	step("document-read", "GET", "/fhir/DocumentReference/"+d.ID, w.tokA, nil, nil, 200)
	step("document-vread", "GET", "/fhir/DocumentReference/"+d.ID+"/_history/1", w.tokA, nil, nil, 200)
	step("document-search", "GET", "/fhir/DocumentReference?patient="+w.patA+"&status=current", w.tokA, nil, nil, 200)
	step("document-search-related", "GET", "/fhir/DocumentReference?patient="+w.patA+"&related:identifier=urn:oid:1.2.3.4.55|ORD-1", w.tokA, nil, nil, 200)
	step("document-search-mdm", "GET", "/fhir/DocumentReference?patient:mdm=Patient/"+w.patB+"&_summary=count", w.tokB, nil, nil, 200)

	// MHD: ITI-65 Provide Document Bundle, the List it stored, ITI-66.
	d1 := docJSON("urn:oid:1.2.3.4.9.2", "Patient/"+w.patA, "current", "34133-9", "2026-01-11", "Discharge summary")
	d2 := docJSON("urn:oid:1.2.3.4.9.3", "Patient/"+w.patA, "current", "11506-3", "2026-01-11", "Progress note")
	provided := step("mhd-provide-bundle", "POST", "/fhir", w.tokA, submission("urn:oid:1.2.3.4.9.100", "Patient/"+w.patA, d1, d2), nil, 200)
	var tr struct {
		Entry []struct {
			Response fhir.BundleResponse `json:"response"`
		} `json:"entry"`
	}
	json.Unmarshal(provided, &tr)
	if len(tr.Entry) > 0 {
		step("list-read", "GET", tr.Entry[0].Response.Location, w.tokA, nil, nil, 200)
	}
	step("mhd-find-lists", "GET", "/fhir/List?patient="+w.patA+"&code=submissionset", w.tokA, nil, nil, 200)

	// Consent.
	cons := step("consent-create", "POST", "/fhir/Consent", w.tokA, consentJSON("Patient/"+w.patA, false, []string{"hosp-b"}, nil), nil, 201)
	var c fhir.Consent
	json.Unmarshal(cons, &c)
	step("consent-read", "GET", "/fhir/Consent/"+c.ID, w.tokA, nil, nil, 200)
	step("consent-search", "GET", "/fhir/Consent?patient=Patient/"+w.patA, w.tokA, nil, nil, 200)
	step("consent-opt-out", "POST", "/fhir/Consent", w.tokB, consentJSON("Patient/"+w.patC, true, nil, nil), nil, 201)
	step("consent-labels", "POST", "/fhir/Consent", w.tokA, consentJSON("Patient/"+w.patA, false, nil, []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "PSY"}}), nil, 201)

	// Organization (participants) and AuditEvent, as the admin.
	step("organization-create", "POST", "/fhir/Organization", testAdminToken, org("walk-1", "urn:oid:1.2.3.99"), nil, 201)
	step("organization-read", "GET", "/fhir/Organization/walk-1", w.tokA, nil, nil, 200)
	step("organization-vread", "GET", "/fhir/Organization/walk-1/_history/1", w.tokA, nil, nil, 200)
	step("organization-search", "GET", "/fhir/Organization?active=true&_count=2", w.tokA, nil, nil, 200)
	upd := org("walk-1", "urn:oid:1.2.3.99")
	upd.Name = "Walk clinic"
	step("organization-update", "PUT", "/fhir/Organization/walk-1", testAdminToken, upd, map[string]string{"If-Match": `W/"1"`}, 200)
	step("organization-disable", "POST", "/fhir/Organization/walk-1/$disable", testAdminToken, nil, nil, 200)
	step("organization-rotate-token", "POST", "/fhir/Organization/walk-1/$rotate-token", testAdminToken, nil, nil, 200)
	step("auditevent-search", "GET", "/fhir/AuditEvent?_count=5", testAdminToken, nil, nil, 200)

	// Endpoint (MLLP endpoints of PIX update notifications): create, read, search.
	var endpoint struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(step("endpoint-create", "POST", "/fhir/Endpoint", w.tokA, endpointJSON("hosp-a", "mllp://203.0.113.11:2576", sysA), nil, 201), &endpoint); err != nil || endpoint.ID == "" {
		t.Fatalf("endpoint id: %v", err)
	}
	step("endpoint-read", "GET", "/fhir/Endpoint/"+endpoint.ID, w.tokA, nil, nil, 200)
	step("endpoint-search", "GET", "/fhir/Endpoint", w.tokA, nil, nil, 200)

	// Subscription (Backport IG): create, read, search, $status.
	subscription := func(endpoint string) map[string]any {
		return map[string]any{
			"resourceType": "Subscription", "status": "requested", "reason": "care coordination",
			"criteria":  model.TopicDocument,
			"extension": []any{map[string]any{"url": fhir.ExtPurposeOfUse, "valueCode": "TREAT"}},
			"channel": map[string]any{"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
				"_payload": map[string]any{"extension": []any{map[string]any{"url": fhir.ExtPayloadContent, "valueCode": "id-only"}}}},
		}
	}
	var sub struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(step("subscription-create", "POST", "/fhir/Subscription", w.tokA, subscription("https://203.0.113.10/notify"), nil, 201), &sub); err != nil || sub.ID == "" {
		t.Fatalf("subscription id: %v", err)
	}
	step("subscription-read", "GET", "/fhir/Subscription/"+sub.ID, w.tokA, nil, nil, 200)
	step("subscription-search", "GET", "/fhir/Subscription", w.tokA, nil, nil, 200)
	step("subscription-status", "GET", "/fhir/Subscription/"+sub.ID+"/$status", w.tokA, nil, nil, 200)

	// Errors: every one an OperationOutcome.
	step("error-subscription-loopback", "POST", "/fhir/Subscription", w.tokA, subscription("https://127.0.0.1/notify"), nil, 422)
	step("error-invalid-r4", "POST", "/fhir/Patient", w.tokA, with(patientJSON(sysA, "E-1", "A", "B", "1970-01-01", "male", "", ""), "deceasedDateTime", "yesterday"), nil, 400)
	step("error-not-found", "GET", "/fhir/Patient/nope", w.tokA, nil, nil, 404)
	step("error-vread-old-version", "GET", "/fhir/Patient/"+id+"/_history/9", w.tokA, nil, nil, 404)
	step("error-stale-if-match", "PUT", "/fhir/Patient/"+id, w.tokA, us, map[string]string{"If-Match": `W/"1"`}, 412)
	step("error-format-xml", "GET", "/fhir/Patient/"+id+"?_format=xml", w.tokA, nil, nil, 406)
	step("error-text-plain", "POST", "/fhir/Patient", w.tokA, "family=x", map[string]string{"Content-Type": "text/plain"}, 415)
	step("error-unauthenticated", "GET", "/fhir/Patient/"+id, "", nil, nil, 401)
	step("error-forbidden", "GET", "/fhir/AuditEvent", w.tokA, nil, nil, 403)
	step("error-too-broad", "GET", "/fhir/Patient?gender=female", w.tokA, nil, nil, 400)
	bad := submission("urn:oid:1.2.3.4.9.101", "Patient/"+w.patA, with(docJSON("urn:oid:1.2.3.4.9.4", "Patient/"+w.patA, "current", "34133-9", "2026-01-11", "x"), "docStatus", "done"))
	step("error-mhd-bad-entry", "POST", "/fhir", w.tokA, bad, nil, 400)
	step("error-no-route", "GET", "/fhir/Observation", w.tokA, nil, nil, 404)
	if t.Failed() {
		return
	}
	if !strings.Contains(string(step("pdqm-check", "GET", "/fhir/Patient?family=Whitman&given=Walt", w.tokA, nil, nil, 200)), "Whitman") {
		t.Error("the conditional update's Patient is not found")
	}
}
