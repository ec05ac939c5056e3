package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsentCommands drives the privacy CLI: a participant granted ETREAT, an opt-out
// recorded with `rls consent opt-out`, locate refused under TREAT and answered under
// break-the-glass, the directive listed and revoked, and a revoked token refused.
func TestConsentCommands(t *testing.T) {
	addr := startNode(t)
	admin := []string{"-addr", addr, "-token", testToken, "-output", "json"}
	add := func(id, system string, extra ...string) string {
		t.Helper()
		args := append([]string{"participant", "add"}, admin...)
		args = append(args, "-id", id, "-name", id, "-kind", "hospital", "-identifier-system", system)
		out, errOut, code := rls(t, append(args, extra...)...)
		if code != 0 {
			t.Fatalf("participant add %s: %s", id, errOut)
		}
		var v participantView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		return v.Token
	}
	tokA := add("hosp-a", "urn:oid:1.2.3.100")
	tokER := add("er-west", "urn:oid:1.2.3.101", "-purposes", "TREAT,etreat")
	out, _, _ := rls(t, append([]string{"participant", "show"}, append(admin, "er-west")...)...)
	if !strings.Contains(out, `"TREAT"`) || !strings.Contains(out, `"ETREAT"`) {
		t.Fatalf("granted purposes not shown: %s", out)
	}

	patient := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(patient, []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.100","value":"M-1"}],
		"name":[{"family":"Seacole","given":["Mary"]}],"birthDate":"1905-11-23","gender":"female"}`), 0o600)
	if _, errOut, code := rls(t, "patient", "register", "-addr", addr, "-token", tokA, "-f", patient); code != 0 {
		t.Fatalf("register: %s", errOut)
	}
	er := []string{"-addr", addr, "-token", tokER}
	locate := func(extra ...string) (string, int) {
		args := append(append([]string{"locate"}, er...), extra...)
		_, errOut, code := rls(t, append(args, "-identifier", "urn:oid:1.2.3.100|M-1")...)
		return errOut, code
	}
	if errOut, code := locate(); code != 0 {
		t.Fatalf("locate before the opt-out: %s", errOut)
	}
	out, errOut, code := rls(t, append(append([]string{"consent", "opt-out"}, admin...), "-identifier", "urn:oid:1.2.3.100|M-1")...)
	if code != 0 {
		t.Fatalf("consent opt-out: %s", errOut)
	}
	var c consentView
	if err := json.Unmarshal([]byte(out), &c); err != nil || !c.OptOut || c.Status != "active" {
		t.Fatalf("opt-out answer: %s %v", out, err)
	}
	if errOut, code := locate(); code == 0 || !strings.Contains(errOut, "404") {
		t.Fatalf("locate after the opt-out: %d %s", code, errOut)
	}
	if errOut, code := locate("-purpose", "PAYMENT"); code == 0 || !strings.Contains(errOut, "403") {
		t.Fatalf("locate for a purpose not granted: %d %s", code, errOut)
	}
	if errOut, code := locate("-purpose", "MARKETING"); code == 0 || !strings.Contains(errOut, "purpose") {
		t.Fatalf("an unknown purpose is not refused by the CLI: %d %s", code, errOut)
	}
	if errOut, code := locate("-purpose", "ETREAT", "-break-glass", "unconscious, no ID"); code != 0 {
		t.Fatalf("break-the-glass locate: %s", errOut)
	}
	out, _, _ = rls(t, append(append([]string{"consent", "list"}, admin...), "-identifier", "urn:oid:1.2.3.100|M-1")...)
	if !strings.Contains(out, c.ID) {
		t.Fatalf("consent list: %s", out)
	}
	if _, errOut, code := rls(t, append(append([]string{"consent", "revoke"}, admin...), c.ID)...); code != 0 {
		t.Fatalf("consent revoke: %s", errOut)
	}
	if errOut, code := locate(); code != 0 {
		t.Fatalf("locate after revocation: %s", errOut)
	}
	if _, errOut, code := rls(t, append(append([]string{"participant", "revoke-token"}, admin...), "er-west")...); code != 0 {
		t.Fatalf("revoke-token: %s", errOut)
	}
	if errOut, code := locate(); code == 0 || !strings.Contains(errOut, "401") {
		t.Fatalf("a revoked token still works: %d %s", code, errOut)
	}
}
