package locator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/pki"
)

// newForwardClient returns the client a follower uses to pass requests to the leader. It
// retries only what cannot have been applied: a connection that was never made, or a 503
// the receiver marked not-applied (it was not the leader either). Before each retry it
// looks the leader up again, since the reason to retry is usually an election.
func newForwardClient(s *Server) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.HTTPClient.Transport = peerTransport(s.opts.PeerTLS)
	c.Logger = redactingLogger{s.logger}
	c.RetryWaitMin = 50 * time.Millisecond
	c.RetryWaitMax = time.Second
	c.RetryMax = 30 // the request context (ForwardTimeout) ends it first
	c.CheckRetry = retryIfNotApplied
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.PrepareRetry = func(req *http.Request) error {
		leader, err := s.waitLeader(req.Context())
		if err != nil {
			return err
		}
		return pointAt(req, leader)
	}
	return c
}

func retryIfNotApplied(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		var op *net.OpError
		return errors.As(err, &op) && op.Op == "dial", nil
	}
	return resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(HeaderNotApplied) == "true", nil
}

// waitLeader waits until a leader with a known HTTP address exists.
func (s *Server) waitLeader(ctx context.Context) (model.Node, error) {
	for {
		leader, err := s.node.Leader()
		if err == nil && leader.HTTPAddr != "" && leader.ID != s.node.ID() {
			return leader, nil
		}
		if err == nil && leader.ID == s.node.ID() {
			return leader, fmt.Errorf("this node became the leader: %w", raft.ErrNotLeader)
		}
		select {
		case <-ctx.Done():
			return model.Node{}, fmt.Errorf("waiting for a leader: %w", raft.ErrNoLeader)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func pointAt(req *http.Request, leader model.Node) error {
	base, err := url.Parse(leader.HTTPAddr)
	if err != nil {
		return fmt.Errorf("leader %q has a bad HTTP address %q: %w", leader.ID, leader.HTTPAddr, err)
	}
	req.URL.Scheme, req.URL.Host = base.Scheme, base.Host
	req.Host = base.Host
	return nil
}

// peerTransport is the transport of node-to-node HTTP: pooled like Go's default, with
// this node's TLS client configuration.
func peerTransport(tlsConfig *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig.Clone()
	}
	return t
}

// hopHeaders are not passed on (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"}

// forwardToLeader passes the request to the leader and streams its answer back. body, when
// set, supplies the request body (for uploads spooled to disk); otherwise the buffered body
// is sent.
func (s *Server) forwardToLeader(w *responseWriter, r *http.Request, rq *request, body retryablehttp.ReaderFunc) error {
	if by := r.Header.Get(headerForwarded); by != "" {
		// Forward at most once: the sender believed this node leads, so leadership is
		// moving; the sender retries after looking the leader up again.
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "node %s is not the leader (request forwarded by %s)", s.node.ID(), by))
	}
	if rq.audit != nil {
		// The leader authenticates; should it never answer, the audit entry names whom this
		// node's state says the credentials belong to.
		rq.tentative = s.identify(r)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ForwardTimeout)
	defer cancel()
	leader, err := s.waitLeader(ctx)
	if err != nil {
		return err
	}
	var payload any = rq.body
	if body != nil {
		payload = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, r.Method, "http://leader"+r.URL.RequestURI(), payload)
	if err != nil {
		return fmt.Errorf("build forwarded request: %w", err)
	}
	if err := pointAt(req.Request, leader); err != nil {
		return err
	}
	req.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Header.Set(headerForwarded, s.node.ID())
	req.Header.Set(HeaderRequestID, rq.id)
	if w.base != "" {
		req.Header.Set(headerForwardedBase, w.base)
	}
	// The client's certificate ends at this node's TLS; the leader sees this node's. Pass
	// on whom it named (never what a caller wrote into the header itself).
	req.Header.Del(headerForwardedParticipant)
	if id, ok := clientCertParticipant(r); ok {
		req.Header.Set(headerForwardedParticipant, id)
	}
	if id, ok := hl7TrustedSender(r); ok {
		req.Header.Set(headerForwardedHL7Sender, id)
	}
	if r.Context().Value(hl7Origin{}) != nil {
		req.Header.Set(headerHL7Origin, "mllp")
	}
	if err := s.signForward(ctx, req.Request, rq); err != nil {
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "cannot forward an audited request: %v", err))
	}
	resp, err := s.forward.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "cannot reach the leader: %v", redactErr(err)))
		}
		if pki.IsHandshakeRefusal(err) {
			// The request never left this node: the nodes' certificates disagree.
			return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "security", "", "TLS handshake with the leader failed, nothing was sent: %v", redactErr(err)))
		}
		return fhir.Errorf(http.StatusBadGateway, "transient", "", "forwarding to the leader failed, outcome unknown: %v", redactErr(err))
	}
	defer resp.Body.Close()
	rq.adoptReport(resp.Header)
	limit := s.opts.MaxResponseBytes
	if w.limit == 0 {
		limit = -1 // a streamed answer (a snapshot) is as large as it is
	}
	incomplete := func(n int64, err error) bool {
		return err != nil || (limit >= 0 && n > limit) || (resp.ContentLength >= 0 && n != resp.ContentLength)
	}
	if limit >= 0 && resp.ContentLength > limit {
		return fhir.Errorf(http.StatusBadGateway, "too-costly", "", "the leader's answer is %d bytes, beyond this node's bound of %d; ask for less", resp.ContentLength, limit)
	}
	if w.held {
		// The answer waits for its audit entry anyway: read it whole first, so that one
		// the leader could not complete becomes an error, never a shortened 200.
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if incomplete(int64(len(body)), err) {
			s.logger.Warn("forwarded answer incomplete", "err", redactErr(err), "bytes", len(body), "status", resp.StatusCode, "request_id", rq.id)
			return fhir.Errorf(http.StatusBadGateway, "incomplete", "", "the leader's answer could not be read whole (%d bytes received); outcome unknown, check before retrying", len(body))
		}
		s.copyForwardedHeader(w, resp)
		w.WriteHeader(resp.StatusCode)
		_, err = w.Write(body)
		return err
	}
	s.copyForwardedHeader(w, resp)
	w.WriteHeader(resp.StatusCode)
	var src io.Reader = resp.Body
	if limit >= 0 {
		src = io.LimitReader(resp.Body, limit+1)
	}
	n, err := io.Copy(w, src)
	if incomplete(n, err) {
		// The status line is out: cut the connection so that the client sees a broken
		// answer, never a complete-looking one.
		s.logger.Warn("forwarded answer incomplete; connection cut", "err", redactErr(err), "bytes", n, "status", resp.StatusCode, "request_id", rq.id)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// copyForwardedHeader passes the leader's answer headers on.
func (s *Server) copyForwardedHeader(w *responseWriter, resp *http.Response) {
	w.forwarded = true
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
}
