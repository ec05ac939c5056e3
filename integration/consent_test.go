package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
)

// TestOptOutHoldsOnEveryNodeAtOnce is the consent test of issue 6 on three real nodes: once
// an opt-out is acknowledged, locate, document search, $match and PIXm on every node,
// followers with consistency=stale included, return nothing for the patient, even on a
// follower that was frozen while the opt-out was recorded and is asked the instant it
// wakes; break-the-glass returns the patient; a revoked token stops working everywhere at
// once.
func TestOptOutHoldsOnEveryNodeAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	const sysA, sysC = "urn:oid:1.2.840.99.61", "urn:oid:1.2.840.99.63"
	tokA := c.addParticipant("hosp-a", sysA)
	org := map[string]any{
		"resourceType": "Organization", "id": "hosp-c", "name": "Participant hosp-c",
		"type":       []any{map[string]any{"coding": []any{map[string]any{"system": "https://rls-hie.github.io/fhir/CodeSystem/participant-kind", "code": "hospital"}}}},
		"identifier": []any{map[string]any{"system": "urn:ietf:rfc:3986", "value": sysC}},
		"extension": []any{
			map[string]any{"url": "https://rls-hie.github.io/fhir/StructureDefinition/purpose-of-use", "valueCode": "TREAT"},
			map[string]any{"url": "https://rls-hie.github.io/fhir/StructureDefinition/purpose-of-use", "valueCode": "ETREAT"},
		},
	}
	code, body, _, err := c.call(0, "POST", "/fhir/Organization", org)
	if err != nil || code != 201 {
		t.Fatalf("add hosp-c: %d %s %v", code, body, err)
	}
	tokC := string(regexp.MustCompile(`"valueString":\s*"(rls_[^"]+)"`).FindSubmatch(body)[1])

	patient := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": sysA, "value": "OPT-1"}},
		"name":         []any{map[string]any{"family": "Nightingale", "given": []string{"Florence"}}},
		"birthDate":    "1920-05-12", "gender": "female",
	}
	code, body, err = c.callAs(0, tokA, "POST", "/fhir/Patient", patient, nil)
	if err != nil || code != 201 {
		t.Fatalf("register patient: %d %s %v", code, body, err)
	}
	var reg struct {
		ID         string `json:"id"`
		Identifier []struct{ System, Value string }
	}
	json.Unmarshal(body, &reg)
	euid := ""
	for _, id := range reg.Identifier {
		if id.System == "https://rls-hie.github.io/fhir/sid/euid" {
			euid = id.Value
		}
	}
	doc := map[string]any{
		"resourceType":     "DocumentReference",
		"masterIdentifier": map[string]any{"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3.61.1"},
		"status":           "current",
		"type":             map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "11506-3"}}},
		"subject":          map[string]any{"reference": "Patient/" + reg.ID},
		"content":          []any{map[string]any{"attachment": map[string]any{"url": "https://docs.example/61/1"}}},
	}
	if code, body, err := c.callAs(0, tokA, "POST", "/fhir/DocumentReference", doc, nil); err != nil || code != 201 {
		t.Fatalf("register document: %d %s %v", code, body, err)
	}

	locate := "/v1/locate?consistency=stale&identifier=" + url.QueryEscape(sysA+"|OPT-1")
	pix := "/fhir/Patient/$ihe-pix?consistency=stale&sourceIdentifier=" + url.QueryEscape(sysA+"|OPT-1")
	docs := "/fhir/DocumentReference?consistency=stale&patient=Person/" + euid
	match := map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "resource", "resource": map[string]any{
		"resourceType": "Patient", "name": []any{map[string]any{"family": "Nightingale", "given": []string{"Florence"}}}, "birthDate": "1920-05-12", "gender": "female"}}}}

	// disclosed reports, for one node, which of the four queries disclose the patient, and
	// whether the node declined to answer (503: it cannot show it holds every acknowledged
	// change) instead.
	disclosed := func(i int, h map[string]string) (found []string, unavailable bool) {
		t.Helper()
		check := func(what string, code int, body []byte, err error, hit func() bool) {
			switch {
			case err != nil:
				t.Fatalf("%s on %s: %v", what, c.Nodes[i].ID, err)
			case code == 503:
				unavailable = true
			case code == 200 && hit():
				found = append(found, what)
			case code != 200 && code != 404:
				t.Fatalf("%s on %s: %d %s", what, c.Nodes[i].ID, code, body)
			}
		}
		code, body, err := c.callAs(i, tokC, "GET", locate, nil, h)
		check("locate", code, body, err, func() bool { return true })
		code, body, err = c.callAs(i, tokC, "GET", pix, nil, h)
		check("PIXm", code, body, err, func() bool { return true })
		code, body, err = c.callAs(i, tokC, "GET", docs, nil, h)
		check("document search", code, body, err, func() bool { return bytes.Contains(body, []byte(`/fhir/DocumentReference/`)) })
		code, body, err = c.callAs(i, tokC, "POST", "/fhir/Patient/$match?consistency=stale", match, h)
		check("$match", code, body, err, func() bool { return bytes.Contains(body, []byte(`"Person/`+euid+`"`)) })
		return found, unavailable
	}
	for i := range c.Nodes {
		c.WaitFor(20*time.Second, fmt.Sprintf("%s to disclose the patient by all four queries", c.Nodes[i].ID), func() bool {
			found, _ := disclosed(i, nil)
			return len(found) == 4
		})
	}

	// Freeze a follower, so that the opt-out cannot be confirmed by every node and its
	// acknowledgement must wait out the fence interval.
	leader := c.WaitLeader(10 * time.Second)
	frozen := (leader + 1) % 3
	c.Stop(frozen)
	optOut := map[string]any{"resourceType": "Consent", "status": "active", "category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59284-0"}}}},
		"policyRule": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}}},
		"scope":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}}, "patient": map[string]any{"reference": "Patient/" + reg.ID},
		"provision": map[string]any{"type": "deny"}}
	start := time.Now()
	code, body, _, err = c.call(leader, "POST", "/fhir/Consent", optOut)
	acked := time.Since(start)
	if err != nil || code != 201 {
		t.Fatalf("record opt-out: %d %s %v", code, body, err)
	}
	if acked < 1500*time.Millisecond {
		t.Fatalf("the opt-out was acknowledged after %v with a node frozen: the fence did not wait", acked)
	}
	t.Logf("opt-out acknowledged after %v with %s frozen", acked, c.Nodes[frozen].ID)

	// At once, on every live node: nothing.
	for i := range c.Nodes {
		if i == frozen {
			continue
		}
		if found, _ := disclosed(i, nil); len(found) > 0 {
			t.Fatalf("%s discloses the opted-out patient right after the acknowledgement: %v", c.Nodes[i].ID, found)
		}
	}
	// The frozen follower, asked the instant it wakes, answers 503 until it has caught up,
	// and never discloses.
	c.Cont(frozen)
	if err := testkit.Poll(20*time.Second, 20*time.Millisecond, func() bool {
		found, unavailable := disclosed(frozen, nil)
		if len(found) > 0 {
			t.Fatalf("%s, woken after the opt-out, disclosed the patient: %v", c.Nodes[frozen].ID, found)
		}
		return !unavailable
	}); err != nil {
		t.Fatalf("%s never answered after waking: %v", c.Nodes[frozen].ID, err)
	}

	// Break the glass: ETREAT with a reason returns the patient, on every node.
	btg := map[string]string{"X-Rls-Purpose-Of-Use": "ETREAT", "X-Rls-Break-Glass-Reason": "unresponsive on arrival"}
	for i := range c.Nodes {
		c.WaitFor(10*time.Second, fmt.Sprintf("%s to disclose the patient under break-the-glass", c.Nodes[i].ID), func() bool {
			found, _ := disclosed(i, btg)
			return len(found) == 4
		})
	}
	// Every node audited its break-the-glass disclosures as such: hosp-c, ETREAT, the
	// reason, the person.
	code, body, _, err = c.call(leader, "GET", "/v1/audit?btg=true&participant=hosp-c&limit=10000&consistency=strong", nil)
	if err != nil || code != 200 {
		t.Fatalf("audit btg list: %d %s %v", code, body, err)
	}
	var btgLog struct {
		Entries []struct {
			Node       string   `json:"node"`
			Purpose    string   `json:"purpose"`
			BreakGlass string   `json:"break_glass"`
			Status     int      `json:"status"`
			EUIDs      []string `json:"euids"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &btgLog); err != nil {
		t.Fatalf("audit btg list: %v %s", err, body)
	}
	disclosedBy := map[string]int{}
	for _, e := range btgLog.Entries {
		if e.Purpose != "ETREAT" || e.BreakGlass != btg["X-Rls-Break-Glass-Reason"] {
			t.Fatalf("break-the-glass entry without its purpose or reason: %+v", e)
		}
		if e.Status == 200 && slices.Contains(e.EUIDs, euid) {
			disclosedBy[e.Node]++
		}
	}
	for _, n := range c.Nodes {
		if disclosedBy[n.ID] < 4 {
			t.Fatalf("%s audited %d break-the-glass disclosures of the patient, want at least 4 (one per query): %v", n.ID, disclosedBy[n.ID], disclosedBy)
		}
	}

	// Revoking hosp-c's token stops it on every node as soon as the revocation is acknowledged.
	if code, body, _, err := c.call(leader, "POST", "/fhir/Organization/hosp-c/$revoke-token", nil); err != nil || code != 200 {
		t.Fatalf("revoke token: %d %s %v", code, body, err)
	}
	for i := range c.Nodes {
		code, body, err := c.callAs(i, tokC, "GET", "/fhir/Organization/hosp-c?consistency=stale", nil, nil)
		if err != nil || (code != 401 && code != 503) {
			t.Fatalf("%s accepts a revoked token: %d %s %v", c.Nodes[i].ID, code, body, err)
		}
	}
}
