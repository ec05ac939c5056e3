package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/raft/pki"
)

// Config is everything `rls agent` can be told, from an HCL file (config.example.hcl
// documents each setting) and flags, flags winning.
type Config struct {
	NodeID            string   `hcl:"node_id,optional"`
	DataDir           string   `hcl:"data_dir,optional"`
	HTTPAddr          string   `hcl:"http_addr,optional"`
	HTTPAdvertiseAddr string   `hcl:"http_advertise_addr,optional"`
	RaftAddr          string   `hcl:"raft_addr,optional"`
	RaftAdvertiseAddr string   `hcl:"raft_advertise_addr,optional"`
	Bootstrap         bool     `hcl:"bootstrap,optional"`
	Join              []string `hcl:"join,optional"`
	AdminTokenFile    string   `hcl:"admin_token_file,optional"`
	LogLevel          string   `hcl:"log_level,optional"`
	LogFormat         string   `hcl:"log_format,optional"`

	TLS  *TLSConfig  `hcl:"tls,block"`
	Raft *RaftConfig `hcl:"raft,block"`
	HTTP *HTTPConfig `hcl:"http,block"`
	// Privacy tunes the policy point: the security fence and rate limits (consent.go).
	Privacy *PrivacyConfig `hcl:"privacy,block"`
	// Console tunes the web console's sessions (/ui/).
	Console *ConsoleConfig `hcl:"console,block"`
	// HL7 is the HL7 v2 interface over MLLP (hl7.go).
	HL7 *HL7Config `hcl:"hl7,block"`
	// Notify tunes the delivery of subscription notifications (subscription.go).
	Notify *NotifyConfig `hcl:"notify,block"`

	// Set by flags only.
	Dev           bool
	DevAdminToken string
}

// TLSConfig is the API's TLS: its certificate, the CA bundle that verifies client
// certificates and peer nodes' API certificates, and whether clients must present one.
type TLSConfig struct {
	CertFile   string `hcl:"cert_file,optional"`
	KeyFile    string `hcl:"key_file,optional"`
	CAFile     string `hcl:"ca_file,optional"`
	ClientAuth string `hcl:"client_auth,optional"`
}

// RaftConfig tunes replication; durations are strings such as "500ms".
type RaftConfig struct {
	PeerDialAddrs      map[string]string `hcl:"peer_dial_addresses,optional"`
	SnapshotThreshold  uint64            `hcl:"snapshot_threshold,optional"`
	SnapshotInterval   string            `hcl:"snapshot_interval,optional"`
	TrailingLogs       uint64            `hcl:"trailing_logs,optional"`
	HeartbeatTimeout   string            `hcl:"heartbeat_timeout,optional"`
	ElectionTimeout    string            `hcl:"election_timeout,optional"`
	LeaderLeaseTimeout string            `hcl:"leader_lease_timeout,optional"`
	ApplyTimeout       string            `hcl:"apply_timeout,optional"`
	// CheckStateNesting: panic when a goroutine holding a transaction of the state opens
	// a second one (a latent stall once the file outgrows its memory map); for test and
	// staging clusters, it costs a stack read per transaction.
	CheckStateNesting bool `hcl:"check_state_nesting,optional"`

	// TLS turns on mutually authenticated TLS between nodes; the files default to the
	// API's (tls block) when empty.
	TLS bool `hcl:"tls,optional"`
	// Insecure accepts plain TCP for Raft on an address other hosts can reach (outside
	// -dev, the agent refuses that otherwise) and logs a warning at every start.
	Insecure    bool   `hcl:"insecure,optional"`
	TLSCertFile string `hcl:"tls_cert_file,optional"`
	TLSKeyFile  string `hcl:"tls_key_file,optional"`
	TLSCAFile   string `hcl:"tls_ca_file,optional"`
}

// HTTPConfig tunes the API server.
type HTTPConfig struct {
	MaxBodyBytes      int64  `hcl:"max_body_bytes,optional"`
	MaxHeaderBytes    int    `hcl:"max_header_bytes,optional"`
	MaxResponseBytes  int64  `hcl:"max_response_bytes,optional"`
	MaxSnapshotBytes  int64  `hcl:"max_snapshot_bytes,optional"`
	ForwardTimeout    string `hcl:"forward_timeout,optional"`
	ReadHeaderTimeout string `hcl:"read_header_timeout,optional"`
	HealthMaxLag      uint64 `hcl:"health_max_lag,optional"`
	// PublicBaseURL is the FHIR base clients reach rls at (behind a proxy or a load
	// balancer), for absolute links; empty: the host each request came to.
	PublicBaseURL string `hcl:"public_base_url,optional"`
}

// ConsoleConfig tunes the sessions of the web console served at /ui/; durations are
// strings such as "30m". A session ends after idle_timeout without a request, and
// session_lifetime after sign-in in any case.
type ConsoleConfig struct {
	IdleTimeout     string `hcl:"idle_timeout,optional"`
	SessionLifetime string `hcl:"session_lifetime,optional"`
}

// Defaults for a node started without settings.
const (
	defaultHTTPAddr = "127.0.0.1:8080"
	defaultRaftAddr = "127.0.0.1:8300"
)

// loadConfigFile reads an HCL config file; diagnostics name file, line and column.
func loadConfigFile(path string) (Config, error) {
	var c Config
	f, diags := hclparse.NewParser().ParseHCLFile(path)
	if diags.HasErrors() {
		return c, fmt.Errorf("read config: %w", diags)
	}
	if diags := gohcl.DecodeBody(f.Body, nil, &c); diags.HasErrors() {
		return c, fmt.Errorf("read config: %w", diags)
	}
	return c, nil
}

// agentFlags are the flags of `rls agent`; each overrides the HCL setting of the same name.
func agentFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "HCL config `FILE` (see config.example.hcl)"},
		&cli.StringFlag{Name: "node-id", Usage: "unique id of this node"},
		&cli.StringFlag{Name: "data-dir", Usage: "where this node keeps its Raft log, snapshots and state"},
		&cli.StringFlag{Name: "http-addr", Usage: "host:port the API listens on (default " + defaultHTTPAddr + ")"},
		&cli.StringFlag{Name: "http-advertise-addr", Usage: "URL other nodes and clients use to reach the API"},
		&cli.StringFlag{Name: "raft-addr", Usage: "host:port Raft listens on (default " + defaultRaftAddr + ")"},
		&cli.StringFlag{Name: "raft-advertise-addr", Usage: "host:port other nodes dial for Raft"},
		&cli.BoolFlag{Name: "bootstrap", Usage: "start a new single-node cluster if this node has no state"},
		&cli.StringSliceFlag{Name: "join", Usage: "`URL` of a cluster node to join (repeatable; tried in order)"},
		&cli.StringFlag{Name: "admin-token-file", Usage: "file holding the admin token: the token a bootstrapped cluster starts with, and the one used to join"},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Usage: "text or json"},
		&cli.StringFlag{Name: "tls-cert-file", Usage: "serve the API over TLS with this certificate"},
		&cli.StringFlag{Name: "tls-key-file", Usage: "key of -tls-cert-file"},
		&cli.StringFlag{Name: "tls-ca-file", Usage: "CA bundle verifying client certificates and peer nodes' API certificates"},
		&cli.StringFlag{Name: "tls-client-auth", Usage: "client certificates on the API: none, request or require"},
		&cli.BoolFlag{Name: "raft-tls", Usage: "mutually authenticated TLS between nodes (certificate files default to the API's)"},
		&cli.BoolFlag{Name: "raft-insecure", Usage: "accept plain TCP for Raft on a non-loopback address (raft.insecure; anyone who reaches it can forge log entries)"},
		&cli.StringFlag{Name: "raft-tls-cert-file", Usage: "this node's certificate for Raft (default: -tls-cert-file)"},
		&cli.StringFlag{Name: "raft-tls-key-file", Usage: "key of -raft-tls-cert-file (default: -tls-key-file)"},
		&cli.StringFlag{Name: "raft-tls-ca-file", Usage: "cluster CA that signs every node's certificate (default: -tls-ca-file)"},
		&cli.Uint64Flag{Name: "snapshot-threshold", Usage: "log entries between Raft snapshots"},
		&cli.Uint64Flag{Name: "trailing-logs", Usage: "log entries kept after a snapshot"},
		&cli.StringSliceFlag{Name: "raft-peer-dial", Usage: "`NODE=HOST:PORT`: dial this peer at this address instead of the one it advertises (repeatable)"},
		&cli.StringFlag{Name: "hl7-addr", Usage: "`HOST:PORT` of the HL7 v2 (MLLP) listener (hl7.listen; off unless set)"},
		&cli.BoolFlag{Name: "hl7-trust-network", Usage: "identify MLLP senders without a client certificate by MSH-4 (hl7.trust_network)"},
		&cli.BoolFlag{Name: "dev", Usage: "single node for development: bootstraps itself, data in a temp dir unless -data-dir, prints the admin token"},
		&cli.StringFlag{Name: "dev-admin-token", Usage: "with -dev, use this admin token instead of a random one"},
	}
}

// configFromFlags loads -config (if any) and applies the flags set on the command line.
func configFromFlags(c *cli.Context) (Config, error) {
	var cfg Config
	if path := c.String("config"); path != "" {
		var err error
		if cfg, err = loadConfigFile(path); err != nil {
			return cfg, err
		}
	}
	str := func(name string, dst *string) {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	str("node-id", &cfg.NodeID)
	str("data-dir", &cfg.DataDir)
	str("http-addr", &cfg.HTTPAddr)
	str("http-advertise-addr", &cfg.HTTPAdvertiseAddr)
	str("raft-addr", &cfg.RaftAddr)
	str("raft-advertise-addr", &cfg.RaftAdvertiseAddr)
	str("admin-token-file", &cfg.AdminTokenFile)
	str("log-level", &cfg.LogLevel)
	str("log-format", &cfg.LogFormat)
	if c.IsSet("bootstrap") {
		cfg.Bootstrap = c.Bool("bootstrap")
	}
	if c.IsSet("join") {
		cfg.Join = c.StringSlice("join")
	}
	if cfg.Raft == nil {
		cfg.Raft = &RaftConfig{}
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &HTTPConfig{}
	}
	if cfg.TLS == nil {
		cfg.TLS = &TLSConfig{}
	}
	if cfg.Console == nil {
		cfg.Console = &ConsoleConfig{}
	}
	if cfg.HL7 == nil {
		cfg.HL7 = &HL7Config{}
	}
	str("hl7-addr", &cfg.HL7.Listen)
	if c.IsSet("hl7-trust-network") {
		cfg.HL7.TrustNetwork = c.Bool("hl7-trust-network")
	}
	str("tls-cert-file", &cfg.TLS.CertFile)
	str("tls-key-file", &cfg.TLS.KeyFile)
	str("tls-ca-file", &cfg.TLS.CAFile)
	str("tls-client-auth", &cfg.TLS.ClientAuth)
	if c.IsSet("raft-tls") {
		cfg.Raft.TLS = c.Bool("raft-tls")
	}
	if c.IsSet("raft-insecure") {
		cfg.Raft.Insecure = c.Bool("raft-insecure")
	}
	str("raft-tls-cert-file", &cfg.Raft.TLSCertFile)
	str("raft-tls-key-file", &cfg.Raft.TLSKeyFile)
	str("raft-tls-ca-file", &cfg.Raft.TLSCAFile)
	if c.IsSet("snapshot-threshold") {
		cfg.Raft.SnapshotThreshold = c.Uint64("snapshot-threshold")
	}
	if c.IsSet("trailing-logs") {
		cfg.Raft.TrailingLogs = c.Uint64("trailing-logs")
	}
	for _, kv := range c.StringSlice("raft-peer-dial") {
		id, addr, ok := strings.Cut(kv, "=")
		if !ok || id == "" || addr == "" {
			return cfg, fmt.Errorf("-raft-peer-dial %q must be NODE=HOST:PORT", kv)
		}
		if cfg.Raft.PeerDialAddrs == nil {
			cfg.Raft.PeerDialAddrs = map[string]string{}
		}
		cfg.Raft.PeerDialAddrs[id] = addr
	}
	cfg.Dev = c.Bool("dev")
	cfg.DevAdminToken = c.String("dev-admin-token")
	return cfg, cfg.finish()
}

// finish fills defaults and checks the settings together.
func (c *Config) finish() error {
	if c.Dev {
		if c.NodeID == "" {
			c.NodeID = "dev"
		}
		c.Bootstrap = true
		if len(c.Join) > 0 {
			return errors.New("-dev starts a cluster of its own; it cannot -join another")
		}
		if c.DataDir == "" {
			dir, err := os.MkdirTemp("", "rls-dev-")
			if err != nil {
				return fmt.Errorf("create dev data dir: %w", err)
			}
			c.DataDir = dir
		}
	} else if c.DevAdminToken != "" {
		return errors.New("-dev-admin-token needs -dev")
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = defaultHTTPAddr
	}
	if b := c.HTTP.PublicBaseURL; b != "" {
		if u, err := url.Parse(b); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("http.public_base_url %q must be an absolute http(s) URL such as https://rls.example.org/fhir", b)
		}
	}
	if c.RaftAddr == "" {
		c.RaftAddr = defaultRaftAddr
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node_id is required (-node-id)"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required (-data-dir)"))
	}
	if c.Bootstrap && len(c.Join) > 0 {
		errs = append(errs, errors.New("bootstrap and join exclude each other: a node either starts a cluster or joins one"))
	}
	errs = append(errs, c.finishTLS()...)
	if c.HL7 == nil {
		c.HL7 = &HL7Config{}
	}
	errs = append(errs, c.finishHL7()...)
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log_format %q must be text or json", c.LogFormat))
	}
	for _, d := range []struct{ name, value string }{
		{"raft.snapshot_interval", c.Raft.SnapshotInterval}, {"raft.heartbeat_timeout", c.Raft.HeartbeatTimeout},
		{"raft.election_timeout", c.Raft.ElectionTimeout}, {"raft.leader_lease_timeout", c.Raft.LeaderLeaseTimeout},
		{"raft.apply_timeout", c.Raft.ApplyTimeout}, {"http.forward_timeout", c.HTTP.ForwardTimeout},
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout},
		{"console.idle_timeout", c.Console.IdleTimeout}, {"console.session_lifetime", c.Console.SessionLifetime},
	} {
		if _, err := duration(d.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
		}
	}
	if c.Privacy == nil {
		c.Privacy = &PrivacyConfig{}
	}
	if err := c.Privacy.check(c.Raft.HeartbeatTimeout); err != nil {
		errs = append(errs, err)
	}
	if c.Notify == nil {
		c.Notify = &NotifyConfig{}
	}
	if _, err := c.Notify.options(c.Dev); err != nil {
		errs = append(errs, err)
	}
	if err := c.deriveAdvertise(); err != nil {
		errs = append(errs, err)
	}
	if err := c.checkRaftTransport(); err != nil {
		errs = append(errs, err)
	}
	if c.HTTP.MaxHeaderBytes < 0 || c.HTTP.MaxResponseBytes < 0 || c.HTTP.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("http.max_body_bytes, max_header_bytes and max_response_bytes must not be negative"))
	}
	if c.DataDir != "" {
		abs, err := filepath.Abs(c.DataDir)
		if err == nil {
			c.DataDir = abs
		}
	}
	return errors.Join(errs...)
}

// finishTLS checks the TLS settings and lets Raft TLS default to the API's files.
func (c *Config) finishTLS() []error {
	var errs []error
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls cert_file and key_file go together"))
	}
	mode, err := pki.ParseClientAuth(c.TLS.ClientAuth)
	if err != nil {
		errs = append(errs, fmt.Errorf("tls.%w", err))
	}
	c.TLS.ClientAuth = string(mode)
	if mode != pki.ClientAuthNone && (c.TLS.CertFile == "" || c.TLS.CAFile == "") {
		errs = append(errs, fmt.Errorf("tls.client_auth %q needs tls.cert_file (the API must serve TLS) and tls.ca_file (to verify client certificates)", mode))
	}
	if !c.Raft.TLS {
		if c.Raft.TLSCertFile != "" || c.Raft.TLSKeyFile != "" || c.Raft.TLSCAFile != "" {
			errs = append(errs, errors.New("raft.tls_cert_file, tls_key_file and tls_ca_file are set but raft.tls is off (-raft-tls)"))
		}
		return errs
	}
	if c.Raft.TLSCertFile == "" && c.Raft.TLSKeyFile == "" {
		c.Raft.TLSCertFile, c.Raft.TLSKeyFile = c.TLS.CertFile, c.TLS.KeyFile
	}
	if c.Raft.TLSCAFile == "" {
		c.Raft.TLSCAFile = c.TLS.CAFile
	}
	if c.Raft.TLSCertFile == "" || c.Raft.TLSKeyFile == "" || c.Raft.TLSCAFile == "" {
		errs = append(errs, errors.New("raft.tls needs a node certificate, its key and the cluster CA: set raft.tls_cert_file, tls_key_file and tls_ca_file, or the tls block's cert_file, key_file and ca_file"))
	}
	return errs
}

// checkRaftTransport refuses, outside -dev, Raft on plain TCP at an address other hosts can
// reach unless raft.insecure says so: anyone who can open a connection to it could append
// forged entries (a new admin) to a follower's log.
func (c *Config) checkRaftTransport() error {
	if c.Raft.TLS && c.Raft.Insecure {
		return errors.New("raft.tls and raft.insecure exclude each other: -raft-tls encrypts and authenticates Raft, -raft-insecure accepts plain TCP")
	}
	if c.Dev || c.Raft.TLS || c.Raft.Insecure {
		return nil
	}
	for _, a := range []struct{ name, addr string }{{"raft_addr", c.RaftAddr}, {"raft_advertise_addr", c.RaftAdvertiseAddr}} {
		if a.addr == "" || loopback(a.addr) {
			continue
		}
		return fmt.Errorf("%s %s is not a loopback address and Raft would run over plain TCP, where anyone who can reach it can forge log entries: turn on raft.tls (-raft-tls) with node certificates (rls tls init), or set raft.insecure = true (-raft-insecure) to accept plain TCP on a network you trust", a.name, a.addr)
	}
	return nil
}

// RaftInsecure reports a node that runs Raft over plain TCP on an address other hosts can
// reach (raft.insecure): the agent warns at every start.
func (c *Config) RaftInsecure() bool {
	return !c.Dev && !c.Raft.TLS && (!loopback(c.RaftAddr) || !loopback(c.RaftAdvertiseAddr))
}

// loopback reports whether host:port names this machine only (127.0.0.0/8, ::1, localhost).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// deriveAdvertise fills the advertised addresses from the listen addresses, which works
// unless a node listens on all interfaces.
func (c *Config) deriveAdvertise() error {
	if c.RaftAdvertiseAddr == "" {
		host, _, err := net.SplitHostPort(c.RaftAddr)
		if err != nil {
			return fmt.Errorf("raft_addr %q must be host:port", c.RaftAddr)
		}
		if unspecified(host) {
			return fmt.Errorf("raft_addr %q listens on every interface: set raft_advertise_addr to the address other nodes should dial", c.RaftAddr)
		}
		c.RaftAdvertiseAddr = c.RaftAddr
	}
	if c.HTTPAdvertiseAddr == "" {
		host, _, err := net.SplitHostPort(c.HTTPAddr)
		if err != nil {
			return fmt.Errorf("http_addr %q must be host:port", c.HTTPAddr)
		}
		if unspecified(host) {
			return fmt.Errorf("http_addr %q listens on every interface: set http_advertise_addr to the URL other nodes should use", c.HTTPAddr)
		}
		scheme := "http"
		if c.TLS.CertFile != "" {
			scheme = "https"
		}
		c.HTTPAdvertiseAddr = scheme + "://" + c.HTTPAddr
	}
	c.HTTPAdvertiseAddr = strings.TrimRight(c.HTTPAdvertiseAddr, "/")
	return nil
}

func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

func duration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 500ms or 2m", s)
	}
	return d, nil
}

// mustDuration is for values finish() has already checked.
func mustDuration(s string) time.Duration {
	d, _ := duration(s)
	return d
}
