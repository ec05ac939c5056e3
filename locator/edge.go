package locator

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/raft/model"
)

// The edge: what a node does with a request before it knows who sent it. Nothing a caller
// without valid credentials sends is written to the replicated state (it would be copied to
// every node, for ever): such a request is refused, counted in rls_http_refused_total and
// logged on this node only, at most edgeLogRate lines a second. Two limits per client
// address apply before authentication: requests per second, and failed authentications
// (an address that keeps presenting bad credentials is refused outright until its
// allowance refills). Requests another node forwards, signed with its node credential, are
// exempt: the node that received them applied the limits.

// Defaults of the per-address limits (Options).
const (
	DefaultAddressRateLimit = 500
	DefaultAuthFailureRate  = 10
	DefaultAuthFailureBurst = 100
	// edgeLogRate and edgeLogBurst bound the lines a node logs about refused requests.
	edgeLogRate  = 10
	edgeLogBurst = 50
	// maxLoggedPath bounds the path an access-log line carries.
	maxLoggedPath = 256
)

// Refusal reasons of rls_http_refused_total.
const (
	refusedUnauthenticated = "unauthenticated"
	refusedAddressRate     = "address-rate-limit"
	refusedAuthFailures    = "auth-failure-limit"
	refusedParticipantRate = "participant-rate-limit"
)

type edge struct {
	addresses *policy.Limiter
	failures  *policy.Limiter
	logs      *policy.Limiter
	logger    *slog.Logger

	refused    *prometheus.CounterVec
	suppressed prometheus.Counter

	mu      sync.Mutex
	dropped int // log lines suppressed since the last one written
}

func newEdge(o Options, logger *slog.Logger, reg prometheus.Registerer) *edge {
	e := &edge{
		addresses: policy.NewLimiter(o.AddressRateLimit, o.AddressRateBurst, nil),
		failures:  policy.NewLimiter(o.AuthFailureRate, o.AuthFailureBurst, nil),
		logs:      policy.NewLimiter(edgeLogRate, edgeLogBurst, nil),
		logger:    logger,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rls_http_refused_total",
			Help: "Requests refused before they were admitted (no audit entry is written for them): unauthenticated (401), address-rate-limit and auth-failure-limit (429 before authentication), participant-rate-limit (429).",
		}, []string{"reason"}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rls_http_refused_log_suppressed_total",
			Help: "Log lines about refused requests left out to keep the log bounded.",
		}),
	}
	if reg != nil {
		reg.MustRegister(e.refused, e.suppressed)
	}
	return e
}

// clientAddress is the address limits and logs use: the caller's IP without its port, and
// for IPv6 its /64 network (one host commonly holds a whole /64).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return model.BoundText(host, model.MaxSourceLength)
}

// admitAddress applies the per-address limits; the error is a 429 with Retry-After.
func (e *edge) admitAddress(addr string) error {
	if exhausted, wait := e.failures.Exhausted(addr); exhausted {
		e.refuse(refusedAuthFailures, addr, "", "")
		return throttled("too many failed authentications from this address; retry later", wait)
	}
	if ok, wait := e.addresses.Allow(addr); !ok {
		e.refuse(refusedAddressRate, addr, "", "")
		return throttled("too many requests from this address; retry later", wait)
	}
	return nil
}

func throttled(msg string, wait time.Duration) error {
	fe := fhir.Errorf(http.StatusTooManyRequests, "throttled", "", "%s", msg)
	fe.Header = map[string]string{"Retry-After": strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1))))}
	return fe
}

// authFailed notes a refused authentication of a client address.
func (e *edge) authFailed(addr, route, requestID string) {
	e.failures.Allow(addr)
	e.refuse(refusedUnauthenticated, addr, route, requestID)
}

// refuse counts a refusal and logs it, within the log allowance.
func (e *edge) refuse(reason, addr, route, requestID string) {
	e.refused.WithLabelValues(reason).Inc()
	if ok, _ := e.logs.Allow(""); !ok {
		e.suppressed.Inc()
		e.mu.Lock()
		e.dropped++
		e.mu.Unlock()
		return
	}
	e.mu.Lock()
	dropped := e.dropped
	e.dropped = 0
	e.mu.Unlock()
	e.logger.Log(context.Background(), slog.LevelWarn, "request refused before admission", "reason", reason, "remote", addr,
		"route", route, "request_id", requestID, "suppressed_before", dropped)
}

// requestIDPattern is what a client-chosen X-Request-Id may look like; anything else is
// replaced by an id of the node's own (it is logged, stamped on commands and audited).
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

func requestID(r *http.Request) string {
	if id := r.Header.Get(HeaderRequestID); requestIDPattern.MatchString(id) {
		return id
	}
	return newRequestID()
}
