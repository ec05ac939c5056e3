package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/mpi/eval"
	"github.com/rls-hie/rls/mpi/synth"
)

func mpiCommand() *cli.Command {
	return &cli.Command{
		Name:  "mpi",
		Usage: "the master patient index: evaluate, train and inspect matching",
		Subcommands: []*cli.Command{
			{
				Name:      "eval",
				Usage:     "measure matching on labelled files (precision, recall, F1), locally, without a cluster",
				ArgsUsage: "FILE...",
				Description: "Loads the files into a fresh in-memory index in file order, exactly as registration would,\n" +
					"and prints JSON: records, true and predicted pairs, precision, recall, F1, review items, seconds.\n" +
					"--sizes 1000,5000,20000 prints the curve by index size instead: each size is a nested subset of\n" +
					"the files' persons (all their records, in file order), or with --synth a population generated\n" +
					"at that size (--seed, --knobs, --noise as for mpi synth; --nested: subsets of the largest), each\n" +
					"in a fresh index, trained on its own records with --train.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or febrl"},
					&cli.BoolFlag{Name: "train", Usage: "estimate the weights with EM on the files first (labels unused)"},
					&cli.StringFlag{Name: "without", Usage: "comma-separated `FIELDS` to empty in every record (e.g. ssn,phone)"},
					&cli.Float64Flag{Name: "upper", Usage: "upper threshold (link at or above)"},
					&cli.Float64Flag{Name: "lower", Usage: "lower threshold (review at or above)"},
					&cli.StringFlag{Name: "sizes", Usage: "comma-separated `PERSONS`: measure a curve by index size"},
					&cli.BoolFlag{Name: "synth", Usage: "with --sizes: generate a population at each size instead of reading files"},
					&cli.BoolFlag{Name: "nested", Usage: "with --synth: generate the largest size once and measure nested subsets of it (one region, coverage growing) instead of a population per size (region growing with it)"},
					&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "with --synth: population `SEED`"},
					&cli.StringFlag{Name: "knobs", Usage: "with --synth: JSON `FILE` of generator knobs over the defaults"},
					&cli.Float64Flag{Name: "noise", Value: 1, Usage: "with --synth: scale every error rate by `F`"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "table or json (default: json for one run, table for --sizes)"},
				},
				Action: mpiEval,
			},
			{
				Name:  "synth",
				Usage: "generate a synthetic labelled population (csv for mpi eval and import), locally",
				Description: "Writes --persons persons of a synthetic state exchange and their records, with the truth label\n" +
					"person_id, in registration order. The same --persons, --seed and --knobs give the same bytes.\n" +
					"--knobs FILE is a JSON object of rates over the defaults (see mpi/synth/README.md).",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "persons", Usage: "generate `N` persons (twins and juniors included)", Required: true},
					&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "population `SEED`"},
					&cli.StringFlag{Name: "out", Usage: "write to `FILE` (created atomically) instead of stdout"},
					&cli.StringFlag{Name: "knobs", Usage: "JSON `FILE` of knobs over the defaults"},
					&cli.Float64Flag{Name: "noise", Value: 1, Usage: "scale every error rate by `F` (0.5 easier, 2 harder)"},
				},
				Action: mpiSynth,
			},
			{
				Name:      "profile",
				Usage:     "describe labelled files: structure, and what changes between a person's records and how often",
				ArgsUsage: "FILE...",
				Description: "Reads labelled files (as mpi eval does) and prints, for the records of persons with two or more\n" +
					"records, the shares of each kind of change against the person's most common value of the field;\n" +
					"this is how mpi synth's default rates were read from a reference population.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or febrl"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"},
				},
				Action: mpiProfile,
			},
			{
				Name:   "train",
				Usage:  "estimate match weights with EM from the cluster's records and replicate them as the new configuration",
				Flags:  clientFlags(),
				Action: withClient(mpiTrain),
			},
			{
				Name:  "rematch",
				Usage: "decide every record's link again under the current match configuration (after training), keeping every steward decision",
				Description: "Sends replicated batches of records, in key order, each decided again as if its participant had\n" +
					"registered it anew; records a steward placed stay where they are and separations hold. With\n" +
					"-dry-run the same batches are applied to a private copy of the leader's state and nothing changes.\n" +
					"Prints how many records kept their person, joined another (a link made), left for a person of their\n" +
					"own (a link broken) or went to review, and every change.",
				Flags: append(clientFlags(),
					&cli.BoolFlag{Name: "dry-run", Usage: "report what would change, change nothing"},
					&cli.IntFlag{Name: "batch", Value: 200, Usage: "records per replicated command"},
				),
				Action: withClient(mpiRematch),
			},
			{
				Name:  "config",
				Usage: "show the replicated match configuration",
				Flags: clientFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					var cfg mpi.Config
					if err := cl.getJSON(ctx, "/v1/mpi/config", &cfg); err != nil {
						return fmt.Errorf("match configuration: %w", err)
					}
					return cl.render(c.App.Writer, cfg, func() error {
						fmt.Fprintf(c.App.Writer, "version %d (%s, model %d): link at posterior log2 odds >= %.2f, review at >= %.2f, prior match share %.2f over at least %d persons\n\n", cfg.Version, cfg.Source, cfg.Model, cfg.Upper, cfg.Lower, cfg.PriorMatchShare, cfg.MinPriorPersons)
						var rows [][]string
						for _, f := range cfg.Fields {
							for _, l := range f.Levels {
								rows = append(rows, []string{f.Field, l.Level, fmt.Sprintf("%.4f", l.M), fmt.Sprintf("%.4f", l.U), fmt.Sprintf("%+.2f", l.Weight)})
							}
						}
						return printTable(c.App.Writer, []string{"FIELD", "LEVEL", "M", "U", "WEIGHT"}, rows)
					})
				}),
			},
			{
				Name:      "explain",
				Usage:     "show, field by field, why two registered records score as they do",
				ArgsUsage: "SYSTEM|VALUE SYSTEM|VALUE",
				Flags:     clientFlags(),
				Action:    withClient(mpiExplain),
			},
		},
	}
}

func mpiEval(c *cli.Context) error {
	output := c.String("output")
	if output != "" && output != "table" && output != "json" {
		return fmt.Errorf("-output %q must be table or json", output)
	}
	if c.Bool("synth") && c.NArg() > 0 {
		return fmt.Errorf("mpi eval --synth generates its populations and takes no FILE (got %q)", c.Args().First())
	}
	if c.Bool("synth") && !c.IsSet("sizes") {
		return fmt.Errorf("mpi eval --synth needs --sizes (e.g. --sizes 1000,10000,100000)")
	}
	if !c.Bool("synth") && c.NArg() == 0 {
		return fmt.Errorf("mpi eval needs at least one FILE (or --synth --sizes)")
	}
	opts := eval.Options{Files: c.Args().Slice(), Format: c.String("format"), Train: c.Bool("train")}
	if w := strings.TrimSpace(c.String("without")); w != "" {
		for _, f := range strings.Split(w, ",") {
			opts.Without = append(opts.Without, strings.TrimSpace(f))
		}
	}
	if c.IsSet("upper") {
		v := c.Float64("upper")
		opts.Upper = &v
	}
	if c.IsSet("lower") {
		v := c.Float64("lower")
		opts.Lower = &v
	}
	if !c.IsSet("sizes") {
		rep, err := eval.Run(c.Context, opts)
		if err != nil {
			return err
		}
		if output == "table" {
			return printCurve(c.App.Writer, []eval.CurvePoint{{TruePersons: -1, Report: rep}})
		}
		return printJSON(c.App.Writer, rep)
	}
	sizes, err := parseSizes(c.String("sizes"))
	if err != nil {
		return err
	}
	var pop eval.Population
	if c.Bool("synth") {
		k, err := synthKnobs(c)
		if err != nil {
			return err
		}
		seed := c.Uint64("seed")
		pop = func(ctx context.Context, persons int) ([]dataset.Row, error) {
			rows, _, err := synth.Rows(ctx, synth.Options{Persons: persons, Seed: seed, Knobs: k})
			return rows, err
		}
		if c.Bool("nested") {
			rows, err := pop(c.Context, slices.Max(sizes))
			if err != nil {
				return err
			}
			pop, _ = eval.Subsets(rows)
		}
	} else {
		if c.Bool("nested") {
			return fmt.Errorf("--nested goes with --synth (subsets of files are always nested)")
		}
		rows, err := eval.Load(opts.Files, opts.Format)
		if err != nil {
			return err
		}
		var total int
		pop, total = eval.Subsets(rows)
		if largest := slices.Max(sizes); largest > total {
			return fmt.Errorf("--sizes %d exceeds the %d persons of the files", largest, total)
		}
	}
	points, err := eval.Curve(c.Context, pop, sizes, opts, func(p eval.CurvePoint) {
		train := ""
		if p.Train != nil {
			train = fmt.Sprintf("train %.1fs, ", p.TrainSeconds)
		}
		fmt.Fprintf(c.App.ErrWriter, "%d persons: %d records, precision %.4f, recall %.4f, F1 %.4f (%sregister %.1fs)\n",
			p.TruePersons, p.Records, p.Precision, p.Recall, p.F1, train, p.RegisterSeconds)
	})
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(c.App.Writer, points)
	}
	return printCurve(c.App.Writer, points)
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(f), "_", ""))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--sizes %q: each size must be a positive number of persons", s)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// printCurve prints one row per size (a single run has no persons count).
func printCurve(w io.Writer, points []eval.CurvePoint) error {
	var rows [][]string
	for _, p := range points {
		persons := "-"
		if p.TruePersons >= 0 {
			persons = strconv.Itoa(p.TruePersons)
		}
		train := "-"
		if p.Train != nil {
			train = strconv.FormatFloat(p.TrainSeconds, 'f', 1, 64)
		}
		rows = append(rows, []string{persons, strconv.Itoa(p.Records), strconv.FormatInt(p.TruePairs, 10),
			fmt.Sprintf("%.4f", p.Precision), fmt.Sprintf("%.4f", p.Recall), fmt.Sprintf("%.4f", p.F1),
			strconv.Itoa(p.ReviewItems), fmt.Sprintf("%d / %d", p.TwinFalseLinks, p.GenerationFalseLinks),
			fmt.Sprintf("%d / %d / %d", p.FalsePairs.Household, p.FalsePairs.FamilyName, p.FalsePairs.Other),
			strconv.Itoa(p.WindowedBlocks), strconv.FormatFloat(p.RecordsPerSecond, 'f', 0, 64), train})
	}
	return printTable(w, []string{"PERSONS", "RECORDS", "TRUE PAIRS", "PRECISION", "RECALL", "F1", "REVIEWS",
		"TWIN / GEN FALSE LINKS", "FALSE PAIRS HOME / NAME / OTHER", "WINDOWED", "RECORDS/S", "TRAIN S"}, rows)
}

// synthKnobs reads --knobs and --noise.
func synthKnobs(c *cli.Context) (synth.Knobs, error) {
	k := synth.DefaultKnobs()
	if path := c.String("knobs"); path != "" {
		var err error
		if k, err = synth.LoadKnobs(path); err != nil {
			return k, err
		}
	}
	if f := c.Float64("noise"); f != 1 {
		if f < 0 || f > 100 {
			return k, fmt.Errorf("--noise %g must be within [0, 100]", f)
		}
		k.ScaleErrors(f)
	}
	return k, nil
}

func mpiSynth(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("mpi synth takes no arguments (got %q); write to a file with --out", c.Args().First())
	}
	k, err := synthKnobs(c)
	if err != nil {
		return err
	}
	opts := synth.Options{Persons: c.Int("persons"), Seed: c.Uint64("seed"), Knobs: k}
	out := c.String("out")
	if out == "" {
		_, err := synth.Write(c.Context, c.App.Writer, opts)
		return err
	}
	if st, err := os.Stat(out); err == nil && !st.Mode().IsRegular() {
		// A device or a pipe is written in place: renaming over it would
		// replace it with a file.
		f, err := os.OpenFile(out, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("mpi synth: %w", err)
		}
		_, err = synth.Write(c.Context, f, opts)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	// Write beside the target and rename, so a failure leaves no half file.
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("mpi synth: %w", err)
	}
	sum, err := synth.Write(c.Context, tmp, opts)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("mpi synth: %w", err)
	}
	_, err = fmt.Fprintf(c.App.Writer, "wrote %s: %d persons, %d records (%d twin pairs, %d juniors), home state %s, %d towns, %d ZIP codes, %d facilities\n",
		out, sum.Persons, sum.Records, sum.Twins, sum.Juniors, sum.HomeState, sum.Towns, sum.ZIPs, sum.Facilities)
	return err
}

func mpiProfile(c *cli.Context) error {
	output := c.String("output")
	if output != "table" && output != "json" {
		return fmt.Errorf("-output %q must be table or json", output)
	}
	rows, err := eval.Load(c.Args().Slice(), c.String("format"))
	if err != nil {
		return err
	}
	p := synth.ProfileRows(rows)
	if output == "json" {
		return printJSON(c.App.Writer, p)
	}
	w := c.App.Writer
	rp := p.RecordsPerPerson
	fmt.Fprintf(w, "%d persons, %d records; records per person 1/2/3/4+: %.1f/%.1f/%.1f/%.1f %%\n", p.Persons, p.Records, 100*rp[0], 100*rp[1], 100*rp[2], 100*rp[3])
	fmt.Fprintf(w, "%d twins (P<N>t), %d juniors (P<N>j), %d facilities, %d ZIP codes, %d cities\n", p.Twins, p.Juniors, p.Facilities, p.ZIPs, p.Cities)
	fmt.Fprintf(w, "most common family name %q: %.2f %% of persons; family names at most 10 others share: %.1f %% of persons\n", p.TopFamily, 100*p.TopFamilyShare, 100*p.RareFamilyShare)
	fmt.Fprintf(w, "persons sharing their address with another household member: %.1f %%\n\n", 100*p.SharedAddress)
	var fields []string
	for f := range p.Changes {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	var rows2 [][]string
	for _, f := range fields {
		kinds := p.Changes[f]
		var ks []string
		for k := range kinds {
			ks = append(ks, k)
		}
		slices.SortFunc(ks, func(a, b string) int {
			if kinds[a] != kinds[b] {
				if kinds[a] > kinds[b] {
					return -1
				}
				return 1
			}
			return strings.Compare(a, b)
		})
		for _, k := range ks {
			rows2 = append(rows2, []string{f, k, fmt.Sprintf("%.4f", kinds[k])})
		}
	}
	return printTable(w, []string{"FIELD", "CHANGE", "SHARE OF RECORDS"}, rows2)
}

func mpiTrain(c *cli.Context, cl *client, ctx context.Context) error {
	data, _, err := cl.do(ctx, http.MethodPost, "/v1/mpi/train", nil, nil)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	var res locator.TrainResult
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("train: unreadable answer: %w", err)
	}
	return cl.render(c.App.Writer, res, func() error {
		fmt.Fprintf(c.App.Writer, "trained on %d records in %.1fs; configuration version %d is replicated (index %d)\n", res.Records, res.Seconds, res.Version, res.Index)
		for _, b := range res.Stats.Bounded {
			fmt.Fprintf(c.App.Writer, "bounded: %s\n", b)
		}
		fmt.Fprintln(c.App.Writer, "weights against the configuration trained from, largest change first:")
		changes := slices.Clone(res.Stats.Changes)
		slices.SortStableFunc(changes, func(a, b mpi.WeightChange) int {
			return cmp.Compare(math.Abs(b.After-b.Before), math.Abs(a.After-a.Before))
		})
		var rows [][]string
		for _, ch := range changes {
			rows = append(rows, []string{ch.Field, ch.Level, fmt.Sprintf("%+.2f", ch.Before), fmt.Sprintf("%+.2f", ch.After),
				fmt.Sprintf("%+.2f", ch.After-ch.Before), fmt.Sprintf("%.4f", ch.M), fmt.Sprintf("%.6f", ch.U)})
		}
		return printTable(c.App.Writer, []string{"FIELD", "LEVEL", "BEFORE", "AFTER", "CHANGE", "M", "U"}, rows)
	})
}

func mpiRematch(c *cli.Context, cl *client, ctx context.Context) error {
	body, err := json.Marshal(locator.RematchRequest{DryRun: c.Bool("dry-run"), Batch: c.Int("batch")})
	if err != nil {
		return err
	}
	data, _, err := cl.do(ctx, http.MethodPost, "/v1/mpi/rematch", body, nil)
	if err != nil {
		return fmt.Errorf("rematch: %w", err)
	}
	var rep locator.RematchReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("rematch: unreadable answer: %w", err)
	}
	return cl.render(c.App.Writer, rep, func() error {
		w := c.App.Writer
		what := "rematched"
		if rep.DryRun {
			what = "dry run: would rematch"
		}
		fmt.Fprintf(w, "%s %d records under configuration version %d in %.1fs\n", what, rep.Records, rep.ConfigVersion, rep.Seconds)
		fmt.Fprintf(w, "unchanged %d, joined another person %d, left for a person of their own %d, kept by a steward %d, gone %d, refused %d\n",
			rep.Unchanged, rep.Linked, rep.SplitOff, rep.Kept, rep.Gone, rep.Refused)
		reasons := slices.Sorted(maps.Keys(rep.Reviews))
		for _, r := range reasons {
			fmt.Fprintf(w, "review items queued (%s): %d\n", r, rep.Reviews[r])
		}
		if len(rep.Changes) == 0 {
			return nil
		}
		var rows [][]string
		for _, ch := range rep.Changes {
			rows = append(rows, []string{ch.Record, ch.From, ch.To, string(ch.Outcome), ch.Review})
		}
		return printTable(w, []string{"RECORD", "FROM", "TO", "OUTCOME", "REVIEW"}, rows)
	})
}

func mpiExplain(c *cli.Context, cl *client, ctx context.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("mpi explain needs two record identifiers SYSTEM|VALUE (flags go before them)")
	}
	q := url.Values{"a": {c.Args().Get(0)}, "b": {c.Args().Get(1)}}
	var ex mpi.Explanation
	if err := cl.getJSON(ctx, "/v1/mpi/explain?"+q.Encode(), &ex); err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	return cl.render(c.App.Writer, ex, func() error {
		fmt.Fprintf(c.App.Writer, "score %.2f (configuration version %d)", ex.Score, ex.ConfigVersion)
		if ex.Household != "" {
			fmt.Fprintf(c.App.Writer, "; household rule %q forbids a link", ex.Household)
		}
		fmt.Fprintln(c.App.Writer)
		var rows [][]string
		for _, f := range ex.Fields {
			rows = append(rows, []string{f.Field, f.A, f.B, f.Level, strconv.FormatFloat(f.Weight, 'f', 2, 64), strconv.FormatFloat(f.Adjustment, 'f', 2, 64)})
		}
		return printTable(c.App.Writer, []string{"FIELD", "A", "B", "LEVEL", "WEIGHT", "TF ADJUSTMENT"}, rows)
	})
}
