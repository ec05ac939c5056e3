package synth

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/rls-hie/rls/mpi/dataset"
)

// Options describe a population.
type Options struct {
	// Persons is the number of distinct persons (truth labels), twins and
	// juniors included.
	Persons int
	// Seed selects the population: the same seed, persons and knobs give
	// the same file, byte for byte.
	Seed  uint64
	Knobs Knobs
}

// Summary describes a generated population.
type Summary struct {
	Persons    int    `json:"persons"`
	Records    int    `json:"records"`
	Units      int    `json:"units"`
	Twins      int    `json:"twins"`
	Juniors    int    `json:"juniors"`
	HomeState  string `json:"home_state"`
	States     int    `json:"states"`
	Towns      int    `json:"towns"`
	ZIPs       int    `json:"zips"`
	Streets    int    `json:"streets"`
	Facilities int    `json:"facilities"`
}

// MaxPersons bounds a population (SSNs and MRNs stay distinct far beyond;
// phone numbers stay distinct up to a million persons).
const MaxPersons = 50_000_000

type generator struct {
	seed        uint64
	k           Knobs
	t           *tables
	geo         *region
	persons     int
	records     int
	facilityCum []float64
	recordsCum  []float64
	shapes      []unitShape
	// unit kinds and sizes: pTwin and pJunior of units are twin and
	// junior units; a regular unit is a single person with pSingle.
	pTwin, pJunior, pSingle float64
	multiSizes              []float64 // weights of sizes 2, 3, …
}

// multiSizeWeights weigh households of 2…6 registered members.
var multiSizeWeights = []float64{45, 24, 19, 8, 4}

func newGenerator(opts Options) (*generator, error) {
	if opts.Persons < 1 || opts.Persons > MaxPersons {
		return nil, fmt.Errorf("synth: persons %d must be within [1, %d]", opts.Persons, MaxPersons)
	}
	if err := opts.Knobs.Validate(); err != nil {
		return nil, fmt.Errorf("synth: knobs: %w", err)
	}
	t, err := loadTables()
	if err != nil {
		return nil, err
	}
	g := &generator{seed: opts.Seed, k: opts.Knobs, t: t, persons: opts.Persons, multiSizes: multiSizeWeights}
	src := newSource()
	if g.geo, err = buildRegion(t, src.at(g.seed, streamGeography, 0), opts.Persons, opts.Knobs); err != nil {
		return nil, err
	}
	total := 0.0
	for _, w := range opts.Knobs.RecordsPerPerson {
		total += w
		g.recordsCum = append(g.recordsCum, total)
	}
	facilities := opts.Knobs.Facilities
	if facilities == 0 {
		facilities = 6 + opts.Persons/25000
	}
	total = 0
	for f := range facilities {
		// Facility sizes fall slowly: a few large hospital systems, many
		// clinics; the 20k file's six are equal.
		total += math.Pow(float64(f+1), -0.6)
		g.facilityCum = append(g.facilityCum, total)
	}
	g.unitProbabilities()
	return g, nil
}

// unitProbabilities turns the per-person shares of the knobs into
// per-unit probabilities.
func (g *generator) unitProbabilities() {
	wsum, msum := 0.0, 0.0
	for i, w := range g.multiSizes {
		wsum += w
		msum += w * float64(i+2)
	}
	mean := msum / wsum // mean size of a multi-person unit
	h := g.k.HouseholdShare
	g.pSingle = 1
	if h > 0 {
		g.pSingle = (1 - h) * mean / ((1-h)*mean + h)
	}
	regular := g.pSingle + (1-g.pSingle)*mean
	special := g.k.TwinShare + g.k.JuniorShare
	e := regular / (1 - special*(mean-regular))
	g.pTwin, g.pJunior = g.k.TwinShare*e, g.k.JuniorShare*e
}

// shape draws the kind and size of unit u.
func (g *generator) shape(src *source, u int) (kind, size uint8) {
	r := src.at(g.seed, streamShape, uint64(u))
	x := r.Float64()
	multi := func() uint8 {
		total := 0.0
		for _, w := range g.multiSizes {
			total += w
		}
		y := r.Float64() * total
		for i, w := range g.multiSizes {
			if y < w {
				return uint8(i + 2)
			}
			y -= w
		}
		return uint8(len(g.multiSizes) + 1)
	}
	switch {
	case x < g.pTwin:
		return kindTwin, multi()
	case x < g.pTwin+g.pJunior:
		return kindJunior, multi()
	case r.Float64() < g.pSingle:
		return kindRegular, 1
	}
	return kindRegular, multi()
}

// recordKey places one record in the output: records are written in the
// order of the day they were registered.
type recordKey struct {
	order  uint64 // day << 32 | scrambled record number
	recNo  uint32
	unit   uint32
	member uint8
	ord    uint8
}

// plan lays out the units (pass 1: kinds and sizes, until the persons are
// reached) and every record's key (pass 2: each unit generated once).
func (g *generator) plan(ctx context.Context) ([]recordKey, error) {
	src := newSource()
	persons := 0
	for u := 0; persons < g.persons; u++ {
		kind, size := g.shape(src, u)
		if left := g.persons - persons; int(size) > left {
			size = uint8(left)
			if size < 2 {
				kind = kindRegular
			}
		}
		g.shapes = append(g.shapes, unitShape{firstPerson: uint32(persons), size: size, kind: kind})
		persons += int(size)
	}
	keys := make([]recordKey, 0, g.persons*2)
	b := newUnitBuf()
	var recNo uint32
	for u, sh := range g.shapes {
		if u%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		g.buildUnit(u, sh, b)
		for m := range b.persons {
			for o, rec := range b.persons[m].records {
				scrambled := uint32(mix64(uint64(recNo)^g.seed^streamOrder<<40) >> 32)
				keys = append(keys, recordKey{order: uint64(rec.day-spanStart)<<32 | uint64(scrambled),
					recNo: recNo, unit: uint32(u), member: uint8(m), ord: uint8(o)})
				recNo++
			}
		}
	}
	g.records = int(recNo)
	slices.SortFunc(keys, func(a, b recordKey) int {
		switch {
		case a.order < b.order:
			return -1
		case a.order > b.order:
			return 1
		}
		return int(a.recNo) - int(b.recNo)
	})
	return keys, nil
}

// Write streams the labelled CSV of a population to w, in the format
// `rls mpi eval` and bulk import read (dataset.CSVColumns, with the
// person_id truth label), records in the order they were registered over
// the span. Memory grows by 24 bytes a record (the order), never by the
// records themselves: each is generated again when its turn comes.
func Write(ctx context.Context, w io.Writer, opts Options) (Summary, error) {
	g, err := newGenerator(opts)
	if err != nil {
		return Summary{}, err
	}
	keys, err := g.plan(ctx)
	if err != nil {
		return Summary{}, err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := csv.NewWriter(bw)
	if err := cw.Write(dataset.CSVColumns); err != nil {
		return Summary{}, fmt.Errorf("synth: write: %w", err)
	}
	b := newUnitBuf()
	rs := newSource()
	row := make([]string, len(dataset.CSVColumns))
	for i, key := range keys {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return Summary{}, err
			}
		}
		if b.unit != int(key.unit) {
			g.buildUnit(int(key.unit), g.shapes[key.unit], b)
		}
		g.render(b, int(key.member), int(key.ord), key.recNo, rs, row)
		if err := cw.Write(row); err != nil {
			return Summary{}, fmt.Errorf("synth: write: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return Summary{}, fmt.Errorf("synth: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return Summary{}, fmt.Errorf("synth: write: %w", err)
	}
	return g.summary(), nil
}

func (g *generator) summary() Summary {
	s := Summary{Persons: g.persons, Records: g.records, Units: len(g.shapes), HomeState: g.geo.states[0].code,
		States: len(g.geo.states), Towns: len(g.geo.towns), ZIPs: len(g.geo.zips), Facilities: len(g.facilityCum)}
	for _, sh := range g.shapes {
		switch sh.kind {
		case kindTwin:
			s.Twins++
		case kindJunior:
			s.Juniors++
		}
	}
	for _, z := range g.geo.zips {
		s.Streets += len(z.streets)
	}
	return s
}

// Rows generates a population and reads it back through dataset.Read, so
// that an evaluation sees exactly what the file would give.
func Rows(ctx context.Context, opts Options) ([]dataset.Row, Summary, error) {
	pr, pw := io.Pipe()
	type result struct {
		s   Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Write(ctx, pw, opts)
		pw.CloseWithError(err)
		done <- result{s, err}
	}()
	f, readErr := dataset.Read(pr, fmt.Sprintf("synth(persons=%d,seed=%d)", opts.Persons, opts.Seed), dataset.CSV)
	errStopped := errors.New("synth: the reader stopped")
	pr.CloseWithError(errStopped)
	res := <-done
	switch {
	case res.err != nil && !errors.Is(res.err, errStopped):
		return nil, Summary{}, res.err
	case readErr != nil:
		return nil, Summary{}, fmt.Errorf("synth: the generated file does not load: %w", readErr)
	case res.err != nil:
		return nil, Summary{}, res.err
	}
	return f.Rows, res.s, nil
}
