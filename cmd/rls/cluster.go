package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "inspect and operate the Raft cluster (admin)",
		Subcommands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "members, their roles, the leader, term, and each node's commit and applied index",
				Flags:  clientFlags(),
				Action: withClient(clusterStatus),
			},
			{
				Name:      "remove",
				Usage:     "remove a node from the cluster",
				ArgsUsage: "NODE",
				Flags:     clientFlags(),
				Action:    withClient(clusterRemove),
			},
			{
				Name:  "transfer-leadership",
				Usage: "hand leadership to another node (the most up-to-date one unless -to is given)",
				Flags: append(clientFlags(), &cli.StringFlag{Name: "to", Usage: "`NODE` to become leader"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					data, _, err := cl.do(ctx, http.MethodPost, "/v1/cluster/transfer-leadership", locator.TransferRequest{To: c.String("to")}, nil)
					if err != nil {
						return fmt.Errorf("transfer leadership: %w", err)
					}
					return printRaw(c.App.Writer, cl, data, func(m map[string]any) string {
						return fmt.Sprintf("leadership moved from %v to %v\n", m["from"], m["to"])
					})
				}),
			},
			{
				Name:   "state-hash",
				Usage:  "digest of the node's replicated state and the index it was taken at",
				Flags:  clientFlags(),
				Action: withClient(clusterStateHash),
			},
			{
				Name:   "failed-entries",
				Usage:  "log entries the cluster could not apply and skipped (index, type, reason)",
				Flags:  clientFlags(),
				Action: withClient(clusterFailedEntries),
			},
			{
				Name:  "snapshot",
				Usage: "save or restore a snapshot of the replicated state",
				Subcommands: []*cli.Command{
					{
						Name:      "save",
						Usage:     "write a consistent snapshot of the leader's state to FILE",
						ArgsUsage: "FILE",
						Flags:     clientFlags(),
						Action:    withClient(snapshotSave),
					},
					{
						Name:      "restore",
						Usage:     "replace the state of the whole cluster with the snapshot in FILE",
						ArgsUsage: "FILE",
						Flags:     clientFlags(),
						Action:    withClient(snapshotRestore),
					},
				},
			},
		},
	}
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("%s needs exactly one %s (flags go before it)", c.Command.FullName(), what)
	}
	return c.Args().First(), nil
}

func clusterStatus(c *cli.Context, cl *client, ctx context.Context) error {
	var st locator.ClusterStatus
	if err := cl.getJSON(ctx, "/v1/cluster/status", &st); err != nil {
		return fmt.Errorf("cluster status: %w", err)
	}
	return cl.render(c.App.Writer, st, func() error {
		leader := st.Leader
		if leader == "" {
			leader = "(none)"
		}
		fmt.Fprintf(c.App.Writer, "Leader: %s   Term: %d   (as seen by %s)\n\n", leader, st.Term, st.Node)
		var rows [][]string
		for _, m := range st.Members {
			contact := "-"
			if m.LastContactMS >= 0 && m.State == "follower" {
				contact = strconv.FormatInt(m.LastContactMS, 10) + "ms"
			}
			state := m.State
			if m.Error != "" {
				state += " (" + m.Error + ")"
			}
			rows = append(rows, []string{m.ID, state, m.Suffrage, m.RaftAddr, m.HTTPAddr,
				strconv.FormatUint(m.Term, 10), strconv.FormatUint(m.CommitIndex, 10), strconv.FormatUint(m.AppliedIndex, 10), contact})
		}
		return printTable(c.App.Writer, []string{"NODE", "STATE", "SUFFRAGE", "RAFT ADDR", "HTTP ADDR", "TERM", "COMMIT", "APPLIED", "LAST CONTACT"}, rows)
	})
}

func clusterRemove(c *cli.Context, cl *client, ctx context.Context) error {
	id, err := oneArg(c, "NODE")
	if err != nil {
		return err
	}
	data, _, err := cl.do(ctx, http.MethodDelete, "/v1/cluster/members/"+id, nil, nil)
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return printRaw(c.App.Writer, cl, data, func(map[string]any) string { return fmt.Sprintf("removed %s\n", id) })
}

func clusterStateHash(c *cli.Context, cl *client, ctx context.Context) error {
	var h locator.StateHash
	if err := cl.getJSON(ctx, "/v1/cluster/state-hash", &h); err != nil {
		return fmt.Errorf("state hash: %w", err)
	}
	return cl.render(c.App.Writer, h, func() error {
		return printFields(c.App.Writer, [][2]string{{"node", h.Node}, {"index", strconv.FormatUint(h.Index, 10)}, {"hash", h.Hash}})
	})
}

func clusterFailedEntries(c *cli.Context, cl *client, ctx context.Context) error {
	var f locator.FailedEntries
	if err := cl.getJSON(ctx, "/v1/cluster/failed-entries", &f); err != nil {
		return fmt.Errorf("failed entries: %w", err)
	}
	return cl.render(c.App.Writer, f, func() error {
		if len(f.Entries) == 0 {
			_, err := fmt.Fprintf(c.App.Writer, "no failed entries on %s (applied index %d)\n", f.Node, f.Index)
			return err
		}
		var rows [][]string
		for _, e := range f.Entries {
			rows = append(rows, []string{strconv.FormatUint(e.Index, 10), strconv.FormatUint(e.Term, 10), e.Type, e.Reason})
		}
		return printTable(c.App.Writer, []string{"INDEX", "TERM", "TYPE", "REASON"}, rows)
	})
}

// snapshotSave streams the snapshot into FILE.part and renames it only when the whole
// snapshot arrived, so FILE is never a truncated snapshot.
func snapshotSave(c *cli.Context, cl *client, ctx context.Context) error {
	path, err := oneArg(c, "FILE")
	if err != nil {
		return err
	}
	resp, err := cl.send(ctx, http.MethodGet, "/v1/cluster/snapshot", nil, nil)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return fmt.Errorf("save snapshot: %s", describeError(resp.StatusCode, body))
	}
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, path)
	}
	if err != nil {
		os.Remove(part)
		return fmt.Errorf("save snapshot to %s: %w", path, err)
	}
	index := resp.Header.Get("X-Rls-Snapshot-Index")
	out := map[string]any{"file": path, "bytes": n, "index": index, "node": resp.Header.Get(locator.HeaderNode)}
	return cl.render(c.App.Writer, out, func() error {
		_, err := fmt.Fprintf(c.App.Writer, "saved snapshot at index %s (%d bytes) from %s to %s\n", index, n, out["node"], path)
		return err
	})
}

func snapshotRestore(c *cli.Context, cl *client, ctx context.Context) error {
	path, err := oneArg(c, "FILE")
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	body := retryablehttp.ReaderFunc(func() (io.Reader, error) { return os.Open(path) })
	resp, err := cl.send(ctx, http.MethodPost, "/v1/cluster/restore", body, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("restore snapshot %s: %s", filepath.Base(path), describeError(resp.StatusCode, data))
	}
	return printRaw(c.App.Writer, cl, data, func(m map[string]any) string {
		return fmt.Sprintf("restored %v bytes from %s; the cluster holds it from index %v\n", m["restored_bytes"], path, m["index"])
	})
}

// printRaw prints a JSON answer as is, or a one-line summary for tables.
func printRaw(w io.Writer, cl *client, data []byte, summary func(map[string]any) string) error {
	if cl.output == "json" {
		_, err := w.Write(data)
		return err
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	_, err := io.WriteString(w, strings.TrimLeft(summary(m), " "))
	return err
}
