package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/raft/state"
)

// auditCommand is `rls audit`: the privacy officer's view of the audit log (admin token).
func auditCommand() *cli.Command {
	filterFlags := func() []cli.Flag {
		return append(clientFlags(),
			&cli.StringFlag{Name: "participant", Usage: "only requests of this participant `ID`"},
			&cli.StringFlag{Name: "since", Usage: "only entries recorded at or after `DATE` (YYYY-MM-DD or RFC 3339)"},
			&cli.StringFlag{Name: "until", Usage: "only entries recorded up to `DATE` (a day includes the whole day)"},
			&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most `N` entries"},
			&cli.IntFlag{Name: "offset", Usage: "skip the first `N` matching entries"},
		)
	}
	return &cli.Command{
		Name:  "audit",
		Usage: "read and check the audit log (admin)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "audit entries in log order, optionally filtered",
				Flags: append(filterFlags(), &cli.StringFlag{Name: "euid", Usage: "only entries that disclosed this person"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					return listAudit(c, cl, ctx, url.Values{"euid": nonEmpty(c.String("euid"))})
				}),
			},
			{
				Name:      "disclosures",
				Usage:     "accounting of disclosures: every request that disclosed or changed a person's records",
				ArgsUsage: "EUID",
				Flags:     filterFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					euid, err := oneArg(c, "EUID")
					if err != nil {
						return err
					}
					return listAudit(c, cl, ctx, url.Values{"euid": {euid}})
				}),
			},
			{
				Name:  "btg",
				Usage: "break-the-glass requests, for review",
				Flags: filterFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					return listAudit(c, cl, ctx, url.Values{"btg": {"true"}})
				}),
			},
			{
				Name:  "verify",
				Usage: "walk the hash chain of the audit log on the node and report the first broken link",
				Flags: clientFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					var v state.AuditVerification
					if err := cl.getJSON(ctx, "/v1/audit/verify?consistency=stale", &v); err != nil {
						return fmt.Errorf("verify audit log: %w", err)
					}
					err := cl.render(c.App.Writer, v, func() error {
						pairs := [][2]string{{"Entries", strconv.FormatUint(v.Entries, 10)}, {"Head", strconv.FormatUint(v.HeadSeq, 10) + " " + v.HeadHash}}
						if v.OK {
							pairs = append(pairs, [2]string{"Chain", "intact"})
						} else {
							pairs = append(pairs, [2]string{"Chain", "BROKEN"}, [2]string{"Broken at", strconv.FormatUint(v.BrokenAt, 10)}, [2]string{"Problem", v.Problem})
						}
						return printFields(c.App.Writer, pairs)
					})
					if err != nil {
						return err
					}
					if !v.OK {
						return fmt.Errorf("audit chain broken at entry %d: %s", v.BrokenAt, v.Problem)
					}
					return nil
				}),
			},
		},
	}
}

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

func listAudit(c *cli.Context, cl *client, ctx context.Context, q url.Values) error {
	for _, name := range []string{"participant", "since", "until"} {
		if v := c.String(name); v != "" {
			q.Set(name, v)
		}
	}
	q.Set("limit", strconv.Itoa(c.Int("limit")))
	q.Set("offset", strconv.Itoa(c.Int("offset")))
	var list locator.AuditList
	if err := cl.getJSON(ctx, "/v1/audit?"+q.Encode(), &list); err != nil {
		return fmt.Errorf("%s: %w", c.Command.FullName(), err)
	}
	return cl.render(c.App.Writer, list, func() error {
		var rows [][]string
		for _, e := range list.Entries {
			who := e.Participant
			if who == "" {
				who = "-"
			}
			if e.OnBehalfOf != "" {
				who += " for " + e.OnBehalfOf
			}
			purpose := e.Purpose
			if e.BreakGlass != "" {
				purpose += " BTG: " + e.BreakGlass
			}
			rows = append(rows, []string{strconv.FormatUint(e.Seq, 10), e.Recorded.UTC().Format(time.RFC3339), e.Node, who,
				strings.TrimSpace(purpose), e.Action, strings.Join(e.EUIDs, ","), strconv.Itoa(e.Status), e.Source})
		}
		if err := printTable(c.App.Writer, []string{"SEQ", "RECORDED", "NODE", "PARTICIPANT", "PURPOSE", "ACTION", "PERSONS", "STATUS", "SOURCE"}, rows); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.App.Writer, "%d of %d matching entries\n", len(list.Entries), list.Total)
		return err
	})
}
