package locator

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
)

func docJSON(master, subject, status, typeCode, created, title string) map[string]any {
	return map[string]any{
		"resourceType":     "DocumentReference",
		"masterIdentifier": map[string]any{"system": "urn:ietf:rfc:3986", "value": master},
		"status":           status,
		"type":             map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": typeCode}}},
		"category":         []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "11369-6"}}}},
		"subject":          map[string]any{"reference": subject},
		"date":             created + "T10:00:00Z",
		"description":      title + " for the cardiology follow-up",
		"securityLabel":    []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}}}},
		"contained":        []any{map[string]any{"resourceType": "Practitioner", "id": "a1", "name": []any{map[string]any{"family": "Osler", "given": []string{"William"}}}}},
		"author":           []any{map[string]any{"reference": "#a1"}},
		"content": []any{map[string]any{
			"attachment": map[string]any{"contentType": "application/pdf", "url": "https://docs.example/" + master, "title": title, "creation": created + "T09:00:00Z"},
			"format":     map[string]any{"system": "urn:oid:1.3.6.1.4.1.19376.1.2.3", "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"},
		}},
		"context": map[string]any{
			"facilityType":    map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "22232009"}}},
			"practiceSetting": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "394579002"}}},
			"event":           []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "49601007"}}}},
			"period":          map[string]any{"start": created, "end": created},
		},
	}
}

type docWorld struct {
	a                *testAPI
	tokA, tokB       string
	patA, patB, patC string // Patient ids: A and B are one person, C another
	euid             string
}

func newDocWorld(t *testing.T, options ...func(*Options)) docWorld {
	a := newTestAPI(t, options...)
	tokA, tokB := a.participants()
	w := docWorld{a: a, tokA: tokA, tokB: tokB}
	_, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	w.euid = euidOf(t, body)
	_, body, _ = a.do("POST", "/fhir/Patient", tokB, patientJSON(sysB, "B-1", "Maggie", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	if euidOf(t, body) != w.euid {
		t.Fatal("setup: the same person at B got another EUID")
	}
	a.do("POST", "/fhir/Patient", tokB, patientJSON(sysB, "B-2", "Thomas", "Reed", "1990-01-20", "male", "10001", "2125550199"), nil)
	w.patA, w.patB, w.patC = model.PatientID(sysA+"|A-1"), model.PatientID(sysB+"|B-1"), model.PatientID(sysB+"|B-2")
	return w
}

func (w docWorld) register(t *testing.T, tok string, doc map[string]any) string {
	t.Helper()
	code, body, _ := w.a.do("POST", "/fhir/DocumentReference", tok, doc, nil)
	if code != 201 && code != 200 {
		t.Fatalf("register document: %d %s", code, body)
	}
	var d struct {
		ID string `json:"id"`
	}
	json.Unmarshal(body, &d)
	return d.ID
}

func (w docWorld) search(t *testing.T, tok, q string) []string {
	t.Helper()
	code, body, _ := w.a.do("GET", "/fhir/DocumentReference?"+q, tok, nil, nil)
	if code != 200 {
		t.Fatalf("search %s: %d %s", q, code, body)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				MasterIdentifier fhir.Identifier `json:"masterIdentifier"`
			} `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(body, &b)
	var out []string
	for _, e := range b.Entry {
		out = append(out, e.Resource.MasterIdentifier.Value)
	}
	return out
}

func TestDocumentRegistrationSearchAndLocate(t *testing.T) {
	w := newDocWorld(t)
	w.register(t, w.tokA, docJSON("doc-a1", "Patient/"+w.patA, "current", "11506-3", "2024-03-01", "Progress note"))
	old := w.register(t, w.tokA, docJSON("doc-a2", "Patient/"+w.patA, "current", "18842-5", "2023-05-10", "Discharge summary"))
	w.register(t, w.tokB, docJSON("doc-b1", "Patient/"+w.patB, "current", "11506-3", "2025-01-15", "Consult note"))
	w.register(t, w.tokB, docJSON("doc-c1", "Patient/"+w.patC, "current", "11506-3", "2025-02-01", "Other patient"))

	// A replacement supersedes the older document.
	repl := docJSON("doc-a2-v2", "Patient/"+w.patA, "current", "18842-5", "2023-05-11", "Discharge summary (amended)")
	repl["relatesTo"] = []any{map[string]any{"code": "replaces", "target": map[string]any{"reference": "DocumentReference/" + old}}}
	w.register(t, w.tokA, repl)
	code, body, _ := w.a.do("GET", "/fhir/DocumentReference/"+old, w.tokB, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"status": "superseded"`) {
		t.Fatalf("replaced document: %d %s", code, body)
	}

	cases := []struct{ q, want string }{
		{"patient=" + w.patA, "doc-a1 doc-a2-v2 doc-a2"},
		{"patient=Patient/" + w.patA + "&status=current", "doc-a1 doc-a2-v2"},
		{"patient=Person/" + w.euid + "&status=current", "doc-b1 doc-a1 doc-a2-v2"},
		{"patient:mdm=Patient/" + w.patA + "&status=current", "doc-b1 doc-a1 doc-a2-v2"},
		{"patient.identifier=" + url.QueryEscape(sysB+"|B-1"), "doc-b1"},
		{"patient.identifier:mdm=" + url.QueryEscape(sysB+"|B-1") + "&status=current", "doc-b1 doc-a1 doc-a2-v2"},
		{"patient=Person/" + w.euid + "&type=" + url.QueryEscape("http://loinc.org|11506-3"), "doc-b1 doc-a1"},
		{"patient=Person/" + w.euid + "&date=ge2024-01-01", "doc-b1 doc-a1"},
		{"patient=Person/" + w.euid + "&date=lt2024&status=current", "doc-a2-v2"},
		{"patient=Person/" + w.euid + "&period=ge2025-01-01", "doc-b1"},
		{"patient=Person/" + w.euid + "&_sort=date&status=current", "doc-a2-v2 doc-a1 doc-b1"},
		{"patient=Person/" + w.euid + "&category=11369-6&status=current", "doc-b1 doc-a1 doc-a2-v2"},
		{"patient=Person/" + w.euid + "&facility=22232009&setting=394579002&event=49601007&status=current", "doc-b1 doc-a1 doc-a2-v2"},
		{"patient=Person/" + w.euid + "&security-label=N&status=current", "doc-b1 doc-a1 doc-a2-v2"},
		{"patient=Person/" + w.euid + "&security-label:not=N", ""},
		{"patient=Person/" + w.euid + "&format=" + url.QueryEscape("urn:ihe:iti:xds:2017:mimeTypeSufficient") + "&status=current", "doc-b1 doc-a1 doc-a2-v2"},
		{"patient=Person/" + w.euid + "&author.family=osl&author.given=Will&status=current", "doc-b1 doc-a1 doc-a2-v2"},
		{"patient=Person/" + w.euid + "&_text=consult", "doc-b1"},
		{"patient=Person/" + w.euid + "&_text=amended", "doc-a2-v2"},
		{"patient=" + w.patC, "doc-c1"},
		{"patient=nobody", ""},
	}
	for _, tc := range cases {
		if got := strings.Join(w.search(t, w.tokA, tc.q), " "); got != tc.want {
			t.Errorf("search %s: got [%s], want [%s]", tc.q, got, tc.want)
		}
	}
	// Paging with a cursor.
	code, body, _ = w.a.do("GET", "/fhir/DocumentReference?patient=Person/"+w.euid+"&_count=2", w.tokA, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"relation": "next"`) || !strings.Contains(string(body), `"total": 4`) {
		t.Fatalf("paging: %d %s", code, body)
	}
	for _, bad := range []string{"status=current", "patient=" + w.patA + "&colour=red", "patient=" + w.patA + "&date=2024-13", "patient=" + w.patA + "&status=lost", "patient=" + w.patA + "&type:text=x"} {
		if code, body, _ := w.a.do("GET", "/fhir/DocumentReference?"+bad, w.tokA, nil, nil); code != 400 {
			t.Errorf("search %s: %d %s, want 400", bad, code, body)
		}
	}

	// Locate: by identifier, by EUID, by demographics; B holds the patient and documents,
	// A too; a third participant would be absent.
	for _, q := range []string{"identifier=" + url.QueryEscape(sysA+"|A-1"), "euid=" + w.euid, "family=Okonjo&given=Margaret&birthdate=1958-02-14"} {
		code, body, _ := w.a.do("GET", "/v1/locate?"+q, w.tokB, nil, nil)
		var res LocateResult
		if code != 200 || json.Unmarshal(body, &res) != nil {
			t.Fatalf("locate %s: %d %s", q, code, body)
		}
		if res.EUID != w.euid || res.Grade != "certain" || len(res.Locations) != 2 {
			t.Fatalf("locate %s: %s", q, body)
		}
		sort.Slice(res.Locations, func(i, j int) bool { return res.Locations[i].Participant.ID < res.Locations[j].Participant.ID })
		la, lb := res.Locations[0], res.Locations[1]
		if la.Participant.ID != "hosp-a" || la.DocumentCount != 2 || la.NewestDocument != "2024-03-01" || len(la.Identifiers) != 1 || la.Identifiers[0].Value != "A-1" || la.Participant.Endpoint == "" {
			t.Errorf("locate %s: hosp-a location %+v", q, la)
		}
		if lb.Participant.ID != "hosp-b" || lb.DocumentCount != 1 || lb.NewestDocument != "2025-01-15" || len(lb.DocumentTypes) != 1 || lb.DocumentTypes[0] != "http://loinc.org|11506-3" {
			t.Errorf("locate %s: hosp-b location %+v", q, lb)
		}
	}
	// A participant that knows the patient but holds no document is listed with 0.
	code, body, _ = w.a.do("GET", "/v1/locate?identifier="+url.QueryEscape(sysB+"|B-2"), w.tokA, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"document_count": 1`) {
		t.Fatalf("locate C: %d %s", code, body)
	}
	w.a.do("POST", "/fhir/Patient", w.tokA, patientJSON(sysA, "A-9", "Ivy", "Nakamura", "2002-09-09", "female", "97301", "5035550100"), nil)
	code, body, _ = w.a.do("GET", "/v1/locate?identifier="+url.QueryEscape(sysA+"|A-9"), w.tokB, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"document_count": 0`) || !strings.Contains(string(body), `"hosp-a"`) {
		t.Fatalf("locate a patient without documents: %d %s", code, body)
	}
	for _, bad := range []string{"identifier=nobar", "identifier=" + url.QueryEscape(sysA+"|nobody"), "euid=Enope", "colour=red", "family=Nobody&birthdate=1900-01-01"} {
		if code, body, _ := w.a.do("GET", "/v1/locate?"+bad, w.tokB, nil, nil); code != 400 && code != 404 {
			t.Errorf("locate %s: %d %s, want 400 or 404", bad, code, body)
		}
	}
}

func TestDocumentRegistrationErrors(t *testing.T) {
	w := newDocWorld(t)
	mutate := func(f func(d map[string]any)) map[string]any {
		d := docJSON("doc-x", "Patient/"+w.patA, "current", "11506-3", "2024-03-01", "Note")
		f(d)
		return d
	}
	cases := []struct {
		name    string
		doc     map[string]any
		status  int
		element string
	}{
		{"no master identifier", mutate(func(d map[string]any) { delete(d, "masterIdentifier") }), 400, "DocumentReference.masterIdentifier"},
		{"bad status", mutate(func(d map[string]any) { d["status"] = "draft" }), 400, "DocumentReference.status"},
		{"no subject", mutate(func(d map[string]any) { delete(d, "subject") }), 400, "DocumentReference.subject"},
		{"unknown subject", mutate(func(d map[string]any) { d["subject"] = map[string]any{"reference": "Patient/nobody"} }), 422, "DocumentReference.subject"},
		{"no url", mutate(func(d map[string]any) {
			d["content"] = []any{map[string]any{"attachment": map[string]any{"contentType": "application/pdf"}}}
		}), 400, "attachment.url"},
		{"content data", mutate(func(d map[string]any) {
			d["content"] = []any{map[string]any{"attachment": map[string]any{"url": "https://x.example/1", "data": "SGVsbG8="}}}
		}), 400, "attachment.data"},
		{"bad date", mutate(func(d map[string]any) { d["date"] = "yesterday" }), 400, "DocumentReference.date"},
		{"unknown element", mutate(func(d map[string]any) { d["colour"] = "red" }), 400, "DocumentReference.colour"},
		{"replaces unknown", mutate(func(d map[string]any) {
			d["relatesTo"] = []any{map[string]any{"code": "replaces", "target": map[string]any{"reference": "DocumentReference/dnope"}}}
		}), 422, "not a registered document"},
	}
	for _, tc := range cases {
		code, body, _ := w.a.do("POST", "/fhir/DocumentReference", w.tokA, tc.doc, nil)
		if code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.status)
			continue
		}
		outcomeMentions(t, body, tc.element)
	}
	// Another holder may not replace a document.
	id := w.register(t, w.tokA, docJSON("doc-owned", "Patient/"+w.patA, "current", "11506-3", "2024-03-01", "Note"))
	if code, body, _ := w.a.do("POST", "/fhir/DocumentReference", w.tokB, docJSON("doc-owned", "Patient/"+w.patB, "current", "11506-3", "2024-03-01", "Note"), nil); code != 403 {
		t.Fatalf("another holder rewriting a document: %d %s", code, body)
	}
	if code, _, _ := w.a.do("GET", "/fhir/DocumentReference/"+id, w.tokB, nil, nil); code != 200 {
		t.Fatalf("read: %d", code)
	}
	if code, _, _ := w.a.do("GET", "/fhir/DocumentReference/dnope", w.tokB, nil, nil); code != 404 {
		t.Fatalf("read unknown: %d", code)
	}
}
