package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/rafttest"
)

// startNodeIn runs a one-node cluster and its API in process on dataDir (new, or a stopped
// node's) and returns the API's URL and a function that stops it.
func startNodeIn(t *testing.T, dataDir string) (string, func()) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	node := rafttest.Start(t, rafttest.Options{DataDir: dataDir, HTTPAddr: "http://" + srv.Listener.Addr().String(), AdminTokenHash: locator.TokenHash(testToken)})
	srv.Config.Handler = locator.New(locator.Options{Node: node.Node, TempDir: t.TempDir()}).Handler()
	srv.Start()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Close()
			node.Close()
		}
	}
	t.Cleanup(stop)
	return srv.URL, stop
}

// TestAuditCommands: list, disclosures, btg and verify over a node's audit log; then the
// state file is altered on disk and verify (exit 1) names the broken entry.
func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startNodeIn(t, dir)
	admin := []string{"-addr", addr, "-token", testToken}
	out, errOut, code := rls(t, append(append([]string{"participant", "add"}, admin...), "--id", "hosp-a", "--name", "Hospital A", "--kind", "hospital", "--identifier-system", "urn:oid:1.2.3", "--purposes", "TREAT,ETREAT", "-output", "json")...)
	if code != 0 {
		t.Fatalf("participant add: %s %s", out, errOut)
	}
	var added struct {
		Token string `json:"token"`
	}
	json.Unmarshal([]byte(out), &added)
	if added.Token == "" {
		t.Fatalf("no token in %s", out)
	}
	call := func(method, path, body string, header map[string]string) int {
		req, _ := http.NewRequest(method, addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+added.Token)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	patient := `{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3","value":"MRN-1"}],"name":[{"family":"Okonjo","given":["Margaret"]}],"birthDate":"1958-02-14","gender":"female"}`
	if c := call("POST", "/fhir/Patient", patient, nil); c != 201 {
		t.Fatalf("register: %d", c)
	}
	call("GET", "/v1/locate?identifier=urn:oid:1.2.3|MRN-1", "", map[string]string{locator.HeaderPurposeOfUse: "TREAT"})
	call("GET", "/v1/locate?identifier=urn:oid:1.2.3|MRN-1", "", map[string]string{locator.HeaderPurposeOfUse: "ETREAT", locator.HeaderBreakGlassReason: "unresponsive"})
	call("GET", "/v1/locate?identifier=urn:oid:1.2.3|nobody", "", map[string]string{locator.HeaderPurposeOfUse: "TREAT"})

	out, errOut, code = rls(t, append(append([]string{"audit", "list"}, admin...), "-output", "json")...)
	var list locator.AuditList
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || list.Total != 4 {
		t.Fatalf("audit list: %d %s %s", code, out, errOut)
	}
	euid := list.Entries[0].EUIDs[0]
	out, _, code = rls(t, append(append([]string{"audit", "disclosures"}, admin...), euid)...)
	// The 404 locate of nobody is no disclosure of this person. The status column is matched
	// with the spaces around it: the SOURCE column's port may hold "404" too (:44048).
	if code != 0 || !strings.Contains(out, "3 of 3 matching entries") || !strings.Contains(out, "patient-create") || regexp.MustCompile(`\s404\s`).MatchString(out) {
		t.Fatalf("disclosures of %s: %s", euid, out)
	}
	out, _, code = rls(t, append([]string{"audit", "btg"}, admin...)...)
	if code != 0 || !strings.Contains(out, "ETREAT BTG: unresponsive") || !strings.Contains(out, "1 of 1 matching") {
		t.Fatalf("btg: %s", out)
	}
	out, errOut, code = rls(t, append([]string{"audit", "verify"}, admin...)...)
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	if _, _, code := rls(t, "audit", "list", "-addr", addr, "-token", added.Token); code == 0 {
		t.Fatal("a participant token read the audit log")
	}

	// Someone with disk access hides the break-the-glass request: the entry no longer
	// matches its hash.
	stop()
	db, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		k := make([]byte, 8)
		k[7] = 3
		var e model.AuditEntry
		if _, err := e.UnmarshalMsg(b.Get(k)); err != nil {
			return err
		}
		e.BreakGlass, e.Purpose = "", "TREAT"
		v, _ := e.MarshalMsg(nil)
		return b.Put(k, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	addr, _ = startNodeIn(t, dir)
	out, errOut, code = rls(t, "audit", "verify", "-addr", addr, "-token", testToken)
	if code == 0 || !strings.Contains(errOut, "broken at entry 3") {
		t.Fatalf("verify after tampering: %d %s %s", code, out, errOut)
	}
}
