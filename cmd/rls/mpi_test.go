package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSynthThenEval generates a population with `rls mpi synth`, evaluates
// the file with `rls mpi eval`, its curve with --sizes, and a generated
// curve with --synth, as the README's commands do.
func TestSynthThenEval(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pop.csv")
	out, errOut, code := rls(t, "mpi", "synth", "--persons", "400", "--seed", "3", "--out", file)
	if code != 0 || !strings.Contains(out, "400 persons") {
		t.Fatalf("synth: exit %d, %q %q", code, out, errOut)
	}
	stdout, _, code := rls(t, "mpi", "synth", "--persons", "400", "--seed", "3")
	written, err := os.ReadFile(file)
	if err != nil || code != 0 || stdout != string(written) {
		t.Fatalf("--out and stdout differ (exit %d, %v)", code, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("synth left %d files in its directory", len(entries))
	}

	out, errOut, code = rls(t, "mpi", "eval", file)
	var rep struct {
		Records   int     `json:"records"`
		TruePairs int     `json:"true_pairs"`
		Precision float64 `json:"precision"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Records < 400 || rep.TruePairs == 0 {
		t.Fatalf("eval: exit %d, %q %q", code, out, errOut)
	}

	out, errOut, code = rls(t, "mpi", "profile", file)
	if code != 0 || !strings.Contains(out, "400 persons") || !strings.Contains(out, "given_name") {
		t.Fatalf("profile: exit %d, %q %q", code, out, errOut)
	}

	out, errOut, code = rls(t, "mpi", "eval", "--sizes", "100,400", file)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "PERSONS") || !strings.HasPrefix(lines[2], "400 ") {
		t.Fatalf("eval --sizes: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code = rls(t, "mpi", "eval", "--sizes", "100,401", file); code == 0 || !strings.Contains(errOut, "exceeds") {
		t.Fatalf("a size beyond the file: exit %d, %q", code, errOut)
	}

	out, errOut, code = rls(t, "mpi", "eval", "--synth", "--sizes", "150,300", "--seed", "5", "-o", "json")
	var points []struct {
		TruePersons int `json:"true_persons"`
		Records     int `json:"records"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &points) != nil || len(points) != 2 || points[0].TruePersons != 150 || points[1].TruePersons != 300 {
		t.Fatalf("eval --synth: exit %d, %q %q", code, out, errOut)
	}
	out, errOut, code = rls(t, "mpi", "eval", "--synth", "--nested", "--sizes", "150,300", "--seed", "5", "-o", "json")
	var nested []struct {
		TruePersons int `json:"true_persons"`
		Records     int `json:"records"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &nested) != nil || len(nested) != 2 || nested[1] != points[1] || nested[0].TruePersons < 150 || nested[0].TruePersons > 151 {
		t.Fatalf("eval --synth --nested: exit %d, %q %q (per size: %+v)", code, out, errOut, points)
	}
	for _, bad := range [][]string{
		{"mpi", "eval", "--nested", "--sizes", "10", file},
		{"mpi", "eval", "--synth", file},
		{"mpi", "eval", "--synth"},
		{"mpi", "eval", "--synth", "--sizes", "10,x"},
		{"mpi", "synth", "--persons", "0"},
		{"mpi", "synth", "--persons", "10", "--noise", "-1"},
	} {
		if _, errOut, code := rls(t, bad...); code == 0 || errOut == "" {
			t.Errorf("%v: exit %d, no error", bad, code)
		}
	}
}
