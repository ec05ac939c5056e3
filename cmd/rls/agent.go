package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/locator/console"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/pki"
)

// adminParticipantID is the id of the admin participant a new cluster starts with.
const adminParticipantID = "admin"

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run a cluster node (or a single -dev node)",
		Description: "Starts a node: it bootstraps a new cluster (-bootstrap, -dev), joins one (-join URL), or\n" +
			"resumes from its data dir. Settings come from -config FILE (HCL) and flags, flags winning.",
		Flags:  agentFlags(),
		Action: runAgent,
	}
}

func runAgent(c *cli.Context) error {
	cfg, err := configFromFlags(c)
	if err != nil {
		return err
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := newLogger(c.App.ErrWriter, level, cfg.LogFormat)
	if cfg.Dev && !c.IsSet("data-dir") {
		defer os.RemoveAll(cfg.DataDir)
	}

	// Certificates first: a node that cannot start should leave nothing behind.
	tlsCfg, err := cfg.loadTLS()
	if err != nil {
		return err
	}

	if cfg.RaftInsecure() {
		logger.Warn("Raft runs over plain TCP on an address other hosts can reach (raft.insecure): anyone who can connect to it can forge log entries; turn on raft.tls (-raft-tls)",
			"raft_addr", cfg.RaftAddr, "raft_advertise_addr", cfg.RaftAdvertiseAddr)
	}

	var admin *model.Participant
	var adminToken string
	if cfg.Bootstrap {
		if adminToken, err = bootstrapToken(cfg, logger); err != nil {
			return err
		}
		admin = &model.Participant{ID: adminParticipantID, Name: "HIE administrator", Kind: model.KindHIE,
			Role: model.RoleAdmin, Active: true, TokenHash: locator.TokenHash(adminToken)}
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if faults, ok := majorFaultsCollector(); ok {
		registry.MustRegister(faults)
	}
	node, err := raft.Open(raft.Config{
		NodeID:             cfg.NodeID,
		DataDir:            cfg.DataDir,
		BindAddr:           cfg.RaftAddr,
		AdvertiseAddr:      cfg.RaftAdvertiseAddr,
		HTTPAddr:           cfg.HTTPAdvertiseAddr,
		Bootstrap:          cfg.Bootstrap,
		BootstrapAdmin:     admin,
		SnapshotThreshold:  cfg.Raft.SnapshotThreshold,
		SnapshotInterval:   mustDuration(cfg.Raft.SnapshotInterval),
		TrailingLogs:       cfg.Raft.TrailingLogs,
		HeartbeatTimeout:   mustDuration(cfg.Raft.HeartbeatTimeout),
		ElectionTimeout:    mustDuration(cfg.Raft.ElectionTimeout),
		LeaderLeaseTimeout: mustDuration(cfg.Raft.LeaderLeaseTimeout),
		ApplyTimeout:       mustDuration(cfg.Raft.ApplyTimeout),
		PeerDialAddrs:      cfg.Raft.PeerDialAddrs,
		CheckStateNesting:  cfg.Raft.CheckStateNesting,
		TLS:                tlsCfg.raft,
		Logger:             logger,
		Registerer:         registry,
	})
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	defer func() {
		if err := node.Close(); err != nil {
			logger.Error("close node", "err", err)
		}
	}()

	apiOpts := locator.Options{
		Node:             node,
		Logger:           logger,
		Registry:         registry,
		MaxBodyBytes:     cfg.HTTP.MaxBodyBytes,
		MaxResponseBytes: cfg.HTTP.MaxResponseBytes,
		PublicBaseURL:    cfg.HTTP.PublicBaseURL,
		MaxSnapshotBytes: cfg.HTTP.MaxSnapshotBytes,
		HealthMaxLag:     cfg.HTTP.HealthMaxLag,
		ForwardTimeout:   mustDuration(cfg.HTTP.ForwardTimeout),
		TempDir:          cfg.DataDir,
		Version:          version,
		PeerTLS:          tlsCfg.peer,
		ClusterCA:        tlsCfg.clusterCA,
		// The console's cookie is Secure outside -dev (which serves plain HTTP on loopback).
		Console: console.Options{IdleTimeout: mustDuration(cfg.Console.IdleTimeout), Lifetime: mustDuration(cfg.Console.SessionLifetime),
			InsecureCookie: cfg.Dev},
	}
	cfg.Privacy.options(&apiOpts)
	if apiOpts.Notify, err = cfg.Notify.options(cfg.Dev); err != nil {
		return err
	}
	api := locator.New(apiOpts)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	readHeader := mustDuration(cfg.HTTP.ReadHeaderTimeout)
	if readHeader == 0 {
		readHeader = 10 * time.Second
	}
	maxHeader := cfg.HTTP.MaxHeaderBytes
	if maxHeader == 0 {
		maxHeader = defaultMaxHeaderBytes
	}
	server := &http.Server{
		Handler:           api.Handler(),
		TLSConfig:         tlsCfg.api,
		ReadHeaderTimeout: readHeader,
		// Headers beyond this are refused by net/http (431) before any handler runs.
		MaxHeaderBytes: maxHeader,
		IdleTimeout:    2 * time.Minute,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	stopHL7, err := startHL7(cfg, api, tlsCfg, logger)
	if err != nil {
		return err
	}
	defer stopHL7()
	serveErr := make(chan error, 1)
	go func() {
		if tlsCfg.api != nil {
			serveErr <- server.ServeTLS(ln, "", "") // the certificate is in TLSConfig
		} else {
			serveErr <- server.Serve(ln)
		}
	}()
	logger.Info("rls node started", "node", cfg.NodeID, "http", cfg.HTTPAdvertiseAddr, "raft", cfg.RaftAdvertiseAddr, "data_dir", cfg.DataDir, "version", version,
		"api_tls", tlsCfg.api != nil, "client_auth", cfg.TLS.ClientAuth, "raft_tls", tlsCfg.raft != nil)

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	notifierDone := make(chan struct{})
	notifierCtx, stopNotifier := context.WithCancel(context.Background())
	go func() { defer close(notifierDone); api.RunNotifier(notifierCtx) }()
	defer func() { stopNotifier(); <-notifierDone }()

	if len(cfg.Join) > 0 {
		if node.HasState() {
			logger.Info("node already holds cluster state; not joining again", "join", cfg.Join)
		} else if err := joinCluster(ctx, cfg, tlsCfg.peer, logger); err != nil {
			shutdownHTTP(server, logger)
			return err
		}
	}
	if cfg.Dev {
		printDevBanner(c.App.Writer, cfg, adminToken)
	}

	select {
	case <-ctx.Done():
		logger.Info("shutting down", "node", cfg.NodeID)
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve HTTP: %w", err)
		}
	}
	if node.IsLeader() {
		// Hand leadership over first, so the cluster does not wait out an election timeout.
		if err := node.TransferLeadership(""); err != nil {
			logger.Info("no leadership transfer before shutdown", "reason", err)
		}
	}
	shutdownHTTP(server, logger)
	return nil
}

func shutdownHTTP(server *http.Server, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		logger.Warn("HTTP shutdown", "err", err)
	}
}

// bootstrapToken returns the admin token a new cluster starts with: the -dev token, the
// content of admin_token_file, or (when neither is given) a new token saved to
// DATA_DIR/admin-token so that a restart keeps using it.
func bootstrapToken(cfg Config, logger *slog.Logger) (string, error) {
	if cfg.Dev {
		if cfg.DevAdminToken != "" {
			return cfg.DevAdminToken, nil
		}
		return locator.NewToken()
	}
	if cfg.AdminTokenFile != "" {
		return readToken(cfg.AdminTokenFile, logger, false)
	}
	path := filepath.Join(cfg.DataDir, "admin-token")
	if _, err := os.Stat(path); err == nil {
		return readToken(path, logger, false)
	}
	token, err := locator.NewToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save admin token: %w", err)
	}
	logger.Warn("generated the admin token of the new cluster; keep it safe", "file", path)
	return token, nil
}

// readToken reads the admin token from its file. The file must be readable by its owner
// only, and the token must look drawn at random (see checkTokenStrength): it is the key to
// every patient's data. In -dev both are warnings.
func readToken(path string, logger *slog.Logger, dev bool) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	if mode := info.Mode().Perm(); mode&0o077 != 0 {
		msg := fmt.Sprintf("admin token file %s can be read by its group or others (mode %04o): restrict it with chmod 600 %s", path, mode, path)
		if !dev {
			return "", errors.New(msg)
		}
		logger.Warn(msg)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("admin token file %s is empty", path)
	}
	if err := checkTokenStrength(token); err != nil {
		msg := fmt.Sprintf("admin token in %s is too weak: %v; draw one with openssl rand -hex 32", path, err)
		if !dev {
			return "", errors.New(msg)
		}
		logger.Warn(msg)
	}
	return token, nil
}

// minTokenBits is the least strength accepted for the admin token (rls's own tokens have
// 256 random bits).
const minTokenBits = 128

// checkTokenStrength refuses an admin token that cannot have been drawn at random with
// minTokenBits of entropy: shorter than the alphabet it uses allows (length × bits per
// character of the smallest usual alphabet holding it: hex, base32, base64, printable
// ASCII), one character more than a quarter of it, or a shorter string repeated. It is a
// guard against placeholders and passwords, not a proof of randomness.
func checkTokenStrength(token string) error {
	bits := 0.0
	for _, a := range []struct {
		chars string
		bits  float64
	}{
		{"0123456789abcdefABCDEF", 4},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=", 5},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_", 6},
	} {
		if strings.Trim(token, a.chars) == "" {
			bits = a.bits
			break
		}
	}
	if bits == 0 {
		bits = math.Log2(95)
	}
	if got := float64(len(token)) * bits; got < minTokenBits {
		return fmt.Errorf("%d characters of that alphabet hold at most %.0f bits, fewer than %d", len(token), got, minTokenBits)
	}
	counts := map[rune]int{}
	for _, r := range token {
		if counts[r]++; counts[r]*4 > len(token) {
			return fmt.Errorf("the character %q makes up more than a quarter of it", r)
		}
	}
	for period := 1; period <= len(token)/2; period++ {
		if len(token)%period == 0 && strings.Repeat(token[:period], len(token)/period) == token {
			return errors.New("it repeats a shorter string")
		}
	}
	return nil
}

// defaultMaxHeaderBytes bounds request headers (net/http's own default is 1 MiB).
const defaultMaxHeaderBytes = 64 << 10

// joinCluster asks a node of the cluster (which forwards to the leader) to add this node as
// a voter, retrying while the cluster elects a leader or the target starts.
func joinCluster(ctx context.Context, cfg Config, peerTLS *tls.Config, logger *slog.Logger) error {
	token := os.Getenv("RLS_TOKEN")
	if cfg.AdminTokenFile != "" {
		var err error
		if token, err = readToken(cfg.AdminTokenFile, logger, cfg.Dev); err != nil {
			return err
		}
	}
	if token == "" {
		return errors.New("joining needs the admin token: set admin_token_file (-admin-token-file) or RLS_TOKEN")
	}
	body, _ := json.Marshal(locator.JoinRequest{ID: cfg.NodeID, RaftAddr: cfg.RaftAdvertiseAddr, HTTPAddr: cfg.HTTPAdvertiseAddr})
	client := retryablehttp.NewClient()
	client.Logger = nil
	client.RetryMax = 20
	client.RetryWaitMax = 3 * time.Second
	// Over https the node proves itself with its own certificate (an API that requires
	// client certificates admits nothing else) and checks the cluster's against the CA.
	client.HTTPClient.Transport.(*http.Transport).TLSClientConfig = peerTLS
	// A certificate the cluster rejects will not be accepted on a retry either.
	client.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if err != nil && pki.IsHandshakeRefusal(err) {
			return false, err
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	var errs []error
	for _, target := range cfg.Join {
		req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(target, "/")+"/v1/cluster/join", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("join %s: %w", target, err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("join via %s: %w", target, err))
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			logger.Info("joined the cluster", "via", target, "node", cfg.NodeID)
			return nil
		}
		errs = append(errs, fmt.Errorf("join via %s: %s", target, describeError(resp.StatusCode, msg)))
		if resp.StatusCode < 500 {
			break // the cluster refused this node; another member would say the same
		}
	}
	return errors.Join(errs...)
}

func printDevBanner(w io.Writer, cfg Config, token string) {
	mllp := ""
	if cfg.HL7 != nil && cfg.HL7.Listen != "" {
		mllp = fmt.Sprintf("    HL7 (MLLP):   %s (senders named by MSH-4)\n", cfg.HL7.Listen)
	}
	fmt.Fprintf(w, `
rls is running in dev mode: one node, data in %s.

    API:          %s
    Console:      %s/ui/  (sign in with the admin token)
    Admin token:  %s
%s
Point the CLI at it:

    export RLS_ADDR=%s
    export RLS_TOKEN=%s

Dev mode is for trying rls out. Do not put patient data in it.

`, cfg.DataDir, cfg.HTTPAdvertiseAddr, cfg.HTTPAdvertiseAddr, token, mllp, cfg.HTTPAdvertiseAddr, token)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log_level %q must be debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
