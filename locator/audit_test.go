package locator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/audit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// auditRun sends requests with known ids and remembers what the client saw, so the audit
// log can be checked against it.
type auditRun struct {
	a    *testAPI
	mu   sync.Mutex
	seen map[string]auditExpect
	n    atomic.Int64
}

type auditExpect struct {
	status int
	euids  []string // persons the answer disclosed; nil: none
	action string
}

func newAuditRun(a *testAPI) *auditRun { return &auditRun{a: a, seen: map[string]auditExpect{}} }

// do sends one request; euids says which persons the answer is expected to disclose when
// it succeeds.
func (r *auditRun) do(method, path, token string, body any, header map[string]string, action string, euids ...string) (int, []byte) {
	id := fmt.Sprintf("audit-test-%d", r.n.Add(1))
	h := map[string]string{HeaderRequestID: id}
	for k, v := range header {
		h[k] = v
	}
	code, data, _ := r.a.do(method, path, token, body, h)
	if code >= 400 {
		euids = nil
	}
	r.mu.Lock()
	r.seen[id] = auditExpect{status: code, euids: euids, action: action}
	r.mu.Unlock()
	return code, data
}

func (a *testAPI) auditList(t *testing.T, q string) AuditList {
	t.Helper()
	code, body, _ := a.do("GET", "/v1/audit?limit=10000&"+q, testAdminToken, nil, nil)
	if code != 200 {
		t.Fatalf("audit list %s: %d %s", q, code, body)
	}
	var l AuditList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// audited counts the requests of a run that must be in the log (all but the 401s).
func audited(seen map[string]auditExpect) int {
	n := 0
	for _, want := range seen {
		if want.status != http.StatusUnauthorized {
			n++
		}
	}
	return n
}

// checkAuditComplete asserts that the log holds exactly one entry per request of the run,
// with the status the client saw and the persons it was answered about, and that the chain
// verifies. Entries of the checker's own audit searches are left out.
func checkAuditComplete(t *testing.T, entries []model.AuditEntry, seen map[string]auditExpect) {
	t.Helper()
	byID := map[string][]model.AuditEntry{}
	for _, e := range entries {
		if e.Action == "audit-search" {
			continue
		}
		byID[e.RequestID] = append(byID[e.RequestID], e)
	}
	for id, want := range seen {
		got := byID[id]
		if want.status == http.StatusUnauthorized {
			// Refused before anyone was authenticated: nothing replicated.
			if len(got) != 0 {
				t.Errorf("request %s (%s, 401) was audited: an unauthenticated request wrote to the replicated log", id, want.action)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("request %s (%s, %d): %d audit entries, want exactly 1", id, want.action, want.status, len(got))
			continue
		}
		e := got[0]
		if e.Status != want.status || e.Action != want.action {
			t.Errorf("request %s: audited as %s %d, the client saw %s %d", id, e.Action, e.Status, want.action, want.status)
		}
		for _, euid := range want.euids {
			if !slices.Contains(e.EUIDs, euid) {
				t.Errorf("request %s (%s): disclosed persons %v lack %s", id, e.Action, e.EUIDs, euid)
			}
		}
		if want.euids == nil && len(e.EUIDs) > 0 {
			t.Errorf("request %s (%s, %d) disclosed nothing but is audited with %v", id, e.Action, e.Status, e.EUIDs)
		}
	}
	for id := range byID {
		if _, ok := seen[id]; !ok {
			t.Errorf("audit entry for request %s that the test never sent", id)
		}
	}
}

// TestAuditCompleteness: a mixed run of successful and refused requests to every audited
// kind of endpoint, many of them concurrent, leaves exactly one entry per request with
// the right persons and outcome, and the chain verifies.
func TestAuditCompleteness(t *testing.T) {
	a := newTestAPI(t)
	tokA, tokB := a.participants()
	run := newAuditRun(a)

	code, body := run.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil, "patient-create")
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	e1 := euidOf(t, body)
	run.seen[fmt.Sprintf("audit-test-%d", run.n.Load())] = auditExpect{status: 201, euids: []string{e1}, action: "patient-create"}
	code, body = run.do("POST", "/fhir/Patient", tokB, patientJSON(sysB, "B-1", "Maggie", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil, "patient-create", e1)
	if code != 201 || euidOf(t, body) != e1 {
		t.Fatalf("same person at B: %d %s", code, body)
	}
	_, body = run.do("POST", "/fhir/Patient", tokB, patientJSON(sysB, "B-2", "Thomas", "Reed", "1990-01-20", "male", "10001", "2125550199"), nil, "patient-create")
	e2 := euidOf(t, body)
	run.seen[fmt.Sprintf("audit-test-%d", run.n.Load())] = auditExpect{status: 201, euids: []string{e2}, action: "patient-create"}
	patA := model.PatientID(sysA + "|A-1")

	// Refused: A may not register in B's identifier system.
	if code, _ := run.do("POST", "/fhir/Patient", tokA, patientJSON(sysB, "B-9", "X", "Y", "1970-01-01", "male", "", ""), nil, "patient-create"); code < 400 {
		t.Fatalf("registration in another's system answered %d", code)
	}
	if code, body := run.do("POST", "/fhir/DocumentReference", tokA, docJSON("doc-1", "Patient/"+patA, "current", "11506-3", "2024-03-01", "Progress note"), nil, "document-create", e1); code != 201 {
		t.Fatalf("document: %d %s", code, body)
	}
	probe := patientJSON(sysA, "x", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "")
	delete(probe, "identifier")
	match := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "resource", "resource": probe}, map[string]any{"name": "onlyCertainMatches", "valueBoolean": true}}}
	type req struct {
		method, path, token string
		body                any
		header              map[string]string
		action              string
		euids               []string
		wantStatus          int
	}
	reqs := []req{
		{"GET", "/fhir/Patient/" + patA, tokB, nil, nil, "patient-read", []string{e1}, 200},
		{"GET", "/fhir/Patient/nosuchpatient", tokB, nil, nil, "patient-read", nil, 404},
		{"GET", "/fhir/Patient?family=Okonjo&birthdate=1958-02-14", tokB, nil, nil, "patient-search", []string{e1}, 200},
		{"GET", "/fhir/Patient", tokB, nil, nil, "patient-search", nil, 400},
		{"POST", "/fhir/Patient/$match", tokB, match, nil, "patient-match", []string{e1}, 200},
		{"GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=" + url.QueryEscape(sysA+"|A-1"), tokB, nil, nil, "patient-pix", []string{e1}, 200},
		{"GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=" + url.QueryEscape(sysA+"|nope"), tokB, nil, nil, "patient-pix", nil, 404},
		{"GET", "/fhir/Person/" + e2, tokA, nil, nil, "person-read", []string{e2}, 200},
		{"GET", "/fhir/DocumentReference?patient=Patient/" + patA, tokB, nil, nil, "document-search", []string{e1}, 200},
		{"GET", "/fhir/DocumentReference", tokB, nil, nil, "document-search", nil, 400},
		{"GET", "/v1/locate?identifier=" + url.QueryEscape(sysA+"|A-1"), tokB, nil, map[string]string{HeaderPurposeOfUse: "TREAT", HeaderOnBehalfOf: "dr-house"}, "locate", []string{e1}, 200},
		{"GET", "/v1/locate?identifier=" + url.QueryEscape(sysA+"|missing"), tokB, nil, nil, "locate", nil, 404},
		{"GET", "/v1/locate?euid=" + e2, "", nil, nil, "locate", nil, 401},
		{"GET", "/v1/locate?euid=" + e2, "rls_wrong", nil, nil, "locate", nil, 401},
		{"GET", "/v1/locate?bogus=1", tokA, nil, nil, "locate", nil, 400},
		{"POST", "/v1/steward/merge", tokA, map[string]string{"from": e2, "into": e1}, nil, "steward-merge", nil, 403},
	}
	// Every kind once, then many concurrent rounds, so that entries share batches.
	const rounds = 12
	var wg sync.WaitGroup
	for round := 0; round < rounds; round++ {
		for _, rq := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body := run.do(rq.method, rq.path, rq.token, rq.body, rq.header, rq.action, rq.euids...)
				if code != rq.wantStatus {
					t.Errorf("%s %s: %d, want %d: %s", rq.method, rq.path, code, rq.wantStatus, body)
				}
			}()
		}
	}
	wg.Wait()
	// Break-the-glass, with the purpose as sent (lower case) recorded upper-cased.
	run.do("GET", "/v1/locate?euid="+e1, tokB, nil, map[string]string{HeaderPurposeOfUse: "etreat", HeaderBreakGlassReason: "unconscious in ED"}, "locate", e1)

	list := a.auditList(t, "")
	checkAuditComplete(t, list.Entries, run.seen)
	if want := audited(run.seen); list.Total != want {
		t.Errorf("%d audit entries, want %d (one per authenticated request)", list.Total, want)
	}

	// Who, for whom, why.
	for _, e := range list.Entries {
		if e.Action == "locate" && e.Status == 200 && e.OnBehalfOf != "" && (e.OnBehalfOf != "dr-house" || e.Purpose != "TREAT" || e.Participant != "hosp-b") {
			t.Errorf("locate on behalf of a user audited as %+v", e)
		}
		if e.Node != "n1" || e.Source == "" || e.Observed.IsZero() || e.Recorded.IsZero() {
			t.Errorf("entry %d lacks node, source or times: %+v", e.Seq, e)
		}
	}
	btg := a.auditList(t, "btg=true")
	if btg.Total != 1 || btg.Entries[0].Purpose != "ETREAT" || btg.Entries[0].BreakGlass != "unconscious in ED" {
		t.Errorf("break-the-glass list: %+v", btg)
	}
	// Accounting of disclosures for e2: its registration and the Person reads only.
	disc := a.auditList(t, "euid="+e2)
	if want := 1 + rounds; disc.Total != want {
		t.Errorf("disclosures of %s: %d, want %d", e2, disc.Total, want)
	}

	// Group commit is visible to the operator.
	_, metrics, _ := a.do("GET", "/metrics", "", nil, nil)
	if !strings.Contains(string(metrics), `rls_audit_entries_total{result="recorded"}`) || !strings.Contains(string(metrics), "rls_audit_commit_entries_count") {
		t.Errorf("no audit metrics in /metrics")
	}

	code, body, _ = a.do("GET", "/v1/audit/verify", testAdminToken, nil, nil)
	var v state.AuditVerification
	json.Unmarshal(body, &v)
	if code != 200 || !v.OK || v.Entries != v.HeadSeq || v.Entries < uint64(audited(run.seen)) {
		t.Fatalf("verify: %d %s", code, body)
	}
}

// TestAuditEventSearch: the FHIR view of the log, for admins only.
func TestAuditEventSearch(t *testing.T) {
	a := newTestAPI(t)
	tokA, tokB := a.participants()
	_, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	euid := euidOf(t, body)
	for i := 0; i < 3; i++ {
		a.do("GET", "/v1/locate?euid="+euid, tokB, nil, map[string]string{HeaderPurposeOfUse: "TREAT", HeaderOnBehalfOf: "nurse-1"})
	}
	a.do("GET", "/v1/locate?euid=nobody", tokB, nil, nil)

	if code, _, _ := a.do("GET", "/fhir/AuditEvent?patient=Person/"+euid, tokA, nil, nil); code != 403 {
		t.Fatalf("a participant read the audit log: %d", code)
	}
	count := func(q string) (int, []byte) {
		t.Helper()
		code, body, _ := a.do("GET", "/fhir/AuditEvent?"+q, testAdminToken, nil, nil)
		if code != 200 {
			t.Fatalf("AuditEvent?%s: %d %s", q, code, body)
		}
		var b struct {
			Total int `json:"total"`
		}
		json.Unmarshal(body, &b)
		return b.Total, body
	}
	if n, body := count("patient=Person/" + euid); n != 4 {
		t.Errorf("patient=Person/%s: %d events, want 4 (registration and 3 locates): %s", euid, n, body)
	}
	if n, _ := count("patient=Patient/" + model.PatientID(sysA+"|A-1")); n != 4 {
		t.Errorf("patient=Patient/…: %d events, want 4", n)
	}
	if n, _ := count("agent=Organization/hosp-b&date=ge" + time.Now().UTC().Format("2006-01-02")); n != 4 {
		t.Errorf("agent=hosp-b today: %d events, want 4", n)
	}
	if n, _ := count("agent=hosp-b&date=lt2000-01-01"); n != 0 {
		t.Errorf("events before 2000: %d", n)
	}
	n, body := count("patient=" + euid + "&agent=hosp-b&_count=1&_offset=1")
	var b struct {
		Entry []struct {
			Resource fhir.AuditEvent `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(body, &b)
	if n != 3 || len(b.Entry) != 1 {
		t.Fatalf("paged search: total %d, %d entries: %s", n, len(b.Entry), body)
	}
	ev := b.Entry[0].Resource
	if ev.Type.Code != "rest" || ev.Action != "E" || ev.Outcome != "0" || ev.Source.Site != "n1" ||
		len(ev.Agent) != 2 || ev.Agent[0].Who.Reference != "Organization/hosp-b" || ev.Agent[1].Who.Display != "nurse-1" ||
		len(ev.PurposeOfUse) != 1 || ev.PurposeOfUse[0].Coding[0].Code != "TREAT" || !strings.Contains(body2s(body), `"reference": "Person/`+euid+`"`) {
		t.Errorf("AuditEvent rendering: %s", body)
	}
	if n, body := count("agent=hosp-b&patient=Person/nobody"); n != 0 {
		t.Errorf("unknown person: %s", body)
	}
	// The refused locate (404) is an event of hosp-b with a failure outcome.
	_, body = count("agent=hosp-b&_count=10")
	if !strings.Contains(string(body), `"outcome": "4"`) {
		t.Errorf("no failure outcome among hosp-b's events: %s", body)
	}
}

func body2s(b []byte) string { return string(b) }

// TestAuditFailureWithholdsTheAnswer: when the audit entry cannot be recorded, the client
// gets 503 and none of the data, and nothing of the request is in the log.
func TestAuditFailureWithholdsTheAnswer(t *testing.T) {
	var failing atomic.Bool
	a := newTestAPIWith(t, func(*Options) func(*Server) {
		return func(s *Server) {
			real := s.commitAudit
			s.audit = audit.NewBatcher(func(ctx context.Context, es []model.AuditEntry) error {
				if failing.Load() {
					return errors.New("raft unavailable (test)")
				}
				return real(ctx, es)
			}, audit.BatcherOptions{Timeout: time.Second})
		}
	})
	tokA, _ := a.participants()
	_, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	euid := euidOf(t, body)
	before := a.auditList(t, "").Total

	failing.Store(true)
	for _, path := range []string{"/v1/locate?euid=" + euid, "/fhir/Patient/" + model.PatientID(sysA+"|A-1"), "/fhir/Person/" + euid} {
		code, body, h := a.do("GET", path, tokA, nil, nil)
		if code != 503 || strings.Contains(string(body), "Okonjo") || strings.Contains(string(body), euid) || h.Get(HeaderNotApplied) != "true" {
			t.Errorf("GET %s without audit: %d %s (%v)", path, code, body, h)
		}
	}
	failing.Store(false)
	if after := a.auditList(t, "").Total; after != before+1 { // +1: the first listing itself
		t.Errorf("log grew from %d to %d entries; only the listing should be there", before, after)
	}
}

func TestForwardingLogsCarryNoQuery(t *testing.T) {
	var buf strings.Builder
	l := redactingLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	u, _ := url.Parse("http://n2:8080/v1/locate?family=Okonjo&birthdate=1958-02-14")
	l.Debug("performing request", "method", "GET", "url", u.String())
	l.Error("request failed", "error", &url.Error{Op: "Get", URL: u.String(), Err: errors.New("EOF")}, "url", u)
	if strings.Contains(buf.String(), "Okonjo") || strings.Contains(buf.String(), "1958") || !strings.Contains(buf.String(), "/v1/locate") {
		t.Fatalf("log: %s", buf.String())
	}
}

// TestAuditSnapshotAndConsent: a snapshot download (the whole state, streamed) is recorded
// before its first byte leaves, and consent directives are audited with their patient.
func TestAuditSnapshotAndConsent(t *testing.T) {
	a := newTestAPI(t)
	tokA, _ := a.participants()
	_, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "S-1", "Ada", "Quist", "1961-03-09", "female", "62704", "2175550100"), nil)
	euid := euidOf(t, body)

	code, snap, _ := a.do("GET", "/v1/cluster/snapshot", testAdminToken, nil, nil)
	if code != 200 || len(snap) == 0 {
		t.Fatalf("snapshot download: %d (%d bytes)", code, len(snap))
	}
	var downloads []model.AuditEntry
	for _, e := range a.auditList(t, "participant=admin").Entries {
		if e.Action == "snapshot-download" {
			downloads = append(downloads, e)
		}
	}
	if len(downloads) != 1 || downloads[0].Status != 200 {
		t.Fatalf("snapshot download entries: %+v", downloads)
	}

	code, body, _ = a.do("POST", "/fhir/Consent", tokA, consentJSON("Patient/"+model.PatientID(sysA+"|S-1"), true, nil, nil), nil)
	if code != 201 {
		t.Fatalf("consent: %d %s", code, body)
	}
	var consents []model.AuditEntry
	for _, e := range a.auditList(t, "euid="+euid).Entries {
		if e.Action == "consent-create" {
			consents = append(consents, e)
		}
	}
	if len(consents) != 1 || consents[0].Status != 201 || !slices.Contains(consents[0].Records, model.PatientID(sysA+"|S-1")) {
		t.Fatalf("consent entries: %+v", consents)
	}
}
