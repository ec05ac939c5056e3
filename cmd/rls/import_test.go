package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testToken = "rls_cmd_test_admin"

// startNode runs a one-node cluster and its API in process and returns the API's URL.
func startNode(t *testing.T) string {
	t.Helper()
	addr, _ := startNodeIn(t, t.TempDir())
	return addr
}

func rls(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"rls"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestImportResumesWithoutDuplicating imports a CSV file, then imports it again with a
// progress file saying the first records are done: only the rest is sent, and records sent
// twice are updated, never duplicated.
func TestImportResumesWithoutDuplicating(t *testing.T) {
	addr := startNode(t)
	if _, errOut, code := rls(t, "participant", "add", "-addr", addr, "-token", testToken, "--id", "clinic", "--name", "Clinic",
		"--kind", "practice", "--identifier-system", "urn:oid:9.8.7"); code != 0 {
		t.Fatalf("participant add: %s", errOut)
	}
	file := filepath.Join(t.TempDir(), "patients.csv")
	csv := "rec_id,person_id,facility,mrn,given_name,middle_name,family_name,birth_date,sex,address_line,city,state,postal_code,phone,email,ssn\n" +
		"r1,P1,urn:oid:9.8.7,M1,Ana,,Silva,1970-01-01,F,1 Rua A,Boston,MA,02118,6175550001,,\n" +
		"r2,P2,urn:oid:9.8.7,M2,Bruno,,Costa,1971-02-02,M,2 Rua B,Boston,MA,02118,6175550002,,\n" +
		"r3,P3,urn:oid:9.8.7,M3,Carla,,Souza,1972-03-03,F,3 Rua C,Boston,MA,02118,6175550003,,\n" +
		"r4,P4,urn:oid:9.8.7,M4,Davi,,Lima,1973-04-04,M,4 Rua D,Boston,MA,02118,6175550004,,\n" +
		"r5,P5,urn:oid:9.8.7,M5,Elisa,,Rocha,1974-05-05,F,5 Rua E,Boston,MA,02118,6175550005,,\n" +
		"r6,P6,urn:oid:9.8.7,M6,Fabio,,Alves,1975-06-06,M,6 Rua F,Boston,MA,02118,6175550006,,\n" +
		"r7,P7,urn:oid:9.8.7,M7,,,,not-a-date,F,,,,,,,\n"
	os.WriteFile(file, []byte(csv), 0o600)
	out, errOut, code := rls(t, "import", "patients", "-addr", addr, "-token", testToken, "-batch", "2", "-output", "json", file)
	var sum importSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary: %v\n%s\n%s", err, out, errOut)
	}
	// The malformed row is reported with its line number; the others are registered.
	if code == 0 || len(sum.Rejected) != 1 || sum.Rejected[0].Line != 8 || sum.Outcomes["new"]+sum.Outcomes["linked"]+sum.Outcomes["review"] != 6 {
		t.Fatalf("first import: exit %d %+v %s", code, sum, errOut)
	}
	if _, err := os.Stat(file + ".rls-import"); err == nil {
		t.Fatal("a finished import left its progress file")
	}
	// Progress of the same file into another cluster is not this import's: nothing is
	// skipped.
	info, _ := os.Stat(file)
	hash, err := fileSHA256(file)
	if err != nil {
		t.Fatal(err)
	}
	progress := filepath.Join(t.TempDir(), "progress.json")
	saveCheckpoint(progress, checkpoint{File: "patients.csv", Size: info.Size(), SHA256: hash, Target: "http://elsewhere:8080", Done: 4})
	out, errOut, code = rls(t, "import", "patients", "-addr", addr, "-token", testToken, "-batch", "2", "-output", "json", "-progress-file", progress, file)
	sum = importSummary{}
	json.Unmarshal([]byte(out), &sum)
	if sum.Skipped != 0 || sum.Outcomes["new"]+sum.Outcomes["linked"] != 6 {
		t.Fatalf("import with another cluster's progress: exit %d %s %s", code, out, errOut)
	}
	// Resume after an interruption: the progress file says 4 are done.
	saveCheckpoint(progress, checkpoint{File: "patients.csv", Size: info.Size(), SHA256: hash, Target: addr, Done: 4})
	out, errOut, code = rls(t, "import", "patients", "-addr", addr, "-token", testToken, "-batch", "2", "-output", "json", "-progress-file", progress, file)
	sum = importSummary{}
	json.Unmarshal([]byte(out), &sum)
	if sum.Skipped != 4 || sum.Outcomes["new"]+sum.Outcomes["linked"] != 2 {
		t.Fatalf("resumed import: exit %d %s %s", code, out, errOut)
	}
	// Nothing was duplicated: re-sent records were updated in place.
	out, _, _ = rls(t, "patient", "match", "-addr", addr, "-token", testToken, "-family", "Silva", "-given", "Ana", "-birthdate", "1970-01-01", "-output", "json")
	if strings.Count(out, `"fullUrl"`) != 1 {
		t.Fatalf("match after re-import: %s", out)
	}
}
