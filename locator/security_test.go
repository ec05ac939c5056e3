package locator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

// The security suite: every check here must keep failing loudly on a regression. It runs
// against one in-process node (seconds); the multi-node guarantees are in
// integration/consent_test.go.

// consentJSON is a directive for patient ref: an opt-out, or deny provisions for the
// participants or labels given.
func consentJSON(ref string, optOut bool, deny []string, labels []fhir.Coding) map[string]any {
	top := map[string]any{"type": "permit"}
	if optOut {
		top["type"] = "deny"
	}
	var subs []any
	if len(deny) > 0 {
		var actors []any
		for _, id := range deny {
			actors = append(actors, map[string]any{"role": fhir.RecipientRole(), "reference": map[string]any{"reference": "Organization/" + id}})
		}
		subs = append(subs, map[string]any{"type": "deny", "actor": actors})
	}
	if len(labels) > 0 {
		subs = append(subs, map[string]any{"type": "deny", "securityLabel": labels})
	}
	if subs != nil {
		top["provision"] = subs
	}
	return map[string]any{"resourceType": "Consent", "status": "active", "patient": map[string]any{"reference": ref}, "provision": top,
		"scope": r4ConsentScope, "category": r4ConsentCategory, "policyRule": fhir.PolicyRule(optOut)}
}

// The scope and category R4 requires of every Consent.
var (
	r4ConsentScope    = map[string]any{"coding": []any{map[string]any{"system": fhir.ConsentScopeSystem, "code": fhir.ConsentScopePrivacy}}}
	r4ConsentCategory = []any{map[string]any{"coding": []any{map[string]any{"system": fhir.LOINCSystem, "code": fhir.ConsentCategoryLOINC}}}}
)

func (a *testAPI) consent(t *testing.T, tok string, body map[string]any) fhir.Consent {
	t.Helper()
	code, data, _ := a.do("POST", "/fhir/Consent", tok, body, nil)
	if code != 201 {
		t.Fatalf("record consent: %d %s", code, data)
	}
	var c fhir.Consent
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// sameAnswer checks that a request about something hidden got exactly the answer for
// something that does not exist: status and body, once the id each asked about is
// replaced by a placeholder.
func sameAnswer(t *testing.T, what string, hiddenCode int, hidden []byte, hiddenID string, missingCode int, missing []byte, missingID string) {
	t.Helper()
	norm := func(b []byte, id string) string {
		if id != "" {
			b = bytes.ReplaceAll(b, []byte(id), []byte("ID"))
		}
		return string(b)
	}
	if hiddenCode != missingCode || norm(hidden, hiddenID) != norm(missing, missingID) {
		t.Fatalf("%s: a hidden patient is told apart from a missing one:\nhidden  %d %s\nmissing %d %s", what, hiddenCode, hidden, missingCode, missing)
	}
}

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

func TestSecuritySuite(t *testing.T) {
	a := newTestAPI(t)
	tokA, tokB := a.participants()

	t.Run("401 without valid credentials", func(t *testing.T) {
		_, body, _ := a.do("POST", "/fhir/Organization", testAdminToken, org("revoked", "urn:oid:9.1"), nil)
		revoked := tokenOf(t, body)
		if code, body, _ := a.do("POST", "/fhir/Organization/revoked/$revoke-token", testAdminToken, nil, nil); code != 200 {
			t.Fatalf("revoke: %d %s", code, body)
		}
		_, body, _ = a.do("POST", "/fhir/Organization", testAdminToken, org("disabled", "urn:oid:9.2"), nil)
		disabled := tokenOf(t, body)
		if code, body, _ := a.do("POST", "/fhir/Organization/disabled/$disable", testAdminToken, nil, nil); code != 200 {
			t.Fatalf("disable: %d %s", code, body)
		}
		_, body, _ = a.do("POST", "/fhir/Organization", testAdminToken, org("rotated", "urn:oid:9.3"), nil)
		rotated := tokenOf(t, body)
		if code, body, _ := a.do("POST", "/fhir/Organization/rotated/$rotate-token", testAdminToken, nil, nil); code != 200 {
			t.Fatalf("rotate: %d %s", code, body)
		}
		for name, tok := range map[string]string{"no token": "", "wrong token": "rls_not_a_token", "revoked token": revoked,
			"disabled participant": disabled, "rotated-out token": rotated, "admin token with a typo": testAdminToken + "x"} {
			for _, rt := range New(Options{Node: a.node}).routes() {
				if rt.access == public {
					continue
				}
				path := pathParam.ReplaceAllString(rt.pattern, "x")
				code, body, h := a.do(rt.method, path, tok, nil, nil)
				if code != 401 || h.Get("WWW-Authenticate") == "" {
					t.Fatalf("%s: %s %s answered %d %s", name, rt.method, path, code, body)
				}
			}
		}
	})

	t.Run("403 on every admin and steward endpoint with a participant token", func(t *testing.T) {
		n := 0
		for _, rt := range New(Options{Node: a.node}).routes() {
			if rt.access != admin && rt.access != steward {
				continue
			}
			n++
			path := pathParam.ReplaceAllString(rt.pattern, "x")
			if code, body, _ := a.do(rt.method, path, tokA, nil, nil); code != 403 {
				t.Fatalf("%s %s with a participant token: %d %s", rt.method, path, code, body)
			}
		}
		if n < 30 {
			t.Fatalf("only %d admin and steward routes found", n)
		}
	})

	t.Run("another participant's records cannot be changed", func(t *testing.T) {
		code, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "OWN-1", "Ada", "Byron", "1915-12-10", "female", "", ""), nil)
		if code != 201 {
			t.Fatalf("register: %d %s", code, body)
		}
		id := model.PatientID(sysA + "|OWN-1")
		p := patientJSON(sysA, "OWN-1", "Ada", "Lovelace", "1915-12-10", "female", "", "")
		p["id"] = id
		if code, body, _ := a.do("PUT", "/fhir/Patient/"+id, tokB, p, nil); code != 403 && code != 404 {
			t.Fatalf("B updates A's patient: %d %s", code, body)
		}
		if code, body, _ := a.do("PUT", "/fhir/Patient?identifier="+url.QueryEscape(sysA+"|OWN-1"), tokB, p, nil); code != 403 && code != 404 {
			t.Fatalf("B conditionally updates A's patient: %d %s", code, body)
		}
		doc := docJSON("urn:uuid:own-doc-1", "Patient/"+id, "current", "11506-3", "2024-01-02", "Note")
		if code, body, _ := a.do("POST", "/fhir/DocumentReference", tokA, doc, nil); code != 201 {
			t.Fatalf("register document: %d %s", code, body)
		}
		if code, body, _ := a.do("POST", "/fhir/DocumentReference", tokB, doc, nil); code != 403 && code != 404 {
			t.Fatalf("B replaces A's document: %d %s", code, body)
		}
		c := a.consent(t, tokA, consentJSON("Patient/"+id, false, []string{"hosp-b"}, nil))
		body2 := consentJSON("Patient/"+id, false, []string{"hosp-b"}, nil)
		body2["id"], body2["status"] = c.ID, "inactive"
		if code, body, _ := a.do("PUT", "/fhir/Consent/"+c.ID, tokB, body2, nil); code != 404 {
			t.Fatalf("B revokes A's directive: %d %s", code, body)
		}
		if code, body, _ := a.do("GET", "/fhir/Consent/"+c.ID, tokB, nil, nil); code != 404 {
			t.Fatalf("B reads A's directive: %d %s", code, body)
		}
		if code, body, _ := a.do("POST", "/fhir/Consent", tokB, consentJSON("Patient/"+id, true, nil, nil), nil); code != 422 {
			t.Fatalf("B records a directive for a patient it holds no record of: %d %s", code, body)
		}
	})

	t.Run("purpose of use", func(t *testing.T) {
		id := model.PatientID(sysA + "|OWN-1")
		for _, tc := range []struct {
			header map[string]string
			query  string
			want   int
		}{
			{map[string]string{HeaderPurposeOfUse: ""}, "", 400},
			{map[string]string{HeaderPurposeOfUse: "MARKETING"}, "", 400},
			{map[string]string{HeaderPurposeOfUse: "PAYMENT"}, "", 403},
			{map[string]string{HeaderPurposeOfUse: "ETREAT", HeaderBreakGlassReason: "unconscious"}, "", 403}, // not granted
			{map[string]string{HeaderPurposeOfUse: "TREAT", HeaderBreakGlassReason: "because"}, "", 400},
			{map[string]string{HeaderPurposeOfUse: ""}, "?purpose-of-use=TREAT", 200},
			{map[string]string{HeaderPurposeOfUse: "http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT"}, "", 200},
		} {
			if code, body, _ := a.do("GET", "/fhir/Patient/"+id+tc.query, tokA, nil, tc.header); code != tc.want {
				t.Fatalf("%v %s: %d %s", tc.header, tc.query, code, body)
			}
		}
	})

	t.Run("1000 hidden records answer as missing ones", func(t *testing.T) {
		const persons, perPerson = 10, 100
		var recs []command.PatientRecord
		for i := 0; i < persons; i++ {
			for j := 0; j < perPerson; j++ {
				recs = append(recs, command.PatientRecord{System: sysA, Value: fmt.Sprintf("E-%d-%d", i, j), Given: []string{"Hidden"},
					Family: fmt.Sprintf("Enumerated%c", 'A'+i), BirthDate: fmt.Sprintf("1970-01-%02d", i+1), Sex: "F", PostalCode: "6270" + fmt.Sprint(i)})
			}
		}
		var results []BatchResult
		for start := 0; start < len(recs); start += 100 { // within the test server's body limit
			code, body, _ := a.do("POST", "/v1/patients/batch", tokA, BatchRequest{Records: recs[start : start+100]}, nil)
			if code != 200 {
				t.Fatalf("batch: %d %s", code, body)
			}
			var br BatchResponse
			if err := json.Unmarshal(body, &br); err != nil {
				t.Fatal(err)
			}
			results = append(results, br.Results...)
		}
		euids := map[string]bool{}
		for _, r := range results {
			if r.Error != "" {
				t.Fatalf("batch record refused: %+v", r)
			}
			euids[r.EUID] = true
		}
		// Half the persons opt out; the other half deny hosp-b by name.
		i := 0
		for euid := range euids {
			a.consent(t, tokA, consentJSON("Person/"+euid, i%2 == 0, map[bool][]string{true: {"hosp-b"}}[i%2 == 1], nil))
			i++
		}
		missID := model.PatientID(sysA + "|NOPE")
		mCode, mBody, _ := a.do("GET", "/fhir/Patient/"+missID, tokB, nil, nil)
		pixMiss := func(v string) string {
			return "/fhir/Patient/$ihe-pix?sourceIdentifier=" + url.QueryEscape(sysA+"|"+v)
		}
		pCode, pBody, _ := a.do("GET", pixMiss("NOPE"), tokB, nil, nil)
		lCode, lBody, _ := a.do("GET", "/v1/locate?identifier="+url.QueryEscape(sysA+"|NOPE"), tokB, nil, nil)
		sCode, sBody, _ := a.do("GET", "/fhir/Patient?identifier="+url.QueryEscape(sysA+"|NOPE"), tokB, nil, nil)
		for n, r := range recs {
			id := model.PatientID(sysA + "|" + r.Value)
			code, body, _ := a.do("GET", "/fhir/Patient/"+id, tokB, nil, nil)
			sameAnswer(t, "read "+r.Value, code, body, id, mCode, mBody, missID)
			if n%10 != 0 {
				continue
			}
			code, body, _ = a.do("GET", pixMiss(r.Value), tokB, nil, nil)
			sameAnswer(t, "PIXm "+r.Value, code, body, "", pCode, pBody, "")
			code, body, _ = a.do("GET", "/v1/locate?identifier="+url.QueryEscape(sysA+"|"+r.Value), tokB, nil, nil)
			sameAnswer(t, "locate "+r.Value, code, body, "", lCode, lBody, "")
			code, body, _ = a.do("GET", "/fhir/Patient?identifier="+url.QueryEscape(sysA+"|"+r.Value), tokB, nil, nil)
			sameAnswer(t, "PDQm "+r.Value, code, body, url.QueryEscape(sysA+"|"+r.Value), sCode, sBody, url.QueryEscape(sysA+"|NOPE"))
		}
		// Each denial left exactly one audit entry: hosp-b, the read, 404, nothing disclosed.
		reads := map[string][]model.AuditEntry{}
		for _, e := range a.auditList(t, "participant=hosp-b").Entries {
			if e.Action == "patient-read" {
				reads[e.Path] = append(reads[e.Path], e)
			}
		}
		for _, r := range recs {
			path := "/fhir/Patient/" + model.PatientID(sysA+"|"+r.Value)
			got := reads[path]
			if len(got) != 1 || got[0].Status != mCode || len(got[0].EUIDs) != 0 || len(got[0].Records) != 0 || got[0].Purpose != "TREAT" {
				t.Fatalf("audit of the denied read %s: %+v", path, got)
			}
		}
		for euid := range euids {
			code, body, _ := a.do("GET", "/fhir/Person/"+euid, tokB, nil, nil)
			mc, mb, _ := a.do("GET", "/fhir/Person/Enope", tokB, nil, nil)
			sameAnswer(t, "Person "+euid, code, body, euid, mc, mb, "Enope")
		}
		// The owner still sees its own records, and the admin (not denied by name) breaks
		// the glass for the opted-out ones.
		if code, body, _ := a.do("GET", "/fhir/Patient/"+model.PatientID(sysA+"|E-0-0"), tokA, nil, nil); code != 200 {
			t.Fatalf("owner reads its own record: %d %s", code, body)
		}
		seen := 0
		for i := 0; i < persons; i++ {
			r := recs[i*perPerson]
			code, _, _ := a.do("GET", "/v1/locate?identifier="+url.QueryEscape(sysA+"|"+r.Value), testAdminToken, nil,
				map[string]string{HeaderPurposeOfUse: "ETREAT", HeaderBreakGlassReason: "security suite check"})
			if code == 200 {
				seen++
			}
		}
		if seen != persons {
			t.Fatalf("break-the-glass by the admin disclosed %d of %d persons", seen, persons)
		}
	})

	t.Run("rate limit answers 429 with Retry-After", func(t *testing.T) {
		b := newTestAPI(t, func(o *Options) { o.RateLimit, o.RateBurst = 1, 2 })
		tok, _ := b.participants()
		got429 := false
		for i := 0; i < 5 && !got429; i++ {
			code, _, h := b.do("GET", "/fhir/Organization/hosp-a", tok, nil, nil)
			if code == 429 {
				got429 = true
				if h.Get("Retry-After") == "" {
					t.Fatal("429 without Retry-After")
				}
			}
		}
		if !got429 {
			t.Fatal("5 requests at once with a burst of 2 were all served")
		}
		if code, _, _ := b.do("GET", "/fhir/Organization/hosp-a", testAdminToken, nil, nil); code != 200 {
			t.Fatalf("the admin is rate limited: %d", code)
		}
	})
}

// TestConsentDirectivesEnforced walks a patient through the directives: labels withheld,
// opt-out, break-the-glass, a named denial, a merge, and revocation.
func TestConsentDirectivesEnforced(t *testing.T) {
	w := newDocWorld(t)
	a := w.a
	o := org("hosp-c", "urn:oid:2.16.840.1.113883.3.7003")
	o.Extension = append(o.Extension, fhir.Extension{URL: fhir.PurposeOfUseURL, ValueCode: "TREAT"}, fhir.Extension{URL: fhir.PurposeOfUseURL, ValueCode: "ETREAT"})
	_, body, _ := a.do("POST", "/fhir/Organization", testAdminToken, o, nil)
	tokC := tokenOf(t, body)
	btg := map[string]string{HeaderPurposeOfUse: "ETREAT", HeaderBreakGlassReason: "unresponsive in the ED"}

	normal := w.register(t, w.tokA, docJSON("urn:uuid:c-1", "Patient/"+w.patA, "current", "11506-3", "2024-03-01", "Progress note"))
	part2doc := docJSON("urn:uuid:c-2", "Patient/"+w.patB, "current", "11506-3", "2024-03-02", "Counselling note")
	part2doc["securityLabel"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}}}}
	part2 := w.register(t, w.tokB, part2doc)
	// B's counselling note filed under A's record of the patient: A owns the record, not
	// the document.
	onA := docJSON("urn:uuid:c-3", "Patient/"+w.patA, "current", "11506-3", "2024-03-03", "Counselling note")
	onA["securityLabel"] = part2doc["securityLabel"]
	part2onA := w.register(t, w.tokB, onA)

	locateA := "/v1/locate?identifier=" + url.QueryEscape(sysA+"|A-1")
	docs := func(tok string, h map[string]string) []string {
		code, body, _ := a.do("GET", "/fhir/DocumentReference?patient=Person/"+w.euid, tok, nil, h)
		if code != 200 {
			t.Fatalf("document search: %d %s", code, body)
		}
		var b fhir.Bundle
		json.Unmarshal(body, &b)
		var ids []string
		for _, e := range b.Entry {
			ids = append(ids, e.FullURL[strings.LastIndex(e.FullURL, "/")+1:])
		}
		return ids
	}
	status := func(method, path, tok string, body any, h map[string]string) int {
		code, _, _ := a.do(method, path, tok, body, h)
		return code
	}
	if got := docs(tokC, nil); len(got) != 3 {
		t.Fatalf("before any directive C sees %v", got)
	}

	// Withhold 42 CFR Part 2 records: C no longer sees B's counselling note; B, its holder, does.
	withhold := a.consent(t, w.tokB, consentJSON("Person/"+w.euid, false, nil, []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "ETH"}}))
	if got := docs(tokC, nil); len(got) != 1 || got[0] != normal {
		t.Fatalf("with ETH withheld C sees %v", got)
	}
	if status("GET", "/fhir/DocumentReference/"+part2, tokC, nil, nil) != 404 || status("GET", "/fhir/DocumentReference/"+part2, w.tokB, nil, nil) != 200 {
		t.Fatal("withheld document read: wrong answers")
	}
	if status("GET", "/fhir/DocumentReference/"+part2onA, w.tokA, nil, nil) != 404 || status("GET", "/fhir/DocumentReference/"+part2onA, w.tokB, nil, nil) != 200 {
		t.Fatal("a withheld document about the reader's own record is disclosed to it")
	}
	var lr LocateResult
	_, body, _ = a.do("GET", locateA, tokC, nil, nil)
	json.Unmarshal(body, &lr)
	for _, l := range lr.Locations {
		if l.Participant.ID == "hosp-b" && l.DocumentCount != 0 {
			t.Fatalf("locate counts the withheld document: %s", body)
		}
	}

	// Opt-out: nothing about the person reaches C, by any route.
	optOut := a.consent(t, w.tokA, consentJSON("Patient/"+w.patA, true, nil, nil))
	match := map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "resource",
		"resource": patientJSON(sysA, "Q", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123")}}}
	// own is the caller's own record of the person, which PDQm still shows it (it holds it).
	checkHidden := func(tok string, h map[string]string, own string) {
		t.Helper()
		if c := status("GET", locateA, tok, nil, h); c != 404 {
			t.Fatalf("locate: %d", c)
		}
		if c := status("GET", "/fhir/Patient/$ihe-pix?sourceIdentifier="+url.QueryEscape(sysB+"|B-1"), tok, nil, h); c != 404 {
			t.Fatalf("PIXm: %d", c)
		}
		if c := status("GET", "/fhir/Person/"+w.euid, tok, nil, h); c != 404 {
			t.Fatalf("Person: %d", c)
		}
		if got := docs(tok, h); len(got) != 0 {
			t.Fatalf("documents: %v", got)
		}
		_, body, _ := a.do("GET", "/fhir/Patient?family=Okonjo&birthdate=1958-02-14", tok, nil, h)
		var b fhir.Bundle
		json.Unmarshal(body, &b)
		for _, e := range b.Entry {
			if !strings.HasSuffix(e.FullURL, "/Patient/"+own) {
				t.Fatalf("PDQm: %s", body)
			}
		}
		_, body, _ = a.do("POST", "/fhir/Patient/$match", tok, match, h)
		b = fhir.Bundle{}
		json.Unmarshal(body, &b)
		for _, e := range b.Entry {
			if strings.HasSuffix(e.FullURL, "/Person/"+w.euid) {
				t.Fatalf("$match discloses the person: %s", body)
			}
		}
	}
	checkHidden(tokC, nil, "")
	checkHidden(w.tokB, nil, w.patB) // the directive is the person's: B's record of them is hidden from B's queries but its own

	// Break the glass: C sees the person for this request; the withheld label stays withheld.
	if c := status("GET", locateA, tokC, nil, btg); c != 200 {
		t.Fatalf("break-the-glass locate: %d", c)
	}
	if got := docs(tokC, btg); len(got) != 1 || got[0] != normal {
		t.Fatalf("break-the-glass documents: %v", got)
	}
	if c := status("GET", locateA, tokC, nil, nil); c != 404 {
		t.Fatalf("break-the-glass outlived its request: %d", c)
	}

	// A named denial is not overridden by break-the-glass.
	deny := a.consent(t, w.tokB, consentJSON("Patient/"+w.patB, false, []string{"hosp-c"}, nil))
	checkHidden(tokC, btg, "")

	// Directives follow the person: merge person C (patC, B's Thomas Reed) into the opted-out
	// person, and B's record of Thomas is hidden from C too.
	if c := status("GET", "/fhir/Patient/"+w.patC, tokC, nil, nil); c != 200 {
		t.Fatalf("before the merge: %d", c)
	}
	var euidC string
	_, body, _ = a.do("GET", "/fhir/Patient/"+w.patC, tokC, nil, nil)
	euidC = euidOf(t, body)
	if code, body, _ := a.do("POST", "/v1/steward/merge", testAdminToken, StewardRequest{From: euidC, Into: w.euid, Reason: "test"}, nil); code != 200 {
		t.Fatalf("merge: %d %s", code, body)
	}
	if c := status("GET", "/fhir/Patient/"+w.patC, tokC, nil, nil); c != 404 {
		t.Fatalf("after the merge: %d", c)
	}

	// Revoking every directive restores access.
	for _, c := range []fhir.Consent{withhold, optOut, deny} {
		code, data, _ := a.do("GET", "/fhir/Consent/"+c.ID, testAdminToken, nil, nil)
		if code != 200 {
			t.Fatalf("read directive: %d %s", code, data)
		}
		var cur map[string]any
		json.Unmarshal(data, &cur)
		cur["status"] = "inactive"
		delete(cur, "meta")
		if code, data, _ := a.do("PUT", "/fhir/Consent/"+c.ID, testAdminToken, cur, map[string]string{"If-Match": `W/"1"`}); code != 200 {
			t.Fatalf("revoke: %d %s", code, data)
		}
	}
	if c := status("GET", locateA, tokC, nil, nil); c != 200 {
		t.Fatalf("after revocation: %d", c)
	}
	if got := docs(tokC, nil); len(got) != 3 {
		t.Fatalf("after revocation C sees %v", got)
	}
	// The directives are listed for the person, inactive now.
	_, body, _ = a.do("GET", "/fhir/Consent?status=inactive&patient=Person/"+w.euid, testAdminToken, nil, nil)
	var b fhir.Bundle
	json.Unmarshal(body, &b)
	if b.Total != 3 {
		t.Fatalf("inactive directives of the person: %s", body)
	}
}

// TestDocumentWritesAreConsentNeutral: registering a document about an opted-out patient,
// by a participant that holds no record of them, answers exactly (status and body) as for a
// patient rls does not know, whichever way the subject is named and on the batch route too;
// the patient's own providers still register; a participant the patient denied cannot.
func TestDocumentWritesAreConsentNeutral(t *testing.T) {
	w := newDocWorld(t)
	a := w.a
	_, body, _ := a.do("POST", "/fhir/Organization", testAdminToken, org("hosp-c", "urn:oid:2.16.840.1.113883.3.7003"), nil)
	tokC := tokenOf(t, body)
	before := docJSON("urn:uuid:n-0", "Patient/"+w.patA, "current", "11506-3", "2024-03-01", "Note")
	if code, body, _ := a.do("POST", "/fhir/DocumentReference", tokC, before, nil); code != 201 {
		t.Fatalf("before any directive: %d %s", code, body)
	}
	a.consent(t, w.tokA, consentJSON("Person/"+w.euid, true, nil, nil))

	missingPatient := model.PatientID(sysA + "|NOBODY")
	subjects := []struct {
		name                string
		hidden, missing     map[string]any
		hiddenID, missingID string
	}{
		{"Patient/id", map[string]any{"reference": "Patient/" + w.patA}, map[string]any{"reference": "Patient/" + missingPatient}, w.patA, missingPatient},
		{"Person/euid", map[string]any{"reference": "Person/" + w.euid}, map[string]any{"reference": "Person/Enobody"}, w.euid, "Enobody"},
		{"identifier", map[string]any{"identifier": map[string]any{"system": sysA, "value": "A-1"}}, map[string]any{"identifier": map[string]any{"system": sysA, "value": "NOBODY"}}, "A-1", "NOBODY"},
	}
	for i, s := range subjects {
		doc := func(subject map[string]any) map[string]any {
			d := docJSON(fmt.Sprintf("urn:uuid:n-%d", i+1), "", "current", "11506-3", "2024-03-01", "Note")
			d["subject"] = subject
			return d
		}
		hc, hb, _ := a.do("POST", "/fhir/DocumentReference", tokC, doc(s.hidden), nil)
		mc, mb, _ := a.do("POST", "/fhir/DocumentReference", tokC, doc(s.missing), nil)
		if hc < 400 {
			t.Fatalf("%s: a document about an opted-out patient registered: %d %s", s.name, hc, hb)
		}
		sameAnswer(t, "document by "+s.name, hc, hb, s.hiddenID, mc, mb, s.missingID)

		// The batch route answers alike, result by result.
		hr, _ := json.Marshal(doc(s.hidden))
		mr, _ := json.Marshal(doc(s.missing))
		_, hbb, _ := a.do("POST", "/v1/documents/batch", tokC, DocumentBatchRequest{Documents: []json.RawMessage{hr}}, nil)
		_, mbb, _ := a.do("POST", "/v1/documents/batch", tokC, DocumentBatchRequest{Documents: []json.RawMessage{mr}}, nil)
		sameAnswer(t, "batch document by "+s.name, 200, hbb, s.hiddenID, 200, mbb, s.missingID)
	}
	// Its own provider registers its own documents about the patient.
	if code, body, _ := a.do("POST", "/fhir/DocumentReference", w.tokA, docJSON("urn:uuid:n-own", "Patient/"+w.patA, "current", "11506-3", "2024-03-01", "Note"), nil); code != 201 {
		t.Fatalf("the patient's own provider: %d %s", code, body)
	}

	// A participant the patient denied: refused, whether it holds a record of them (403) or
	// not (the unknown patient's answer).
	a.consent(t, w.tokA, consentJSON("Person/"+w.euid, false, []string{"hosp-b", "hosp-c"}, nil))
	if code, body, _ := a.do("POST", "/fhir/DocumentReference", w.tokB, docJSON("urn:uuid:n-b", "Patient/"+w.patB, "current", "11506-3", "2024-03-01", "Note"), nil); code != 403 {
		t.Fatalf("a denied participant holding a record registered a document: %d %s", code, body)
	}
}

// TestOwnRecordDoesNotNameAHiddenPerson: a participant the patient's directive hides the
// person from (an opt-out, or a denial naming it) still registers and reads its own records
// of the patient, but no answer names the person they belong to: no EUID identifier, no
// match decision, no EUID or score in a batch result, nothing in the audit as disclosed.
func TestOwnRecordDoesNotNameAHiddenPerson(t *testing.T) {
	for _, tc := range []struct {
		name      string
		directive func(w docWorld) map[string]any
	}{
		{"opt-out", func(w docWorld) map[string]any { return consentJSON("Patient/"+w.patA, true, nil, nil) }},
		{"denial of the reader", func(w docWorld) map[string]any {
			return consentJSON("Patient/"+w.patA, false, []string{"hosp-b"}, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newDocWorld(t) // B's record B-1 is in the person w.euid, and B was told so
			a := w.a
			a.consent(t, w.tokA, tc.directive(w))
			mustNotName := func(what string, code, want int, body []byte) {
				t.Helper()
				if code != want {
					t.Fatalf("%s: %d %s", what, code, body)
				}
				if strings.Contains(string(body), w.euid) {
					t.Fatalf("%s names the hidden person %s: %s", what, w.euid, body)
				}
				if strings.Contains(string(body), fhir.MatchDecisionURL) {
					t.Fatalf("%s reports the match decision: %s", what, body)
				}
			}

			code, body, _ := a.do("GET", "/fhir/Patient/"+w.patB, w.tokB, nil, nil)
			mustNotName("B reads its own record", code, 200, body)
			if !strings.Contains(string(body), "B-1") {
				t.Fatalf("B's own record lost its identifier: %s", body)
			}
			code, body, _ = a.do("GET", "/fhir/Patient?identifier="+url.QueryEscape(sysB+"|B-1"), w.tokB, nil, nil)
			mustNotName("B searches its own record", code, 200, body)
			if !strings.Contains(string(body), w.patB) {
				t.Fatalf("PDQm no longer finds B's own record: %s", body)
			}
			code, body, _ = a.do("GET", "/fhir/Patient?identifier="+url.QueryEscape(fhir.EUIDSystem+"|"+w.euid), w.tokB, nil, nil)
			var found fhir.Bundle
			if err := json.Unmarshal(body, &found); code != 200 || err != nil || found.Total != 0 || len(found.Entry) != 0 {
				t.Fatalf("B's search by the hidden EUID finds its own record: %d %s", code, body)
			}

			// Registering again, and a new record of the same patient, links as before;
			// the answers do not say so.
			code, body, _ = a.do("POST", "/fhir/Patient", w.tokB, patientJSON(sysB, "B-1", "Maggie", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
			mustNotName("B registers its record again", code, 200, body)
			code, body, _ = a.do("POST", "/fhir/Patient", w.tokB, patientJSON(sysB, "B-9", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
			mustNotName("B registers a second record of the patient", code, 201, body)
			batch := BatchRequest{Patients: []json.RawMessage{mustJSON(patientJSON(sysB, "B-10", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"))}}
			code, body, _ = a.do("POST", "/v1/patients/batch", w.tokB, batch, nil)
			mustNotName("B's batch", code, 200, body)
			var br BatchResponse
			if err := json.Unmarshal(body, &br); err != nil || len(br.Results) != 1 {
				t.Fatalf("batch answer: %v %s", err, body)
			}
			if r := br.Results[0]; r.Outcome != OutcomeWithheld || r.EUID != "" || r.Score != 0 || r.Patient == "" {
				t.Fatalf("batch result for a hidden person: %+v", r)
			}
			for _, id := range []string{"B-9", "B-10"} {
				key := sysB + "|" + id
				// The admin, breaking the glass, is told the person (a denial names B only).
				code, body, _ := a.do("GET", "/fhir/Patient/"+model.PatientID(key), testAdminToken, nil,
					map[string]string{HeaderPurposeOfUse: "ETREAT", HeaderBreakGlassReason: "check the link"})
				if code != 200 {
					t.Fatalf("admin reads %s: %d %s", id, code, body)
				}
				if got := euidOf(t, body); got != w.euid {
					t.Fatalf("%s joined %q, not the patient's person %s: the test shows nothing", id, got, w.euid)
				}
			}
			// Every entry of B's requests since the directive (the first is its read)
			// lists no person.
			after := false
			for _, e := range a.auditList(t, "participant=hosp-b").Entries {
				if e.Path == "/fhir/Patient/"+w.patB {
					after = true
				}
				if after && slices.Contains(e.EUIDs, w.euid) {
					t.Fatalf("audit lists the hidden person as disclosed to B: %+v", e)
				}
			}
			if !after {
				t.Fatal("the audit has no entry of B's reads")
			}
		})
	}
}
