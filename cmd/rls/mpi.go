package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/eval"
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
					"and prints JSON: records, true and predicted pairs, precision, recall, F1, review items, seconds.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or febrl"},
					&cli.BoolFlag{Name: "train", Usage: "estimate the weights with EM on the files first (labels unused)"},
					&cli.StringFlag{Name: "without", Usage: "comma-separated `FIELDS` to empty in every record (e.g. ssn,phone)"},
					&cli.Float64Flag{Name: "upper", Usage: "upper threshold (link at or above)"},
					&cli.Float64Flag{Name: "lower", Usage: "lower threshold (review at or above)"},
				},
				Action: mpiEval,
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
	if c.NArg() == 0 {
		return fmt.Errorf("mpi eval needs at least one FILE")
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
	rep, err := eval.Run(c.Context, opts)
	if err != nil {
		return err
	}
	return printJSON(c.App.Writer, rep)
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
