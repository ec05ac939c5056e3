package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/raft/pki"
)

// clientFlags are the flags every command that talks to a node takes.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "addr", Value: "http://" + defaultHTTPAddr, EnvVars: []string{"RLS_ADDR"}, Usage: "`URL` of any rls node"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"RLS_TOKEN"}, Usage: "bearer `TOKEN` of the calling participant"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after this long"},
		&cli.StringFlag{Name: "ca-cert", EnvVars: []string{"RLS_CACERT"}, Usage: "PEM `FILE` of the CA that signed the node's certificate (https; default: the system roots)"},
		&cli.StringFlag{Name: "client-cert", EnvVars: []string{"RLS_CLIENT_CERT"}, Usage: "PEM `FILE`: client certificate naming the calling participant (mutual TLS)"},
		&cli.StringFlag{Name: "client-key", EnvVars: []string{"RLS_CLIENT_KEY"}, Usage: "PEM `FILE`: key of -client-cert"},
		&cli.StringFlag{Name: "purpose", Value: "TREAT", EnvVars: []string{"RLS_PURPOSE"}, Usage: "purpose of use sent with every query of patient data: TREAT, ETREAT, PAYMENT, OPERATIONS, PUBLICHEALTH or REQUEST"},
		&cli.StringFlag{Name: "break-glass", Usage: "break-the-glass `REASON` (with -purpose ETREAT): see an opted-out patient for this request; audited"},
	}
}

// client calls one node's API.
type client struct {
	base   string
	token  string
	output string
	// purpose and breakGlass go with every request; nodes read them on queries of patient data.
	purpose    string
	breakGlass string
	timeout    time.Duration
	http       *retryablehttp.Client
}

func newClient(c *cli.Context) (*client, error) {
	out := c.String("output")
	if out != "table" && out != "json" {
		return nil, fmt.Errorf("-output %q must be table or json", out)
	}
	if err := checkPurposeFlag(c); err != nil {
		return nil, err
	}
	rc := newRetryClient()
	tlsConfig, err := clientTLS(c.String("ca-cert"), c.String("client-cert"), c.String("client-key"))
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		rc.HTTPClient.Transport.(*http.Transport).TLSClientConfig = tlsConfig
	}
	return &client{
		base:       strings.TrimRight(c.String("addr"), "/"),
		token:      c.String("token"),
		output:     out,
		purpose:    c.String("purpose"),
		breakGlass: c.String("break-glass"),
		timeout:    c.Duration("timeout"),
		http:       rc,
	}, nil
}

// newRetryClient is the HTTP client of every command: it retries only what cannot have
// been applied, a 503 the node marked not-applied (an election is under way). A lost
// connection may hide an applied write: it is reported, not retried.
func newRetryClient() *retryablehttp.Client {
	rc := retryablehttp.NewClient()
	rc.Logger = nil
	rc.RetryMax = 8
	rc.RetryWaitMin = 100 * time.Millisecond
	rc.RetryWaitMax = 2 * time.Second
	rc.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil || err != nil {
			return false, err
		}
		return resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(locator.HeaderNotApplied) == "true", nil
	}
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return rc
}

// clientTLS builds the CLI's TLS settings from -ca-cert, -client-cert and -client-key;
// nil when none is given (Go's defaults then verify https against the system roots).
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("-client-cert and -client-key go together")
	}
	var roots *x509.CertPool
	if caFile != "" {
		var err error
		if roots, err = pki.LoadPool(caFile); err != nil {
			return nil, fmt.Errorf("-ca-cert: %w", err)
		}
	}
	var cert *tls.Certificate
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load -client-cert %s: %w", certFile, err)
		}
		cert = &pair
	}
	return pki.ClientConfig(roots, cert), nil
}

// do sends a request and returns the response body of a 2xx answer; any other answer
// becomes an error carrying the server's explanation.
func (cl *client) do(ctx context.Context, method, path string, body any, header map[string]string) ([]byte, http.Header, error) {
	resp, err := cl.send(ctx, method, path, body, header)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, resp.Header, &statusError{Status: resp.StatusCode, Message: describeError(resp.StatusCode, data)}
	}
	return data, resp.Header, nil
}

// send sends a request and returns the raw response (the caller closes it).
func (cl *client) send(ctx context.Context, method, path string, body any, header map[string]string) (*http.Response, error) {
	var payload any
	switch b := body.(type) {
	case nil:
	case io.Reader, retryablehttp.ReaderFunc:
		payload = b
	case []byte:
		payload = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		payload = data
	}
	path = onThisNode(path)
	req, err := retryablehttp.NewRequestWithContext(ctx, method, cl.base+path, payload)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.purpose != "" {
		req.Header.Set(locator.HeaderPurposeOfUse, cl.purpose)
	}
	if cl.breakGlass != "" {
		req.Header.Set(locator.HeaderBreakGlassReason, cl.breakGlass)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, cl.base+path, err)
	}
	return resp, nil
}

func (cl *client) getJSON(ctx context.Context, path string, v any) error {
	data, _, err := cl.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// statusError is a non-2xx answer from a node.
type statusError struct {
	Status  int
	Message string
}

func (e *statusError) Error() string { return e.Message }

// describeError renders an error answer in one line: the status and the server's
// OperationOutcome diagnostics (with the element it names), or the raw text.
func describeError(status int, body []byte) string {
	var oo struct {
		Issue []struct {
			Code        string   `json:"code"`
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &oo) == nil && len(oo.Issue) > 0 {
		var parts []string
		for _, is := range oo.Issue {
			p := is.Diagnostics
			if len(is.Expression) > 0 {
				p += " [" + strings.Join(is.Expression, ", ") + "]"
			}
			parts = append(parts, p)
		}
		msg = strings.Join(parts, "; ")
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return fmt.Sprintf("%d %s: %s", status, http.StatusText(status), msg)
}

// withClient makes the action of a client command: it builds the client from the common
// flags and a context bounded by -timeout.
func withClient(fn func(c *cli.Context, cl *client, ctx context.Context) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		cl, err := newClient(c)
		if err != nil {
			return err
		}
		ctx, cancel := cl.context(c)
		defer cancel()
		return fn(c, cl, ctx)
	}
}

// context bounds a command by -timeout.
func (cl *client) context(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, cl.timeout)
}

// onThisNode turns an absolute URL rls wrote (a Bundle's next link) into its path and query,
// so that paging goes on at the node the client talks to.
func onThisNode(path string) string {
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		return path
	}
	u, err := url.Parse(path)
	if err != nil {
		return path
	}
	return u.RequestURI()
}
