package eval

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/rls-hie/rls/mpi/dataset"
)

// Population gives the labelled rows of a population of about persons
// distinct persons (truth labels), in registration order.
type Population func(ctx context.Context, persons int) ([]dataset.Row, error)

// CurvePoint is the measurement at one size of a curve.
type CurvePoint struct {
	// TruePersons is the number of distinct truth labels measured (a
	// subset may exceed the size asked for by one, to keep a twin or
	// junior pair together).
	TruePersons int `json:"true_persons"`
	Report
}

// Curve measures matching at each size, smallest first, on the rows pop
// gives for that size: each size is a fresh index, trained on its own rows
// when opts.Train is set, as an exchange of that size would be. progress,
// when set, sees each point as it is measured.
func Curve(ctx context.Context, pop Population, sizes []int, opts Options, progress func(CurvePoint)) ([]CurvePoint, error) {
	if len(sizes) == 0 {
		return nil, errors.New("eval: a curve needs at least one size")
	}
	sizes = slices.Clone(sizes)
	slices.Sort(sizes)
	var out []CurvePoint
	for _, n := range slices.Compact(sizes) {
		if n < 1 {
			return nil, fmt.Errorf("eval: size %d must be at least one person", n)
		}
		rows, err := pop(ctx, n)
		if err != nil {
			return nil, err
		}
		rep, err := RunRows(ctx, rows, opts)
		if err != nil {
			return nil, fmt.Errorf("eval at %d persons: %w", n, err)
		}
		pt := CurvePoint{TruePersons: countLabels(rows), Report: rep}
		if progress != nil {
			progress(pt)
		}
		out = append(out, pt)
	}
	return out, nil
}

// scramble is the SplitMix64 finaliser. FNV alone leaves labels that
// differ in their last characters (P19319, P19321) close together, which
// would pick whole runs of consecutive persons (households) into a subset.
func scramble(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func countLabels(rows []dataset.Row) int {
	seen := map[string]struct{}{}
	for _, r := range rows {
		seen[r.Label] = struct{}{}
	}
	return len(seen)
}

// ErrTooFewPersons is returned when a subset larger than the file is asked for.
var ErrTooFewPersons = errors.New("not enough persons")

// Subsets returns the Population of nested subsets of rows: the persons of
// a subset are chosen by a fixed hash of their label, so that every
// smaller subset is part of every larger one, and all their records are
// kept in file order. A twin (label P<N>t) or junior (P<N>j) is kept with
// P<N>, so household pairs stay whole. It also returns how many persons
// the rows hold.
func Subsets(rows []dataset.Row) (Population, int) {
	labels := map[string]bool{}
	for _, r := range rows {
		labels[r.Label] = true
	}
	// group maps a label to the label its pair is chosen by.
	group := func(l string) string {
		if base := strings.TrimRight(l, "tj"); base != l && len(l)-len(base) == 1 && labels[base] {
			return base
		}
		return l
	}
	members := map[string]int{}
	for l := range labels {
		members[group(l)]++
	}
	type keyed struct {
		key   uint64
		group string
	}
	order := make([]keyed, 0, len(members))
	for g := range members {
		h := fnv.New64a()
		h.Write([]byte("rls-eval-subset\x00" + g))
		order = append(order, keyed{scramble(h.Sum64()), g})
	}
	slices.SortFunc(order, func(a, b keyed) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return strings.Compare(a.group, b.group)
	})
	total := len(labels)
	pop := func(ctx context.Context, persons int) ([]dataset.Row, error) {
		if persons > total {
			return nil, fmt.Errorf("eval: %w: %d persons asked for, the file holds %d", ErrTooFewPersons, persons, total)
		}
		chosen := map[string]bool{}
		n := 0
		for _, k := range order {
			if n >= persons {
				break
			}
			chosen[k.group] = true
			n += members[k.group]
		}
		var out []dataset.Row
		for _, r := range rows {
			if chosen[group(r.Label)] {
				out = append(out, r)
			}
		}
		return out, ctx.Err()
	}
	return pop, total
}
