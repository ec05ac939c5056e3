// Package notify sends rls's FHIR subscription notifications: it owns the rules an endpoint
// must keep (HTTPS outside development, never a loopback, link-local, unspecified or
// multicast address unless allowed, checked again on every connection so that a name
// cannot be re-pointed there), the signature receivers verify (HMAC-SHA256 of the body
// under the subscription's secret), the HTTP client that retries a failed delivery with
// exponential backoff and jitter (hashicorp/go-retryablehttp), and the delivery metrics.
//
// It decides nothing about who may see what and reads no state: the locator builds each
// notification (through the policy point) and hands it here. It imports no other rls
// package, and must never import locator, raft or the state.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"
)

// Headers of a notification request.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body under the
	// subscription's secret.
	HeaderSignature = "X-Rls-Signature"
	// HeaderEventID is the event's stable id (its sequence in the notification log): a
	// redelivery carries the same id.
	HeaderEventID = "X-Rls-Event-Id"
	// HeaderSubscription names the subscription.
	HeaderSubscription = "X-Rls-Subscription"
)

// ErrEndpoint is returned for an endpoint the policy refuses.
var ErrEndpoint = errors.New("endpoint not allowed")

// Policy is what endpoints may be.
type Policy struct {
	// AllowHTTP admits plain http:// endpoints (development only).
	AllowHTTP bool
	// AllowLocal admits loopback, link-local and unspecified addresses (development and
	// tests; in production they reach the node itself or the cloud's metadata service).
	AllowLocal bool
}

// CheckEndpoint checks an endpoint URL as a subscription is created or changed. A name is
// not resolved here (it may change); Dial checks every address connected to.
func (p Policy) CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%w: %q is not an absolute URL", ErrEndpoint, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return fmt.Errorf("%w: endpoints must use https", ErrEndpoint)
		}
	default:
		return fmt.Errorf("%w: scheme %q (https only)", ErrEndpoint, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL", ErrEndpoint)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%w: a fragment in the URL", ErrEndpoint)
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		return p.checkAddr(addr)
	}
	if host == "localhost" || len(host) > len(".localhost") && host[len(host)-len(".localhost"):] == ".localhost" {
		if !p.AllowLocal {
			return fmt.Errorf("%w: %s is this machine", ErrEndpoint, host)
		}
	}
	return nil
}

func (p Policy) checkAddr(a netip.Addr) error {
	a = a.Unmap()
	if p.AllowLocal {
		return nil
	}
	switch {
	case a.IsLoopback():
		return fmt.Errorf("%w: %s is a loopback address", ErrEndpoint, a)
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is a link-local address", ErrEndpoint, a)
	case a.IsUnspecified():
		return fmt.Errorf("%w: %s is unspecified", ErrEndpoint, a)
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: %s is a multicast address", ErrEndpoint, a)
	}
	return nil
}

// control runs on every connection after the name is resolved: the address actually
// dialled is held to the policy (a DNS answer cannot point a notification at the node).
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrEndpoint, address, err)
	}
	return p.checkAddr(ap.Addr())
}

// Sign returns the value of HeaderSignature for body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is body's under secret (what a receiver does).
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// SenderOptions configures a Sender.
type SenderOptions struct {
	Policy Policy
	// Timeout bounds one attempt; Retries is how many more attempts one Send makes, waiting
	// from RetryMin, doubling, up to RetryMax, with jitter.
	Timeout            time.Duration
	Retries            int
	RetryMin, RetryMax time.Duration
	// TLS verifies HTTPS endpoints (nil: the system's roots).
	TLS     *tls.Config
	Metrics *Metrics
}

// Sender delivers notifications.
type Sender struct {
	client  *retryablehttp.Client
	metrics *Metrics
}

// NewSender returns a sender under opts.
func NewSender(opts SenderOptions) *Sender {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 5 * time.Second
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second, Control: opts.Policy.control}
	transport := &http.Transport{
		// No proxy from the environment: the policy is about where notifications go.
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     opts.TLS,
		TLSHandshakeTimeout: opts.Timeout,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: transport, Timeout: opts.Timeout,
		// A redirect would take the notification somewhere the policy never saw.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.Logger = nil
	c.RetryMax, c.RetryWaitMin, c.RetryWaitMax = opts.Retries, opts.RetryMin, opts.RetryMax
	c.Backoff = JitterBackoff
	c.CheckRetry = retryPolicy
	c.ErrorHandler = func(resp *http.Response, err error, attempts int) (*http.Response, error) {
		if resp != nil {
			resp.Body.Close()
		}
		if err == nil {
			err = fmt.Errorf("endpoint answered %s", resp.Status)
		}
		return nil, fmt.Errorf("after %d attempts: %w", attempts, err)
	}
	m := opts.Metrics
	c.RequestLogHook = func(_ retryablehttp.Logger, r *http.Request, attempt int) {
		if attempt > 0 && m != nil {
			m.Retried.WithLabelValues(r.Header.Get(HeaderSubscription)).Inc()
		}
	}
	return &Sender{client: c, metrics: m}
}

// JitterBackoff is exponential backoff with full jitter: a random wait between min and
// min·2^attempt (at most max), so that many subscriptions failing together do not retry in
// step. A Retry-After the receiver sends (429, 503) is honoured up to max.
func JitterBackoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			return min(time.Duration(s)*time.Second, hi)
		}
	}
	ceiling := lo
	for i := 0; i < attempt && ceiling < hi; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, hi)
	if ceiling <= lo {
		return lo
	}
	return lo + rand.N(ceiling-lo)
}

// retryPolicy retries what may succeed later: no connection, a timeout, 408, 429 and 5xx.
// Any other answer outside 2xx is final for this Send (the subscription goes to error, and
// the deliverer tries again later).
func retryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, ErrEndpoint) {
			return false, err
		}
		return true, nil
	}
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, nil
	}
	return false, nil
}

// Notification is one signed request to send.
type Notification struct {
	Subscription string
	Endpoint     string
	Secret       string
	EventID      uint64
	ContentType  string
	Body         []byte
}

// Send delivers n, retrying as configured; nil means the endpoint answered 2xx.
func (s *Sender) Send(ctx context.Context, n Notification) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, n.Endpoint, bytes.NewReader(n.Body))
	if err != nil {
		return fmt.Errorf("notification to %s: %w", n.Subscription, err)
	}
	ct := n.ContentType
	if ct == "" {
		ct = "application/fhir+json"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set(HeaderSignature, Sign(n.Secret, n.Body))
	req.Header.Set(HeaderEventID, strconv.FormatUint(n.EventID, 10))
	req.Header.Set(HeaderSubscription, n.Subscription)
	resp, err := s.client.Do(req)
	if err != nil {
		if s.metrics != nil {
			s.metrics.Failed.WithLabelValues(n.Subscription).Inc()
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if s.metrics != nil {
			s.metrics.Failed.WithLabelValues(n.Subscription).Inc()
		}
		return fmt.Errorf("endpoint answered %s", resp.Status)
	}
	if s.metrics != nil {
		s.metrics.Delivered.WithLabelValues(n.Subscription).Inc()
	}
	return nil
}

// Metrics are the notification metrics.
type Metrics struct {
	// Events is the sequence of the newest notification event (events produced).
	Events prometheus.Gauge
	// Delivered, Retried and Failed count deliveries, retried attempts and failed sends
	// per subscription; Withheld counts events the policy kept from a subscriber.
	Delivered, Retried, Failed, Withheld *prometheus.CounterVec
	// Lag is how many events a subscription has still to handle.
	Lag *prometheus.GaugeVec
}

// NewMetrics registers the metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rls_notify_events", Help: "Sequence of the newest notification event (events produced since the first subscription)."}),
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rls_notify_delivered_total", Help: "Notifications delivered (endpoint answered 2xx), by subscription."},
			[]string{"subscription"}),
		Retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rls_notify_retried_total", Help: "Notification attempts retried, by subscription."},
			[]string{"subscription"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rls_notify_failed_total", Help: "Notifications that failed after their retries, by subscription."},
			[]string{"subscription"}),
		Withheld: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rls_notify_withheld_total", Help: "Events not notified because the subscriber may not see the patient, by subscription."},
			[]string{"subscription"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rls_notify_lag_events", Help: "Events a subscription has still to handle (on the leader)."},
			[]string{"subscription"}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Delivered, m.Retried, m.Failed, m.Withheld, m.Lag)
	}
	return m
}
