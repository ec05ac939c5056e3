package locator

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/rls-hie/rls/locator/fhir"
)

// submission is an MHD ITI-65 Provide Document Bundle: a SubmissionSet List and the
// DocumentReferences it lists, linked by urn:uuid fullUrls.
func submission(setID, subject string, docs ...map[string]any) map[string]any {
	var items, entries []any
	for i, d := range docs {
		full := "urn:uuid:00000000-0000-0000-0000-00000000000" + string(rune('1'+i))
		items = append(items, map[string]any{"item": map[string]any{"reference": full}})
		entries = append(entries, map[string]any{"fullUrl": full, "resource": d, "request": map[string]any{"method": "POST", "url": "DocumentReference"}})
	}
	list := map[string]any{
		"resourceType": "List",
		"meta":         map[string]any{"profile": []string{"https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Minimal.SubmissionSet"}},
		"extension":    []any{map[string]any{"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId", "valueIdentifier": map[string]any{"value": "urn:oid:1.2.3.4"}}},
		"identifier":   []any{map[string]any{"use": "official", "system": "urn:ietf:rfc:3986", "value": setID}},
		"status":       "current", "mode": "working",
		"code":    map[string]any{"coding": []any{map[string]any{"system": mhdListTypesSystem, "code": submissionSetCode}}},
		"subject": map[string]any{"reference": subject},
		"date":    "2026-01-10T10:00:00Z",
		"entry":   items,
	}
	entries = append([]any{map[string]any{"fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000000", "resource": list, "request": map[string]any{"method": "POST", "url": "List"}}}, entries...)
	return map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries}
}

func TestMHDProvideAndFind(t *testing.T) {
	w := newDocWorld(t)
	a := w.a
	d1 := docJSON("urn:oid:1.2.3.4.7.1", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "Summary")
	d2 := docJSON("urn:oid:1.2.3.4.7.2", "Patient/"+w.patA, "current", "11506-3", "2026-01-10", "Progress note")
	code, body, _ := a.do("POST", "/fhir", w.tokA, submission("urn:oid:1.2.3.4.7.100", "Patient/"+w.patA, d1, d2), nil)
	if code != 200 {
		t.Fatalf("ITI-65: %d %s", code, body)
	}
	var resp struct {
		Type  string `json:"type"`
		Entry []struct {
			Response fhir.BundleResponse `json:"response"`
		} `json:"entry"`
	}
	json.Unmarshal(body, &resp)
	if resp.Type != "transaction-response" || len(resp.Entry) != 3 {
		t.Fatalf("response %s", body)
	}
	for _, e := range resp.Entry {
		if e.Response.Status != "201 Created" || !strings.HasPrefix(e.Response.Location, a.url+"/fhir/") {
			t.Fatalf("entry response %+v", e.Response)
		}
		if code, got, _ := a.do("GET", e.Response.Location, w.tokA, nil, nil); code != 200 {
			t.Fatalf("%s does not resolve: %d %s", e.Response.Location, code, got)
		}
	}
	if got := w.search(t, w.tokA, "patient="+w.patA); len(got) != 2 {
		t.Fatalf("ITI-67 finds %v, want the two documents", got)
	}
	// ITI-66 finds the SubmissionSet, its items pointing at the registered documents.
	code, body, _ = a.do("GET", "/fhir/List?patient="+w.patA+"&code=submissionset&status=current", w.tokA, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"total": 1`) || !strings.Contains(string(body), "DocumentReference/d") || strings.Contains(string(body), "urn:uuid") {
		t.Fatalf("ITI-66: %d %s", code, body)
	}
	if code, body, _ = a.do("GET", "/fhir/List?patient="+w.patC, w.tokA, nil, nil); code != 200 || !strings.Contains(string(body), `"total": 0`) {
		t.Fatalf("ITI-66 for another patient: %d %s", code, body)
	}

	// One bad entry: nothing of the bundle is written.
	d3 := docJSON("urn:oid:1.2.3.4.7.3", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "Good")
	d4 := docJSON("urn:oid:1.2.3.4.7.4", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "Bad")
	d4["date"] = "2026-06-01"
	code, body, _ = a.do("POST", "/fhir", w.tokA, submission("urn:oid:1.2.3.4.7.101", "Patient/"+w.patA, d3, d4), nil)
	expectOutcome(t, "bundle with a bad entry", code, body, 400, "Bundle.entry[2].resource.date")
	if got := w.search(t, w.tokA, "patient="+w.patA); len(got) != 2 {
		t.Fatalf("after a refused bundle, ITI-67 finds %v", got)
	}
	if _, body, _ = a.do("GET", "/fhir/List?patient="+w.patA, w.tokA, nil, nil); !strings.Contains(string(body), `"total": 1`) {
		t.Fatalf("a refused bundle left a List: %s", body)
	}
	// Binary content, an unlisted document: refused, nothing written.
	bin := submission("urn:oid:1.2.3.4.7.103", "Patient/"+w.patA, docJSON("urn:oid:1.2.3.4.7.6", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "x"))
	bin["entry"] = append(bin["entry"].([]any), map[string]any{"fullUrl": "urn:uuid:b", "resource": map[string]any{"resourceType": "Binary", "contentType": "text/plain", "data": "aGk="}, "request": map[string]any{"method": "POST", "url": "Binary"}})
	code, body, _ = a.do("POST", "/fhir", w.tokA, bin, nil)
	expectOutcome(t, "bundle with Binary", code, body, 422, "Bundle.entry[2].resource")
	unlisted := submission("urn:oid:1.2.3.4.7.104", "Patient/"+w.patA, docJSON("urn:oid:1.2.3.4.7.7", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "x"))
	unlisted["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["entry"] = []any{}
	code, body, _ = a.do("POST", "/fhir", w.tokA, unlisted, nil)
	expectOutcome(t, "unlisted DocumentReference", code, body, 400, "Bundle.entry[0].resource.entry")
	if got := w.search(t, w.tokA, "patient="+w.patA); len(got) != 2 {
		t.Fatalf("refused bundles wrote documents: %v", got)
	}
}

func TestITI67CreationAndInclude(t *testing.T) {
	w := newDocWorld(t)
	w.register(t, w.tokA, docJSON("urn:oid:1.2.3.4.8.1", "Patient/"+w.patA, "current", "34133-9", "2025-03-01", "Old"))
	w.register(t, w.tokA, docJSON("urn:oid:1.2.3.4.8.2", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "New"))
	if got := w.search(t, w.tokA, "patient="+w.patA+"&creation=ge2026-01-01"); len(got) != 1 || got[0] != "urn:oid:1.2.3.4.8.2" {
		t.Fatalf("creation=ge2026-01-01 finds %v", got)
	}
	code, body, _ := w.a.do("GET", "/fhir/DocumentReference?patient="+w.patA+"&_include=DocumentReference:subject", w.tokA, nil, nil)
	if code != 200 {
		t.Fatalf("_include: %d %s", code, body)
	}
	var b fhir.Bundle
	json.Unmarshal(body, &b)
	modes := map[string]int{}
	for _, e := range b.Entry {
		modes[e.Search.Mode]++
		if e.Search.Mode == "include" && !strings.HasSuffix(e.FullURL, "/Patient/"+w.patA) {
			t.Errorf("included %s", e.FullURL)
		}
	}
	if modes["match"] != 2 || modes["include"] != 1 || b.Total != 2 {
		t.Fatalf("_include: modes %v total %d", modes, b.Total)
	}
	code, body, _ = w.a.do("GET", "/fhir/DocumentReference?patient="+w.patA+"&_include=DocumentReference:author", w.tokA, nil, nil)
	expectOutcome(t, "_include of author", code, body, 400, "_include")
}

// TestITI67Related: ITI-67's related parameter finds documents by context.related, as a
// reference (the encounter) or, with :identifier, by the related record's identifier (an
// order number, XDS referenceIdList), and a document related to nothing is not found.
func TestITI67Related(t *testing.T) {
	w := newDocWorld(t)
	related := func(d map[string]any, refs ...map[string]any) map[string]any {
		rel := make([]any, len(refs))
		for i, r := range refs {
			rel[i] = r
		}
		d["context"].(map[string]any)["related"] = rel
		return d
	}
	w.register(t, w.tokA, related(docJSON("urn:oid:1.2.3.4.8.11", "Patient/"+w.patA, "current", "34133-9", "2026-01-10", "Discharge"),
		map[string]any{"reference": "Encounter/enc-7"},
		map[string]any{"identifier": map[string]any{"system": "urn:oid:1.2.3.4.55", "value": "ORD-881"}}))
	w.register(t, w.tokA, related(docJSON("urn:oid:1.2.3.4.8.12", "Patient/"+w.patA, "current", "34133-9", "2026-01-11", "Lab"),
		map[string]any{"reference": "Encounter/enc-8"}))
	w.register(t, w.tokA, docJSON("urn:oid:1.2.3.4.8.13", "Patient/"+w.patA, "current", "34133-9", "2026-01-12", "Unrelated"))
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"related=Encounter/enc-7", []string{"urn:oid:1.2.3.4.8.11"}},
		{"related=Encounter/enc-7,Encounter/enc-8", []string{"urn:oid:1.2.3.4.8.11", "urn:oid:1.2.3.4.8.12"}},
		{"related:identifier=urn:oid:1.2.3.4.55|ORD-881", []string{"urn:oid:1.2.3.4.8.11"}},
		{"related:identifier=ORD-881", []string{"urn:oid:1.2.3.4.8.11"}},
		{"related:identifier=urn:oid:9.9|ORD-881", nil},
		{"related=Encounter/enc-9", nil},
	} {
		got := w.search(t, w.tokA, "patient="+w.patA+"&"+c.query)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s finds %v, want %v", c.query, got, c.want)
		}
	}
	bad := related(docJSON("urn:oid:1.2.3.4.8.14", "Patient/"+w.patA, "current", "34133-9", "2026-01-12", "Bad"), map[string]any{"reference": strings.Repeat("x", 3000)})
	code, body, _ := w.a.do("POST", "/fhir/DocumentReference", w.tokA, bad, nil)
	expectOutcome(t, "an oversized related reference", code, body, 400, "DocumentReference.context.related[0].reference")
}
