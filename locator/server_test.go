package locator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/rafttest"
)

const testAdminToken = "rls_test_admin"

type testAPI struct {
	t    testing.TB
	url  string
	node *raft.Node
}

// newTestAPI starts a single bootstrapped node and its API on loopback.
func newTestAPI(t *testing.T, options ...func(*Options)) *testAPI {
	t.Helper()
	return newTestAPIWith(t, func(o *Options) func(*Server) {
		for _, set := range options {
			set(o)
		}
		return nil
	})
}

// newTestAPIWith is newTestAPI with a hook that may change the options before the server
// is built and the server before it serves.
func newTestAPIWith(t testing.TB, adjust func(*Options) func(*Server)) *testAPI {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	reg := prometheus.NewRegistry()
	node := rafttest.Start(t, rafttest.Options{HTTPAddr: "http://" + srv.Listener.Addr().String(), AdminTokenHash: TokenHash(testAdminToken), Registerer: reg})
	// The per-address limits would count every test's deliberate refusals from loopback
	// together; TestEdgeLimits turns them on.
	opts := Options{Node: node.Node, Registry: reg, TempDir: t.TempDir(), MaxBodyBytes: 64 << 10, AddressRateLimit: -1, AuthFailureRate: -1}
	var after func(*Server)
	if adjust != nil {
		after = adjust(&opts)
	}
	api := New(opts)
	if after != nil {
		after(api)
	}
	srv.Config.Handler = api.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return &testAPI{t: t, url: srv.URL, node: node.Node}
}

func (a *testAPI) do(method, path, token string, body any, header map[string]string) (int, []byte, http.Header) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			r = strings.NewReader(b)
		default:
			data, _ := json.Marshal(b)
			r = bytes.NewReader(data)
		}
	}
	target := a.url + path
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		target = path // a link rls wrote
	}
	req, _ := http.NewRequest(method, target, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// Every query of patient data needs a purpose of use; tests query for treatment unless
	// they say otherwise (an empty value in header sends none).
	req.Header.Set(HeaderPurposeOfUse, "TREAT")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	// Answers are compact JSON unless asked for with _pretty=true (TestJSONIsCompactUnlessPretty);
	// the tests read them indented, as a person would.
	if strings.Contains(resp.Header.Get("Content-Type"), "json") {
		var indented bytes.Buffer
		if json.Indent(&indented, data, "", "  ") == nil {
			data = indented.Bytes()
		}
	}
	return resp.StatusCode, data, resp.Header
}

// TestJSONIsCompactUnlessPretty: FHIR answers are compact JSON; _pretty=true indents them,
// any other value is refused, and the parameter reaches no handler.
func TestJSONIsCompactUnlessPretty(t *testing.T) {
	a := newTestAPI(t)
	tokA, _ := a.participants()
	raw := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", a.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tokA)
		req.Header.Set(HeaderPurposeOfUse, "TREAT")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := raw("/fhir/Organization/hosp-a")
	if code != 200 || strings.Contains(body, "\n ") || strings.Contains(body, `": `) || !strings.Contains(body, `"resourceType":"Organization"`) {
		t.Fatalf("default answer is not compact: %d %q", code, body)
	}
	code, body = raw("/fhir/Organization/hosp-a?_pretty=true")
	if code != 200 || !strings.Contains(body, "{\n  \"resourceType\": \"Organization\"") {
		t.Fatalf("_pretty=true answer is not indented: %d %q", code, body)
	}
	code, body = raw("/fhir/Patient?family=Nobody&given=Ann&_pretty=false")
	if code != 200 || strings.Contains(body, `": `) {
		t.Fatalf("_pretty=false on a search: %d %q", code, body)
	}
	if code, body = raw("/fhir/Organization/hosp-a?_pretty=yes"); code != 400 || !strings.Contains(body, "_pretty") {
		t.Fatalf("_pretty=yes: %d %s", code, body)
	}
}

func org(id, system string) fhir.Organization {
	p := model.Participant{ID: id, Name: "Org " + id, Kind: model.KindPractice, Role: model.RoleParticipant, Active: true, IdentifierSystem: system, Endpoint: "https://" + id + ".example/fhir", Version: 1}
	o := toOrganization(p)
	o.Meta = nil
	return o
}

func tokenOf(t testing.TB, body []byte) string {
	t.Helper()
	var o fhir.Organization
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatal(err)
	}
	for _, e := range o.Extension {
		if e.URL == fhir.ParticipantTokenURL {
			return e.ValueString
		}
	}
	t.Fatalf("no token in %s", body)
	return ""
}

func outcomeMentions(t *testing.T, body []byte, want string) {
	t.Helper()
	var oo fhir.OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome: %s", body)
	}
	if !strings.Contains(string(body), want) {
		t.Fatalf("OperationOutcome %s does not mention %q", body, want)
	}
}

func TestOrganizationLifecycle(t *testing.T) {
	a := newTestAPI(t)
	code, body, h := a.do("POST", "/fhir/Organization", testAdminToken, org("clinic-1", "urn:oid:1.2.3"), nil)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	if h.Get("Location") != a.url+"/fhir/Organization/clinic-1/_history/1" || h.Get("ETag") != `W/"1"` || h.Get(HeaderRaftIndex) == "" {
		t.Fatalf("create headers: %v", h)
	}
	token := tokenOf(t, body)
	if !strings.HasPrefix(token, "rls_") {
		t.Fatalf("token %q", token)
	}

	// The participant's own token reads, and its answer never carries a token again.
	code, body, _ = a.do("GET", "/fhir/Organization/clinic-1", token, nil, nil)
	if code != 200 || strings.Contains(string(body), fhir.ParticipantTokenURL) || strings.Contains(string(body), "token_hash") {
		t.Fatalf("read: %d %s", code, body)
	}
	var got fhir.Organization
	json.Unmarshal(body, &got)
	p, err := fromOrganization(got)
	if err != nil || p.Endpoint != "https://clinic-1.example/fhir" || p.IdentifierSystem != "urn:oid:1.2.3" || p.Kind != model.KindPractice {
		t.Fatalf("round trip: %+v %v", p, err)
	}

	// Update with the current version, then with a stale one.
	changed := org("clinic-1", "urn:oid:1.2.4")
	changed.Name = "Renamed clinic"
	code, body, h = a.do("PUT", "/fhir/Organization/clinic-1", testAdminToken, changed, map[string]string{"If-Match": `W/"1"`})
	if code != 200 || h.Get("ETag") != `W/"2"` || !strings.Contains(string(body), "Renamed clinic") {
		t.Fatalf("update: %d %s %v", code, body, h)
	}
	code, body, _ = a.do("PUT", "/fhir/Organization/clinic-1", testAdminToken, changed, map[string]string{"If-Match": `W/"1"`})
	if code != 412 {
		t.Fatalf("stale update: %d %s", code, body)
	}
	outcomeMentions(t, body, "version conflict")
	code, body, _ = a.do("PUT", "/fhir/Organization/other", testAdminToken, changed, nil)
	if code != 400 {
		t.Fatalf("id mismatch: %d %s", code, body)
	}
	outcomeMentions(t, body, "Organization.id")

	// Disable: the token stops working. Enable: it works again. Rotate: only the new one works.
	if code, body, _ = a.do("POST", "/fhir/Organization/clinic-1/$disable", testAdminToken, nil, nil); code != 200 {
		t.Fatalf("disable: %d %s", code, body)
	}
	// 401 as for a revoked token: a disabled participant's credentials are not valid.
	if code, body, _ = a.do("GET", "/fhir/Organization/clinic-1", token, nil, nil); code != 401 {
		t.Fatalf("disabled participant read: %d %s", code, body)
	}
	outcomeMentions(t, body, "disabled")
	if code, _, _ = a.do("POST", "/fhir/Organization/clinic-1/$enable", testAdminToken, nil, nil); code != 200 {
		t.Fatalf("enable: %d", code)
	}
	if code, _, _ = a.do("GET", "/fhir/Organization/clinic-1", token, nil, nil); code != 200 {
		t.Fatalf("re-enabled read: %d", code)
	}
	code, body, _ = a.do("POST", "/fhir/Organization/clinic-1/$rotate-token", testAdminToken, nil, nil)
	if code != 200 {
		t.Fatalf("rotate: %d %s", code, body)
	}
	newToken := tokenOf(t, body)
	if code, _, _ = a.do("GET", "/fhir/Organization/clinic-1", token, nil, nil); code != 401 {
		t.Fatalf("old token after rotation: %d", code)
	}
	if code, _, _ = a.do("GET", "/fhir/Organization/clinic-1", newToken, nil, nil); code != 200 {
		t.Fatalf("new token: %d", code)
	}
	if code, body, _ = a.do("POST", "/fhir/Organization/clinic-1/$explode", testAdminToken, nil, nil); code != 404 {
		t.Fatalf("unknown operation: %d %s", code, body)
	}
}

func TestSearchFiltersAndPages(t *testing.T) {
	a := newTestAPI(t)
	for i := 0; i < 5; i++ {
		id := "org-" + strconv.Itoa(i)
		if code, body, _ := a.do("POST", "/fhir/Organization", testAdminToken, org(id, "urn:oid:9."+strconv.Itoa(i)), nil); code != 201 {
			t.Fatalf("create %s: %d %s", id, code, body)
		}
	}
	search := func(q string) fhir.Bundle {
		t.Helper()
		code, body, _ := a.do("GET", "/fhir/Organization?"+q, testAdminToken, nil, nil)
		if code != 200 {
			t.Fatalf("search %s: %d %s", q, code, body)
		}
		var b fhir.Bundle
		json.Unmarshal(body, &b)
		return b
	}
	if b := search("type=practice"); b.Total != 5 {
		t.Fatalf("type=practice: %d", b.Total)
	}
	if b := search("identifier=urn:ietf:rfc:3986|urn:oid:9.3"); b.Total != 1 {
		t.Fatalf("identifier: %d", b.Total)
	}
	if b := search("name=ORG%20ORG-2"); b.Total != 1 {
		t.Fatalf("name: %d", b.Total)
	}
	b := search("_count=2")
	if b.Total != 6 || len(b.Entry) != 2 {
		t.Fatalf("page 1: total %d, %d entries", b.Total, len(b.Entry))
	}
	var next string
	for _, l := range b.Link {
		if l.Relation == "next" {
			next = l.URL
		}
	}
	if !strings.Contains(next, "_offset=2") {
		t.Fatalf("next link %q", next)
	}
	code, body, _ := a.do("GET", "/fhir/Organization?colour=blue", testAdminToken, nil, nil)
	if code != 400 {
		t.Fatalf("unknown parameter: %d", code)
	}
	outcomeMentions(t, body, "colour")
	code, body, _ = a.do("GET", "/fhir/Organization?_count=5000", testAdminToken, nil, nil)
	if code != 400 {
		t.Fatalf("oversized page: %d %s", code, body)
	}
}

func TestAuthenticationRolesAndErrors(t *testing.T) {
	a := newTestAPI(t)
	code, body, h := a.do("GET", "/fhir/Organization", "", nil, nil)
	if code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %v", code, h)
	}
	outcomeMentions(t, body, "bearer token")
	if code, _, _ = a.do("GET", "/fhir/Organization", "rls_nope", nil, nil); code != 401 {
		t.Fatalf("unknown token: %d", code)
	}
	_, body, _ = a.do("POST", "/fhir/Organization", testAdminToken, org("lab-1", "urn:oid:7"), nil)
	token := tokenOf(t, body)
	code, body, _ = a.do("POST", "/fhir/Organization", token, org("lab-2", "urn:oid:8"), nil)
	if code != 403 {
		t.Fatalf("participant creating a participant: %d", code)
	}
	outcomeMentions(t, body, "admin role")
	if code, _, _ = a.do("GET", "/v1/cluster/status", token, nil, nil); code != 403 {
		t.Fatalf("participant reading cluster status: %d", code)
	}
	code, body, _ = a.do("POST", "/fhir/Organization/admin/$disable", testAdminToken, nil, nil)
	if code != 422 {
		t.Fatalf("disabling the last admin: %d %s", code, body)
	}
	outcomeMentions(t, body, "no active admin")
	code, body, _ = a.do("POST", "/fhir/Organization", testAdminToken, `{"resourceType":"Organization","id":"x","name":"`+strings.Repeat("y", 70<<10)+`"}`, nil)
	if code != 413 {
		t.Fatalf("oversized body: %d", code)
	}
	outcomeMentions(t, body, "larger than")
	code, body, _ = a.do("GET", "/nowhere", "", nil, nil)
	if code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
	outcomeMentions(t, body, "no such endpoint")
	if code, _, _ = a.do("DELETE", "/fhir/Organization", testAdminToken, nil, nil); code != 405 && code != 404 {
		t.Fatalf("wrong method: %d", code)
	}
}

func TestPublicEndpointsAndNodeHeaders(t *testing.T) {
	a := newTestAPI(t)
	code, body, h := a.do("GET", "/v1/health", "", nil, nil)
	if code != 200 || !strings.Contains(string(body), `"status": "ok"`) {
		t.Fatalf("health: %d %s", code, body)
	}
	if h.Get(HeaderNode) != "n1" {
		t.Fatalf("node header %q", h.Get(HeaderNode))
	}
	if _, err := strconv.ParseUint(h.Get(HeaderAppliedIndex), 10, 64); err != nil {
		t.Fatalf("applied index header %q", h.Get(HeaderAppliedIndex))
	}
	for _, mode := range []string{"default", "strong", "stale"} {
		code, body, h := a.do("GET", "/fhir/Organization?consistency="+mode, testAdminToken, nil, nil)
		if code != 200 {
			t.Fatalf("%s read: %d %s", mode, code, body)
		}
		if (mode == "stale") != (h.Get(HeaderLastContact) != "") {
			t.Fatalf("%s read: last-contact header %q", mode, h.Get(HeaderLastContact))
		}
	}
	code, body, _ = a.do("GET", "/metrics", "", nil, nil)
	if code != 200 || !strings.Contains(string(body), `rls_http_requests_total{code="200",method="GET",route="/fhir/Organization"}`) || !strings.Contains(string(body), "rls_fsm_applied_index") {
		t.Fatalf("metrics lack HTTP or Raft series: %d", code)
	}
	code, body, _ = a.do("GET", "/v1/cluster/state-hash", testAdminToken, nil, nil)
	var sh StateHash
	if code != 200 || json.Unmarshal(body, &sh) != nil || len(sh.Hash) != 64 {
		t.Fatalf("state hash: %d %s", code, body)
	}
}

func TestSnapshotRoundTripOverHTTP(t *testing.T) {
	a := newTestAPI(t)
	a.do("POST", "/fhir/Organization", testAdminToken, org("keep-1", "urn:oid:5.1"), nil)
	code, snapshot, h := a.do("GET", "/v1/cluster/snapshot", testAdminToken, nil, nil)
	if code != 200 || h.Get("X-Rls-Snapshot-Index") == "" {
		t.Fatalf("save: %d", code)
	}
	_, body, _ := a.do("GET", "/v1/cluster/state-hash", testAdminToken, nil, nil)
	var want StateHash
	json.Unmarshal(body, &want)
	a.do("POST", "/fhir/Organization", testAdminToken, org("lost-1", "urn:oid:5.2"), nil)

	if code, body, _ = a.do("POST", "/v1/cluster/restore", testAdminToken, "not a snapshot", nil); code != 400 {
		t.Fatalf("garbage restore: %d %s", code, body)
	}
	if code, body, _ = a.do("POST", "/v1/cluster/restore", testAdminToken, string(snapshot), nil); code != 200 {
		t.Fatalf("restore: %d %s", code, body)
	}
	// The restored state is the snapshot's, to which the restore's own audit entry is
	// appended: the log ends with the download (recorded before the snapshot was taken)
	// and then the restore, and its chain verifies.
	entries := a.auditList(t, "").Entries
	if n := len(entries); n < 2 || entries[n-2].Action != "snapshot-download" || entries[n-1].Action != "snapshot-restore" || entries[n-1].Status != 200 {
		t.Fatalf("audit log after restore ends with %+v", entries[max(0, len(entries)-2):])
	}
	if code, body, _ := a.do("GET", "/v1/audit/verify", testAdminToken, nil, nil); code != 200 || !strings.Contains(string(body), `"ok": true`) {
		t.Fatalf("audit chain after restore: %d %s", code, body)
	}
	if want.Hash == "" {
		t.Fatal("no state hash before the restore")
	}
	if code, _, _ = a.do("GET", "/fhir/Organization/lost-1", testAdminToken, nil, nil); code != 404 {
		t.Fatalf("participant added after the snapshot survived the restore: %d", code)
	}
}

func TestMatchConfigurationEndpoints(t *testing.T) {
	a := newTestAPI(t)
	code, body, _ := a.do("GET", "/v1/mpi/config", testAdminToken, nil, nil)
	var cfg struct {
		Version uint64  `json:"version"`
		Upper   float64 `json:"upper"`
		Fields  []any   `json:"fields"`
	}
	if code != 200 || json.Unmarshal(body, &cfg) != nil || cfg.Upper == 0 || len(cfg.Fields) == 0 {
		t.Fatalf("config: %d %s", code, body)
	}
	code, body, _ = a.do("POST", "/v1/mpi/train", testAdminToken, nil, nil)
	if code != 422 {
		t.Fatalf("train on an empty cluster: %d %s", code, body)
	}
	outcomeMentions(t, body, "training needs records")
	code, body, _ = a.do("GET", "/v1/mpi/explain?a=urn:oid:1|A&b=urn:oid:1|B", testAdminToken, nil, nil)
	if code != 404 {
		t.Fatalf("explain unknown records: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/v1/mpi/explain?a=nobar&b=urn:oid:1|B", testAdminToken, nil, nil)
	if code != 400 {
		t.Fatalf("explain malformed identifier: %d %s", code, body)
	}
	outcomeMentions(t, body, "system|value")
}
