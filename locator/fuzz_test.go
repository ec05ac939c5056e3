package locator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/rafttest"
	"github.com/rls-hie/rls/raft/state"
)

// fuzzHandler is the API of one bootstrapped node holding a few participants, shared by
// every input of a fuzz run (starting a node per input would leave nothing to fuzz).
func fuzzHandler(tb testing.TB) http.Handler {
	h, _ := fuzzServer(tb)
	return h
}

// fuzzServer is fuzzHandler with its node, so that a target can check the state.
func fuzzServer(tb testing.TB) (http.Handler, *raft.Node) {
	tb.Helper()
	node := rafttest.Start(tb, rafttest.Options{AdminTokenHash: TokenHash(testAdminToken)})
	h := New(Options{Node: node.Node, TempDir: tb.TempDir(), MaxBodyBytes: 1 << 20, AddressRateLimit: -1, AuthFailureRate: -1}).Handler()
	serve := func(method, target string, body any) *httptest.ResponseRecorder {
		var data []byte
		if body != nil {
			data, _ = json.Marshal(body)
		}
		req := httptest.NewRequest(method, target, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i, id := range []string{"st-mary", "lab-one", "clinic-2"} {
		o := org(id, "urn:oid:1.2.3."+string(rune('1'+i)))
		if rec := serve("POST", "/fhir/Organization", o); rec.Code != 201 {
			tb.Fatalf("add %s: %d %s", id, rec.Code, rec.Body)
		}
	}
	if rec := serve("POST", "/fhir/Patient", patientJSON("urn:oid:1.2.3.1", "MRN-1", "Mary", "Smith", "1961-07-04", "female", "62704", "2175550101")); rec.Code != 201 {
		tb.Fatalf("register a patient: %d %s", rec.Code, rec.Body)
	}
	return h, node.Node
}

// writeRoutes are the write endpoints whose bodies come from outside.
var writeRoutes = []string{"/fhir/Patient", "/v1/patients/batch", "/fhir/DocumentReference", "/v1/documents/batch", "/fhir/Consent"}

// FuzzWrites sends arbitrary bodies to the write endpoints of a live node, as the admin
// (who may register under every participant's system, so the most input reaches Apply).
// Whatever the body, the answer is a client error or a success, never a 5xx, and no log
// entry fails in Apply: everything the API lets through, the FSM applies (or refuses as a
// business error).
//
// Each input is a replicated write (an fsync or two), so the fuzzer minimises new inputs
// slowly: run it with a short -fuzzminimizetime, as .ci/fuzz does:
// go test -run '^$' -fuzz FuzzWrites -fuzztime 5m -fuzzminimizetime 10s ./locator/
func FuzzWrites(f *testing.F) {
	h, node := fuzzServer(f)
	patient, _ := json.Marshal(patientJSON("urn:oid:1.2.3.1", "MRN-2", "Ann", "Lee", "1970-01-02", "female", "62704", ""))
	doc, _ := json.Marshal(docJSON("urn:uuid:f-1", "Patient/"+model.PatientID("urn:oid:1.2.3.1|MRN-1"), "current", "11506-3", "2024-03-01", "Note"))
	f.Add(uint8(0), patient)
	f.Add(uint8(1), []byte(`{"records":[{"system":"urn:oid:1.2.3.2","value":"R-1","family":"Ng","birth_date":"19610704"}],"patients":[`+string(patient)+`]}`))
	f.Add(uint8(2), doc)
	f.Add(uint8(3), []byte(`{"documents":[`+string(doc)+`]}`))
	f.Add(uint8(4), []byte(`{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/`+model.PatientID("urn:oid:1.2.3.1|MRN-1")+`"},"provision":{"type":"deny"}}`))
	f.Add(uint8(0), []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.1","value":"x"}],"birthDate":"2024-02-30"}`))
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := writeRoutes[int(route)%len(writeRoutes)]
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, req)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("POST %s did not answer within 20s: %q", path, body)
		}
		if rec.Code >= 500 {
			t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
		}
		var failed []state.FailedEntry
		err := node.State().View(func(tx *state.Tx) (err error) { failed, err = tx.FailedEntries(); return err })
		if err != nil || len(failed) > 0 {
			t.Fatalf("POST %s: entries failed in Apply: %+v %v", path, failed, err)
		}
	})
}

// searchRoutes are the searches whose query strings come from outside.
var searchRoutes = []string{"/fhir/Organization", "/fhir/Patient", "/fhir/Patient/$ihe-pix", "/fhir/DocumentReference", "/v1/locate", "/fhir/Consent", "/fhir/AuditEvent", "/v1/audit"}

// FuzzSearchQuery sends arbitrary query strings to the search endpoints of a live node.
// Whatever the query, the answer is a client error or a result, never a 5xx or a panic, and
// its body is one JSON value (a Bundle, Parameters or an OperationOutcome).
//
// Run it longer with: go test -run '^$' -fuzz FuzzSearchQuery -fuzztime 5m ./locator/
func FuzzSearchQuery(f *testing.F) {
	h := fuzzHandler(f)
	for _, q := range []string{
		"", "name=mary", "name=MARY&active=true", "identifier=urn:ietf:rfc:3986|urn:oid:1.2.3.1", "identifier=|x",
		"type=lab&_count=1&_offset=1", "_id=st-mary", "_count=1000000", "_offset=-1", "active=maybe", "colour=blue",
		"consistency=strong", "consistency=stale&name=%ff", "family=smith&birthdate=ge1980-01-01", "birthdate=2001-02-30",
		"sourceIdentifier=urn:oid:1.2.3.1|mrn-1", "name=%00&name=a", "_count=0",
	} {
		for route := range searchRoutes {
			f.Add(uint8(route), q)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, query string) {
		u := &url.URL{Path: searchRoutes[int(route)%len(searchRoutes)], RawQuery: query}
		req := httptest.NewRequest("GET", "/", nil)
		req.URL, req.RequestURI = u, u.RequestURI()
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s: %d %s", u.RequestURI(), rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("GET %s: %d with a body that is not JSON: %q", u.RequestURI(), rec.Code, rec.Body)
		}
	})
}

// FuzzOrganizationToParticipant decodes arbitrary Organization JSON as a create would and
// reads a participant out of it. A refusal is a 400 OperationOutcome; an accepted
// participant, written back as an Organization and read again, is the same participant (the
// API never loses or invents a field on the way through).
//
// Run it longer with: go test -run '^$' -fuzz FuzzOrganizationToParticipant -fuzztime 5m ./locator/
func FuzzOrganizationToParticipant(f *testing.F) {
	good, _ := json.Marshal(org("st-mary", "urn:oid:1.2.3"))
	f.Add(good)
	f.Add([]byte(`{"resourceType":"Organization","id":"a","name":"A","type":[{"coding":[{"system":"` + fhir.ParticipantKindSystem + `","code":"lab"}]}]}`))
	f.Add([]byte(`{"resourceType":"Organization","id":"a","name":" ","type":[{"coding":[{"system":"` + fhir.ParticipantKindSystem + `","code":"hie"}]}],"endpoint":[{"reference":"#e"}],"contained":[{"resourceType":"Endpoint","id":"e","address":"https://x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var o fhir.Organization
		if err := fhir.Decode(bytes.NewReader(data), "Organization", &o); err != nil {
			return // FuzzDecodeOrganization covers decoding errors
		}
		p, err := fromOrganization(o)
		if err != nil {
			fe := apiError(err)
			if fe.Status != 400 {
				t.Fatalf("refusal is a %d, not a 400: %v", fe.Status, err)
			}
			return
		}
		again, err := fromOrganization(toOrganization(p))
		if err != nil {
			t.Fatalf("participant %+v, written as an Organization, no longer reads: %v", p, err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip changed the participant:\n got %+v\nwant %+v", again, p)
		}
	})
}
