// Package eval measures the master patient index on labelled files: it
// registers every record into a fresh in-memory index exactly as the
// cluster would, then compares the persons formed with the truth labels
// (Run, RunRows), and measures that by index size (Curve, over nested
// subsets of a file or generated populations). It backs `rls mpi eval`.
//
// It owns the evaluation harness only: it must never import HTTP or Raft
// code.
package eval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
)

// ErrNoLabels is returned when a file has no truth label column, so
// precision and recall cannot be measured.
var ErrNoLabels = errors.New("file has no truth labels")

// Options select what Run measures.
type Options struct {
	// Files are read in order and registered in file order.
	Files []string
	// Format is "csv" (default) or "febrl" (see package dataset).
	Format string
	// Train runs EM on all the records first (labels unused) and matches
	// with the learned configuration.
	Train bool
	// Without lists fields emptied in every record before anything else,
	// to measure matching when they are absent (mpi.WithoutFields names).
	Without []string
	// Upper and Lower, when set, replace the thresholds (after training).
	Upper, Lower *float64
	// TrainOptions tune EM (zero value: defaults, fixed seed).
	TrainOptions mpi.TrainOptions
}

// Report is the result of Run. Its first eight fields are the JSON of
// `rls mpi eval`; the others add detail.
type Report struct {
	Records        int     `json:"records"`
	TruePairs      int64   `json:"true_pairs"`
	PredictedPairs int64   `json:"predicted_pairs"`
	Precision      float64 `json:"precision"`
	Recall         float64 `json:"recall"`
	F1             float64 `json:"f1"`
	ReviewItems    int     `json:"review_items"`
	Seconds        float64 `json:"seconds"`

	// CorrectPairs are predicted pairs that are true pairs.
	CorrectPairs int64 `json:"correct_pairs"`
	Persons      int   `json:"persons"`
	// TwinFalseLinks counts linked pairs of different people with the same
	// birth date and family name and different given names;
	// GenerationFalseLinks those with the same given and family name and
	// birth years at least mpi.MinGenerationGap apart.
	TwinFalseLinks       int64 `json:"twin_false_links"`
	GenerationFalseLinks int64 `json:"generation_false_links"`
	// FalsePairs splits the linked pairs of different people by what the
	// two records share: "household" an address line or a phone,
	// "family_name" the family name only (relatives apart, namesakes),
	// "other" neither (strangers).
	FalsePairs FalsePairs `json:"false_pairs"`
	// Outcomes counts registrations by outcome (linked, new, review).
	Outcomes map[mpi.Outcome]int `json:"outcomes"`
	// WindowedBlocks counts registrations that read an oversize block
	// through a window (see mpi.Decision.WindowedBlocks).
	WindowedBlocks int `json:"windowed_blocks"`
	// TrainSeconds is the time EM took (0 without training);
	// RegisterSeconds the time registration took, and RecordsPerSecond
	// its throughput (loading, training and scoring excluded).
	TrainSeconds     float64         `json:"train_seconds"`
	RegisterSeconds  float64         `json:"register_seconds"`
	RecordsPerSecond float64         `json:"records_per_second"`
	Config           ConfigSummary   `json:"config"`
	Train            *mpi.TrainStats `json:"train,omitempty"`
	Without          []string        `json:"without,omitempty"`
}

// ConfigSummary names the configuration the run matched with.
type ConfigSummary struct {
	Version uint64  `json:"version"`
	Source  string  `json:"source"`
	Upper   float64 `json:"upper"`
	Lower   float64 `json:"lower"`
	// PriorMatchShare and MinPriorPersons set the prior by index size.
	PriorMatchShare float64 `json:"prior_match_share"`
	MinPriorPersons int     `json:"min_prior_persons"`
	HouseholdRate   float64 `json:"household_rate"`
}

// Run is the entry point of `rls mpi eval FILE... [--format csv|febrl]
// [--train] [--without ssn,phone] [--upper X --lower Y]`: FILE... is
// Options.Files, --format Options.Format, --train Options.Train, --without
// Options.Without (comma-separated field names, see mpi.WithoutFields), and
// --upper/--lower set Options.Upper/Lower. Print the Report as JSON.
//
// Run loads the files (Load) and measures them (RunRows).
func Run(ctx context.Context, opts Options) (Report, error) {
	start := time.Now()
	rows, err := Load(opts.Files, opts.Format)
	if err != nil {
		return Report{}, err
	}
	rep, err := RunRows(ctx, rows, opts)
	rep.Seconds = round(time.Since(start).Seconds())
	return rep, err
}

// Load reads labelled files in order. Files without labels are refused
// with ErrNoLabels; malformed rows fail with their file and line.
func Load(files []string, format string) ([]dataset.Row, error) {
	if len(files) == 0 {
		return nil, errors.New("eval: no files given")
	}
	f, err := dataset.ParseFormat(format)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	var rows []dataset.Row
	for _, path := range files {
		file, err := dataset.Load(path, f)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		if !file.Labelled {
			return nil, fmt.Errorf("eval %s: %w (csv needs a %s column; febrl needs rec_id rec-N-org/rec-N-dup-K)", path, ErrNoLabels, dataset.LabelColumn)
		}
		rows = append(rows, file.Rows...)
	}
	return rows, nil
}

// RunRows measures matching on labelled rows (Options.Files and Format
// are not used): it empties the --without fields, optionally trains (EM on
// all the rows, labels unused), registers every row in order into a fresh
// mpi.MemStore through mpi.Matcher.Register exactly as the FSM does (new
// persons get EUIDs from a counter, as the Raft leader would stamp them),
// and scores the persons formed against the labels: a predicted pair is
// two records with the same EUID, a true pair two records with the same
// label. A record whose identifier repeats replaces the earlier one, as
// registration does. The rows are not modified.
func RunRows(ctx context.Context, rows []dataset.Row, opts Options) (Report, error) {
	start := time.Now()
	for _, row := range rows {
		if row.Label == "" {
			return Report{}, fmt.Errorf("eval %s line %d: %w", row.File, row.Line, ErrNoLabels)
		}
	}
	if len(opts.Without) > 0 {
		stripped := make([]dataset.Row, len(rows))
		for i, row := range rows {
			var err error
			stripped[i] = row
			if stripped[i].Record, err = mpi.WithoutFields(row.Record, opts.Without); err != nil {
				return Report{}, fmt.Errorf("eval --without: %w", err)
			}
		}
		rows = stripped
	}

	store := mpi.NewMemStore()
	cfg := mpi.DefaultConfig()
	rep := Report{Records: len(rows), Outcomes: map[mpi.Outcome]int{}, Without: opts.Without}
	if opts.Train {
		recs := make([]mpi.Record, len(rows))
		for i := range rows {
			recs[i] = rows[i].Record
		}
		trainStart := time.Now()
		trained, stats, err := mpi.Train(recs, cfg, opts.TrainOptions)
		if err != nil {
			return Report{}, fmt.Errorf("eval: %w", err)
		}
		rep.TrainSeconds = round(time.Since(trainStart).Seconds())
		cfg, rep.Train = trained, &stats
	}
	if opts.Upper != nil {
		cfg.Upper = *opts.Upper
	}
	if opts.Lower != nil {
		cfg.Lower = *opts.Lower
	}
	if err := cfg.Validate(); err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	if err := store.PutConfig(cfg); err != nil {
		return Report{}, err
	}
	rep.Config = ConfigSummary{Version: cfg.Version, Source: cfg.Source, Upper: cfg.Upper, Lower: cfg.Lower, PriorMatchShare: cfg.PriorMatchShare, MinPriorPersons: cfg.MinPriorPersons, HouseholdRate: cfg.HouseholdRate}

	m := mpi.NewMatcher()
	registerStart := time.Now()
	labelOf := map[mpi.RecordKey]string{}
	normOf := map[mpi.RecordKey]mpi.Normalized{}
	for i, row := range rows {
		if i%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return Report{}, err
			}
		}
		d, err := m.Register(store, row.Record, fmt.Sprintf("E%09d", i+1))
		if err != nil {
			return Report{}, fmt.Errorf("eval %s line %d: %w", row.File, row.Line, err)
		}
		rep.Outcomes[d.Outcome]++
		if len(d.WindowedBlocks) > 0 {
			rep.WindowedBlocks++
		}
		labelOf[d.Record] = row.Label
	}
	rep.RegisterSeconds = round(time.Since(registerStart).Seconds())
	if rep.RegisterSeconds > 0 {
		rep.RecordsPerSecond = math.Round(float64(len(rows)) / time.Since(registerStart).Seconds())
	}
	for _, row := range rows { // outside the timed loop; the last of a repeated key wins, as in registration
		normOf[row.Record.Key()] = mpi.Normalize(row.Record)
	}
	rep.ReviewItems = len(store.Reviews())

	// True pairs: records sharing a label.
	byLabel := map[string]int64{}
	for _, l := range labelOf {
		byLabel[l]++
	}
	for _, n := range byLabel {
		rep.TruePairs += n * (n - 1) / 2
	}
	persons := store.Persons()
	rep.Persons = len(persons)
	for _, p := range persons {
		n := int64(len(p.Records))
		rep.PredictedPairs += n * (n - 1) / 2
		counts := map[string]int64{}
		for _, k := range p.Records {
			counts[labelOf[k]]++
		}
		for _, c := range counts {
			rep.CorrectPairs += c * (c - 1) / 2
		}
		for i, a := range p.Records {
			for _, b := range p.Records[i+1:] {
				if labelOf[a] == labelOf[b] {
					continue
				}
				na, nb := normOf[a], normOf[b]
				if isTwinPair(&na, &nb) {
					rep.TwinFalseLinks++
				}
				if isGenerationPair(&na, &nb) {
					rep.GenerationFalseLinks++
				}
				switch {
				case sharesHome(&na, &nb):
					rep.FalsePairs.Household++
				case na.Family != "" && na.Family == nb.Family:
					rep.FalsePairs.FamilyName++
				default:
					rep.FalsePairs.Other++
				}
			}
		}
	}
	rep.Precision = ratio(rep.CorrectPairs, rep.PredictedPairs)
	rep.Recall = ratio(rep.CorrectPairs, rep.TruePairs)
	if rep.Precision+rep.Recall > 0 {
		rep.F1 = 2 * rep.Precision * rep.Recall / (rep.Precision + rep.Recall)
	}
	rep.Precision, rep.Recall, rep.F1 = round(rep.Precision), round(rep.Recall), round(rep.F1)
	rep.Seconds = round(time.Since(start).Seconds())
	return rep, nil
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 1 // nothing to find (or nothing predicted) is perfect
	}
	return float64(a) / float64(b)
}

func round(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// FalsePairs counts wrongly linked pairs by what their records share.
type FalsePairs struct {
	Household  int64 `json:"household"`
	FamilyName int64 `json:"family_name"`
	Other      int64 `json:"other"`
}

// sharesHome: the same normalised address line, or a phone in common.
func sharesHome(a, b *mpi.Normalized) bool {
	for _, x := range a.Addresses {
		for _, y := range b.Addresses {
			if x.Full != "" && x.Full == y.Full {
				return true
			}
		}
	}
	for _, x := range a.Phones {
		for _, y := range b.Phones {
			if x == y {
				return true
			}
		}
	}
	return false
}

// isTwinPair: same birth date and family name, different given names that
// are not nicknames of each other.
func isTwinPair(a, b *mpi.Normalized) bool {
	return a.Birth != "" && a.Birth == b.Birth && a.Family != "" && a.Family == b.Family &&
		a.Given != "" && b.Given != "" && a.Given != b.Given && !mpi.SameGivenName(a.Given, b.Given)
}

// isGenerationPair: same given (or nickname) and family name, birth years
// at least mpi.MinGenerationGap apart.
func isGenerationPair(a, b *mpi.Normalized) bool {
	if a.Family == "" || a.Family != b.Family || a.Given == "" || !mpi.SameGivenName(a.Given, b.Given) || a.BirthYear == 0 || b.BirthYear == 0 {
		return false
	}
	d := a.BirthYear - b.BirthYear
	return d >= mpi.MinGenerationGap || -d >= mpi.MinGenerationGap
}
