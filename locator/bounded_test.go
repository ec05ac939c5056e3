package locator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/rafttest"
)

// TestAnswersAreBounded: a search page whose resources would outgrow the answer's bound
// ends early with a next link that continues exactly where it stopped; an answer that
// cannot be cut into pages and outgrows the bound is an error, never a shortened 200.
func TestAnswersAreBounded(t *testing.T) {
	const bound = 24 << 10
	w := newDocWorld(t, func(o *Options) { o.MaxResponseBytes = bound })
	for i := range 12 {
		d := docJSON(fmt.Sprintf("urn:uuid:b-%02d", i), "Patient/"+w.patA, "current", "11506-3", fmt.Sprintf("2024-03-%02d", i+1), "Note")
		d["description"] = strings.Repeat("d", 3000)
		w.register(t, w.tokA, d)
	}
	seen := map[string]bool{}
	pages := 0
	for next := "/fhir/DocumentReference?patient=Patient/" + w.patA + "&_count=100"; next != ""; pages++ {
		code, body, _ := w.a.do("GET", next, w.tokA, nil, nil)
		if code != 200 || len(body) > bound {
			t.Fatalf("page %d: %d, %d bytes", pages, code, len(body))
		}
		var b fhir.Bundle
		json.Unmarshal(body, &b)
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		for _, e := range b.Entry {
			if seen[e.FullURL] {
				t.Fatalf("page %d repeats %s", pages, e.FullURL)
			}
			seen[e.FullURL] = true
		}
		if pages > 20 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 12 || pages < 2 {
		t.Fatalf("%d documents over %d pages, want 12 over several", len(seen), pages)
	}

	// A read answer beyond the bound (an audited route, held until its entry commits) is
	// refused whole.
	small := newTestAPI(t, func(o *Options) { o.MaxResponseBytes = 2 << 10 })
	tok, _ := small.participants()
	p := patientJSON(sysA, "BIG-1", "Ada", "Quill", "1961-07-04", "female", "62704", "")
	p["text"] = map[string]any{"status": "generated", "div": "<div>" + strings.Repeat("x", 4000) + "</div>"}
	code, body, _ := small.do("POST", "/fhir/Patient", tok, p, nil)
	if code != http.StatusInternalServerError || !strings.Contains(string(body), "too-costly") {
		t.Fatalf("an answer beyond the bound: %d %.300s", code, body)
	}
}

// TestForwardedAnswerThatBreaksOffIsAnError: a follower forwards to a leader whose answer
// breaks off after its headers. A streamed (unaudited) answer is cut, so the client sees a
// broken answer; a held (audited) one becomes an error. Never a complete-looking 200.
func TestForwardedAnswerThatBreaksOffIsAnError(t *testing.T) {
	// The leader's API, as the catalog has it, is a server that starts an answer and
	// hangs up.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"resourceType":"Bundle","entry":[`))
		if hj, ok := w.(http.Hijacker); ok {
			conn, _, _ := hj.Hijack()
			conn.Close()
		}
	}))
	defer broken.Close()
	leader := rafttest.Start(t, rafttest.Options{ID: "n1", HTTPAddr: broken.URL, AdminTokenHash: TokenHash(testAdminToken)})
	followerAPI := httptest.NewUnstartedServer(nil)
	follower := rafttest.Start(t, rafttest.Options{ID: "n2", HTTPAddr: "http://" + followerAPI.Listener.Addr().String(), Join: true})
	rafttest.Join(t, leader, follower)
	followerAPI.Config.Handler = New(Options{Node: follower.Node, TempDir: t.TempDir(), AddressRateLimit: -1, AuthFailureRate: -1, ForwardTimeout: 2 * time.Second}).Handler()
	followerAPI.Start()
	defer followerAPI.Close()

	// Unaudited, streamed: the connection is cut; reading the body fails.
	req, _ := http.NewRequest("GET", followerAPI.URL+"/fhir/Organization", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("a forwarded answer that broke off reached the client whole-looking: %d %.200s", resp.StatusCode, b)
		}
	}
	t.Logf("streamed: %v", err)
	// Audited, held: an error answer, complete.
	req, _ = http.NewRequest("GET", followerAPI.URL+"/fhir/Patient/"+model.PatientID(sysA+"|1"), nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set(HeaderPurposeOfUse, "TREAT")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode < 500 || !json.Valid(body) || !strings.Contains(string(body), "OperationOutcome") {
		t.Fatalf("held forwarded answer that broke off: %d %v %.300s", resp.StatusCode, err, body)
	}
	t.Logf("held: %d %s", resp.StatusCode, body)
}
