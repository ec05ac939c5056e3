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
				Name: "verify",
				Usage: "walk the hash chain of the audit log on the node (-all: on every member, and compare them) " +
					"and report the first broken link",
				Flags: append(clientFlags(), &cli.BoolFlag{Name: "all", Usage: "verify every member's copy and check they hold the same chain"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					if c.Bool("all") {
						return verifyAll(c, cl, ctx)
					}
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

// memberAudit is one member's verification, and the hash of the entry all members hold.
type memberAudit struct {
	Node   string                  `json:"node"`
	Verify state.AuditVerification `json:"verify"`
	// CommonHash is the member's hash of entry CommonSeq, the last entry every reachable
	// member holds: equal on all of them unless one copy was rewritten.
	CommonSeq  uint64 `json:"common_seq"`
	CommonHash string `json:"common_hash"`
	Error      string `json:"error,omitempty"`
}

// verifyAll verifies every member's copy of the audit log and compares them: a node whose
// entries were rewritten with every later hash recomputed still verifies on its own, but
// its hashes no longer match the other nodes'.
func verifyAll(c *cli.Context, cl *client, ctx context.Context) error {
	var status locator.ClusterStatus
	if err := cl.getJSON(ctx, "/v1/cluster/status", &status); err != nil {
		return fmt.Errorf("list members: %w", err)
	}
	at := func(m locator.MemberStatus) *client {
		other := *cl
		other.base = strings.TrimRight(m.HTTPAddr, "/")
		return &other
	}
	out := make([]memberAudit, len(status.Members))
	var common uint64
	for i, m := range status.Members {
		out[i].Node = m.ID
		if err := at(m).getJSON(ctx, "/v1/audit/verify?consistency=stale", &out[i].Verify); err != nil {
			out[i].Error = err.Error()
			continue
		}
		if common == 0 || out[i].Verify.HeadSeq < common {
			common = out[i].Verify.HeadSeq
		}
	}
	for i, m := range status.Members {
		if out[i].Error != "" || common == 0 {
			continue
		}
		var list locator.AuditList
		q := url.Values{"consistency": {"stale"}, "offset": {strconv.FormatUint(common-1, 10)}, "limit": {"1"}}
		if err := at(m).getJSON(ctx, "/v1/audit?"+q.Encode(), &list); err != nil || len(list.Entries) != 1 {
			out[i].Error = fmt.Sprintf("read entry %d: %v", common, err)
			continue
		}
		out[i].CommonSeq, out[i].CommonHash = common, list.Entries[0].Hash
	}
	var problems []string
	for _, a := range out {
		switch {
		case a.Error != "":
			problems = append(problems, a.Node+" not verified: "+a.Error)
		case !a.Verify.OK:
			problems = append(problems, fmt.Sprintf("%s: chain broken at entry %d: %s", a.Node, a.Verify.BrokenAt, a.Verify.Problem))
		case a.CommonHash != out[0].CommonHash:
			problems = append(problems, fmt.Sprintf("%s holds another entry %d than %s", a.Node, common, out[0].Node))
		}
	}
	err := cl.render(c.App.Writer, out, func() error {
		var rows [][]string
		for _, a := range out {
			chain := "intact"
			if a.Error != "" {
				chain = "not verified"
			} else if !a.Verify.OK {
				chain = fmt.Sprintf("BROKEN at %d", a.Verify.BrokenAt)
			}
			rows = append(rows, []string{a.Node, strconv.FormatUint(a.Verify.Entries, 10), chain, strconv.FormatUint(a.CommonSeq, 10), a.CommonHash})
		}
		return printTable(c.App.Writer, []string{"NODE", "ENTRIES", "CHAIN", "COMMON ENTRY", "ITS HASH"}, rows)
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("audit logs do not verify: %s", strings.Join(problems, "; "))
	}
	return nil
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
