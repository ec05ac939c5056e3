package eval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/mpi/synth"
)

type evalCase struct {
	name    string
	files   []string
	format  string
	without []string
	// minPrecision and minF1 are the floors; maxHousehold bounds the twin and
	// junior/senior false links.
	minPrecision, minF1 float64
	maxHousehold        int64
}

// TestEvalFloors holds the matcher, trained by EM without labels as `rls mpi eval --train`
// does, to floors a little below its figures on every labelled file of the repository
// (mpi/README.md lists the figures): FEBRL 1 to 4, the 1,000-person sample and the
// 20,000-person population, each with and without SSN, and Splink's fake_1000. FEBRL 1
// and 2 were never tuned against: they joined the floors as files of another source and
// other shapes (500 pairs; 4,000 originals with up to five duplicates each).
func TestEvalFloors(t *testing.T) {
	febrl4 := []string{testkit.Testdata(t, "febrl", "dataset4a.csv"), testkit.Testdata(t, "febrl", "dataset4b.csv")}
	febrl3 := []string{testkit.Testdata(t, "febrl", "dataset3.csv")}
	febrl2 := []string{testkit.Testdata(t, "febrl", "dataset2.csv")}
	febrl1 := []string{testkit.Testdata(t, "febrl", "dataset1.csv")}
	sample := []string{testkit.Testdata(t, "synthetic", "sample.csv")}
	population := []string{testkit.Testdata(t, "synthetic", "population-20k.csv")}
	splink := []string{testkit.Testdata(t, "splink", "fake_1000.csv")}
	ssn := []string{"ssn"}
	cases := []evalCase{
		{"febrl4", febrl4, "febrl", nil, 0.999, 0.999, 0},
		{"febrl4-without-ssn", febrl4, "febrl", ssn, 0.999, 0.99, 0},
		{"febrl3", febrl3, "febrl", nil, 0.999, 0.999, 0},
		{"febrl3-without-ssn", febrl3, "febrl", ssn, 0.999, 0.99, 0},
		{"febrl2", febrl2, "febrl", nil, 0.999, 0.995, 0},
		{"febrl2-without-ssn", febrl2, "febrl", ssn, 0.999, 0.995, 0},
		{"febrl1", febrl1, "febrl", nil, 0.999, 0.995, 0},
		{"febrl1-without-ssn", febrl1, "febrl", ssn, 0.999, 0.993, 0},
		{"sample", sample, "csv", nil, 0.998, 0.995, 0},
		{"sample-without-ssn", sample, "csv", ssn, 0.998, 0.993, 0},
		{"population-20k", population, "csv", nil, 0.998, 0.99, 3},
		{"population-20k-without-ssn", population, "csv", ssn, 0.995, 0.985, 3},
		// Not a target but a guard: a file of another source, so corrupted that recall is
		// what it is (0.84, F1 0.91 since birth dates less than a year apart count as
		// close); precision must not give way on it.
		{"splink-fake-1000", splink, "csv", nil, 0.995, 0.90, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := Run(context.Background(), Options{Files: c.files, Format: c.format, Train: true, Without: c.without})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("precision %.4f recall %.4f F1 %.4f, %d review items, twin/generation false links %d/%d",
				rep.Precision, rep.Recall, rep.F1, rep.ReviewItems, rep.TwinFalseLinks, rep.GenerationFalseLinks)
			if rep.F1 < c.minF1 {
				t.Errorf("F1 %.4f < %.3f", rep.F1, c.minF1)
			}
			if rep.Precision < c.minPrecision {
				t.Errorf("precision %.4f < %.3f", rep.Precision, c.minPrecision)
			}
			if n := rep.TwinFalseLinks + rep.GenerationFalseLinks; n > c.maxHousehold {
				t.Errorf("household false links: %d twin, %d generation (at most %d)", rep.TwinFalseLinks, rep.GenerationFalseLinks, c.maxHousehold)
			}
		})
	}
}

// TestPrecisionHoldsAsTheIndexGrows measures generated populations of 1,000 and 10,000
// persons (households, twins, juniors, movers, the errors of population-20k), each trained
// on its own records: precision stays at 0.995 or more at both sizes and F1 does not fall
// by more than 0.005. `rls mpi eval --synth --sizes 1000,10000,100000 --train` prints the
// longer curve.
func TestPrecisionHoldsAsTheIndexGrows(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on 30,000 generated records; skipped with -short")
	}
	pop := func(ctx context.Context, n int) ([]dataset.Row, error) {
		rows, _, err := synth.Rows(ctx, synth.Options{Persons: n, Seed: 11, Knobs: synth.DefaultKnobs()})
		return rows, err
	}
	points, err := Curve(context.Background(), pop, []int{1000, 10000}, Options{Train: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		t.Logf("%d persons: precision %.4f recall %.4f F1 %.4f", p.TruePersons, p.Precision, p.Recall, p.F1)
		if p.Precision < 0.995 {
			t.Errorf("%d persons: precision %.4f < 0.995", p.TruePersons, p.Precision)
		}
	}
	if small, large := points[0].F1, points[1].F1; large < small-0.005 {
		t.Errorf("F1 falls from %.4f at %d persons to %.4f at %d", small, points[0].TruePersons, large, points[1].TruePersons)
	}
}

// TestSampleHouseholdsNeverLinked checks the synthetic sample's own labels:
// a twin is labelled P<N>t and a junior or senior P<N>j beside P<N>, and no
// record of one may share an EUID with a record of the other.
func TestSampleHouseholdsNeverLinked(t *testing.T) {
	f, err := dataset.Load(testkit.Testdata(t, "synthetic", "sample.csv"), dataset.CSV)
	if err != nil {
		t.Fatal(err)
	}
	for _, without := range [][]string{nil, {"ssn"}} {
		store := trainedStore(t, f.Rows, without)
		euid := map[string]map[string]bool{} // label → EUIDs
		m := mpi.NewMatcher()
		for i, row := range f.Rows {
			r, _ := mpi.WithoutFields(row.Record, without)
			d, err := m.Register(store, r, fmt.Sprintf("E%07d", i))
			if err != nil {
				t.Fatal(err)
			}
			if euid[row.Label] == nil {
				euid[row.Label] = map[string]bool{}
			}
			euid[row.Label][d.EUID] = true
		}
		households := 0
		for label, ids := range euid {
			base := strings.TrimRight(label, "tj")
			if base == label {
				continue
			}
			households++
			for id := range ids {
				if euid[base][id] {
					t.Errorf("without %v: %s and %s share EUID %s", without, base, label, id)
				}
			}
		}
		if households == 0 {
			t.Fatal("the sample has no twin or junior labels any more; this test checks nothing")
		}
	}
}

func trainedStore(t *testing.T, rows []dataset.Row, without []string) *mpi.MemStore {
	t.Helper()
	recs := make([]mpi.Record, len(rows))
	for i, row := range rows {
		recs[i], _ = mpi.WithoutFields(row.Record, without)
	}
	cfg, _, err := mpi.Train(recs, mpi.DefaultConfig(), mpi.TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := mpi.NewMemStore()
	if err := s.PutConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunRefusesUnlabelledFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "import.csv")
	header := strings.Replace(strings.Join(dataset.CSVColumns, ","), "person_id,", "", 1)
	if err := os.WriteFile(path, []byte(header+"\nr1,urn:a,1,Ann,,Lee,1990-01-01,F,,,,,,,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Options{Files: []string{path}}); !errors.Is(err, ErrNoLabels) {
		t.Fatalf("unlabelled file: %v", err)
	}
}

func TestRunSmallFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "small.csv")
	rows := []string{
		strings.Join(dataset.CSVColumns, ","),
		"r1,P1,urn:a,1,William,,Turner,1932-01-26,M,6730 Oak Court,Salem,OR,62760,5398966397,,",
		"r2,P1,urn:b,7,Bill,,Turner,1932-01-26,M,6730 Oak Ct,Salem,OR,62760,,,",
		"r3,P2,urn:a,2,Mary,,Jones,2011-01-22,F,4309 Forest Court,Denver,CO,80255,3356042247,,",
		"r4,P3,urn:b,8,Judith,,Jones,2011-01-22,F,4309 Forest Court,Denver,CO,80255,3356042247,,",
	}
	if err := os.WriteFile(path, []byte(strings.Join(rows, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Options{Files: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 4 || rep.TruePairs != 1 || rep.PredictedPairs != 1 || rep.Precision != 1 || rep.Recall != 1 || rep.F1 != 1 || rep.TwinFalseLinks != 0 {
		t.Fatalf("report %+v", rep)
	}
	js, _ := json.Marshal(rep)
	for _, key := range []string{`"records":`, `"true_pairs":`, `"predicted_pairs":`, `"precision":`, `"recall":`, `"f1":`, `"review_items":`, `"seconds":`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("report JSON lacks %s: %s", key, js)
		}
	}
	upper, lower := 1000.0, 999.0
	rep, err = Run(context.Background(), Options{Files: []string{path}, Upper: &upper, Lower: &lower})
	if err != nil || rep.PredictedPairs != 0 || rep.Config.Upper != 1000 {
		t.Fatalf("threshold override: %v %+v", err, rep)
	}
	if _, err := Run(context.Background(), Options{Files: []string{path}, Without: []string{"shoe_size"}}); err == nil {
		t.Fatal("unknown --without field accepted")
	}
	if _, err := Run(context.Background(), Options{Files: []string{path}, Format: "xml"}); err == nil {
		t.Fatal("unknown format accepted")
	}
}
