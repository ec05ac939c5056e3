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
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/locator/policy"
)

// HL7Config is the HL7 v2 interface (the hl7 block): an MLLP listener, off unless listen
// is set.
type HL7Config struct {
	// Listen is host:port of the MLLP listener (flag -hl7-addr).
	Listen string `hcl:"listen,optional"`
	// TLS serves MLLP over TLS with the node certificate (the tls block's); unset means on
	// whenever the node has a certificate. Client certificates are asked for as
	// tls.client_auth says, and name the sending participant as on the API.
	TLS *bool `hcl:"tls,optional"`
	// TrustNetwork identifies senders without a client certificate by MSH-4: for a
	// network where every sender is trusted (flag -hl7-trust-network). A -dev listener on
	// loopback trusts its network by itself.
	TrustNetwork bool `hcl:"trust_network,optional"`
	// PurposeOfUse is the purpose of use of the queries arriving on the listener (TREAT).
	PurposeOfUse    string `hcl:"purpose_of_use,optional"`
	MaxMessageBytes int    `hcl:"max_message_bytes,optional"`
	IdleTimeout     string `hcl:"idle_timeout,optional"`
	ReadTimeout     string `hcl:"read_timeout,optional"`
	MaxConnections  int    `hcl:"max_connections,optional"`
	// Application and Facility name rls in MSH-3 and MSH-4 of its answers and
	// notifications (RLS, and none).
	Application string `hcl:"application,optional"`
	Facility    string `hcl:"facility,optional"`
	// NotifyInterval is how often the leader looks for cross-reference changes to notify
	// (250ms).
	NotifyInterval string `hcl:"notify_interval,optional"`
}

// finishHL7 checks the hl7 block against the rest of the configuration.
func (c *Config) finishHL7() []error {
	h := c.HL7
	var errs []error
	for _, d := range []struct{ name, value string }{{"hl7.idle_timeout", h.IdleTimeout}, {"hl7.read_timeout", h.ReadTimeout}, {"hl7.notify_interval", h.NotifyInterval}} {
		if _, err := duration(d.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
		}
	}
	if h.PurposeOfUse != "" {
		if _, err := policy.ParsePurpose(h.PurposeOfUse); err != nil {
			errs = append(errs, fmt.Errorf("hl7.purpose_of_use: %w", err))
		}
	}
	if h.MaxMessageBytes < 0 || h.MaxConnections < 0 {
		errs = append(errs, errors.New("hl7.max_message_bytes and max_connections must not be negative"))
	}
	if h.Listen == "" {
		return errs
	}
	if _, _, err := net.SplitHostPort(h.Listen); err != nil {
		errs = append(errs, fmt.Errorf("hl7.listen %q must be host:port", h.Listen))
	}
	useTLS := c.TLS.CertFile != ""
	if h.TLS != nil {
		useTLS = *h.TLS
		if useTLS && c.TLS.CertFile == "" {
			errs = append(errs, errors.New("hl7.tls needs the node certificate: set tls.cert_file and tls.key_file"))
		}
	}
	h.TLS = &useTLS
	switch {
	case h.TrustNetwork:
	case c.Dev && loopback(h.Listen) && !useTLS:
		// -dev on loopback: senders are identified by MSH-4.
		h.TrustNetwork = true
	case !useTLS:
		errs = append(errs, fmt.Errorf("hl7.listen %s without TLS cannot tell who is sending: serve it over TLS with client certificates (tls.cert_file, tls.client_auth), or set hl7.trust_network = true (-hl7-trust-network) for a network where every sender is trusted", h.Listen))
	case c.TLS.ClientAuth == "" || c.TLS.ClientAuth == "none":
		errs = append(errs, errors.New("hl7 over TLS identifies senders by their client certificate, but tls.client_auth is none: set it to request or require, or set hl7.trust_network = true"))
	}
	return errs
}

// startHL7 starts the MLLP listener (if configured) and, on every node, the PIX update
// notifier; stop shuts both down, letting messages in flight finish.
func startHL7(cfg Config, api *locator.Server, tlsCfg tlsSetup, logger *slog.Logger) (stop func(), err error) {
	h := cfg.HL7
	responder := hl7.Responder{Application: h.Application, Facility: h.Facility}
	ctx, cancel := context.WithCancel(context.Background())
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		api.RunHL7Notifier(ctx, locator.HL7NotifierOptions{Interval: mustDuration(h.NotifyInterval), Responder: responder, TLS: tlsCfg.peer})
	}()
	stopNotifier := func() { cancel(); <-notified }
	if h.Listen == "" {
		return stopNotifier, nil
	}
	ln, err := net.Listen("tcp", h.Listen)
	if err != nil {
		stopNotifier()
		return nil, fmt.Errorf("listen for HL7 (MLLP) on %s: %w", h.Listen, err)
	}
	srv := &hl7.Server{
		Handler: api.HL7Handler(locator.HL7Options{TrustNetwork: h.TrustNetwork, Purpose: h.PurposeOfUse, Responder: responder,
			MaxMessageBytes: h.MaxMessageBytes}),
		MaxMessageBytes: h.MaxMessageBytes, IdleTimeout: mustDuration(h.IdleTimeout), ReadTimeout: mustDuration(h.ReadTimeout),
		MaxConnections: h.MaxConnections, Logger: logger,
	}
	if *h.TLS {
		srv.TLSConfig = tlsCfg.api.Clone()
		srv.TLSConfig.NextProtos = nil
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, hl7.ErrServerClosed) {
			logger.Error("HL7 listener stopped", "err", err)
		}
	}()
	logger.Info("HL7 v2 (MLLP) listener started", "addr", ln.Addr().String(), "tls", *h.TLS, "trust_network", h.TrustNetwork)
	return func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			logger.Warn("HL7 listener shutdown", "err", err)
		}
		stopNotifier()
	}, nil
}

func hl7Command() *cli.Command {
	return &cli.Command{
		Name:  "hl7",
		Usage: "the HL7 v2 interface: send messages over MLLP, manage notification endpoints",
		Subcommands: []*cli.Command{
			{
				Name:      "send",
				Usage:     "send the HL7 v2 messages of FILEs (- for stdin) over MLLP and print the answers",
				ArgsUsage: "FILE...",
				Description: "Each message starts at a line beginning with MSH; segments may end with CR, LF or CRLF.\n" +
					"The messages go over one connection, one after another; each answer is printed with\n" +
					"its segments on lines of their own. Exits 1 if any message was not accepted (AA or CA).",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "addr", Value: "127.0.0.1:2575", EnvVars: []string{"RLS_HL7_ADDR"}, Usage: "`HOST:PORT` of a node's MLLP listener"},
					&cli.BoolFlag{Name: "tls", Usage: "MLLP over TLS (mllps), with -ca-cert and the participant's -client-cert and -client-key"},
					&cli.StringFlag{Name: "ca-cert", EnvVars: []string{"RLS_CACERT"}, Usage: "PEM `FILE` of the CA of the node's certificate"},
					&cli.StringFlag{Name: "client-cert", EnvVars: []string{"RLS_CLIENT_CERT"}, Usage: "PEM `FILE`: the sending participant's certificate"},
					&cli.StringFlag{Name: "client-key", EnvVars: []string{"RLS_CLIENT_KEY"}, Usage: "PEM `FILE`: key of -client-cert"},
					&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "wait this long for each answer"},
				},
				Action: hl7Send,
			},
			{
				Name:  "endpoint",
				Usage: "MLLP endpoints that receive PIX update notifications (ADT^A31)",
				Subcommands: []*cli.Command{
					{
						Name: "add", Usage: "register an endpoint (FHIR Endpoint)",
						Flags: append(clientFlags(),
							&cli.StringFlag{Name: "address", Required: true, Usage: "mllp://HOST:PORT, or mllps://HOST:PORT for TLS"},
							&cli.StringSliceFlag{Name: "domain", Usage: "identifier `SYSTEM` whose identifiers the endpoint wants (repeatable; none: every domain)"},
							&cli.StringFlag{Name: "participant", Usage: "the participant the endpoint belongs to (default: the caller; another only for the admin)"},
							&cli.StringFlag{Name: "name", Usage: "a name for the endpoint"}),
						Action: withClient(endpointAdd),
					},
					{Name: "list", Usage: "list endpoints (the admin: every participant's)", Flags: append(clientFlags(), &cli.StringFlag{Name: "participant", Usage: "only this participant's"}), Action: withClient(endpointList)},
					{Name: "show", Usage: "show an endpoint", ArgsUsage: "ID", Flags: clientFlags(), Action: withClient(endpointShow)},
					{Name: "disable", Usage: "stop notifying an endpoint (status off)", ArgsUsage: "ID", Flags: clientFlags(), Action: withClient(endpointStatus("off"))},
					{Name: "enable", Usage: "notify an endpoint again, of the changes from now on", ArgsUsage: "ID", Flags: clientFlags(), Action: withClient(endpointStatus("active"))},
				},
			},
		},
	}
}

// splitMessages cuts a file into messages: each starts at a segment named MSH. MLLP
// framing bytes, if the file has them, are dropped; segments are ended with CR.
func splitMessages(data []byte) [][]byte {
	data = bytes.Map(func(r rune) rune {
		if r == rune(hl7.StartBlock) || r == rune(hl7.EndBlock) {
			return '\n'
		}
		return r
	}, data)
	var out [][]byte
	var cur []byte
	for _, line := range bytes.FieldsFunc(data, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if bytes.HasPrefix(line, []byte("MSH")) && len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		cur = append(append(cur, line...), '\r')
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func hl7Send(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("give the FILEs of messages to send (- for stdin)")
	}
	var msgs [][]byte
	for _, name := range c.Args().Slice() {
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(c.App.Reader)
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		msgs = append(msgs, splitMessages(data)...)
	}
	if len(msgs) == 0 {
		return errors.New("no message found (a message starts with a line beginning MSH)")
	}
	var cfg *tls.Config
	if c.Bool("tls") {
		var err error
		if cfg, err = clientTLS(c.String("ca-cert"), c.String("client-cert"), c.String("client-key")); err != nil {
			return err
		}
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	timeout := c.Duration("timeout")
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	conn, err := hl7.Dial(ctx, c.String("addr"), cfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	counts := map[string]int{}
	var order []string
	failed := 0
	for i, msg := range msgs {
		h := hl7.PeekHeader(msg)
		answers := 1
		switch {
		case strings.EqualFold(h.AcceptAck, "NE") && (h.ApplicationAck == "" || strings.EqualFold(h.ApplicationAck, "NE")):
			answers = 0
		case h.Enhanced() && strings.EqualFold(h.ApplicationAck, "AL") && !strings.EqualFold(h.AcceptAck, "NE"):
			answers = 2
		}
		ctx, cancel := context.WithTimeout(c.Context, timeout)
		if err := conn.Send(ctx, msg); err != nil {
			cancel()
			return fmt.Errorf("message %d (%s): %w", i+1, h.ControlID, err)
		}
		if answers == 0 {
			fmt.Fprintf(c.App.Writer, "# message %d (%s): no acknowledgement asked for (MSH-15/16 NE)\n\n", i+1, h.ControlID)
		}
		for range answers {
			raw, err := conn.Receive(ctx)
			if err != nil {
				cancel()
				return fmt.Errorf("message %d (%s): %w", i+1, h.ControlID, err)
			}
			code := "?"
			if m, err := hl7.Parse(raw); err == nil && m.Segment("MSA") != nil {
				code = m.Segment("MSA").Value(1, 1)
			}
			if counts[code] == 0 {
				order = append(order, code)
			}
			counts[code]++
			if code != hl7.AA && code != hl7.CA {
				failed++
			}
			fmt.Fprintf(c.App.Writer, "# message %d (%s): %s\n%s\n\n", i+1, h.ControlID, code, strings.TrimRight(strings.ReplaceAll(string(raw), "\r", "\n"), "\n"))
		}
		cancel()
	}
	var parts []string
	for _, code := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[code], code))
	}
	fmt.Fprintf(c.App.ErrWriter, "sent %d messages: %s\n", len(msgs), strings.Join(parts, ", "))
	if failed > 0 {
		return fmt.Errorf("%d answers were not AA or CA", failed)
	}
	return nil
}

func endpointAdd(c *cli.Context, cl *client, ctx context.Context) error {
	e := fhir.EndpointResource{ResourceType: "Endpoint", Status: "active", Address: c.String("address"), Name: c.String("name"),
		ConnectionType: fhir.Coding{System: fhir.EndpointConnectionType, Code: fhir.ConnectionTypeMLLP},
		PayloadType:    []fhir.CodeableConcept{{Text: "IHE ITI-10 PIX Update Notification (ADT^A31)"}}}
	if p := c.String("participant"); p != "" {
		e.ManagingOrganization = &fhir.Reference{Reference: "Organization/" + p}
	}
	for _, d := range c.StringSlice("domain") {
		e.Extension = append(e.Extension, fhir.URIExtension{URL: fhir.PIXDomainURL, ValueURI: d})
	}
	body, _, err := cl.do(ctx, "POST", "/fhir/Endpoint", e, nil)
	if err != nil {
		return err
	}
	return printEndpoints(c, cl, body)
}

func endpointList(c *cli.Context, cl *client, ctx context.Context) error {
	path := "/fhir/Endpoint"
	if p := c.String("participant"); p != "" {
		path += "?organization=" + url.QueryEscape(p)
	}
	body, _, err := cl.do(ctx, "GET", path, nil, nil)
	if err != nil {
		return err
	}
	return printEndpoints(c, cl, body)
}

func endpointShow(c *cli.Context, cl *client, ctx context.Context) error {
	if c.NArg() != 1 {
		return errors.New("give the endpoint ID")
	}
	body, _, err := cl.do(ctx, "GET", "/fhir/Endpoint/"+url.PathEscape(c.Args().First()), nil, nil)
	if err != nil {
		return err
	}
	return printEndpoints(c, cl, body)
}

func endpointStatus(status string) func(*cli.Context, *client, context.Context) error {
	return func(c *cli.Context, cl *client, ctx context.Context) error {
		if c.NArg() != 1 {
			return errors.New("give the endpoint ID")
		}
		id := url.PathEscape(c.Args().First())
		body, h, err := cl.do(ctx, "GET", "/fhir/Endpoint/"+id, nil, nil)
		if err != nil {
			return err
		}
		var e fhir.EndpointResource
		if err := json.Unmarshal(body, &e); err != nil {
			return fmt.Errorf("decode endpoint: %w", err)
		}
		e.Status, e.Meta = status, nil
		body, _, err = cl.do(ctx, "PUT", "/fhir/Endpoint/"+id, e, map[string]string{"If-Match": h.Get("ETag")})
		if err != nil {
			return err
		}
		return printEndpoints(c, cl, body)
	}
}

// printEndpoints prints an Endpoint or a Bundle of them.
func printEndpoints(c *cli.Context, cl *client, body []byte) error {
	if cl.output == "json" {
		_, err := c.App.Writer.Write(body)
		return err
	}
	var list []fhir.EndpointResource
	var probe struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource fhir.EndpointResource `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if probe.ResourceType == "Bundle" {
		for _, e := range probe.Entry {
			list = append(list, e.Resource)
		}
	} else {
		var e fhir.EndpointResource
		if err := json.Unmarshal(body, &e); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		list = append(list, e)
	}
	var rows [][]string
	for _, e := range list {
		var domains []string
		for _, x := range e.Extension {
			domains = append(domains, x.ValueURI)
		}
		participant := ""
		if e.ManagingOrganization != nil {
			participant = strings.TrimPrefix(e.ManagingOrganization.Reference, "Organization/")
		}
		if len(domains) == 0 {
			domains = []string{"(all)"}
		}
		rows = append(rows, []string{e.ID, participant, e.Status, e.Address, strings.Join(domains, " ")})
	}
	return printTable(c.App.Writer, []string{"ID", "PARTICIPANT", "STATUS", "ADDRESS", "DOMAINS"}, rows)
}
