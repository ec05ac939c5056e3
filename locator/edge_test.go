package locator

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/rls-hie/rls/locator/nodeauth"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func auditHead(t *testing.T, a *testAPI) uint64 {
	t.Helper()
	var seq uint64
	if err := a.node.SyncLocal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.node.State().View(func(tx *state.Tx) error { seq, _ = tx.AuditHead(); return nil }); err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestUnauthenticatedRequestsWriteNothing: refused credentials, bodies refused before
// authentication and headers of any size leave no audit entry (nothing is replicated); they
// are counted and logged, the log bounded.
func TestUnauthenticatedRequestsWriteNothing(t *testing.T) {
	logs := &syncBuffer{}
	a := newTestAPI(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	tokA, _ := a.participants()
	code, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "E-1", "Ada", "Quill", "1961-07-04", "female", "", ""), nil)
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	before := auditHead(t, a)
	huge := strings.Repeat("d", 60<<10)
	for i := range 20 {
		token := ""
		if i%2 == 1 {
			token = "rls_not_a_token"
		}
		code, _, _ := a.do("GET", "/v1/locate?identifier="+sysA+"|E-1", token, nil, map[string]string{HeaderOnBehalfOf: huge, HeaderBreakGlassReason: huge, HeaderRequestID: huge})
		if code != 401 {
			t.Fatalf("unauthenticated locate: %d", code)
		}
		code, _, _ = a.do("POST", "/fhir/Patient", token, strings.Repeat("x", 70<<10), map[string]string{HeaderOnBehalfOf: huge})
		if code != 413 && code != 401 {
			t.Fatalf("unauthenticated oversized registration: %d", code)
		}
	}
	if after := auditHead(t, a); after != before {
		t.Fatalf("unauthenticated requests appended %d audit entries", after-before)
	}
	_, metrics, _ := a.do("GET", "/metrics", "", nil, nil)
	if !strings.Contains(string(metrics), `rls_http_refused_total{reason="unauthenticated"} 20`) {
		t.Errorf("refusals not counted:\n%s", grepLines(string(metrics), "rls_http_refused"))
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 2048 {
			t.Fatalf("a log line of %d bytes: %.200s", len(line), line)
		}
		if strings.Contains(line, "rls_not_a_token") || strings.Contains(line, "dddddddd") {
			t.Fatalf("a log line carries what the caller sent: %.200s", line)
		}
	}

	// An authenticated caller naming an outsized user is refused, and the refusal audited
	// with the name cut to its bound.
	code, body, _ = a.do("GET", "/v1/locate?identifier="+sysA+"|E-1", tokA, nil, map[string]string{HeaderOnBehalfOf: huge})
	expectOutcome(t, "on-behalf-of of 60 KB", code, body, 400, HeaderOnBehalfOf)
	l := a.auditList(t, "participant=hosp-a")
	last := l.Entries[len(l.Entries)-1]
	if last.Status != 400 || len(last.OnBehalfOf) > model.MaxOnBehalfOfLength*4 || last.OnBehalfOf == "" {
		t.Errorf("refused request audited as %d with on-behalf-of of %d bytes", last.Status, len(last.OnBehalfOf))
	}

	// A path of 100 KB is logged cut.
	a.do("GET", "/fhir/Patient/"+strings.Repeat("p", 100<<10), tokA, nil, nil)
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 2048 {
			t.Fatalf("an access log line of %d bytes", len(line))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestEdgeLimits: the per-address limits refuse before authentication. Requests come from
// addresses of their own (the test's readiness probes from loopback do not count).
func TestEdgeLimits(t *testing.T) {
	var srv *Server
	a := newTestAPIWith(t, func(o *Options) func(*Server) {
		o.AddressRateLimit, o.AddressRateBurst = 0.001, 10
		o.AuthFailureRate, o.AuthFailureBurst = 0.001, 3
		return func(s *Server) { srv = s }
	})
	tokA, _ := a.participants()
	from := func(addr, token string) (int, string, http.Header) {
		req := httptest.NewRequest("GET", "/v1/locate?identifier="+url.QueryEscape(sysA+"|1"), nil)
		req.RemoteAddr = addr
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(HeaderPurposeOfUse, "TREAT")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String(), rec.Header()
	}
	for range 3 {
		if code, body, _ := from("198.51.100.7:4000", "rls_bad"); code != 401 {
			t.Fatalf("bad token: %d %s", code, body)
		}
	}
	// The address has used up its failed authentications: refused before authentication,
	// valid token or not; another address is not affected.
	code, body, h := from("198.51.100.7:4001", tokA)
	if code != 429 || h.Get("Retry-After") == "" || !strings.Contains(body, "failed authentications") {
		t.Fatalf("after 3 failures: %d %s", code, body)
	}
	if code, body, _ := from("198.51.100.8:4000", tokA); code != 404 {
		t.Fatalf("another address: %d %s", code, body)
	}
	// Requests per address: 10 at once, then 429, whoever asks; an IPv6 client counts by
	// its /64.
	statuses := map[int]int{}
	for i := range 12 {
		code, _, _ := from(fmt.Sprintf("[2001:db8:1:2::%x]:5000", i+1), tokA)
		statuses[code]++
	}
	if statuses[404] != 10 || statuses[429] != 2 {
		t.Fatalf("per-address limit over one /64: %v", statuses)
	}
}

func TestClientCannotClaimToBeANode(t *testing.T) {
	a := newTestAPI(t)
	tokA, _ := a.participants()
	// X-Rls-Forwarded-By from a client is dropped: no 503 "not the leader", and no 401
	// hidden behind one.
	code, _, _ := a.do("GET", "/v1/locate?identifier="+sysA+"|1", "", nil, map[string]string{headerForwarded: "n9"})
	if code != 401 {
		t.Errorf("unauthenticated request claiming to be forwarded: %d, want 401", code)
	}
	code, _, _ = a.do("GET", "/v1/locate?identifier="+sysA+"|1", tokA, nil, map[string]string{headerForwarded: "n9", nodeauth.Header: "n9 1 abc"})
	if code != 404 {
		t.Errorf("participant request claiming to be forwarded: %d, want 404 (the locate's answer)", code)
	}
	// A request id of the client's own is kept only if it is a short token.
	_, _, h := a.do("GET", "/v1/health", "", nil, map[string]string{HeaderRequestID: strings.Repeat("r", 500)})
	if id := h.Get(HeaderRequestID); len(id) > 64 || strings.Contains(id, "rrrr") {
		t.Errorf("request id %q", id)
	}
	_, _, h = a.do("GET", "/v1/health", "", nil, map[string]string{HeaderRequestID: "client-42"})
	if h.Get(HeaderRequestID) != "client-42" {
		t.Errorf("a well-formed request id was replaced by %q", h.Get(HeaderRequestID))
	}
	// The cluster's internals need node credentials or the admin.
	for _, c := range []struct{ method, path, token string }{
		{"GET", "/v1/cluster/fence", ""}, {"GET", "/v1/cluster/fence", tokA},
		{"POST", "/v1/internal/cluster-key", ""}, {"POST", "/v1/internal/audit", ""},
	} {
		if code, _, _ := a.do(c.method, c.path, c.token, nil, nil); code != 401 && code != 403 {
			t.Errorf("%s %s with %q: %d, want 401 or 403", c.method, c.path, c.token, code)
		}
	}
	if code, body, _ := a.do("GET", "/v1/cluster/fence", testAdminToken, nil, nil); code != 200 {
		t.Errorf("fence status for the admin: %d %s", code, body)
	}
	// The matching decisions name records and persons: another node only, not the admin.
	for _, token := range []string{"", tokA, testAdminToken} {
		if code, _, _ := a.do("GET", "/v1/internal/decided?index=1&term=1", token, nil, nil); code != 401 && code != 403 {
			t.Errorf("GET /v1/internal/decided with %q: %d, want 401 or 403", token, code)
		}
	}
}
