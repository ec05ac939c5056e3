package eval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/mpi/synth"
)

func synthRows(t *testing.T, persons int, seed uint64) []dataset.Row {
	t.Helper()
	rows, sum, err := synth.Rows(context.Background(), synth.Options{Persons: persons, Seed: seed, Knobs: synth.DefaultKnobs()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != sum.Records {
		t.Fatalf("%d rows read back, %d written", len(rows), sum.Records)
	}
	return rows
}

func TestSubsetsNested(t *testing.T) {
	rows := synthRows(t, 3000, 4)
	pop, total := Subsets(rows)
	if total != 3000 {
		t.Fatalf("Subsets counts %d persons, want 3000", total)
	}
	position := map[string]int{}
	for i, r := range rows {
		position[r.ID] = i
	}
	var prev map[string]bool
	for _, n := range []int{200, 1000, 3000} {
		sub, err := pop(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		labels := map[string]bool{}
		ids := map[string]bool{}
		last := -1
		for _, r := range sub {
			labels[r.Label] = true
			ids[r.ID] = true
			if position[r.ID] <= last {
				t.Fatalf("subset %d is not in file order at %s", n, r.ID)
			}
			last = position[r.ID]
		}
		if len(labels) < n || len(labels) > n+1 {
			t.Fatalf("subset %d holds %d persons", n, len(labels))
		}
		for l := range labels {
			if base := strings.TrimRight(l, "tj"); base != l && !labels[base] {
				t.Fatalf("subset %d keeps %s without %s", n, l, base)
			}
		}
		for _, r := range rows { // all of a chosen person's records
			if labels[r.Label] && !ids[r.ID] {
				t.Fatalf("subset %d drops record %s of %s", n, r.ID, r.Label)
			}
		}
		for id := range prev {
			if !ids[id] {
				t.Fatalf("subset %d lacks record %s of the smaller subset", n, id)
			}
		}
		prev = ids
	}
	// Consecutive labels (one household) are chosen independently: of the
	// 200 persons of the smallest subset, about 200·200/3000 have P<N+1>
	// beside them.
	small, _ := pop(context.Background(), 200)
	chosen := map[string]bool{}
	for _, r := range small {
		chosen[r.Label] = true
	}
	neighbours := 0
	for l := range chosen {
		var n int
		if _, err := fmt.Sscanf(l, "P%d", &n); err == nil && chosen[fmt.Sprintf("P%d", n+1)] {
			neighbours++
		}
	}
	if neighbours > 2*200*200/3000+5 {
		t.Fatalf("%d of the 200 persons chosen have the next label beside them: the choice is not independent", neighbours)
	}
	if _, err := pop(context.Background(), 3001); !errors.Is(err, ErrTooFewPersons) {
		t.Fatalf("a subset larger than the file: %v", err)
	}
}

// TestCurveOnGeneratedPopulations measures two small sizes end to end:
// the generator's file is read back and registered, and the points come
// out in size order with their own counts.
func TestCurveOnGeneratedPopulations(t *testing.T) {
	pop := func(ctx context.Context, n int) ([]dataset.Row, error) {
		rows, _, err := synth.Rows(ctx, synth.Options{Persons: n, Seed: 9, Knobs: synth.DefaultKnobs()})
		return rows, err
	}
	var seen []int
	points, err := Curve(context.Background(), pop, []int{600, 200, 600}, Options{}, func(p CurvePoint) { seen = append(seen, p.TruePersons) })
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 2 || !slices.Equal(seen, []int{200, 600}) {
		t.Fatalf("points for sizes %v, progress %v", len(points), seen)
	}
	for i, p := range points {
		if p.TruePairs <= 0 || p.Records <= p.TruePersons || p.Precision <= 0 || p.Precision > 1 || p.Recall <= 0.5 || p.RecordsPerSecond <= 0 {
			t.Fatalf("point %d: %+v", i, p)
		}
		if p.Train != nil || p.TrainSeconds != 0 {
			t.Fatalf("point %d trained without Options.Train", i)
		}
	}
	for _, p := range points {
		fp := p.FalsePairs
		if wrong := p.PredictedPairs - p.CorrectPairs; fp.Household+fp.FamilyName+fp.Other != wrong {
			t.Fatalf("false pairs %+v do not add up to %d", fp, wrong)
		}
	}
	if points[1].Records <= points[0].Records {
		t.Fatalf("records %d then %d", points[0].Records, points[1].Records)
	}
	if _, err := Curve(context.Background(), pop, nil, Options{}, nil); err == nil {
		t.Fatal("a curve without sizes ran")
	}
}

// TestCurveTrainsEachSize checks that --train trains each subset on its own.
func TestCurveTrainsEachSize(t *testing.T) {
	pop, _ := Subsets(synthRows(t, 800, 2))
	points, err := Curve(context.Background(), pop, []int{300, 800}, Options{Train: true, TrainOptions: mpi.TrainOptions{RandomPairs: 50000}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		if p.Train == nil || p.Train.Records != p.Records {
			t.Fatalf("size %d: trained on %+v, %d records", p.TruePersons, p.Train, p.Records)
		}
	}
}
