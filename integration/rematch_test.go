package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/raft/model"
)

// TestRematchAfterTrainingOnACluster imports the sample's first 400 records into three
// nodes under the default configuration, has a steward link two strangers and take a
// record off its person, trains, asks `rls mpi rematch -dry-run` for the diff, runs the
// rematch, and checks that it changed what the dry run said it would, that the steward's
// decisions stand, and that every node holds the same state.
func TestRematchAfterTrainingOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	file, err := dataset.Load(testkit.Testdata(t, "synthetic", "sample.csv"), dataset.CSV)
	if err != nil {
		t.Fatal(err)
	}
	rows := file.Rows[:400]
	c := NewCluster(t, Options{Nodes: 3})
	systems := map[string]bool{}
	for _, r := range rows {
		if !systems[r.Record.System] {
			systems[r.Record.System] = true
			c.addParticipant(fmt.Sprintf("facility-%d", len(systems)), r.Record.System)
		}
	}
	csvPath := filepath.Join(t.TempDir(), "part.csv")
	writeSampleRows(t, testkit.Testdata(t, "synthetic", "sample.csv"), csvPath, len(rows))
	// rls runs a command (its words, then flags and arguments) against node 1.
	rls := func(words []string, args ...string) []byte {
		t.Helper()
		full := append(append(words, "-addr", c.Nodes[1].URL(), "-token", adminToken), args...)
		out, err := exec.Command(rlsBinary, full...).CombinedOutput()
		if err != nil {
			t.Fatalf("rls %v: %v\n%s", full, err, out)
		}
		return out
	}
	// Imported under a configuration that links almost nothing, so that the trained one
	// has records to gather.
	c.setUpper(t, 30)
	rls([]string{"import", "patients"}, "-output", "json", "-progress-file", filepath.Join(t.TempDir(), "progress"), csvPath)

	// A steward links two strangers and separates a record from its person.
	stranger, host := string(rows[1].Record.Key()), string(rows[0].Record.Key())
	if rows[0].Label == rows[1].Label {
		t.Fatal("rows 0 and 1 must be different people")
	}
	byLabel := map[string][]string{}
	for _, r := range rows {
		byLabel[r.Label] = append(byLabel[r.Label], string(r.Record.Key()))
	}
	// The separated record is one of a person's records put on the person of another of
	// them by the steward, then taken off again: a rematch must not bring them together.
	var separated, sibling string
	for _, keys := range byLabel {
		if len(keys) >= 2 && keys[0] != stranger && keys[0] != host && keys[1] != stranger && keys[1] != host {
			separated, sibling = keys[0], keys[1]
			break
		}
	}
	if separated == "" {
		t.Fatal("no person with two records")
	}
	hostEUID := c.euidOf(t, host)
	c.steward(t, "link", map[string]any{"record": stranger, "euid": hostEUID, "reason": "confirmed by phone"})
	if c.euidOf(t, separated) != c.euidOf(t, sibling) {
		c.steward(t, "link", map[string]any{"record": separated, "euid": c.euidOf(t, sibling), "reason": "same person"})
	}
	c.steward(t, "unlink", map[string]any{"record": separated, "reason": "not the same person after all"})
	ownEUID := c.euidOf(t, separated)

	c.setUpper(t, 6)
	rls([]string{"mpi", "train"}, "-output", "json")
	var dry, real struct {
		DryRun  bool `json:"dry_run"`
		Records int  `json:"records"`
		Kept    int  `json:"kept"`
		Changes []struct {
			Record, From, To, Outcome string
		} `json:"changes"`
	}
	if err := json.Unmarshal(rls([]string{"mpi", "rematch"}, "-dry-run", "-output", "json"), &dry); err != nil {
		t.Fatal(err)
	}
	table := string(rls([]string{"mpi", "rematch"}, "-dry-run"))
	if !strings.Contains(table, "dry run: would rematch 400 records") {
		t.Errorf("dry run table:\n%s", table)
	}
	if err := json.Unmarshal(rls([]string{"mpi", "rematch"}, "-batch", "50", "-output", "json"), &real); err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || real.DryRun || dry.Records != 400 || real.Records != 400 || real.Kept < 2 {
		t.Fatalf("dry run %d records (%v), real run %d records, %d kept by a steward (%v)", dry.Records, dry.DryRun, real.Records, real.Kept, real.DryRun)
	}
	// New persons get EUIDs drawn afresh, so the two runs are compared by which records
	// moved and how they were decided.
	moved := func(changes []struct{ Record, From, To, Outcome string }) map[string]string {
		out := map[string]string{}
		for _, ch := range changes {
			if ch.From != ch.To {
				out[ch.Record] = ch.Outcome
			}
		}
		return out
	}
	dm, rm := moved(dry.Changes), moved(real.Changes)
	if len(dm) != len(rm) {
		t.Errorf("the dry run moved %d records, the rematch %d", len(dm), len(rm))
	}
	for k, o := range dm {
		if rm[k] != o {
			t.Errorf("record %s: dry run %q, rematch %q", k, o, rm[k])
		}
	}
	if got := c.euidOf(t, stranger); got != c.euidOf(t, host) {
		t.Errorf("the steward's link of %s was undone", stranger)
	}
	if got := c.euidOf(t, separated); got != ownEUID || got == c.euidOf(t, sibling) {
		t.Errorf("the separated record is on %s (its own %s; the record it was separated from on %s)", got, ownEUID, c.euidOf(t, sibling))
	}
	if len(rm) < 20 {
		t.Errorf("only %d records moved under the trained configuration", len(rm))
	}
	h := c.WaitConverged(30e9)
	t.Logf("rematch after training: %d records, %d moved (dry run %d), %d kept; every node at %v", real.Records, len(rm), len(dm), real.Kept, h)
}

// setUpper replaces the match configuration's upper threshold.
func (c *Cluster) setUpper(t *testing.T, upper float64) {
	t.Helper()
	var cfg map[string]any
	if err := c.getJSON(0, "/v1/mpi/config", 10e9, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["version"], cfg["upper"] = cfg["version"].(float64)+1, upper
	if code, out, _, err := c.call(0, "PUT", "/v1/mpi/config", cfg); err != nil || code != 200 {
		t.Fatalf("put config: %d %s %v", code, out, err)
	}
}

// euidOf reads the person a record belongs to.
func (c *Cluster) euidOf(t *testing.T, key string) string {
	t.Helper()
	code, body, _, err := c.call(0, "GET", "/fhir/Patient/"+model.PatientID(key)+"?consistency=strong", nil)
	if err != nil || code != 200 {
		t.Fatalf("read %s: %d %s %v", key, code, body, err)
	}
	m := regexp.MustCompile(`"system":\s*"https://rls-hie.github.io/fhir/sid/euid",\s*"value":\s*"([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no EUID in %s", body)
	}
	return string(m[1])
}

// steward posts a steward action.
func (c *Cluster) steward(t *testing.T, action string, body map[string]any) {
	t.Helper()
	if code, out, _, err := c.call(0, "POST", "/v1/steward/"+action, body); err != nil || code/100 != 2 {
		t.Fatalf("steward %s: %d %s %v", action, code, out, err)
	}
}

// writeSampleRows copies the header and the first n records of a CSV file.
func writeSampleRows(t *testing.T, from, to string, n int) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if err := os.WriteFile(to, []byte(strings.Join(lines[:n+1], "")), 0o600); err != nil {
		t.Fatal(err)
	}
}
