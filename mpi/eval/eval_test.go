package eval

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// sharedData finds ../shared/data by walking up from the package directory
// (the test data lives beside the repository, never inside it).
func sharedData(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "..", "shared", "data")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("test data ../shared/data not found beside the repository; skipping the evaluation floors")
		}
		dir = parent
	}
}

type evalCase struct {
	name    string
	files   []string
	format  string
	without []string
	minF1   float64
}

func TestEvalFloors(t *testing.T) {
	data := sharedData(t)
	febrl4 := []string{filepath.Join(data, "febrl", "dataset4a.csv"), filepath.Join(data, "febrl", "dataset4b.csv")}
	febrl3 := []string{filepath.Join(data, "febrl", "dataset3.csv")}
	sample := []string{filepath.Join(data, "synthetic", "sample.csv")}
	cases := []evalCase{
		{"febrl4", febrl4, "febrl", nil, 0.999},
		{"febrl4-without-ssn", febrl4, "febrl", []string{"ssn"}, 0.999},
		{"febrl3", febrl3, "febrl", nil, 0.995},
		{"febrl3-without-ssn", febrl3, "febrl", []string{"ssn"}, 0.995},
		{"sample", sample, "csv", nil, 0.99},
		{"sample-without-ssn", sample, "csv", []string{"ssn"}, 0.99},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, f := range c.files {
				if _, err := os.Stat(f); err != nil {
					t.Skipf("test data %s not found: %v", f, err)
				}
			}
			rep, err := Run(context.Background(), Options{Files: c.files, Format: c.format, Train: true, Without: c.without})
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(rep)
			t.Logf("%s", js)
			if rep.F1 < c.minF1 {
				t.Errorf("F1 %.4f < %.3f", rep.F1, c.minF1)
			}
			if rep.Precision < 0.998 {
				t.Errorf("precision %.4f < 0.998", rep.Precision)
			}
			if rep.TwinFalseLinks != 0 || rep.GenerationFalseLinks != 0 {
				t.Errorf("household false links: %d twin, %d generation", rep.TwinFalseLinks, rep.GenerationFalseLinks)
			}
		})
	}
}
