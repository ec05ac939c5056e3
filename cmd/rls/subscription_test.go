package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSubscriptionCommands drives `rls subscription`: add (the secret shown once), list,
// show, status, disable and enable; an endpoint the rules refuse, and another
// participant's subscription, fail with a reason and a non-zero exit.
func TestSubscriptionCommands(t *testing.T) {
	addr := startNode(t)
	admin := []string{"-addr", addr, "-token", testToken, "-output", "json"}
	add := func(id, system string) string {
		t.Helper()
		out, errOut, code := rls(t, append(append([]string{"participant", "add"}, admin...), "-id", id, "-name", id, "-kind", "hospital", "-identifier-system", system)...)
		if code != 0 {
			t.Fatalf("participant add %s: %s", id, errOut)
		}
		var v participantView
		json.Unmarshal([]byte(out), &v)
		return v.Token
	}
	tokA, tokB := add("hosp-a", "urn:oid:1.2.3.200"), add("hosp-b", "urn:oid:1.2.3.201")
	asA := []string{"-addr", addr, "-token", tokA, "-output", "json"}
	out, errOut, code := rls(t, append(append([]string{"subscription", "add"}, asA...), "-topic", "document", "-endpoint", "https://ehr.hosp-a.example/rls", "-payload", "full-resource")...)
	if code != 0 {
		t.Fatalf("subscription add: %s", errOut)
	}
	var v subscriptionView
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ID == "" || len(v.Secret) != 64 || v.Status != "active" || v.Topic != "document" || v.Payload != "full-resource" || v.Purpose != "TREAT" {
		t.Fatalf("add answer: %s %v", out, err)
	}
	out, _, code = rls(t, append(append([]string{"subscription", "show"}, asA...), v.ID)...)
	if code != 0 || strings.Contains(out, v.Secret) || !strings.Contains(out, `"id": "`+v.ID+`"`) {
		t.Errorf("show (never the secret): %d %s", code, out)
	}
	if _, errOut, code := rls(t, append(append([]string{"subscription", "disable"}, asA...), v.ID)...); code != 0 {
		t.Fatalf("disable: %s", errOut)
	}
	out, _, _ = rls(t, "subscription", "list", "-addr", addr, "-token", tokA, "-status", "off")
	if !strings.Contains(out, v.ID) || !strings.Contains(out, "off") {
		t.Errorf("list -status off: %s", out)
	}
	if _, errOut, code := rls(t, append(append([]string{"subscription", "enable"}, asA...), v.ID)...); code != 0 {
		t.Fatalf("enable: %s", errOut)
	}
	out, errOut, code = rls(t, "subscription", "status", "-addr", addr, "-token", tokA, v.ID)
	if code != 0 || !strings.Contains(out, "active") || !strings.Contains(out, "events delivered:  0") {
		t.Errorf("status: %d %s %s", code, out, errOut)
	}
	_, errOut, code = rls(t, "subscription", "add", "-addr", addr, "-token", tokA, "-topic", "encounter", "-endpoint", "http://ehr.hosp-a.example/rls")
	if code == 0 || !strings.Contains(errOut, "https") {
		t.Errorf("plain http endpoint: exit %d, %s", code, errOut)
	}
	_, errOut, code = rls(t, "subscription", "show", "-addr", addr, "-token", tokB, v.ID)
	if code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("B shows A's subscription: exit %d, %s", code, errOut)
	}
}
