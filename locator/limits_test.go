package locator

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// expectOutcome checks an error answer: its status, and an OperationOutcome whose issue
// names the element. It also checks that the answer does not repeat a huge value.
func expectOutcome(t *testing.T, what string, code int, body []byte, status int, expression string) {
	t.Helper()
	if code != status {
		t.Errorf("%s: status %d, want %d: %.300s", what, code, status, body)
		return
	}
	var oo fhir.OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Errorf("%s: not an OperationOutcome: %.300s", what, body)
		return
	}
	if expression != "" && (len(oo.Issue[0].Expression) == 0 || oo.Issue[0].Expression[0] != expression) {
		t.Errorf("%s: expression %v, want %s (%s)", what, oo.Issue[0].Expression, expression, oo.Issue[0].Diagnostics)
	}
	if len(body) > 4096 {
		t.Errorf("%s: the error is %d bytes long: it repeats the input", what, len(body))
	}
}

// TestInputLimitsAtTheEdge sends, through every write route, values beyond the limits of
// raft/model and the characters rls refuses: each gets a 4xx OperationOutcome naming the
// element, and the state does not change.
func TestInputLimitsAtTheEdge(t *testing.T) {
	// The node's body limit (1 MiB by default) is above what the resource limits refuse.
	w := newDocWorld(t, func(o *Options) { o.MaxBodyBytes = 1 << 20 })
	a := w.a
	name40k := strings.Repeat("n", 40<<10)
	id20k := strings.Repeat("7", 20<<10)

	patient := func(mutate func(p map[string]any)) map[string]any {
		p := patientJSON(sysA, "LIM-1", "Ada", "Quill", "1961-07-04", "female", "62704", "2175550101")
		p["telecom"] = []any{map[string]any{"system": "email", "value": "ada@example.org"}}
		mutate(p)
		return p
	}
	name := func(p map[string]any) map[string]any { return p["name"].([]any)[0].(map[string]any) }
	address := func(p map[string]any) map[string]any { return p["address"].([]any)[0].(map[string]any) }
	patientCases := []struct {
		what, expression string
		status           int
		mutate           func(p map[string]any)
	}{
		{"40 KB family name", "Patient.name[0].family", 400, func(p map[string]any) { name(p)["family"] = name40k }},
		{"40 KB given name", "Patient.name[0].given[0]", 400, func(p map[string]any) { name(p)["given"] = []string{name40k} }},
		{"40 KB city", "Patient.address[0].city", 400, func(p map[string]any) { address(p)["city"] = name40k }},
		{"40 KB e-mail", "Patient.telecom[0].value", 400, func(p map[string]any) {
			p["telecom"] = []any{map[string]any{"system": "email", "value": name40k + "@example.org"}}
		}},
		{"20 KB identifier", "Patient.identifier[0].value", 400, func(p map[string]any) {
			p["identifier"] = []any{map[string]any{"system": sysA, "value": id20k}}
		}},
		{"'|' in an identifier system", "Patient.identifier[1].system", 400, func(p map[string]any) {
			p["identifier"] = append(p["identifier"].([]any), map[string]any{"system": "urn:oid:1.2|3", "value": "x"})
		}},
		{"birth date 2024-02-30", "Patient.birthDate", 400, func(p map[string]any) { p["birthDate"] = "2024-02-30" }},
		{"birth date 0000-01-01", "Patient.birthDate", 400, func(p map[string]any) { p["birthDate"] = "0000-01-01" }},
		{"birth date 9999-12-31", "Patient.birthDate", 400, func(p map[string]any) { p["birthDate"] = "9999-12-31" }},
		{"birth date 1812", "Patient.birthDate", 400, func(p map[string]any) { p["birthDate"] = "1812" }},
		{"NUL in a name", "Patient.name[0].family", 400, func(p map[string]any) { name(p)["family"] = "Qu\x00ill" }},
		{"bidi override in a name", "Patient.name[0].family", 400, func(p map[string]any) { name(p)["family"] = "Quill\u202eevil" }},
		{"NUL in an extension", "Patient.extension[0].valueString", 400, func(p map[string]any) {
			p["extension"] = []any{map[string]any{"url": "http://example.org/x", "valueString": "a\x00b"}}
		}},
		{"too many given names", "Patient.name[0].given", 400, func(p map[string]any) {
			name(p)["given"] = strings.Fields(strings.Repeat("Ann ", model.MaxNamePartCount+1))
		}},
	}
	for _, c := range patientCases {
		code, body, _ := a.do("POST", "/fhir/Patient", w.tokA, patient(c.mutate), nil)
		expectOutcome(t, "POST /fhir/Patient with "+c.what, code, body, c.status, c.expression)
	}

	// The same through the batch route, as FHIR Patients and as flat records.
	var patients []json.RawMessage
	for _, c := range patientCases {
		raw, _ := json.Marshal(patient(c.mutate))
		patients = append(patients, raw)
	}
	raw, _ := json.Marshal(BatchRequest{Patients: patients[:3]})
	code, body, _ := a.do("POST", "/v1/patients/batch", w.tokA, string(raw), nil)
	checkBatchRefused(t, "batch of Patients", code, body, 3)
	flat := `{"records":[` + strings.Join([]string{
		fmt.Sprintf(`{"system":%q,"value":"F-1","family":%q}`, sysA, name40k),
		fmt.Sprintf(`{"system":%q,"value":%q,"family":"Quill"}`, sysA, id20k),
		fmt.Sprintf(`{"system":%q,"value":"F-2","family":"Quill","birth_date":"0000-01-01"}`, sysA),
	}, ",") + `]}`
	code, body, _ = a.do("POST", "/v1/patients/batch", w.tokA, flat, nil)
	checkBatchRefused(t, "batch of flat records", code, body, 3)

	// DocumentReference.
	doc := func(mutate func(d map[string]any)) map[string]any {
		d := docJSON("lim-doc", "Patient/"+w.patA, "current", "11506-3", "2024-03-01", "Note")
		mutate(d)
		return d
	}
	nested := map[string]any{"family": "Osler"}
	for range 9900 {
		nested = map[string]any{"extension": []any{nested}}
	}
	docCases := []struct {
		what, expression string
		status           int
		mutate           func(d map[string]any)
	}{
		{"40 KB masterIdentifier", "DocumentReference.masterIdentifier.value", 400, func(d map[string]any) {
			d["masterIdentifier"] = map[string]any{"system": "urn:ietf:rfc:3986", "value": name40k}
		}},
		{"40 KB author name", "DocumentReference.contained[0].name[0].family", 400, func(d map[string]any) {
			d["contained"] = []any{map[string]any{"resourceType": "Practitioner", "id": "a1", "name": []any{map[string]any{"family": name40k}}}}
		}},
		{"dated 0001-01-01", "DocumentReference.date", 400, func(d map[string]any) {
			d["date"] = "0001-01-01"
			delete(d["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any), "creation")
		}},
		{"'|' in a type system", "DocumentReference.type.coding[0].system", 400, func(d map[string]any) {
			d["type"] = map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org|x", "code": "1"}}}
		}},
		{"nested contained 9,900 levels (150 KB)", "DocumentReference", 413, func(d map[string]any) {
			d["contained"] = []any{map[string]any{"resourceType": "Practitioner", "id": "a1", "name": []any{nested}}}
		}},
	}
	var docs []json.RawMessage
	for _, c := range docCases {
		code, body, _ := a.do("POST", "/fhir/DocumentReference", w.tokA, doc(c.mutate), nil)
		expectOutcome(t, "POST /fhir/DocumentReference with "+c.what, code, body, c.status, c.expression)
		raw, _ := json.Marshal(doc(c.mutate))
		docs = append(docs, raw)
	}
	// The issue's 20 KB form: arrays nested 9,900 deep in a contained Practitioner's name.
	compact, _ := json.Marshal(doc(func(d map[string]any) {
		d["contained"] = []any{map[string]any{"resourceType": "Practitioner", "id": "a1", "name": "NESTED"}}
	}))
	compact = []byte(strings.Replace(string(compact), `"NESTED"`, strings.Repeat("[", 9900)+strings.Repeat("]", 9900), 1))
	code, body, _ = a.do("POST", "/fhir/DocumentReference", w.tokA, string(compact), nil)
	expectOutcome(t, "DocumentReference with 9,900 nested arrays (20 KB)", code, body, 400, "DocumentReference.contained[0].name"+strings.Repeat("[0]", fhir.MaxDepth-3))
	raw, _ = json.Marshal(DocumentBatchRequest{Documents: docs[:4]})
	code, body, _ = a.do("POST", "/v1/documents/batch", w.tokA, string(raw), nil)
	checkBatchRefused(t, "batch of documents", code, body, 4)

	// Organization (the admin's route): a name beyond 256 characters, '|' in the system.
	o := org("lim-org", "urn:oid:1.2.3.77")
	o.Name = name40k
	code, body, _ = a.do("POST", "/fhir/Organization", testAdminToken, o, nil)
	expectOutcome(t, "Organization with a 40 KB name", code, body, 400, "")
	code, body, _ = a.do("POST", "/fhir/Organization", testAdminToken, org("lim-org", "urn:oid:1.2|3"), nil)
	expectOutcome(t, "Organization with '|' in its system", code, body, 400, "Organization.identifier[0].value")

	// Steward actions and consent.
	code, body, _ = a.do("POST", "/v1/steward/unlink", testAdminToken, map[string]string{"record": sysA + "|A-1", "reason": name40k}, nil)
	expectOutcome(t, "steward reason of 40 KB", code, body, 400, "reason")
	code, body, _ = a.do("POST", "/v1/steward/link", testAdminToken, map[string]string{"record": sysA + "|" + id20k, "euid": w.euid}, nil)
	expectOutcome(t, "steward record of 20 KB", code, body, 400, "record")
	cons := consentJSON("Patient/"+w.patA, false, nil, []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: name40k}})
	code, body, _ = a.do("POST", "/fhir/Consent", w.tokA, cons, nil)
	expectOutcome(t, "consent label of 40 KB", code, body, 400, "Consent.provision.provision[0].securityLabel[0].code")

	// Nothing refused reached the state (audit entries of the refusals did).
	err := a.node.State().View(func(tx *state.Tx) error {
		for _, key := range []string{sysA + "|LIM-1", sysA + "|F-1", sysA + "|F-2", sysA + "|" + id20k} {
			if _, ok, _ := tx.PatientMeta(key); ok {
				t.Errorf("refused record %.40s is registered", key)
			}
		}
		for _, master := range []string{"lim-doc", name40k} {
			if _, ok, _ := tx.Document(fhir.DocumentID(search.Identifier{System: "urn:ietf:rfc:3986", Value: master})); ok {
				t.Errorf("refused document %.40s is registered", master)
			}
		}
		if tx.HasParticipant("lim-org") {
			t.Error("refused organization is registered")
		}
		failed, err := tx.FailedEntries()
		if len(failed) > 0 {
			t.Errorf("entries failed in Apply: %+v", failed)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkBatchRefused requires a 200 batch answer whose first n results are each refused
// with a 4xx and a bounded message.
func checkBatchRefused(t *testing.T, what string, code int, body []byte, n int) {
	t.Helper()
	if code != 200 {
		t.Errorf("%s: status %d: %.300s", what, code, body)
		return
	}
	var resp struct {
		Results []struct {
			Status int    `json:"status"`
			Error  string `json:"error"`
			Record string `json:"record"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Results) < n {
		t.Errorf("%s: %v %.300s", what, err, body)
		return
	}
	for i, r := range resp.Results[:n] {
		if r.Status < 400 || r.Status >= 500 || r.Error == "" {
			t.Errorf("%s: result %d = %+v, want a 4xx refusal", what, i, r)
		}
		if len(r.Error)+len(r.Record) > 2048 {
			t.Errorf("%s: result %d repeats the input (%d bytes)", what, i, len(r.Error)+len(r.Record))
		}
	}
}
