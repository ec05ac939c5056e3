package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/pki"
)

func tlsCommand() *cli.Command {
	return &cli.Command{
		Name:  "tls",
		Usage: "certificates for a cluster",
		Subcommands: []*cli.Command{{
			Name:  "init",
			Usage: "make a cluster CA, node certificates and participant client certificates",
			Description: "Writes into -dir: ca.pem and ca-key.pem (the cluster CA), NODE.pem and NODE-key.pem for\n" +
				"every -nodes entry (server and client use; URI SAN urn:rls:node:NODE; DNS/IP SANs from -hosts and\n" +
				"the node id), and participant-ID.pem and participant-ID-key.pem for every -participants entry\n" +
				"(client use; URI SAN urn:rls:participant:ID, CN ID). Keys are written 0600. Refuses to overwrite.\n" +
				"Meant for test clusters and small deployments; keep ca-key.pem offline.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Required: true, Usage: "`DIR` to write the files into (created if missing)"},
				&cli.StringSliceFlag{Name: "nodes", Required: true, Usage: "node ids, comma separated: n1,n2,n3"},
				&cli.StringSliceFlag{Name: "hosts", Value: cli.NewStringSlice("127.0.0.1", "localhost"), Usage: "DNS names and IP addresses every node certificate is valid for"},
				&cli.StringSliceFlag{Name: "participants", Usage: "participant ids to issue client certificates for"},
				&cli.IntFlag{Name: "days", Value: 365, Usage: "validity of every certificate (the CA's too)"},
			},
			Action: runTLSInit,
		}},
	}
}

func runTLSInit(c *cli.Context) error {
	dir := c.String("dir")
	days := c.Int("days")
	if days <= 0 {
		return fmt.Errorf("-days %d must be positive", days)
	}
	nodes, participants := splitList(c.StringSlice("nodes")), splitList(c.StringSlice("participants"))
	if len(nodes) == 0 {
		return errors.New("-nodes names no node")
	}
	for _, id := range nodes {
		if err := model.ValidateID("node id", id); err != nil {
			return err
		}
	}
	for _, id := range participants {
		if err := model.ValidateID("participant id", id); err != nil {
			return err
		}
	}

	// Collect every file first, so that a refusal to overwrite leaves nothing half-written.
	type file struct {
		name string
		data []byte
		mode os.FileMode
	}
	var files []file
	add := func(base string, cert, key []byte) {
		files = append(files, file{base + ".pem", cert, 0o644}, file{base + "-key.pem", key, 0o600})
	}
	// A minute of slack absorbs small clock differences between the nodes.
	notBefore := time.Now().Add(-time.Minute).UTC()
	notAfter := notBefore.Add(time.Duration(days) * 24 * time.Hour)
	ca, err := pki.NewCA("rls cluster CA", notBefore, notAfter)
	if err != nil {
		return err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	add("ca", ca.CertPEM(), caKey)
	hosts := splitList(c.StringSlice("hosts"))
	for _, id := range nodes {
		is, err := ca.IssueNode(id, hosts, notBefore, notAfter)
		if err != nil {
			return err
		}
		add(id, is.CertPEM, is.KeyPEM)
	}
	for _, id := range participants {
		is, err := ca.IssueParticipant(id, notBefore, notAfter)
		if err != nil {
			return err
		}
		add("participant-"+id, is.CertPEM, is.KeyPEM)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f.name)); err == nil {
			return fmt.Errorf("%s already exists: refusing to overwrite certificates or keys", filepath.Join(dir, f.name))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", f.name, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		// O_EXCL: a file that appeared since the check above is not overwritten either.
		out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		_, werr := out.Write(f.data)
		if cerr := out.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("write %s: %w", path, werr)
		}
	}
	fmt.Fprintf(c.App.Writer, "wrote the cluster CA, %d node and %d participant certificates to %s (valid %d days)\n",
		len(nodes), len(participants), dir, days)
	return nil
}

// splitList flattens repeated and comma-separated values.
func splitList(in []string) []string {
	var out []string
	for _, v := range in {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
