package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestExampleConfigDocumentsEverySetting parses config.example.hcl and checks that every
// setting the agent understands appears in it with a comment above it.
func TestExampleConfigDocumentsEverySetting(t *testing.T) {
	path := filepath.Join("..", "..", "config.example.hcl")
	cfg, err := loadConfigFile(path)
	if err != nil {
		t.Fatalf("example config does not parse: %v", err)
	}
	if cfg.NodeID != "n1" || cfg.Raft == nil || cfg.Raft.SnapshotThreshold != 8192 || cfg.HTTP == nil || cfg.HTTP.MaxBodyBytes != 1<<20 || cfg.TLS == nil {
		t.Fatalf("example config decoded to %+v", cfg)
	}
	text, _ := os.ReadFile(path)
	lines := strings.Split(string(text), "\n")
	var check func(typ reflect.Type)
	check = func(typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := f.Tag.Get("hcl")
			if tag == "" || tag == "-" {
				continue
			}
			name := strings.Split(tag, ",")[0]
			documented := false
			for j, l := range lines {
				trimmed := strings.TrimSpace(l)
				if strings.HasPrefix(trimmed, name+" ") || strings.HasPrefix(trimmed, name+"=") {
					// A comment on one of the lines above (blocks of related settings share one).
					for k := j - 1; k >= 0 && k >= j-4; k-- {
						if strings.HasPrefix(strings.TrimSpace(lines[k]), "#") {
							documented = true
						}
					}
				}
			}
			if !documented {
				t.Errorf("setting %q is not documented in config.example.hcl", name)
			}
			if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
				check(f.Type.Elem())
			}
		}
	}
	check(reflect.TypeOf(Config{}))
}

func parseAgentFlags(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var cfg Config
	var cfgErr error
	app := &cli.App{Commands: []*cli.Command{{Name: "agent", Flags: agentFlags(), Action: func(c *cli.Context) error {
		cfg, cfgErr = configFromFlags(c)
		return nil
	}}}, Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{}}
	if err := app.Run(append([]string{"rls", "agent"}, args...)); err != nil {
		return cfg, err
	}
	return cfg, cfgErr
}

func TestFlagsOverrideTheFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "n.hcl")
	os.WriteFile(file, []byte(`
node_id = "from-file"
data_dir = "`+dir+`"
raft_addr = "127.0.0.1:9001"
raft { trailing_logs = 5 }
`), 0o600)
	cfg, err := parseAgentFlags(t, "-config", file, "-node-id", "from-flag", "-trailing-logs", "7")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != "from-flag" || cfg.RaftAddr != "127.0.0.1:9001" || cfg.Raft.TrailingLogs != 7 {
		t.Fatalf("got %+v / %+v", cfg, cfg.Raft)
	}
	if cfg.HTTPAdvertiseAddr != "http://127.0.0.1:8080" || cfg.RaftAdvertiseAddr != "127.0.0.1:9001" {
		t.Fatalf("advertised addresses %q %q", cfg.HTTPAdvertiseAddr, cfg.RaftAdvertiseAddr)
	}
}

func TestBadConfigIsRefusedWithReasons(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		file  string
		args  []string
		wants string
	}{
		{"hcl syntax", `node_id = `, nil, "n.hcl:1"},
		{"unknown setting", `colour = "blue"`, nil, "Unsupported argument"},
		{"missing node id", ``, []string{"-data-dir", dir}, "node_id is required"},
		{"bootstrap and join", ``, []string{"-node-id", "a", "-data-dir", dir, "-bootstrap", "-join", "http://x"}, "exclude each other"},
		{"bad duration", `raft { heartbeat_timeout = "soon" }`, []string{"-node-id", "a", "-data-dir", dir}, "raft.heartbeat_timeout"},
		{"all interfaces", ``, []string{"-node-id", "a", "-data-dir", dir, "-raft-addr", "0.0.0.0:7000"}, "raft_advertise_addr"},
		{"bad log level", ``, []string{"-node-id", "a", "-data-dir", dir, "-log-level", "loud"}, "log_level"},
		{"bad console timeout", `console { idle_timeout = "a while" }`, []string{"-node-id", "a", "-data-dir", dir}, "console.idle_timeout"},
		{"relative public base", `http { public_base_url = "/fhir" }`, []string{"-node-id", "a", "-data-dir", dir}, "http.public_base_url"},
		{"hl7 without TLS or trust", ``, []string{"-node-id", "a", "-data-dir", dir, "-hl7-addr", "127.0.0.1:2575"}, "hl7.trust_network"},
		{"hl7 TLS without a certificate", `hl7 { tls = true }`, []string{"-node-id", "a", "-data-dir", dir, "-hl7-addr", "127.0.0.1:2575"}, "hl7.tls needs the node certificate"},
		{"hl7 bad purpose", `hl7 { purpose_of_use = "GOSSIP" }`, []string{"-node-id", "a", "-data-dir", dir}, "hl7.purpose_of_use"},
		{"hl7 bad address", ``, []string{"-node-id", "a", "-data-dir", dir, "-hl7-addr", "2575", "-hl7-trust-network"}, "hl7.listen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "n.hcl")
			os.WriteFile(file, []byte(tc.file), 0o600)
			_, err := parseAgentFlags(t, append([]string{"-config", file}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.wants)
			}
		})
	}
}

func TestDevModeDefaults(t *testing.T) {
	cfg, err := parseAgentFlags(t, "-dev", "-data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != "dev" || !cfg.Bootstrap || cfg.HTTPAddr != "127.0.0.1:8080" {
		t.Fatalf("dev config %+v", cfg)
	}
	if cfg.HL7.Listen != "" {
		t.Fatalf("dev opens an MLLP listener unasked: %+v", cfg.HL7)
	}
	// -dev with -hl7-addr on loopback: senders named by MSH-4.
	cfg, err = parseAgentFlags(t, "-dev", "-data-dir", t.TempDir(), "-hl7-addr", "127.0.0.1:2575")
	if err != nil || !cfg.HL7.TrustNetwork || *cfg.HL7.TLS {
		t.Fatalf("dev with -hl7-addr: %v %+v", err, cfg.HL7)
	}
}

// TestCLIFailsWithOneLineReason checks the exit code and message of a client command that
// cannot reach a node, and of a usage mistake.
func TestCLIFailsWithOneLineReason(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"rls", "participant", "show", "-addr", "http://127.0.0.1:1", "-timeout", "2s", "p1"}, &out, &errOut)
	if code == 0 || !strings.HasPrefix(errOut.String(), "rls: show participant p1: ") || strings.Count(errOut.String(), "\n") != 1 {
		t.Fatalf("unreachable node: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	code = run([]string{"rls", "cluster", "remove"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "needs exactly one NODE") {
		t.Fatalf("missing argument: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	code = run([]string{"rls", "cluster", "status", "-output", "yaml"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "table or json") {
		t.Fatalf("bad output: exit %d, stderr %q", code, errOut.String())
	}
}

func TestRaftOnPlainTCPNeedsToBeSaid(t *testing.T) {
	dir := t.TempDir()
	base := []string{"-node-id", "a", "-data-dir", dir}
	for _, args := range [][]string{
		{"-raft-addr", "0.0.0.0:7000", "-raft-advertise-addr", "10.0.0.5:7000"},
		{"-raft-addr", "10.0.0.5:7000"},
		{"-raft-addr", "127.0.0.1:7000", "-raft-advertise-addr", "rls-1.hie.example:7000"},
	} {
		_, err := parseAgentFlags(t, append(base, args...)...)
		if err == nil || !strings.Contains(err.Error(), "raft.insecure") || !strings.Contains(err.Error(), "raft.tls") {
			t.Errorf("%v: err = %v, want a refusal naming raft.tls and raft.insecure", args, err)
		}
	}
	cfg, err := parseAgentFlags(t, append(base, "-raft-addr", "0.0.0.0:7000", "-raft-advertise-addr", "10.0.0.5:7000", "-raft-insecure")...)
	if err != nil || !cfg.RaftInsecure() {
		t.Errorf("-raft-insecure: err %v, insecure %v", err, cfg.RaftInsecure())
	}
	cfg, err = parseAgentFlags(t, append(base, "-raft-addr", "127.0.0.1:7000")...)
	if err != nil || cfg.RaftInsecure() {
		t.Errorf("loopback: err %v, insecure %v", err, cfg.RaftInsecure())
	}
	if _, err := parseAgentFlags(t, "-dev", "-data-dir", dir, "-raft-addr", "0.0.0.0:7000", "-raft-advertise-addr", "10.0.0.5:7000"); err != nil {
		t.Errorf("-dev: %v", err)
	}
	if _, err := parseAgentFlags(t, append(base, "-raft-tls", "-raft-insecure")...); err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("tls and insecure together: %v", err)
	}
}

func TestAdminTokenFileMustBePrivateAndStrong(t *testing.T) {
	dir := t.TempDir()
	logs := &bytes.Buffer{}
	logger := newLogger(logs, slog.LevelInfo, "text")
	write := func(name, token string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(token+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	strong := "4f1c7d2e9a8b3c6d5e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
	if got, err := readToken(write("ok", strong, 0o600), logger, false); err != nil || got != strong {
		t.Fatalf("private strong token: %q %v", got, err)
	}
	if _, err := readToken(write("world", strong, 0o644), logger, false); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable file accepted: %v", err)
	}
	if _, err := readToken(write("group", strong, 0o640), logger, true); err != nil || !strings.Contains(logs.String(), "group or others") {
		t.Errorf("-dev should warn about a group-readable file: %v %q", err, logs.String())
	}
	for _, weak := range []string{"rls_cluster_admin", "0123456789abcdef", strings.Repeat("ab", 40), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if _, err := readToken(write("weak", weak, 0o600), logger, false); err == nil || !strings.Contains(err.Error(), "too weak") {
			t.Errorf("weak token %q accepted: %v", weak, err)
		}
	}
	for _, good := range []string{"rls_integration_admin_token", "rls_mK3v9Qx7LpT2wR8yZ4nB6cD1fG5hJ0sA2eU7iO9pX3q", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"} {
		if err := checkTokenStrength(good); err != nil {
			t.Errorf("token %q refused: %v", good, err)
		}
	}
}
