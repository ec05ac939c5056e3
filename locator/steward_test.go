package locator

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rls-hie/rls/raft/model"
)

func (a *testAPI) post(t *testing.T, path string, body any) []byte {
	t.Helper()
	code, data, _ := a.do("POST", path, testAdminToken, body, nil)
	if code != 200 {
		t.Fatalf("POST %s: %d %s", path, code, data)
	}
	return data
}

func (a *testAPI) euidOfRecord(t *testing.T, tok, key string) string {
	t.Helper()
	code, body, _ := a.do("GET", "/fhir/Patient/"+model.PatientID(key), tok, nil, nil)
	if code != 200 {
		t.Fatalf("read %s: %d %s", key, code, body)
	}
	return euidOf(t, body)
}

func (a *testAPI) history(t *testing.T, euid string) string {
	t.Helper()
	code, body, _ := a.do("GET", "/v1/persons/"+euid+"/history", testAdminToken, nil, nil)
	if code != 200 {
		t.Fatalf("history %s: %d %s", euid, code, body)
	}
	return string(body)
}

// TestStewardActionsAndTheirHistory links, unlinks, merges and unmerges, checks each is
// in the history with actor and reason, that later automatic matching respects it, and
// that documents follow the person they belong to.
func TestStewardActionsAndTheirHistory(t *testing.T) {
	w := newDocWorld(t)
	a := w.a
	keyA, keyB, keyC := sysA+"|A-1", sysB+"|B-1", sysB+"|B-2"
	x := w.euid
	w.register(t, w.tokB, docJSON("doc-b", "Patient/"+w.patB, "current", "11506-3", "2025-01-15", "Consult note"))
	found := func(euid string) string {
		return strings.Join(w.search(t, w.tokA, "patient=Person/"+euid), " ")
	}
	if got := found(x); got != "doc-b" {
		t.Fatalf("before unlink, Person/%s finds [%s]", x, got)
	}

	// Unlink B-1: a new person; the document follows it; re-registering does not link back.
	var res StewardResult
	json.Unmarshal(a.post(t, "/v1/steward/unlink", map[string]any{"record": keyB, "reason": "different mother's maiden name"}), &res)
	y := res.EUID
	if y == x || res.From != x {
		t.Fatalf("unlink: %+v", res)
	}
	if got := found(x); got != "" {
		t.Fatalf("after unlink, Person/%s still finds [%s]", x, got)
	}
	if got := found(y); got != "doc-b" {
		t.Fatalf("after unlink, Person/%s finds [%s]", y, got)
	}
	a.do("POST", "/fhir/Patient", w.tokB, patientJSON(sysB, "B-1", "Maggie", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	if got := a.euidOfRecord(t, w.tokB, keyB); got != y {
		t.Fatalf("re-registering the unlinked record moved it to %s", got)
	}
	if h := a.history(t, x); !strings.Contains(h, `"action":"unlinked"`) && !strings.Contains(h, `"action": "unlinked"`) {
		t.Fatalf("history of %s lacks the unlink: %s", x, h)
	}
	if h := a.history(t, y); !strings.Contains(h, "different mother") || !strings.Contains(h, `"actor": "admin"`) {
		t.Fatalf("history of %s lacks the reason or actor: %s", y, h)
	}

	// Link it back: the document is found through X again, and the link holds.
	a.post(t, "/v1/steward/link", map[string]any{"record": keyB, "euid": x, "reason": "confirmed by phone"})
	if got := found(x); got != "doc-b" {
		t.Fatalf("after link, Person/%s finds [%s]", x, got)
	}
	if got := a.euidOfRecord(t, w.tokB, keyB); got != x {
		t.Fatalf("after link the record is on %s", got)
	}

	// Merge C's person into X, then unmerge it.
	z := a.euidOfRecord(t, w.tokB, keyC)
	json.Unmarshal(a.post(t, "/v1/steward/merge", map[string]any{"from": z, "into": x, "reason": "duplicate"}), &res)
	if res.EUID != x || len(res.Records) != 1 || res.Records[0] != keyC {
		t.Fatalf("merge: %+v", res)
	}
	if code, _, _ := a.do("GET", "/fhir/Person/"+z, w.tokA, nil, nil); code != 404 {
		t.Fatalf("merged-away person still readable: %d", code)
	}
	code, body, _ := a.do("GET", "/fhir/Person/"+x, w.tokA, nil, nil)
	var person struct{ Link []any }
	if json.Unmarshal(body, &person); code != 200 || len(person.Link) != 3 {
		t.Fatalf("person after merge: %d %s", code, body)
	}
	json.Unmarshal(a.post(t, "/v1/steward/unmerge", map[string]any{"euid": z, "reason": "merged by mistake"}), &res)
	if res.EUID != z || a.euidOfRecord(t, w.tokB, keyC) != z || a.euidOfRecord(t, w.tokA, keyA) != x {
		t.Fatalf("unmerge: %+v", res)
	}
	for _, euid := range []string{x, z} {
		h := a.history(t, euid)
		if !strings.Contains(h, `"merged"`) || !strings.Contains(h, `"unmerged"`) {
			t.Errorf("history of %s lacks merge/unmerge: %s", euid, h)
		}
	}

	// Refusals.
	for _, tc := range []struct {
		path   string
		body   map[string]any
		status int
	}{
		{"/v1/steward/link", map[string]any{"record": keyB, "euid": "Enope"}, 404},
		{"/v1/steward/link", map[string]any{"record": sysA + "|nobody", "euid": x}, 404},
		{"/v1/steward/link", map[string]any{"record": "nobar", "euid": x}, 400},
		{"/v1/steward/merge", map[string]any{"from": x, "into": x}, 400},
		{"/v1/steward/unmerge", map[string]any{"euid": x}, 409},
		{"/v1/steward/unlink", map[string]any{}, 400},
	} {
		if code, body, _ := a.do("POST", tc.path, testAdminToken, tc.body, nil); code != tc.status {
			t.Errorf("POST %s %v: %d %s, want %d", tc.path, tc.body, code, body, tc.status)
		}
	}
	if code, _, _ := a.do("POST", "/v1/steward/link", w.tokA, map[string]any{"record": keyB, "euid": x}, nil); code != 403 {
		t.Errorf("a participant acting as steward: %d", code)
	}
}

// TestReviewQueueResolution sends records to review (by raising the upper threshold out
// of reach), resolves one by linking and one by separating, and checks that the separation
// survives re-registration under normal thresholds.
func TestReviewQueueResolution(t *testing.T) {
	w := newDocWorld(t)
	a := w.a
	code, body, _ := a.do("GET", "/v1/mpi/config", testAdminToken, nil, nil)
	var cfg map[string]any
	if err := json.Unmarshal(body, &cfg); code != 200 || err != nil {
		t.Fatalf("get config: %d %s", code, body)
	}
	normal := cfg["upper"]
	setUpper := func(upper any) {
		cfg["version"] = cfg["version"].(float64) + 1
		cfg["upper"] = upper
		if code, body, _ := a.do("PUT", "/v1/mpi/config", testAdminToken, cfg, nil); code != 200 {
			t.Fatalf("put config: %d %s", code, body)
		}
	}
	setUpper(999.0)
	// Two records of the known person, now only "probable": each gets a review item.
	for _, mrn := range []string{"A-2", "A-3"} {
		_, body, _ := a.do("POST", "/fhir/Patient", w.tokA, patientJSON(sysA, mrn, "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
		if !strings.Contains(string(body), `"valueCode": "review"`) {
			t.Fatalf("%s was not sent to review: %s", mrn, body)
		}
	}
	code, body, _ = a.do("GET", "/v1/review", testAdminToken, nil, nil)
	var items []struct {
		Seq  uint64 `json:"seq"`
		Item struct {
			Record string `json:"record"`
		} `json:"item"`
	}
	if code != 200 || json.Unmarshal(body, &items) != nil || len(items) != 2 {
		t.Fatalf("review list: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/v1/review/"+strconv.FormatUint(items[0].Seq, 10), testAdminToken, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"explanation"`) {
		t.Fatalf("review show: %d %s", code, body)
	}
	// It names every record of each candidate person (ids only), and its audit entry names
	// the record, the candidate records and their persons, whose values it showed.
	var shown struct {
		RecordPatient string `json:"record_patient"`
		Candidates    []struct {
			EUID          string   `json:"euid"`
			Patient       string   `json:"patient"`
			PersonRecords []string `json:"person_records"`
		} `json:"explained_candidates"`
	}
	if err := json.Unmarshal(body, &shown); err != nil || len(shown.Candidates) != 1 {
		t.Fatalf("review show: %v %s", err, body)
	}
	if c := shown.Candidates[0]; c.EUID != w.euid || !slices.Contains(c.PersonRecords, c.Patient) {
		t.Fatalf("candidate: %+v, want person %s with its records", c, w.euid)
	}
	var read *model.AuditEntry
	for _, e := range a.auditList(t, "participant=admin").Entries {
		if e.Action == "review-read" {
			read = &e
		}
	}
	if read == nil || !slices.Contains(read.EUIDs, w.euid) || !slices.Contains(read.Records, shown.RecordPatient) || !slices.Contains(read.Records, shown.Candidates[0].Patient) {
		t.Fatalf("the review-read audit entry names %+v", read)
	}
	a.post(t, "/v1/review/"+strconv.FormatUint(items[0].Seq, 10)+"/resolve", map[string]any{"decision": "link", "reason": "same person"})
	a.post(t, "/v1/review/"+strconv.FormatUint(items[1].Seq, 10)+"/resolve", map[string]any{"decision": "separate", "reason": "twin sister"})
	if got := a.euidOfRecord(t, w.tokA, items[0].Item.Record); got != w.euid {
		t.Fatalf("linked review item is on %s, want %s", got, w.euid)
	}
	separated := a.euidOfRecord(t, w.tokA, items[1].Item.Record)
	if separated == w.euid {
		t.Fatal("separated review item was linked")
	}
	if code, _, _ := a.do("POST", "/v1/review/"+strconv.FormatUint(items[0].Seq, 10)+"/resolve", testAdminToken, map[string]any{"decision": "link"}, nil); code != 409 {
		t.Fatalf("resolving twice: %d", code)
	}
	if code, _, _ := a.do("POST", "/v1/review/999/resolve", testAdminToken, map[string]any{"decision": "link"}, nil); code != 404 {
		t.Fatalf("resolving a missing item: %d", code)
	}
	code, body, _ = a.do("GET", "/v1/review?status=open", testAdminToken, nil, nil)
	if code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("open items after resolving: %s", body)
	}
	// Back to normal thresholds: re-registering the separated record does not link it.
	setUpper(normal)
	_, body, _ = a.do("POST", "/fhir/Patient", w.tokA, patientJSON(sysA, strings.TrimPrefix(items[1].Item.Record, sysA+"|"), "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	if got := euidOf(t, body); got != separated {
		t.Fatalf("re-registration linked the separated record to %s: %s", got, body)
	}
	if h := a.history(t, w.euid); !strings.Contains(h, "review-resolved") {
		t.Fatalf("history lacks the resolution: %s", h)
	}
}
