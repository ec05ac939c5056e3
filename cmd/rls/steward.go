package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
)

func reasonFlag() cli.Flag {
	return &cli.StringFlag{Name: "reason", Usage: "why (kept in the person's history)"}
}

// stewardCommands are the data steward's actions under `rls patient`.
func stewardCommands() []*cli.Command {
	action := func(name, usage, args string, nargs int, build func(c *cli.Context) (string, locator.StewardRequest)) *cli.Command {
		return &cli.Command{
			Name:      name,
			Usage:     usage,
			ArgsUsage: args,
			Flags:     append(clientFlags(), reasonFlag()),
			Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
				if c.NArg() != nargs {
					return fmt.Errorf("%s needs %s (flags go before them)", c.Command.FullName(), args)
				}
				path, req := build(c)
				req.Reason = c.String("reason")
				return stewardAction(c, cl, ctx, path, req)
			}),
		}
	}
	return []*cli.Command{
		action("link", "put a record on a person (kept whatever later matching decides)", "RECORD EUID", 2, func(c *cli.Context) (string, locator.StewardRequest) {
			return "/v1/steward/link", locator.StewardRequest{Record: c.Args().Get(0), EUID: c.Args().Get(1)}
		}),
		action("unlink", "take a record off its person into a new one (never linked back automatically)", "RECORD", 1, func(c *cli.Context) (string, locator.StewardRequest) {
			return "/v1/steward/unlink", locator.StewardRequest{Record: c.Args().Get(0)}
		}),
		action("merge", "move every record of one person to another", "EUID_FROM EUID_INTO", 2, func(c *cli.Context) (string, locator.StewardRequest) {
			return "/v1/steward/merge", locator.StewardRequest{From: c.Args().Get(0), Into: c.Args().Get(1)}
		}),
		action("unmerge", "undo the last merge of a person (its records come back to it)", "EUID", 1, func(c *cli.Context) (string, locator.StewardRequest) {
			return "/v1/steward/unmerge", locator.StewardRequest{EUID: c.Args().Get(0)}
		}),
		{
			Name:      "history",
			Usage:     "every automatic decision and steward action that touched a person",
			ArgsUsage: "EUID",
			Flags:     clientFlags(),
			Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
				euid, err := oneArg(c, "EUID")
				if err != nil {
					return err
				}
				var events []struct {
					Seq     uint64   `json:"seq"`
					Time    string   `json:"time"`
					Action  string   `json:"action"`
					Record  string   `json:"record"`
					Records []string `json:"records"`
					Other   string   `json:"other"`
					Outcome string   `json:"outcome"`
					Score   float64  `json:"score"`
					Actor   string   `json:"actor"`
					Reason  string   `json:"reason"`
				}
				if err := cl.getJSON(ctx, "/v1/persons/"+url.PathEscape(euid)+"/history", &events); err != nil {
					return fmt.Errorf("history of %s: %w", euid, err)
				}
				return cl.render(c.App.Writer, events, func() error {
					var rows [][]string
					for _, e := range events {
						rec := e.Record
						if len(e.Records) > 0 {
							rec = strings.Join(e.Records, ", ")
						}
						detail := e.Outcome
						if e.Score != 0 {
							detail += fmt.Sprintf(" %.1f", e.Score)
						}
						rows = append(rows, []string{e.Time, e.Action, rec, e.Other, strings.TrimSpace(detail), e.Actor, e.Reason})
					}
					return printTable(c.App.Writer, []string{"TIME", "ACTION", "RECORD", "OTHER PERSON", "DECISION", "ACTOR", "REASON"}, rows)
				})
			}),
		},
	}
}

func stewardAction(c *cli.Context, cl *client, ctx context.Context, path string, req locator.StewardRequest) error {
	data, _, err := cl.do(ctx, http.MethodPost, path, req, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Command.Name, err)
	}
	var res locator.StewardResult
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", c.Command.Name, err)
	}
	return cl.render(c.App.Writer, res, func() error {
		from := ""
		if res.From != "" {
			from = " from " + res.From
		}
		_, err := fmt.Fprintf(c.App.Writer, "%s: %s now on %s%s\n", c.Command.Name, strings.Join(res.Records, ", "), res.EUID, from)
		return err
	})
}

func reviewCommand() *cli.Command {
	return &cli.Command{
		Name:  "review",
		Usage: "the data steward's queue of uncertain matches",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list review items",
				Flags: append(clientFlags(), &cli.StringFlag{Name: "status", Value: "open", Usage: "open, resolved or all"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					var items []struct {
						Seq  uint64 `json:"seq"`
						Item struct {
							Record     string  `json:"record"`
							EUID       string  `json:"euid"`
							Reason     string  `json:"reason"`
							Score      float64 `json:"score"`
							Candidates []struct {
								EUID string `json:"euid"`
							} `json:"candidates"`
						} `json:"item"`
						Resolution *struct {
							Decision string `json:"decision"`
							Actor    string `json:"actor"`
						} `json:"resolution"`
					}
					if err := cl.getJSON(ctx, "/v1/review?status="+url.QueryEscape(c.String("status")), &items); err != nil {
						return fmt.Errorf("review list: %w", err)
					}
					return cl.render(c.App.Writer, items, func() error {
						var rows [][]string
						for _, it := range items {
							var cands []string
							for _, cd := range it.Item.Candidates {
								cands = append(cands, cd.EUID)
							}
							res := "open"
							if it.Resolution != nil {
								res = it.Resolution.Decision + " by " + it.Resolution.Actor
							}
							rows = append(rows, []string{strconv.FormatUint(it.Seq, 10), it.Item.Record, it.Item.EUID, it.Item.Reason,
								fmt.Sprintf("%.1f", it.Item.Score), strings.Join(cands, ", "), res})
						}
						return printTable(c.App.Writer, []string{"ID", "RECORD", "PERSON", "REASON", "SCORE", "CANDIDATES", "STATUS"}, rows)
					})
				}),
			},
			{
				Name:      "show",
				Usage:     "show a review item with each candidate's field-by-field explanation",
				ArgsUsage: "ID",
				Flags:     clientFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					data, _, err := cl.do(ctx, http.MethodGet, "/v1/review/"+url.PathEscape(id), nil, nil)
					if err != nil {
						return fmt.Errorf("review show %s: %w", id, err)
					}
					var item struct {
						Item struct {
							Record string `json:"record"`
							Reason string `json:"reason"`
						} `json:"item"`
						CurrentEUID string `json:"current_euid"`
						Candidates  []struct {
							EUID        string  `json:"euid"`
							Score       float64 `json:"score"`
							Record      string  `json:"record"`
							Explanation *struct {
								Fields []struct {
									Field, Level, A, B string
									Weight             float64
								} `json:"fields"`
								Household string `json:"household"`
							} `json:"explanation"`
						} `json:"explained_candidates"`
					}
					if err := json.Unmarshal(data, &item); err != nil {
						return fmt.Errorf("review show %s: unreadable answer: %w", id, err)
					}
					return cl.render(c.App.Writer, json.RawMessage(data), func() error {
						fmt.Fprintf(c.App.Writer, "Review %s: record %s (now on %s), %s\n", id, item.Item.Record, item.CurrentEUID, item.Item.Reason)
						for _, cd := range item.Candidates {
							fmt.Fprintf(c.App.Writer, "\ncandidate %s via %s, score %.2f\n", cd.EUID, cd.Record, cd.Score)
							if cd.Explanation == nil {
								continue
							}
							var rows [][]string
							for _, f := range cd.Explanation.Fields {
								rows = append(rows, []string{f.Field, f.A, f.B, f.Level, fmt.Sprintf("%+.2f", f.Weight)})
							}
							if err := printTable(c.App.Writer, []string{"FIELD", "RECORD", "CANDIDATE", "LEVEL", "WEIGHT"}, rows); err != nil {
								return err
							}
						}
						return nil
					})
				}),
			},
			{
				Name:      "resolve",
				Usage:     "settle a review item: link it to a candidate, or keep it separate for good",
				ArgsUsage: "ID",
				Flags: append(clientFlags(), reasonFlag(),
					&cli.StringFlag{Name: "decision", Required: true, Usage: "link or separate"},
					&cli.StringFlag{Name: "euid", Usage: "with -decision link: the person (default: the best candidate)"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					return stewardAction(c, cl, ctx, "/v1/review/"+url.PathEscape(id)+"/resolve",
						locator.StewardRequest{Decision: c.String("decision"), EUID: c.String("euid"), Reason: c.String("reason")})
				}),
			},
		},
	}
}
