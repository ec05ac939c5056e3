package locator

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

const (
	sysA = "urn:oid:2.16.840.1.113883.3.7001"
	sysB = "urn:oid:2.16.840.1.113883.3.7002"
)

// participants registers two hospitals and returns their tokens.
func (a *testAPI) participants() (string, string) {
	a.t.Helper()
	_, body, _ := a.do("POST", "/fhir/Organization", testAdminToken, org("hosp-a", sysA), nil)
	tokA := tokenOf(a.t, body)
	_, body, _ = a.do("POST", "/fhir/Organization", testAdminToken, org("hosp-b", sysB), nil)
	return tokA, tokenOf(a.t, body)
}

func patientJSON(system, mrn, given, family, birth, gender, zip, phone string) map[string]any {
	p := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": system, "value": mrn}},
		"name":         []any{map[string]any{"use": "official", "family": family, "given": strings.Fields(given)}},
		"birthDate":    birth,
		"gender":       gender,
	}
	if zip != "" {
		p["address"] = []any{map[string]any{"use": "home", "line": []string{"12 Oak Street"}, "city": "Springfield", "state": "IL", "postalCode": zip}}
	}
	if phone != "" {
		p["telecom"] = []any{map[string]any{"system": "phone", "value": phone}}
	}
	return p
}

func euidOf(t *testing.T, body []byte) string {
	t.Helper()
	var p fhir.Patient
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	for _, id := range p.Identifier {
		if id.System == fhir.EUIDSystem {
			return id.Value
		}
	}
	t.Fatalf("no EUID in %s", body)
	return ""
}

func TestPatientRegistrationLinksAcrossParticipants(t *testing.T) {
	a := newTestAPI(t)
	tokA, tokB := a.participants()

	code, body, h := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "A-100", "Margaret Ann", "O'Brien", "1961-07-04", "female", "62704", "(217) 555-0101"), nil)
	if code != 201 || h.Get("Location") == "" {
		t.Fatalf("register at A: %d %s", code, body)
	}
	euid := euidOf(t, body)
	if !strings.Contains(string(body), fhir.MatchDecisionURL) || !strings.Contains(string(body), `"valueCode": "new"`) {
		t.Fatalf("no decision in %s", body)
	}
	// The same person at hospital B, with a nickname and a reformatted phone: one EUID.
	code, body, _ = a.do("POST", "/fhir/Patient", tokB, patientJSON(sysB, "B-7", "Peggy", "OBrien", "1961-07-04", "female", "62704-1234", "217.555.0101"), nil)
	if code != 201 {
		t.Fatalf("register at B: %d %s", code, body)
	}
	if got := euidOf(t, body); got != euid {
		t.Fatalf("same person got EUID %s at B, %s at A: %s", got, euid, body)
	}
	// A different person (another birth year, another phone) gets another EUID.
	_, body, _ = a.do("POST", "/fhir/Patient", tokB, patientJSON(sysB, "B-8", "Thomas", "Reed", "1990-01-20", "male", "10001", "212 555 0199"), nil)
	if euidOf(t, body) == euid {
		t.Fatal("a different person was linked")
	}

	// Read back, Person, PIXm.
	pidA := model.PatientID(sysA + "|A-100")
	code, body, h = a.do("GET", "/fhir/Patient/"+pidA, tokB, nil, nil)
	if code != 200 || !strings.Contains(string(body), "Margaret") || h.Get("ETag") != `W/"1"` {
		t.Fatalf("read: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/fhir/Person/"+euid, tokA, nil, nil)
	var person fhir.Person
	if code != 200 || json.Unmarshal(body, &person) != nil || len(person.Link) != 2 || person.BirthDate != "1961-07-04" {
		t.Fatalf("person: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/fhir/Patient/$ihe-pix?sourceIdentifier="+url.QueryEscape(sysA+"|A-100"), tokA, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"value": "B-7"`) || !strings.Contains(string(body), `"targetId"`) || !strings.Contains(string(body), euid) {
		t.Fatalf("pix: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/fhir/Patient/$ihe-pix?sourceIdentifier="+url.QueryEscape(sysA+"|A-100")+"&targetSystem="+url.QueryEscape(sysB), tokA, nil, nil)
	if code != 200 || strings.Contains(string(body), euid) || !strings.Contains(string(body), "B-7") {
		t.Fatalf("pix with targetSystem: %d %s", code, body)
	}
	for _, tc := range []struct {
		query  string
		status int
	}{
		{"sourceIdentifier=" + url.QueryEscape("urn:oid:9.9|X"), 400},
		{"sourceIdentifier=" + url.QueryEscape(sysA+"|nobody"), 404},
		{"sourceIdentifier=" + url.QueryEscape(sysA+"|A-100") + "&targetSystem=urn:oid:9.9", 403},
		{"sourceIdentifier=nobar", 400},
	} {
		if code, body, _ = a.do("GET", "/fhir/Patient/$ihe-pix?"+tc.query, tokA, nil, nil); code != tc.status {
			t.Errorf("pix %s: %d %s, want %d", tc.query, code, body, tc.status)
		}
	}
}

func TestPatientRegistrationRules(t *testing.T) {
	a := newTestAPI(t)
	tokA, _ := a.participants()
	// A participant may register only under its own system.
	code, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysB, "X1", "Ann", "Lee", "1980-02-03", "female", "", ""), nil)
	if code != 403 {
		t.Fatalf("registering under another's system: %d %s", code, body)
	}
	outcomeMentions(t, body, "own identifier system")
	cases := []struct {
		name    string
		patient map[string]any
		status  int
		element string
	}{
		{"no identifier", map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Lee"}}}, 400, "Patient.identifier"},
		{"bad birth date", patientJSON(sysA, "X2", "Ann", "Lee", "03/02/1980", "female", "", ""), 400, "Patient.birthDate"},
		{"bad gender", patientJSON(sysA, "X3", "Ann", "Lee", "1980-02-03", "f", "", ""), 400, "Patient.gender"},
		{"unknown element", func() map[string]any {
			p := patientJSON(sysA, "X4", "Ann", "Lee", "1980-02-03", "female", "", "")
			p["favouriteColour"] = "red"
			return p
		}(), 400, "Patient.favouriteColour"},
		{"replaced by an unknown record", func() map[string]any {
			p := patientJSON(sysA, "X5", "Ann", "Lee", "1980-02-03", "female", "", "")
			p["link"] = []any{map[string]any{"type": "replaced-by", "other": map[string]any{"reference": "Patient/x"}}}
			return p
		}(), 422, "Patient.link[0].other"},
	}
	for _, tc := range cases {
		code, body, _ := a.do("POST", "/fhir/Patient", tokA, tc.patient, nil)
		if code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.status)
			continue
		}
		outcomeMentions(t, body, tc.element)
	}

	// Update: by id, conditional, version conflict.
	p := patientJSON(sysA, "U1", "Ann", "Lee", "1980-02-03", "female", "", "")
	code, body, _ = a.do("POST", "/fhir/Patient", tokA, p, nil)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	id := model.PatientID(sysA + "|U1")
	p["id"] = id
	p["birthDate"] = "1980-02-04"
	code, body, h := a.do("PUT", "/fhir/Patient/"+id, tokA, p, map[string]string{"If-Match": `W/"1"`})
	if code != 200 || h.Get("ETag") != `W/"2"` || !strings.Contains(string(body), "1980-02-04") {
		t.Fatalf("update: %d %s", code, body)
	}
	code, body, _ = a.do("PUT", "/fhir/Patient/"+id, tokA, p, map[string]string{"If-Match": `W/"1"`})
	if code != 412 {
		t.Fatalf("stale update: %d %s", code, body)
	}
	code, body, _ = a.do("PUT", "/fhir/Patient?identifier="+url.QueryEscape(sysA+"|U2"), tokA, patientJSON(sysA, "U2", "Bo", "Ng", "1975-05-05", "male", "", ""), nil)
	if code != 201 {
		t.Fatalf("conditional create: %d %s", code, body)
	}
	code, body, _ = a.do("PUT", "/fhir/Patient?identifier="+url.QueryEscape(sysA+"|U3"), tokA, patientJSON(sysA, "U2", "Bo", "Ng", "1975-05-05", "male", "", ""), nil)
	if code != 400 {
		t.Fatalf("conditional update with another identifier: %d %s", code, body)
	}
	if code, _, _ = a.do("GET", "/fhir/Patient/nope", tokA, nil, nil); code != 404 {
		t.Fatalf("unknown patient: %d", code)
	}
	if code, _, _ = a.do("GET", "/fhir/Person/nope", tokA, nil, nil); code != 404 {
		t.Fatalf("unknown person: %d", code)
	}
}

func TestPDQmSearch(t *testing.T) {
	a := newTestAPI(t)
	tokA, tokB := a.participants()
	people := []struct {
		tok, sys, mrn, given, family, birth, gender, zip, phone string
	}{
		{tokA, sysA, "1", "William", "Smith", "1950-03-01", "male", "62701", "2175550001"},
		{tokA, sysA, "2", "Katherine", "Smythe", "1972-11-30", "female", "62702", "2175550002"},
		{tokB, sysB, "3", "Jon", "Smithson", "1950-03-02", "male", "62701", "2175550003"},
		{tokB, sysB, "4", "Maria", "Garcia", "2001-06-15", "female", "60601", "3125550004"},
	}
	for _, p := range people {
		if code, body, _ := a.do("POST", "/fhir/Patient", p.tok, patientJSON(p.sys, p.mrn, p.given, p.family, p.birth, p.gender, p.zip, p.phone), nil); code != 201 {
			t.Fatalf("register %s: %d %s", p.mrn, code, body)
		}
	}
	// The admin searches: a participant's searches need more criteria (TestPDQmMinimumCriteria).
	search := func(q string) []string {
		t.Helper()
		code, body, _ := a.do("GET", "/fhir/Patient?"+q, testAdminToken, nil, nil)
		if code != 200 {
			t.Fatalf("search %s: %d %s", q, code, body)
		}
		var b struct {
			Entry []struct {
				Resource fhir.Patient `json:"resource"`
			} `json:"entry"`
		}
		json.Unmarshal(body, &b)
		var mrns []string
		for _, e := range b.Entry {
			mrns = append(mrns, e.Resource.Identifier[0].Value)
		}
		return mrns
	}
	cases := []struct{ q, want string }{
		{"family=Smith", "1 3 2"},   // exact, then prefix (Smithson), then sound (Smythe)
		{"family:exact=Smith", "1"}, // no forgiveness
		{"family=smi&gender=male", "1 3"},
		{"given=Bill", "1"}, // nickname of William
		{"birthdate=1950", "1 3"},
		{"birthdate=ge1950-03-02&birthdate=le1972-12-31", "2 3"}, // equal rank: by record
		{"birthdate=gt1950-03-01&family=smith", "3 2"},
		{"address-postalcode=62701", "1 3"},
		{"telecom=217-555-0002", "2"},
		{"identifier=" + url.QueryEscape(sysB+"|4"), "4"},
		{"identifier=4", "4"},
		{"family=Nobody", ""},
		{"_id=" + model.PatientID(sysA+"|1"), "1"},
	}
	for _, tc := range cases {
		if got := strings.Join(search(tc.q), " "); got != tc.want {
			t.Errorf("search %s: got [%s], want [%s]", tc.q, got, tc.want)
		}
	}
	// Paging.
	code, body, _ := a.do("GET", "/fhir/Patient?family=smith&_count=1", testAdminToken, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"relation": "next"`) || !strings.Contains(string(body), `"total": 3`) {
		t.Fatalf("paging: %d %s", code, body)
	}
	for _, bad := range []string{"gender=male", "colour=red", "family:contains=smi", "birthdate=1950-13", "birthdate=ap1950", "_count=1000"} {
		if code, body, _ := a.do("GET", "/fhir/Patient?"+bad, testAdminToken, nil, nil); code != 400 {
			t.Errorf("search %s: %d %s, want 400", bad, code, body)
		}
	}
}

func TestMatchReturnsThePersonFirstAsCertain(t *testing.T) {
	a := newTestAPI(t)
	tokA, tokB := a.participants()
	var euid string
	for i, p := range []map[string]any{
		patientJSON(sysA, "M1", "Robert", "Okafor", "1948-09-12", "male", "62704", "2175551212"),
		patientJSON(sysB, "M2", "Bob", "Okafor", "1948-09-12", "male", "62704", "2175551212"),
		patientJSON(sysB, "M3", "Robert", "Okafor", "1979-09-12", "male", "62704", "2175559999"),
	} {
		tok := tokA
		if i > 0 {
			tok = tokB
		}
		_, body, _ := a.do("POST", "/fhir/Patient", tok, p, nil)
		if i == 0 {
			euid = euidOf(t, body)
		}
	}
	query := patientJSON(sysA, "ignored", "Robert", "Okafor", "1948-09-12", "male", "62704", "2175551212")
	params := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "resource", "resource": query},
		map[string]any{"name": "count", "valueInteger": 5},
	}}
	code, body, _ := a.do("POST", "/fhir/Patient/$match", tokA, params, nil)
	if code != 200 {
		t.Fatalf("$match: %d %s", code, body)
	}
	var b struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource fhir.Patient    `json:"resource"`
			Search   fhir.SearchInfo `json:"search"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || len(b.Entry) == 0 {
		t.Fatalf("$match bundle: %v %s", err, body)
	}
	top := b.Entry[0]
	if top.Resource.ResourceType != "Patient" || top.Resource.ID != euid || top.Search.Mode != "match" || top.Search.Score == nil || *top.Search.Score < 0.9 {
		t.Fatalf("top match %+v, want the Patient of %s, certain", top, euid)
	}
	// The golden Patient links its source records and its Person, and its fullUrl resolves.
	if len(top.Resource.Link) < 2 || top.Resource.Link[0].Type != "seealso" || !strings.Contains(string(body), `"reference": "Person/`+euid+`"`) {
		t.Fatalf("golden Patient links %+v: want seealso links to the records and the person extension", top.Resource.Link)
	}
	if code, got, _ := a.do("GET", top.FullURL, tokA, nil, nil); code != 200 || !strings.Contains(string(got), `"id": "`+euid+`"`) {
		t.Fatalf("the golden Patient's fullUrl %s: %d %s", top.FullURL, code, got)
	}
	grade := ""
	fields := 0
	for _, e := range top.Search.Extension {
		switch e.URL {
		case fhir.MatchGradeURL:
			grade = e.ValueCode
		case fhir.MatchFieldURL:
			fields++
		}
	}
	if grade != "certain" || fields == 0 || len(top.Resource.Identifier) < 3 {
		t.Fatalf("top match grade %q with %d field explanations and identifiers %v", grade, fields, top.Resource.Identifier)
	}
	for _, e := range b.Entry[1:] {
		if e.Resource.ID == euid {
			t.Fatal("a person appears twice")
		}
	}
	// onlyCertainMatches drops the others (the father, born 1979 – different person).
	params["parameter"] = append(params["parameter"].([]any), map[string]any{"name": "onlyCertainMatches", "valueBoolean": true})
	_, body, _ = a.do("POST", "/fhir/Patient/$match", tokA, params, nil)
	json.Unmarshal(body, &b)
	if len(b.Entry) != 1 {
		t.Fatalf("onlyCertainMatches returned %d entries", len(b.Entry))
	}
	code, body, _ = a.do("POST", "/fhir/Patient/$match", tokA, map[string]any{"resourceType": "Parameters"}, nil)
	if code != 400 {
		t.Fatalf("$match without resource: %d %s", code, body)
	}
}

func TestCapabilityStatementListsWhatIsServed(t *testing.T) {
	a := newTestAPI(t)
	code, body, _ := a.do("GET", "/fhir/metadata", "", nil, nil)
	if code != 200 {
		t.Fatalf("metadata: %d %s", code, body)
	}
	for _, want := range []string{`"CapabilityStatement"`, `"type": "Patient"`, `"type": "Person"`, `"name": "match"`, `"name": "ihe-pix"`, `"name": "birthdate"`, `"conditionalUpdate": true`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("CapabilityStatement lacks %s", want)
		}
	}
}

// TestPIXmFeedMergeByReplacedBy sends the PIXm feed's merge: a record updated with
// Patient.link replaced-by another record of the same system joins that record's person.
func TestPIXmFeedMergeByReplacedBy(t *testing.T) {
	a := newTestAPI(t)
	tokA, _ := a.participants()
	_, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "OLD-1", "Ann", "Lee", "1980-02-03", "female", "", ""), nil)
	oldEUID := euidOf(t, body)
	_, body, _ = a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "NEW-1", "Anne", "Leigh-Smith", "1980-03-02", "female", "", ""), nil)
	survivor := euidOf(t, body)
	if survivor == oldEUID {
		t.Fatal("setup: the two records already share a person")
	}
	p := patientJSON(sysA, "OLD-1", "Ann", "Lee", "1980-02-03", "female", "", "")
	p["active"] = false
	p["link"] = []any{map[string]any{"type": "replaced-by", "other": map[string]any{"identifier": map[string]any{"system": sysA, "value": "NEW-1"}}}}
	code, body, _ := a.do("PUT", "/fhir/Patient?identifier="+url.QueryEscape(sysA+"|OLD-1"), tokA, p, nil)
	if code != 200 || euidOf(t, body) != survivor {
		t.Fatalf("merge by replaced-by: %d %s", code, body)
	}
	code, body, _ = a.do("GET", "/fhir/Person/"+survivor, tokA, nil, nil)
	if code != 200 || !strings.Contains(string(body), "OLD-1") || !strings.Contains(string(body), "NEW-1") {
		t.Fatalf("survivor person: %d %s", code, body)
	}
	if code, _, _ := a.do("GET", "/fhir/Person/"+oldEUID, tokA, nil, nil); code != 404 {
		t.Fatalf("merged-away person: %d", code)
	}
	p["link"] = []any{map[string]any{"type": "replaced-by", "other": map[string]any{"identifier": map[string]any{"system": sysB, "value": "B"}}}}
	if code, body, _ := a.do("PUT", "/fhir/Patient?identifier="+url.QueryEscape(sysA+"|OLD-1"), tokA, p, nil); code != 422 {
		t.Fatalf("replaced by another system's record: %d %s", code, body)
	}
}

// TestPDQmMinimumCriteria: a participant cannot page out the index: a search needs the
// minimum criteria PDQ suppliers ask for, and one matching more than MaxParticipantMatches
// patients is refused, not paged.
func TestPDQmMinimumCriteria(t *testing.T) {
	a := newTestAPI(t, func(o *Options) { o.MaxBodyBytes = 1 << 20 })
	tokA, _ := a.participants()
	var records []command.PatientRecord
	for i := range MaxParticipantMatches + 20 {
		records = append(records, command.PatientRecord{System: sysA, Value: fmt.Sprintf("M-%d", i), Family: "Nguyen",
			Given: []string{fmt.Sprintf("Given%c%c", 'a'+i%26, 'a'+i/26)}, BirthDate: "1961-07-04", Sex: "female", PostalCode: "62704"})
	}
	if code, body, _ := a.do("POST", "/v1/patients/batch", testAdminToken, BatchRequest{Records: records}, nil); code != 200 {
		t.Fatalf("load: %d %.300s", code, body)
	}
	for _, q := range []string{"birthdate=ge0001&_count=200", "birthdate=ge1900", "family=Nguyen", "given=Giveng", "family=N&given=G",
		"gender=female", "address-postalcode=62704", "birthdate=1961-07-04", "family=Nguyen&birthdate=ge1950", ""} {
		code, body, _ := a.do("GET", "/fhir/Patient?"+q, tokA, nil, nil)
		if code != 400 || !strings.Contains(string(body), "too-costly") {
			t.Errorf("participant search %q: %d %.200s, want 400 too-costly", q, code, body)
		}
	}
	// Enough criteria, but more than MaxParticipantMatches patients: refused, not paged.
	code, body, _ := a.do("GET", "/fhir/Patient?family=Nguyen&birthdate=1961-07-04", tokA, nil, nil)
	if code != 400 || !strings.Contains(string(body), "more than") {
		t.Errorf("broad search: %d %.200s", code, body)
	}
	for _, q := range []string{"family=Nguyen&given:exact=Givenaa", "given:exact=Givenab&birthdate=1961-07-04", "identifier=M-7", "family=Nguyen&birthdate=1961&given:exact=Givenac"} {
		code, body, _ := a.do("GET", "/fhir/Patient?"+q, tokA, nil, nil)
		if code != 200 || !strings.Contains(string(body), `"total": 1`) {
			t.Errorf("participant search %q: %d %.300s", q, code, body)
		}
	}
	// The admin keeps the broad searches its data stewards need.
	if code, body, _ := a.do("GET", "/fhir/Patient?family=Nguyen&_count=5", testAdminToken, nil, nil); code != 200 || !strings.Contains(string(body), fmt.Sprintf(`"total": %d`, MaxParticipantMatches+20)) {
		t.Errorf("admin search: %d %.300s", code, body)
	}
}

// TestEUIDsGrowWithTime: an EUID keeps its shape (E and 32 hex digits) and begins with the
// second it was drawn (model.TimeOrderedID), so that new persons sort after older ones.
func TestEUIDsGrowWithTime(t *testing.T) {
	before := time.Now().Unix()
	id, err := newEUID()
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Unix()
	if !regexp.MustCompile(`^E[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("EUID %q is not E and 32 hex digits", id)
	}
	if sec, err := strconv.ParseInt(id[1:9], 16, 64); err != nil || sec < before || sec > after {
		t.Fatalf("EUID %q does not begin with the second it was drawn (%d..%d)", id, before, after)
	}
}
