package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
)

// The tests of issue 11 (hardening) on real processes. The in-process counterparts are in
// raft (TestPoisonEntryCommittedRawDoesNotStopTheCluster: poison entries committed through
// raft itself), raft/fsm (the FSM's own limits and skipped entries) and locator (every
// route's limits).

const hardenSystem = "urn:oid:1.2.840.99.110"

// outcomeOf decodes an OperationOutcome's first issue.
func outcomeOf(body []byte) (code string, expression []string) {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code       string   `json:"code"`
			Expression []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		return "", nil
	}
	return oo.Issue[0].Code, oo.Issue[0].Expression
}

func hardenPatient(value string, mutate func(p map[string]any)) map[string]any {
	p := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": hardenSystem, "value": value}},
		"name":         []any{map[string]any{"use": "official", "family": "Okafor", "given": []string{"Ngozi"}}},
		"birthDate":    "1974-05-17",
		"gender":       "female",
		"address":      []any{map[string]any{"use": "home", "line": []string{"4 Elm Row"}, "city": "Springfield", "postalCode": "62704"}},
		"telecom":      []any{map[string]any{"system": "email", "value": "ngozi@example.org"}},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func hardenDocument(master, subject string) map[string]any {
	return map[string]any{
		"resourceType":     "DocumentReference",
		"masterIdentifier": map[string]any{"system": "urn:ietf:rfc:3986", "value": master},
		"status":           "current",
		"type":             map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "11506-3"}}},
		"subject":          map[string]any{"reference": subject},
		"date":             "2024-03-01T10:00:00Z",
		"content":          []any{map[string]any{"attachment": map[string]any{"contentType": "application/pdf", "url": "https://docs.example/" + url.PathEscape(master[:min(len(master), 40)])}}},
	}
}

// dataDirBytes sums the sizes of the files in a node's data dir.
func dataDirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// checkNoFailedEntries requires every node to report no skipped log entry.
func (c *Cluster) checkNoFailedEntries(t *testing.T) {
	t.Helper()
	for _, i := range c.Live() {
		var f struct {
			Entries []any `json:"entries"`
		}
		if err := c.getJSON(i, "/v1/cluster/failed-entries", 10*time.Second, &f); err != nil {
			t.Fatal(err)
		}
		if len(f.Entries) != 0 {
			t.Fatalf("%s skipped log entries: %v", c.Nodes[i].ID, f.Entries)
		}
	}
}

// TestOversizedInputsLeaveTheClusterWhole is check 1 of issue 11: 40 KB names, a 40 KB city
// and e-mail, a 20 KB identifier and a 40 KB masterIdentifier, sent to every node (followers
// forward to the leader) as single resources, through /v1/patients/batch (FHIR Patients and
// flat records) and through `rls import`, are each refused with a 4xx; every node stays
// healthy, no entry fails in Apply, the state hashes agree, and after every node is killed
// and restarted they agree again on the same state.
func TestOversizedInputsLeaveTheClusterWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	tok := c.addParticipant("hosp-h", hardenSystem)
	code, body, err := c.callAs(0, tok, "POST", "/fhir/Patient", hardenPatient("H-1", nil), nil)
	if err != nil || code != 201 {
		t.Fatalf("register a patient: %d %s %v", code, body, err)
	}
	var reg struct {
		ID string `json:"id"`
	}
	json.Unmarshal(body, &reg)

	big, id20k := strings.Repeat("K", 40<<10), strings.Repeat("9", 20<<10)
	name := func(p map[string]any) map[string]any { return p["name"].([]any)[0].(map[string]any) }
	patients := []struct {
		what, expression string
		mutate           func(p map[string]any)
	}{
		{"40 KB family name", "Patient.name[0].family", func(p map[string]any) { name(p)["family"] = big }},
		{"40 KB given name", "Patient.name[0].given[0]", func(p map[string]any) { name(p)["given"] = []string{big} }},
		{"40 KB city", "Patient.address[0].city", func(p map[string]any) { p["address"].([]any)[0].(map[string]any)["city"] = big }},
		{"40 KB e-mail", "Patient.telecom[0].value", func(p map[string]any) {
			p["telecom"] = []any{map[string]any{"system": "email", "value": big + "@example.org"}}
		}},
		{"20 KB identifier", "Patient.identifier[0].value", func(p map[string]any) {
			p["identifier"] = []any{map[string]any{"system": hardenSystem, "value": id20k}}
		}},
	}
	var rawPatients []json.RawMessage
	for k, p := range patients {
		body := hardenPatient(fmt.Sprintf("H-big-%d", k), p.mutate)
		raw, _ := json.Marshal(body)
		rawPatients = append(rawPatients, raw)
		for i := range c.Nodes {
			code, resp, err := c.callAs(i, tok, "POST", "/fhir/Patient", body, nil)
			if _, expr := outcomeOf(resp); err != nil || code != 400 || len(expr) == 0 || expr[0] != p.expression {
				t.Errorf("%s through %s: %d %v %.200s", p.what, c.Nodes[i].ID, code, err, resp)
			}
		}
	}
	masterBig := hardenDocument(big, "Patient/"+reg.ID)
	for i := range c.Nodes {
		code, resp, err := c.callAs(i, tok, "POST", "/fhir/DocumentReference", masterBig, nil)
		if _, expr := outcomeOf(resp); err != nil || code != 400 || len(expr) == 0 || expr[0] != "DocumentReference.masterIdentifier.value" {
			t.Errorf("40 KB masterIdentifier through %s: %d %v %.200s", c.Nodes[i].ID, code, err, resp)
		}
	}

	// The batch route, as FHIR Patients and as flat records.
	flat := []map[string]any{
		{"system": hardenSystem, "value": "F-1", "family": big},
		{"system": hardenSystem, "value": "F-2", "given": []string{big}},
		{"system": hardenSystem, "value": "F-3", "city": big},
		{"system": hardenSystem, "value": "F-4", "email": big},
		{"system": hardenSystem, "value": id20k},
	}
	for i := range c.Nodes {
		code, resp, err := c.callAs(i, tok, "POST", "/v1/patients/batch", map[string]any{"records": flat, "patients": rawPatients}, nil)
		var res struct {
			Results []struct {
				Status int    `json:"status"`
				Error  string `json:"error"`
			} `json:"results"`
		}
		if err != nil || code != 200 || json.Unmarshal(resp, &res) != nil || len(res.Results) != len(flat)+len(rawPatients) {
			t.Fatalf("batch through %s: %d %v %.300s", c.Nodes[i].ID, code, err, resp)
		}
		for k, r := range res.Results {
			if r.Status < 400 || r.Status >= 500 {
				t.Errorf("batch through %s: record %d answered %+v", c.Nodes[i].ID, k, r)
			}
		}
	}
	masterRaw, _ := json.Marshal(masterBig)
	code, body, err = c.callAs(1, tok, "POST", "/v1/documents/batch", map[string]any{"documents": []json.RawMessage{masterRaw}}, nil)
	var docRes struct {
		Results []struct {
			Status int `json:"status"`
		} `json:"results"`
	}
	if err != nil || code != 200 || json.Unmarshal(body, &docRes) != nil || len(docRes.Results) != 1 || docRes.Results[0].Status != 400 {
		t.Errorf("document batch with a 40 KB masterIdentifier: %d %v %.300s", code, err, body)
	}

	// rls import: a CSV of flat records and NDJSON files of Patients and DocumentReferences,
	// each with good lines around the oversized ones.
	dir := t.TempDir()
	csv := "rec_id,person_id,facility,mrn,given_name,middle_name,family_name,birth_date,sex,address_line,city,state,postal_code,phone,email,ssn\n" +
		"r1,P1," + hardenSystem + ",CSV-1,Ada,,Quill,1961-07-04,F,1 Main St,Springfield,IL,62704,2175550101,,\n" +
		"r2,P2," + hardenSystem + ",CSV-2,Ada,," + big + ",1961-07-04,F,1 Main St,Springfield,IL,62704,2175550101,,\n" +
		"r3,P3," + hardenSystem + "," + id20k + ",Ada,,Quill,1961-07-04,F,1 Main St,Springfield,IL,62704,2175550101,,\n"
	var nd bytes.Buffer
	good, _ := json.Marshal(hardenPatient("ND-1", nil))
	nd.Write(append(good, '\n'))
	for _, raw := range rawPatients {
		nd.Write(append(raw, '\n'))
	}
	var docs bytes.Buffer
	goodDoc, _ := json.Marshal(hardenDocument("urn:uuid:harden-ok", "Patient/"+reg.ID))
	docs.Write(append(goodDoc, '\n'))
	docs.Write(append(masterRaw, '\n'))
	files := map[string][]byte{"records.csv": []byte(csv), "patients.ndjson": nd.Bytes(), "documents.ndjson": docs.Bytes()}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, imp := range []struct {
		args     []string
		rejected int
	}{
		{[]string{"patients", "-format", "csv", filepath.Join(dir, "records.csv")}, 2},
		{[]string{"patients", filepath.Join(dir, "patients.ndjson")}, len(rawPatients)},
		{[]string{"documents", filepath.Join(dir, "documents.ndjson")}, 1},
	} {
		args := append([]string{"import"}, imp.args[0], "-addr", c.Nodes[2].URL(), "-token", tok, "-output", "json")
		args = append(args, imp.args[1:]...)
		out, err := exec.Command(rlsBinary, args...).Output()
		var sum struct {
			Outcomes map[string]int `json:"outcomes"`
			Rejected []struct {
				Line   int    `json:"line"`
				Status int    `json:"status"`
				Error  string `json:"error"`
			} `json:"rejected"`
		}
		if jerr := json.Unmarshal(out, &sum); jerr != nil || err == nil {
			t.Fatalf("rls %v: exit %v (want non-zero for the rejected lines), %v\n%.500s", imp.args, err, jerr, out)
		}
		if len(sum.Rejected) != imp.rejected {
			t.Errorf("rls %v: %d rejected, want %d: %.500s", imp.args, len(sum.Rejected), imp.rejected, out)
		}
		for _, r := range sum.Rejected {
			if r.Status < 400 || r.Status >= 500 || len(r.Error) > 1024 {
				t.Errorf("rls %v: line %d rejected with %d %.200s", imp.args, r.Line, r.Status, r.Error)
			}
		}
		if n := sum.Outcomes["new"] + sum.Outcomes["linked"] + sum.Outcomes["review"] + sum.Outcomes["registered"] + sum.Outcomes["updated"]; n != 1 {
			t.Errorf("rls %v: %d good lines imported, want 1: %v", imp.args, n, sum.Outcomes)
		}
	}

	for i := range c.Nodes {
		if !c.healthy(i) {
			t.Errorf("%s is not healthy after the oversized inputs", c.Nodes[i].ID)
		}
	}
	c.checkNoFailedEntries(t)
	before := c.WaitConverged(30 * time.Second)
	c.CheckNoCrash()

	// Every node killed, then restarted on its data dir: they replay their logs and agree on
	// the same state.
	for i := range c.Nodes {
		c.Kill(i)
	}
	for i := range c.Nodes {
		c.Start(i)
	}
	c.WaitLeader(30 * time.Second)
	c.WaitFor(30*time.Second, "every node healthy after the restart", func() bool {
		for i := range c.Nodes {
			if !c.healthy(i) {
				return false
			}
		}
		return true
	})
	after := c.WaitConverged(30 * time.Second)
	if after.Hash != before.Hash {
		t.Fatalf("state after restarting every node %s differs from before %s", after.Hash, before.Hash)
	}
	c.checkNoFailedEntries(t)
	if code, body, err := c.callAs(1, tok, "POST", "/fhir/Patient", hardenPatient("H-2", nil), nil); err != nil || code != 201 {
		t.Fatalf("a write after the restart: %d %s %v", code, body, err)
	}
	c.CheckNoCrash()
}

// TestUnauthenticatedHugeHeadersWriteNothing is check 2 of issue 11: 20 unauthenticated
// requests with 900 KB headers (refused by the HTTP server) and 20 with 60 KB headers
// (refused with 401), to audited routes on every node, grow no node's data dir by more than
// 1 MB and append nothing to the replicated audit log.
func TestUnauthenticatedHugeHeadersWriteNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	tok := c.addParticipant("hosp-h", hardenSystem)
	if code, body, err := c.callAs(0, tok, "POST", "/fhir/Patient", hardenPatient("U-1", nil), nil); err != nil || code != 201 {
		t.Fatalf("register: %d %s %v", code, body, err)
	}
	head := func() uint64 {
		var v auditVerification
		if err := c.getJSON(0, "/v1/audit/verify?consistency=strong", 20*time.Second, &v); err != nil || !v.OK {
			t.Fatalf("audit verify: %+v %v", v, err)
		}
		return v.HeadSeq
	}
	c.WaitConverged(30 * time.Second)
	headBefore := head()
	c.WaitConverged(30 * time.Second)
	sizes := make([]int64, len(c.Nodes))
	for i, n := range c.Nodes {
		sizes[i] = dataDirBytes(t, n.Dir)
	}

	statuses := map[int]int{}
	send := func(i int, headerBytes int, token string) {
		path := "/v1/locate?identifier=" + url.QueryEscape(hardenSystem+"|U-1")
		req, _ := http.NewRequest("GET", c.Nodes[i].URL()+path, nil)
		req.Header.Set("X-Rls-On-Behalf-Of", strings.Repeat("o", headerBytes))
		req.Header.Set("X-Rls-Purpose-Of-Use", "TREAT")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			statuses[-1]++ // the server may close the connection on an oversized header block
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	for k := range 20 {
		send(k%3, 900<<10, "")
		send(k%3, 60<<10, []string{"", "rls_not_a_token"}[k%2])
	}
	for code, n := range statuses {
		if code != 401 && code != http.StatusRequestHeaderFieldsTooLarge && code != -1 {
			t.Errorf("%d unauthenticated requests answered %d", n, code)
		}
	}
	if statuses[401] != 20 {
		t.Errorf("statuses %v: want the 20 requests with 60 KB headers answered 401", statuses)
	}
	c.WaitConverged(30 * time.Second)
	if h := head(); h != headBefore {
		t.Errorf("unauthenticated requests appended %d entries to the audit log", h-headBefore)
	}
	c.WaitConverged(30 * time.Second)
	for i, n := range c.Nodes {
		grown := dataDirBytes(t, n.Dir) - sizes[i]
		t.Logf("%s data dir grew by %d bytes", n.ID, grown)
		if grown > 1<<20 {
			t.Errorf("%s data dir grew by %d bytes (more than 1 MB)", n.ID, grown)
		}
	}
	for i := range c.Nodes {
		m, err := c.Metric(i, `rls_http_refused_total{reason="unauthenticated"}`)
		if err != nil {
			t.Errorf("%s: %v", c.Nodes[i].ID, err)
			continue
		}
		t.Logf("%s counted %v refused authentications", c.Nodes[i].ID, m)
	}
}

// TestAPIRulesOnACluster: checks 3, 5 and 6 of issue 11 through the leader and the
// followers (which forward writes): the nested-contained DocumentReference is refused with
// a 4xx; a document about an opted-out patient gets exactly the answer of one about a
// nonexistent patient; birthDate 2024-02-30 gets 400 naming Patient.birthDate. Also: a 403
// forwarded by a follower is audited with its participant and outcome.
func TestAPIRulesOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	const sysOther = "urn:oid:1.2.840.99.111"
	tok := c.addParticipant("hosp-h", hardenSystem)
	tokOther := c.addParticipant("hosp-o", sysOther)
	code, body, err := c.callAs(0, tok, "POST", "/fhir/Patient", hardenPatient("R-1", nil), nil)
	if err != nil || code != 201 {
		t.Fatalf("register: %d %s %v", code, body, err)
	}
	var reg struct {
		ID string `json:"id"`
	}
	json.Unmarshal(body, &reg)
	leader := c.WaitLeader(20 * time.Second)

	t.Run("check 3: nested contained", func(t *testing.T) {
		doc := hardenDocument("urn:uuid:nested", "Patient/"+reg.ID)
		doc["contained"] = []any{map[string]any{"resourceType": "Practitioner", "id": "a1", "name": "NESTED"}}
		raw, _ := json.Marshal(doc)
		raw = []byte(strings.Replace(string(raw), `"NESTED"`, strings.Repeat("[", 9900)+strings.Repeat("]", 9900), 1))
		for i := range c.Nodes {
			req, _ := http.NewRequest("POST", c.Nodes[i].URL()+"/fhir/DocumentReference", bytes.NewReader(raw))
			req.Header.Set("Authorization", "Bearer "+tok)
			start := time.Now()
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if code, _ := outcomeOf(b); resp.StatusCode != 400 || code != "too-long" || len(b) > 4096 {
				t.Errorf("nested document through %s: %d %.300s", c.Nodes[i].ID, resp.StatusCode, b)
			}
			t.Logf("refused through %s in %s", c.Nodes[i].ID, time.Since(start).Round(time.Millisecond))
		}
		// Nothing was stored: a search of the patient's documents is empty and small.
		code, b, _ := c.callAs(leader, tok, "GET", "/fhir/DocumentReference?patient=Patient/"+reg.ID, nil, nil)
		if code != 200 || strings.Contains(string(b), "nested") || len(b) > 1<<20 {
			t.Errorf("document search after the refusal: %d %d bytes", code, len(b))
		}
	})

	t.Run("check 5: opted-out equals nonexistent", func(t *testing.T) {
		optOut := map[string]any{"resourceType": "Consent", "status": "active", "category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59284-0"}}}},
			"policyRule": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}}},
			"scope":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
			"patient":    map[string]any{"reference": "Patient/" + reg.ID},
			"provision":  map[string]any{"type": "deny"}}
		if code, body, err := c.callAs(leader, tok, "POST", "/fhir/Consent", optOut, nil); err != nil || code != 201 {
			t.Fatalf("opt-out: %d %s %v", code, body, err)
		}
		const missing = "0123456789abcdef0123456789abcdef"
		for i := range c.Nodes {
			hc, hb, err1 := c.callAs(i, tokOther, "POST", "/fhir/DocumentReference", hardenDocument(fmt.Sprintf("urn:uuid:o-%d", i), "Patient/"+reg.ID), nil)
			mc, mb, err2 := c.callAs(i, tokOther, "POST", "/fhir/DocumentReference", hardenDocument(fmt.Sprintf("urn:uuid:o-%d", i), "Patient/"+missing), nil)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if hc < 400 || hc != mc || strings.ReplaceAll(string(hb), reg.ID, "ID") != strings.ReplaceAll(string(mb), missing, "ID") {
				t.Errorf("through %s: opted-out patient %d %s; nonexistent %d %s", c.Nodes[i].ID, hc, hb, mc, mb)
			}
		}
	})

	t.Run("check 6: 2024-02-30", func(t *testing.T) {
		for i := range c.Nodes {
			p := hardenPatient(fmt.Sprintf("R-date-%d", i), func(p map[string]any) { p["birthDate"] = "2024-02-30" })
			code, body, err := c.callAs(i, tok, "POST", "/fhir/Patient", p, nil)
			if _, expr := outcomeOf(body); err != nil || code != 400 || len(expr) != 1 || expr[0] != "Patient.birthDate" {
				t.Errorf("birthDate 2024-02-30 through %s: %d %s %v", c.Nodes[i].ID, code, body, err)
			}
		}
	})

	t.Run("a forwarded 403 is audited with its participant and outcome", func(t *testing.T) {
		follower := (leader + 1) % 3
		const requestID = "harden-forwarded-403"
		req, _ := http.NewRequest("POST", c.Nodes[follower].URL()+"/v1/steward/merge", strings.NewReader(`{"from":"Ea","into":"Eb"}`))
		req.Header.Set("Authorization", "Bearer "+tokOther)
		req.Header.Set("X-Request-Id", requestID)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("steward merge by a participant through a follower: %d", resp.StatusCode)
		}
		var list struct {
			Entries []struct {
				auditEntry
				Participant string `json:"participant"`
				Outcome     string `json:"outcome"`
			} `json:"entries"`
		}
		if err := c.getJSON(leader, "/v1/audit?limit=10000&consistency=strong", 20*time.Second, &list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range list.Entries {
			if e.RequestID == requestID {
				got = append(got, fmt.Sprintf("%s %d %s %s", e.Node, e.Status, e.Participant, e.Outcome))
			}
		}
		if want := c.Nodes[follower].ID + " 403 hosp-o forbidden"; len(got) != 1 || got[0] != want {
			t.Errorf("audit of the forwarded 403: %q, want [%q]", got, want)
		}
	})
	c.checkNoFailedEntries(t)
	c.CheckNoCrash()
}

// TestRaftRefusesPlainTCPUnlessSaid is check 4 of issue 11: outside -dev and without Raft
// TLS, `rls agent -raft-addr 0.0.0.0:PORT` refuses to start and names the setting; with
// -raft-insecure it starts, serves, and warns in its log.
func TestRaftRefusesPlainTCPUnlessSaid(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process; skipped with -short")
	}
	dir := t.TempDir()
	ports := freePorts(t, 2)
	_, raftPort, _ := strings.Cut(ports[1], ":")
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"agent", "-node-id", "n1", "-data-dir", filepath.Join(dir, "n1"), "-http-addr", ports[0],
		"-raft-addr", "0.0.0.0:" + raftPort, "-raft-advertise-addr", ports[1], "-bootstrap", "-admin-token-file", tokenFile}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, rlsBinary, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "raft.tls") || !strings.Contains(string(out), "raft.insecure") || !strings.Contains(string(out), "-raft-insecure") {
		t.Fatalf("agent with Raft on 0.0.0.0 and no TLS: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "n1", "raft.db")); err == nil {
		t.Errorf("the refused agent left a Raft log behind")
	}

	cmd := exec.CommandContext(ctx, rlsBinary, append(args, "-raft-insecure")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	warned := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			if !found && strings.Contains(sc.Text(), "level=WARN") && strings.Contains(sc.Text(), "plain TCP") {
				found = true
				warned <- true
			}
		}
		if !found {
			warned <- false
		}
	}()
	err = testkit.Poll(20*time.Second, pollInterval, func() bool {
		resp, err := httpClient.Get("http://" + ports[0] + "/v1/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if err != nil {
		t.Fatalf("agent with -raft-insecure did not become healthy: %v", err)
	}
	select {
	case ok := <-warned:
		if !ok {
			t.Fatal("agent with -raft-insecure did not warn")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no warning within 10s of start")
	}
}
