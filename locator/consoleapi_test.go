package locator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/console"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
)

// stewardOrg is an Organization for a participant with the steward role (the HIE's
// data-quality staff, kind hie, registering no patients of its own).
func stewardOrg(id string) fhir.Organization {
	o := toOrganization(model.Participant{ID: id, Name: "Data stewards", Kind: model.KindHIE, Role: model.RoleSteward, Active: true, Version: 1})
	o.Meta = nil
	return o
}

// consoleWorld is a dev node (console cookies without Secure) with a hospital and a
// stewards' participant.
type consoleWorld struct {
	a          *testAPI
	srv        *Server
	tokHosp    string
	tokSteward string
}

func newConsoleWorld(t *testing.T) consoleWorld {
	t.Helper()
	var srv *Server
	a := newTestAPIWith(t, func(o *Options) func(*Server) {
		o.Console.InsecureCookie = true
		return func(s *Server) { srv = s }
	})
	w := consoleWorld{a: a, srv: srv}
	code, body, _ := a.do("POST", "/fhir/Organization", testAdminToken, org("hosp-a", sysA), nil)
	if code != 201 {
		t.Fatalf("add hosp-a: %d %s", code, body)
	}
	w.tokHosp = tokenOf(t, body)
	code, body, _ = a.do("POST", "/fhir/Organization", testAdminToken, stewardOrg("stewards"), nil)
	if code != 201 {
		t.Fatalf("add stewards: %d %s", code, body)
	}
	w.tokSteward = tokenOf(t, body)
	return w
}

// signIn opens a console session with a token and returns its cookie and CSRF token.
func (w consoleWorld) signIn(t *testing.T, token string) (*http.Cookie, ConsoleSession) {
	t.Helper()
	code, body, h := w.a.do("POST", "/ui/session", token, map[string]any{"user": "Dana Steward"}, nil)
	if code != 201 {
		t.Fatalf("sign in: %d %s", code, body)
	}
	var sess ConsoleSession
	if err := json.Unmarshal(body, &sess); err != nil {
		t.Fatal(err)
	}
	resp := http.Response{Header: h}
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName(w.srv.opts.Console) {
			return c, sess
		}
	}
	t.Fatalf("sign-in set no session cookie: %v", h)
	return nil, sess
}

// withCookie sends a request with the session cookie (and no bearer token) and the
// headers given.
func (w consoleWorld) withCookie(c *http.Cookie, method, path string, body any, header map[string]string) (int, []byte, http.Header) {
	h := map[string]string{"Cookie": c.Name + "=" + c.Value, HeaderPurposeOfUse: "OPERATIONS"}
	for k, v := range header {
		h[k] = v
	}
	return w.a.do(method, path, "", body, h)
}

// TestStewardRole checks the steward role at the policy point: every route that needs it
// refuses a participant without it (403) and serves the steward and the admin; the steward
// gets no admin route; its queries default to the purpose of operations.
func TestStewardRole(t *testing.T) {
	w := newConsoleWorld(t)
	a := w.a
	var stewardRoutes []route
	for _, rt := range w.srv.routes() {
		if rt.access == steward {
			stewardRoutes = append(stewardRoutes, rt)
		}
	}
	if len(stewardRoutes) < 12 {
		t.Fatalf("only %d routes need the steward role", len(stewardRoutes))
	}
	path := func(rt route) string {
		p := strings.NewReplacer("{seq}", "1", "{euid}", "E0", "{path...}", "").Replace(rt.pattern)
		if rt.pattern == "/v1/mpi/explain" {
			p += "?a=" + url.QueryEscape(sysA+"|A-1") + "&b=" + url.QueryEscape(sysA+"|A-2")
		}
		return p
	}
	for _, rt := range stewardRoutes {
		code, body, _ := a.do(rt.method, path(rt), w.tokHosp, map[string]any{}, nil)
		if code != http.StatusForbidden || !strings.Contains(string(body), "steward role") {
			t.Errorf("%s %s as a participant without the steward role: %d %s, want 403", rt.method, rt.pattern, code, body)
		}
		if rt.method == "GET" && rt.pattern == "/ui/session" {
			continue // answers only a session (401 to a token)
		}
		for who, tok := range map[string]string{"steward": w.tokSteward, "admin": testAdminToken} {
			if code, body, _ := a.do(rt.method, path(rt), tok, map[string]any{}, map[string]string{HeaderPurposeOfUse: "OPERATIONS"}); code == http.StatusForbidden || code == http.StatusUnauthorized {
				t.Errorf("%s %s as the %s: %d %s", rt.method, rt.pattern, who, code, body)
			}
		}
	}
	// The steward is not an admin.
	for _, p := range []string{"/v1/cluster/status", "/v1/audit", "/fhir/AuditEvent"} {
		if code, _, _ := a.do("GET", p, w.tokSteward, nil, nil); code != http.StatusForbidden {
			t.Errorf("GET %s as a steward: %d, want 403", p, code)
		}
	}
	// Its default purpose is operations, not treatment.
	if code, _, _ := a.do("GET", "/fhir/Person/E0", w.tokSteward, nil, map[string]string{HeaderPurposeOfUse: "TREAT"}); code != http.StatusForbidden {
		t.Errorf("a steward querying for treatment: %d, want 403", code)
	}
	if code, _, _ := a.do("GET", "/fhir/Person/E0", w.tokSteward, nil, map[string]string{HeaderPurposeOfUse: "OPERATIONS"}); code != http.StatusNotFound {
		t.Errorf("a steward querying for operations: %d, want 404 (no such person)", code)
	}
	// A steward finds patients broadly, as the admin does: a family name alone.
	a.do("POST", "/fhir/Patient", w.tokHosp, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	if code, body, _ := a.do("GET", "/fhir/Patient?family=Okonjo", w.tokHosp, nil, nil); code != 400 {
		t.Errorf("a participant's search by family name alone: %d %s, want 400", code, body)
	}
	if code, body, _ := a.do("GET", "/fhir/Patient?family=Okonjo", w.tokSteward, nil, map[string]string{HeaderPurposeOfUse: "OPERATIONS"}); code != 200 || !strings.Contains(string(body), `"total": 1`) {
		t.Errorf("a steward's search by family name alone: %d %s", code, body)
	}
}

// TestConsoleSession signs in, uses the cookie as the only credential, and checks its
// attributes, the CSRF token on changes, the refusal of cross-origin browser requests, of a
// forged or tampered cookie, of a session whose token was rotated, and signing out.
func TestConsoleSession(t *testing.T) {
	w := newConsoleWorld(t)
	a := w.a
	if code, body, _ := a.do("POST", "/ui/session", w.tokHosp, nil, nil); code != http.StatusForbidden {
		t.Fatalf("a participant without the steward role signing in: %d %s, want 403", code, body)
	}
	if code, _, _ := a.do("POST", "/ui/session", "rls_wrong", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("signing in with a wrong token: %d, want 401", code)
	}
	c, sess := w.signIn(t, w.tokSteward)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" || c.MaxAge <= 0 {
		t.Fatalf("dev session cookie attributes: %+v", c)
	}
	if sess.Participant != "stewards" || sess.Role != "steward" || sess.Via != console.ViaToken || sess.User != "Dana Steward" ||
		sess.CSRFToken == "" || strings.Join(sess.Purposes, ",") != "OPERATIONS" {
		t.Fatalf("session: %+v", sess)
	}
	if strings.Contains(c.Value, w.tokSteward) {
		t.Fatal("the cookie carries the token")
	}

	// The cookie alone authenticates, and answers are not cached.
	code, body, h := w.withCookie(c, "GET", "/v1/review", nil, nil)
	if code != 200 || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("review list with the session: %d %s %v", code, body, h)
	}
	if code, body, _ := w.withCookie(c, "GET", "/ui/session", nil, nil); code != 200 || !strings.Contains(string(body), sess.CSRFToken) {
		t.Fatalf("session info: %d %s", code, body)
	}

	// A change needs the CSRF token; with it the request reaches the handler (400: no record).
	unlink := map[string]any{"reason": "x"}
	if code, body, _ := w.withCookie(c, "POST", "/v1/steward/unlink", unlink, nil); code != http.StatusForbidden || !strings.Contains(string(body), "CSRF") {
		t.Fatalf("change without the CSRF token: %d %s, want 403", code, body)
	}
	if code, _, _ := w.withCookie(c, "POST", "/v1/steward/unlink", unlink, map[string]string{console.HeaderCSRF: "AAAA"}); code != http.StatusForbidden {
		t.Fatalf("change with a wrong CSRF token: %d, want 403", code)
	}
	if code, body, _ := w.withCookie(c, "POST", "/v1/steward/unlink", unlink, map[string]string{console.HeaderCSRF: sess.CSRFToken}); code != http.StatusBadRequest || !strings.Contains(string(body), "record is required") {
		t.Fatalf("change with the CSRF token: %d %s, want 400 from the handler", code, body)
	}

	// A browser's cross-site change is refused before anything else, token or not.
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", console.HeaderCSRF: sess.CSRFToken},
		{"Origin": "https://evil.example", console.HeaderCSRF: sess.CSRFToken},
	} {
		if code, body, _ := w.withCookie(c, "POST", "/v1/steward/unlink", unlink, hdr); code != http.StatusForbidden || !strings.Contains(string(body), "cross-origin") {
			t.Fatalf("cross-origin change %v: %d %s, want 403", hdr, code, body)
		}
	}
	if code, _, _ := a.do("POST", "/ui/session", w.tokSteward, nil, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Fatalf("cross-site sign-in: %d, want 403", code)
	}
	// Same-origin requests pass.
	if code, _, _ := w.withCookie(c, "POST", "/v1/steward/unlink", unlink, map[string]string{"Sec-Fetch-Site": "same-origin", console.HeaderCSRF: sess.CSRFToken}); code != http.StatusBadRequest {
		t.Fatalf("same-origin change: %d, want 400 from the handler", code)
	}

	// A tampered or foreign cookie is no session.
	forged := *c
	forged.Value = strings.Replace(c.Value, c.Value[:4], "AAAA", 1)
	if code, _, _ := w.withCookie(&forged, "GET", "/v1/review", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("tampered cookie: %d, want 401", code)
	}
	other, _ := console.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	s2, _ := console.NewSession("admin", console.ViaToken, console.TokenBinding(TokenHash(testAdminToken)), "", time.Now(), w.srv.opts.Console)
	sealed, _ := other.Seal(s2)
	if code, _, _ := w.withCookie(&http.Cookie{Name: c.Name, Value: sealed}, "GET", "/v1/review", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("a session sealed with another key: %d, want 401", code)
	}

	// Rotating the token ends the sessions opened with it.
	if code, body, _ := a.do("POST", "/fhir/Organization/stewards/$rotate-token", testAdminToken, nil, nil); code != 200 {
		t.Fatalf("rotate: %d %s", code, body)
	}
	if code, _, _ := w.withCookie(c, "GET", "/v1/review", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("session after the token was rotated: %d, want 401", code)
	}

	// Signing out clears the cookie.
	_, _, h = w.withCookie(c, "DELETE", "/ui/session", nil, nil)
	resp := http.Response{Header: h}
	if cs := resp.Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 || cs[0].Value != "" {
		t.Fatalf("sign-out cookies: %v", h.Values("Set-Cookie"))
	}
}

// TestConsoleNeedsHTTPSOutsideDev: without -dev the cookie is Secure, so signing in over
// plain HTTP is refused with a clear reason rather than handing out a cookie the browser
// would drop.
func TestConsoleNeedsHTTPSOutsideDev(t *testing.T) {
	a := newTestAPI(t)
	code, body, _ := a.do("POST", "/ui/session", testAdminToken, nil, nil)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
		t.Fatalf("sign-in over HTTP outside dev: %d %s", code, body)
	}
}

// TestConsoleAssets serves the page and its files with the security headers, and nothing
// that is not one of them.
func TestConsoleAssets(t *testing.T) {
	a := newTestAPI(t)
	code, body, h := a.do("GET", "/ui/", "", nil, nil)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "<title>") {
		t.Fatalf("console page: %d %v", code, h)
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
	} {
		if !strings.Contains(h.Get(name), want) {
			t.Errorf("%s: %q, want %q", name, h.Get(name), want)
		}
	}
	if strings.Contains(h.Get("Content-Security-Policy"), "unsafe") {
		t.Errorf("CSP allows something unsafe: %s", h.Get("Content-Security-Policy"))
	}
	if code, _, _ := a.do("GET", "/ui/session", testAdminToken, nil, nil); code != 401 {
		t.Errorf("session info without a session: %d", code)
	}
	if code, _, _ := a.do("GET", "/ui/nope.js", "", nil, nil); code != 404 {
		t.Errorf("missing file: %d", code)
	}
}

// TestMatchScores registers records that link, that found persons and that go to review,
// and checks the distribution counts each under its outcome, in the bin of its score,
// against the configuration's thresholds.
func TestMatchScores(t *testing.T) {
	w := newConsoleWorld(t)
	a := w.a
	reg := func(mrn, given, family, birth, zip, phone string) BatchResult {
		code, body, _ := a.do("POST", "/v1/patients/batch", w.tokHosp, map[string]any{"patients": []any{patientJSON(sysA, mrn, given, family, birth, "female", zip, phone)}}, nil)
		var res BatchResponse
		if code != 200 || json.Unmarshal(body, &res) != nil || len(res.Results) != 1 {
			t.Fatalf("register %s: %d %s", mrn, code, body)
		}
		return res.Results[0]
	}
	want := map[string]int{}
	results := []BatchResult{
		reg("A-1", "Margaret", "Okonjo", "1958-02-14", "62704", "2175550123"),
		reg("A-2", "Margaret", "Okonjo", "1958-02-14", "62704", "2175550123"),
		reg("A-3", "Peter", "Lindqvist", "1990-11-02", "10001", "2125550199"),
	}
	for _, r := range results {
		want[r.Outcome]++
	}
	if want["linked"] != 1 || want["new"] != 2 {
		t.Fatalf("outcomes: %+v", results)
	}
	if code, _, _ := a.do("GET", "/v1/mpi/scores", w.tokHosp, nil, nil); code != 403 {
		t.Fatalf("scores as a participant: %d", code)
	}
	code, body, _ := a.do("GET", "/v1/mpi/scores?limit=10", w.tokSteward, nil, nil)
	var d ScoreDistribution
	if code != 200 || json.Unmarshal(body, &d) != nil {
		t.Fatalf("scores: %d %s", code, body)
	}
	if d.Registrations != 3 || d.Outcomes["linked"] != 1 || d.Outcomes["new"] != 2 || d.Upper != 5 || d.Lower != 0 || d.Persons != 2 {
		t.Fatalf("distribution: %s", body)
	}
	binned := 0
	for _, b := range d.Bins {
		binned += b.Linked + b.New + b.Review
		if b.To-b.From != d.BinWidth {
			t.Fatalf("bin %+v of width %v", b, d.BinWidth)
		}
	}
	if binned+d.NoCandidate != 3 || d.Bins[0].From > d.Lower || d.Bins[len(d.Bins)-1].To < d.Upper {
		t.Fatalf("bins do not hold every registration and both thresholds: %s", body)
	}
	linked := results[1].Score
	for _, b := range d.Bins {
		if b.Linked == 1 && !(b.From <= linked && linked < b.To) {
			t.Fatalf("the linked registration (score %v) is in bin %+v", linked, b)
		}
	}
	sum := 0
	for _, n := range d.PerMinute {
		sum += n
	}
	if sum != 3 {
		t.Fatalf("per-minute counts add up to %d: %v", sum, d.PerMinute)
	}
	if code, _, _ := a.do("GET", "/v1/mpi/scores?limit=0", w.tokSteward, nil, nil); code != 400 {
		t.Fatalf("limit 0: %d", code)
	}
	code, body, _ = a.do("GET", "/v1/mpi/scores?limit=1", w.tokSteward, nil, nil)
	if json.Unmarshal(body, &d) != nil || d.Registrations != 1 || d.EventsRead > 4 {
		t.Fatalf("limit 1 read more than it needed: %d %s", code, body)
	}
}

// TestPatientSearchByPost: POST /fhir/Patient/_search finds what the same GET finds, keeps
// the parameters out of the URL, audits the query, and takes only a form body.
func TestPatientSearchByPost(t *testing.T) {
	w := newConsoleWorld(t)
	a := w.a
	a.do("POST", "/fhir/Patient", w.tokHosp, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	form := "family=Okonjo&given=Peggy&birthdate=1958-02-14"
	_, getBody, _ := a.do("GET", "/fhir/Patient?"+form, w.tokHosp, nil, nil)
	code, body, _ := a.do("POST", "/fhir/Patient/_search", w.tokHosp, form, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if code != 200 || !strings.Contains(string(body), `"total": 1`) || !strings.Contains(string(getBody), `"total": 1`) {
		t.Fatalf("search by POST: %d %s (GET: %s)", code, body, getBody)
	}
	if code, _, _ := a.do("POST", "/fhir/Patient/_search", w.tokHosp, `{"family":"Okonjo"}`, map[string]string{"Content-Type": "application/json"}); code != http.StatusUnsupportedMediaType {
		t.Fatalf("search by POST with JSON: %d, want 415", code)
	}
	list := a.auditList(t, "participant=hosp-a")
	found := false
	for _, e := range list.Entries {
		if e.Action == "patient-search" && e.Method == "POST" && e.Status == 200 {
			found = true
			if !strings.Contains(e.Query, "family=Okonjo") || e.Path != "/fhir/Patient/_search" {
				t.Fatalf("audit entry of the search by POST: %+v", e)
			}
		}
	}
	if !found {
		t.Fatalf("no audit entry for the search by POST: %+v", list.Entries)
	}
}

// TestConsoleSignInWithCertificate: a steward signs in with its client certificate alone
// (no token) over HTTPS outside -dev; the cookie is Secure and host-only; the session then
// works only with that certificate; a participant's certificate without the steward role
// is refused.
func TestConsoleSignInWithCertificate(t *testing.T) {
	f := newTLSFixture(t)
	admin := f.client(nil)
	if code, body := f.call(admin, f.request, "POST", "/fhir/Organization", testAdminToken, stewardOrg("stewards-c"), nil); code != 201 {
		t.Fatalf("add the stewards: %d %s", code, body)
	}
	if code, body := f.call(admin, f.request, "POST", "/fhir/Organization", testAdminToken, org("hosp-a", sysA), nil); code != 201 {
		t.Fatalf("add hosp-a: %d %s", code, body)
	}
	stewardCert := f.issue(f.ca, participantLeaf("stewards-c"))
	hospCert := f.issue(f.ca, participantLeaf("hosp-a"))
	steward, hosp, anonymous := f.client(&stewardCert), f.client(&hospCert), f.client(nil)

	do := func(c *http.Client, method, path string, cookie *http.Cookie, header map[string]string, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.request+path, strings.NewReader(body))
		if cookie != nil {
			req.AddCookie(cookie)
		}
		req.Header.Set(HeaderPurposeOfUse, "OPERATIONS")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, string(data)
	}

	if resp, body := do(hosp, "POST", "/ui/session", nil, nil, `{"user":"Someone"}`); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "steward role") {
		t.Fatalf("a hospital's certificate signing in: %d %s, want 403", resp.StatusCode, body)
	}
	resp, body := do(steward, "POST", "/ui/session", nil, map[string]string{HeaderOnBehalfOf: "Dana Steward"}, `{"user":"Dana Steward"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("sign in with the steward's certificate: %d %s", resp.StatusCode, body)
	}
	var sess ConsoleSession
	if err := json.Unmarshal([]byte(body), &sess); err != nil {
		t.Fatal(err)
	}
	if sess.Participant != "stewards-c" || sess.Via != console.ViaCertificate || sess.CSRFToken == "" {
		t.Fatalf("session: %+v", sess)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName(console.Options{}) {
			cookie = c
		}
	}
	if cookie == nil || !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || !strings.HasPrefix(cookie.Name, "__Host-") || cookie.Domain != "" || cookie.Path != "/" {
		t.Fatalf("session cookie outside -dev: %+v (all: %v)", cookie, resp.Header.Values("Set-Cookie"))
	}

	if resp, body := do(steward, "GET", "/v1/review", cookie, nil, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("the queue with the session and its certificate: %d %s", resp.StatusCode, body)
	}
	for who, c := range map[string]*http.Client{"another participant's certificate": hosp, "no certificate": anonymous} {
		if resp, body := do(c, "GET", "/v1/review", cookie, nil, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the session with %s: %d %s, want 401", who, resp.StatusCode, body)
		}
	}
	// A change still needs the CSRF token, certificate or not.
	if resp, body := do(steward, "POST", "/v1/steward/unlink", cookie, nil, `{"reason":"x"}`); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Errorf("a change without the CSRF token: %d %s, want 403", resp.StatusCode, body)
	}
}
