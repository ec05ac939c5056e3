package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
)

// addParticipant registers a participant with the given identifier system and returns
// its token.
func (c *Cluster) addParticipant(id, system string) string {
	c.t.Helper()
	org := map[string]any{
		"resourceType": "Organization",
		"id":           id,
		"name":         "Participant " + id,
		"type":         []any{map[string]any{"coding": []any{map[string]any{"system": "https://rls-hie.github.io/fhir/CodeSystem/participant-kind", "code": "hospital"}}}},
		"identifier":   []any{map[string]any{"system": "urn:ietf:rfc:3986", "value": system}},
	}
	code, body, _, err := c.call(0, "POST", "/fhir/Organization", org)
	if err != nil || code != 201 {
		c.t.Fatalf("add participant %s: %d %s %v", id, code, body, err)
	}
	m := regexp.MustCompile(`"valueString":\s*"(rls_[^"]+)"`).FindSubmatch(body)
	if m == nil {
		c.t.Fatalf("no token for %s", id)
	}
	return string(m[1])
}

// partition names each record by the smallest record key of its group, so two
// groupings compare equal whatever their EUIDs.
func partition(euidOf map[string]string) map[string]string {
	smallest := map[string]string{}
	for key, euid := range euidOf {
		if s, ok := smallest[euid]; !ok || key < s {
			smallest[euid] = key
		}
	}
	out := map[string]string{}
	for key, euid := range euidOf {
		out[key] = smallest[euid]
	}
	return out
}

// TestImportMatchesEval imports FEBRL4 (4a, then 4b) with `rls import patients` into a
// three-node cluster through a follower, and checks that the persons the cluster formed
// are exactly those the evaluation path forms from the same files in the same order.
func TestImportMatchesEval(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	files := []string{testkit.Testdata(t, "febrl", "dataset4a.csv"), testkit.Testdata(t, "febrl", "dataset4b.csv")}
	c := NewCluster(t, Options{Nodes: 3})
	c.addParticipant("febrl-a", "febrl:dataset4a.csv")
	c.addParticipant("febrl-b", "febrl:dataset4b.csv")
	st, _ := c.status(0)
	via := c.Nodes[(c.indexOf(st.Leader)+1)%3]

	var rows []dataset.Row
	for _, f := range files {
		start := time.Now()
		// The progress file goes to a temporary directory: testdata is input that other
		// tests may be reading at the same time, never a place to write.
		progress := filepath.Join(t.TempDir(), filepath.Base(f)+".rls-import")
		cmd := exec.Command(rlsBinary, "import", "patients", "-addr", via.URL(), "-token", adminToken, "-format", "febrl", "-output", "json", "-progress-file", progress, f)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("import %s: %v\n%s", f, err, out)
		}
		var sum struct {
			Records       int            `json:"records"`
			Outcomes      map[string]int `json:"outcomes"`
			Rejected      []any          `json:"rejected"`
			RecordsPerSec float64        `json:"records_per_second"`
		}
		if err := json.Unmarshal(out, &sum); err != nil {
			t.Fatalf("import summary: %v\n%s", err, out)
		}
		if len(sum.Rejected) != 0 || sum.Outcomes["linked"]+sum.Outcomes["new"]+sum.Outcomes["review"] != sum.Records {
			t.Fatalf("import %s: %s", f, out)
		}
		t.Logf("imported %s: %d records in %s (%.0f records/s): %v", filepath.Base(f), sum.Records, time.Since(start).Round(time.Millisecond), sum.RecordsPerSec, sum.Outcomes)
		if _, err := os.Stat(progress); err == nil {
			t.Errorf("a finished import left its progress file behind")
		}
		file, err := dataset.Load(f, dataset.FEBRL)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, file.Rows...)
	}

	// The evaluation path: the same records, in file order, into a fresh in-memory index.
	mem, m := mpi.NewMemStore(), mpi.NewMatcher()
	want := map[string]string{}
	for i, row := range rows {
		d, err := m.Register(mem, row.Record, fmt.Sprintf("E%09d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		want[string(d.Record)] = d.EUID
	}

	// What the cluster holds: each record's EUID from PIXm, read on another node.
	c.WaitConverged(30 * time.Second)
	// The followers wrote the leader's matching decisions rather than matching every record
	// again (fsm.DecisionSource), and hold the same state all the same (above).
	taken := 0.0
	for i := range c.Nodes {
		n, err := c.Metric(i, `rls_fsm_registrations_total{decided_by="leader"}`)
		if err != nil {
			t.Fatal(err)
		}
		taken += n
	}
	if taken < float64(len(rows)) {
		t.Errorf("the followers took the leader's decision for %v of 2 × %d records", taken, len(rows))
	}
	reader := (c.indexOf(st.Leader) + 2) % 3
	got := map[string]string{}
	var mu sync.Mutex
	keys := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range keys {
				path := "/fhir/Patient/$ihe-pix?consistency=stale&targetSystem=" + url.QueryEscape("https://rls-hie.github.io/fhir/sid/euid") + "&sourceIdentifier=" + url.QueryEscape(key)
				code, body, _, err := c.call(reader, "GET", path, nil)
				// Ten thousand lookups from one address meet the node's per-address rate
				// limit when the node answers quickly: wait and ask again, as a client should.
				for tries := 0; err == nil && code == http.StatusTooManyRequests && tries < 50; tries++ {
					time.Sleep(100 * time.Millisecond)
					code, body, _, err = c.call(reader, "GET", path, nil)
				}
				euid := ""
				if err == nil && code == 200 {
					if m := regexp.MustCompile(`"value":\s*"(E[0-9a-f]+)"`).FindSubmatch(body); m != nil {
						euid = string(m[1])
					}
				}
				mu.Lock()
				got[key] = euid
				mu.Unlock()
			}
		}()
	}
	for key := range want {
		keys <- key
	}
	close(keys)
	wg.Wait()
	wantP, gotP := partition(want), partition(got)
	differ := 0
	for key, w := range wantP {
		if got[key] == "" || gotP[key] != w {
			if differ < 5 {
				t.Errorf("record %s: cluster groups it with %s (EUID %q), eval with %s", key, gotP[key], got[key], w)
			}
			differ++
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d records grouped differently", differ, len(wantP))
	}
	t.Logf("%d records: the cluster's persons equal the evaluation's", len(wantP))
}

// TestConcurrentRegistrationsAtTwoNodesFormOnePerson registers the same new person at the
// same moment through two different nodes, by two participants: matching inside the FSM
// serialises them, so both must end with one EUID.
func TestConcurrentRegistrationsAtTwoNodesFormOnePerson(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	tokA := c.addParticipant("hosp-a", "urn:oid:1.2.840.99.1")
	tokB := c.addParticipant("hosp-b", "urn:oid:1.2.840.99.2")
	// Twenty different people (the rounds must not be near-duplicates of each other, or
	// they would compete as candidates): each round registers one of them twice.
	given := []string{"Alexandra", "Beatrice", "Cordelia", "Dolores", "Evangeline", "Felicity", "Genevieve", "Henrietta",
		"Isadora", "Josephine", "Katarina", "Lucinda", "Marisol", "Nadia", "Ophelia", "Penelope", "Rosalind", "Seraphina", "Theodora", "Valentina"}
	streets := []string{"Elm", "Oak", "Birch", "Cedar", "Maple", "Willow", "Aspen", "Spruce", "Hawthorn", "Juniper"}
	patient := func(system, mrn string, i int) map[string]any {
		return map[string]any{
			"resourceType": "Patient",
			"identifier":   []any{map[string]any{"system": system, "value": mrn}},
			"name":         []any{map[string]any{"family": fmt.Sprintf("Concurrent%c%c", 'a'+i%26, 'a'+i/26), "given": []string{given[i]}}},
			"birthDate":    fmt.Sprintf("19%02d-0%d-1%d", 40+i, 1+i%9, i%10),
			"gender":       "female",
			"telecom":      []any{map[string]any{"system": "phone", "value": fmt.Sprintf("555%03d%04d", 100+7*i, 1000+37*i)}},
			"address":      []any{map[string]any{"line": []string{fmt.Sprintf("%d %s St", 100+11*i, streets[i%len(streets)])}, "city": "Salem", "postalCode": "97301"}},
		}
	}
	for i := 0; i < 20; i++ {
		var wg sync.WaitGroup
		euids := make([]string, 2)
		for j, side := range []struct {
			node  int
			tok   string
			sys   string
			value string
		}{{1, tokA, "urn:oid:1.2.840.99.1", fmt.Sprintf("A%d", i)}, {2, tokB, "urn:oid:1.2.840.99.2", fmt.Sprintf("B%d", i)}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, err := c.callAs(side.node, side.tok, "POST", "/fhir/Patient", patient(side.sys, side.value, i), nil)
				if err != nil || (code != 201 && code != 200) {
					t.Errorf("register %s: %d %s %v", side.value, code, body, err)
					return
				}
				if m := regexp.MustCompile(`"system":\s*"https://rls-hie.github.io/fhir/sid/euid",\s*"value":\s*"([^"]+)"`).FindSubmatch(body); m != nil {
					euids[j] = string(m[1])
				}
			}()
		}
		wg.Wait()
		if euids[0] == "" || euids[0] != euids[1] {
			t.Fatalf("round %d: the same person registered at two nodes got EUIDs %q and %q", i, euids[0], euids[1])
		}
	}
}

// TestImportSurvivesLeaderChange kills the leader while `rls import patients` sends a file
// through a follower, several batches in flight in one import stream. The import must end
// with every record registered, and the new leader must pick the stream up where the
// client stood (BatchSequence.Settled) instead of waiting for batches the old leader took:
// no node may log that a batch gave up waiting for its predecessor.
func TestImportSurvivesLeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	file := testkit.Testdata(t, "febrl", "dataset4a.csv")
	c := NewCluster(t, Options{Nodes: 3})
	c.addParticipant("febrl-a", "febrl:dataset4a.csv")
	st, _ := c.status(0)
	leader := c.indexOf(st.Leader)
	via := (leader + 1) % 3
	progress := filepath.Join(t.TempDir(), "progress")
	cmd := exec.Command(rlsBinary, "import", "patients", "-addr", c.Nodes[via].URL(), "-token", adminToken, "-format", "febrl",
		"-batch", "50", "-parallel", "4", "-output", "json", "-timeout", "2m", "-progress-file", progress, file)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Kill the leader once the import is under way (its progress file exists).
	c.WaitFor(30*time.Second, "the import to get going", func() bool {
		_, err := os.Stat(progress)
		return err == nil
	})
	c.Kill(leader)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("import across a leader change: %v\n%s", err, out.Bytes())
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("import did not finish within 3 minutes of the leader's death")
	}
	var sum struct {
		Records  int            `json:"records"`
		Outcomes map[string]int `json:"outcomes"`
		Rejected []any          `json:"rejected"`
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("import summary: %v\n%s", err, out.Bytes())
	}
	if sum.Records != 5000 || len(sum.Rejected) != 0 || sum.Outcomes["linked"]+sum.Outcomes["new"]+sum.Outcomes["review"] != 5000 {
		t.Fatalf("import summary: %s", out.Bytes())
	}
	// Every record is there: a tenth of them, spread over the file, each resolves to a
	// person on the new leader.
	newLeader := c.WaitLeader(20*time.Second, leader)
	rows, err := dataset.Load(file, dataset.FEBRL)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for i := 0; i < len(rows.Rows); i += 10 {
		rec := rows.Rows[i].Record
		path := "/fhir/Patient/$ihe-pix?targetSystem=" + url.QueryEscape("https://rls-hie.github.io/fhir/sid/euid") +
			"&sourceIdentifier=" + url.QueryEscape(rec.System+"|"+rec.Value)
		code, body, _, err := c.call(newLeader, "GET", path, nil)
		for tries := 0; err == nil && code == http.StatusTooManyRequests && tries < 50; tries++ {
			time.Sleep(100 * time.Millisecond) // the per-address rate limit
			code, body, _, err = c.call(newLeader, "GET", path, nil)
		}
		if err != nil || code != 200 || !bytes.Contains(body, []byte(`"value"`)) {
			if missing < 3 {
				t.Errorf("record %s|%s after the import: %d %v %.200s", rec.System, rec.Value, code, err, body)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d sampled records missing", missing, (len(rows.Rows)+9)/10)
	}
	c.WaitConverged(60 * time.Second)
	for _, n := range c.Nodes {
		log, err := os.ReadFile(n.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(log, []byte("waited for the batch before it in its stream, in vain")) {
			t.Errorf("%s: a batch gave up waiting for its predecessor after the leader change", n.ID)
		}
	}
}
