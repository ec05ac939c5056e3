// Command rls is the one binary of the record locator service: `rls agent` runs a cluster
// node, and every other subcommand is a client of a node's HTTP API.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit code: 0, or 1 with a one-line reason
// on stderr.
func run(args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:      "rls",
		Usage:     "record locator service for a health information exchange",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		Description: "Client commands reach any node with -addr (RLS_ADDR) and authenticate with -token (RLS_TOKEN)\n" +
			"or a client certificate (-client-cert/-client-key, RLS_CLIENT_CERT/RLS_CLIENT_KEY; -ca-cert, RLS_CACERT);\n" +
			"flags go before positional arguments.",
		Commands: []*cli.Command{
			agentCommand(),
			clusterCommand(),
			participantCommand(),
			mpiCommand(),
			patientCommand(),
			reviewCommand(),
			documentCommand(),
			locateCommand(),
			importCommand(),
			tlsCommand(),
			auditCommand(),
			consentCommand(),
			benchCommand(),
			hl7Command(),
			subscriptionCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	if err := app.Run(args); err != nil {
		fmt.Fprintf(stderr, "rls: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
