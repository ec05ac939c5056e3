package locator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// The HL7 v2 interface. An MLLP listener (locator/hl7.Server, started by `rls agent`)
// hands each message to the handler HL7Handler returns, which turns it into a request to
// one of the internal routes /v1/hl7/… and runs it through the same single path as every
// HTTP request (wrap → serve): request id, audit capture and the held answer, the
// per-address limits, forwarding to the leader, the security fence, authentication, the
// participant's rate limit and, for queries, the purpose of use and the consent guard.
// The route handlers translate the message into the FHIR handlers' own calls (the ITI-104
// conditional update, PIXm, PDQm), so an HL7 v2 message is validated, committed, disclosed
// and audited exactly as the equivalent FHIR call. The routes answer only requests made
// in-process by the MLLP handler or forwarded by another node; to anyone else they do not
// exist.
//
// Who is sending: a verified client certificate decides (as on the API), and MSH-4 must
// name the same participant. Without one, a listener configured to trust its network (or
// a -dev listener on loopback) takes the participant whose id is MSH-4's namespace, or
// whose identifier system is MSH-4's universal id; otherwise the message is refused.

// hl7ContentType is the media type of the internal routes' bodies (HL7 v2 ER7).
const hl7ContentType = fhir.HL7V2MediaType

// Headers of the internal routes: the participant a trusting listener identified by MSH-4
// (believed only from another node: serve drops it from anyone else), and the name rls
// answers under (MSH-3 and MSH-4 of its answers).
const (
	headerForwardedHL7Sender = "X-Rls-Forwarded-Hl7-Sender"
	headerHL7Responder       = "X-Rls-Hl7-Responder"
	// headerHL7Origin marks a request a node forwards that its MLLP handler made: only
	// such requests reach the internal routes (serve keeps it only on a request from a
	// node).
	headerHL7Origin = "X-Rls-Hl7-Origin"
)

// hl7SenderKey marks, in a request's context, the participant a trusting MLLP listener
// identified by MSH-4. Only this process can put a value in a request's context.
type hl7SenderKey struct{}

// hl7Origin marks a request the MLLP handler made in this process.
type hl7Origin struct{}

// hl7TrustedSender is the participant a trusting MLLP listener identified: on this node
// (the request's context), or on the node that forwarded the request (its header, which
// serve keeps only on a request from a node).
func hl7TrustedSender(r *http.Request) (string, bool) {
	if id, ok := r.Context().Value(hl7SenderKey{}).(string); ok && id != "" {
		return id, true
	}
	if id := r.Header.Get(headerForwardedHL7Sender); id != "" {
		return id, true
	}
	return "", false
}

// fromMLLP reports a request the MLLP handler made: on this node, or on the node that
// forwarded it here.
func fromMLLP(r *http.Request, rq *request) bool {
	return r.Context().Value(hl7Origin{}) != nil || (rq.fromNode && r.Header.Get(headerHL7Origin) != "")
}

// HL7Options configures the HL7 v2 handler of an MLLP listener.
type HL7Options struct {
	// TrustNetwork identifies a sender without a client certificate by MSH-4: only for a
	// network whose every sender is trusted (or loopback in -dev).
	TrustNetwork bool
	// Purpose is the purpose of use of the queries that arrive on the listener (HL7 v2
	// has no field for it); TREAT when empty.
	Purpose string
	// Responder names rls in the MSH of its answers (MSH-3, MSH-4); RLS when empty.
	Responder hl7.Responder
	// MaxMessageBytes is the listener's bound on a message, for the refusal's text.
	MaxMessageBytes int
}

// HL7Handler returns the handler of an MLLP listener's messages.
func (s *Server) HL7Handler(o HL7Options) hl7.Handler {
	if o.Purpose == "" {
		o.Purpose = string(policy.Treat)
	}
	if o.Responder.Application == "" {
		o.Responder.Application = "RLS"
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = hl7.DefaultMaxMessageBytes
	}
	return &hl7Entry{s: s, o: o}
}

type hl7Entry struct {
	s *Server
	o HL7Options
}

// hl7Kinds maps a message's type and trigger event to its internal route; a query names
// its purpose. QCN^J01 (cancel a query) has no route: rls keeps no query state.
var hl7Kinds = map[string]string{
	"ADT^A01": "/v1/hl7/adt/register", "ADT^A04": "/v1/hl7/adt/register", "ADT^A05": "/v1/hl7/adt/register",
	"ADT^A28": "/v1/hl7/adt/register",
	"ADT^A08": "/v1/hl7/adt/update", "ADT^A31": "/v1/hl7/adt/update",
	"ADT^A40": "/v1/hl7/adt/merge",
	"QBP^Q23": "/v1/hl7/qbp/pix", "QBP^Q22": "/v1/hl7/qbp/pdq",
	"QCN^J01": "",
}

// hl7Versions are the versions whose messages rls reads (ITI-8 names 2.3.1 and 2.5).
var hl7Versions = map[string]bool{"2.3": true, "2.3.1": true, "2.4": true, "2.5": true, "2.5.1": true, "2.6": true,
	"2.7": true, "2.7.1": true, "2.8": true, "2.8.1": true, "2.8.2": true, "2.9": true}

// hl7Route checks a message's header and returns its route ("" for QCN^J01).
func hl7Route(h hl7.Header) (string, *hl7.Error) {
	switch {
	case h.ControlID == "":
		return "", hl7.Errorf(hl7.At("MSH", 10), hl7.CodeRequiredFieldMissing, "MSH-10 (message control id) is required")
	case !hl7Versions[h.Version]:
		return "", hl7.Errorf(hl7.At("MSH", 12), hl7.CodeUnsupportedVersion, "version %q is not supported: send 2.3.1 to 2.9 (ITI-8 names 2.3.1 and 2.5)", fhir.Clip(h.Version))
	}
	switch strings.ToUpper(h.ProcessingID) {
	case "P", "T", "D":
	default:
		return "", hl7.Errorf(hl7.At("MSH", 11), hl7.CodeUnsupportedProcessing, "processing id %q must be P, T or D", fhir.Clip(h.ProcessingID))
	}
	path, ok := hl7Kinds[h.Type+"^"+h.Trigger]
	if !ok {
		for k := range hl7Kinds {
			if strings.HasPrefix(k, h.Type+"^") {
				return "", hl7.Errorf(hl7.At("MSH", 9, 1, 2), hl7.CodeUnsupportedEvent, "%s event %q is not supported", h.Type, fhir.Clip(h.Trigger))
			}
		}
		return "", hl7.Errorf(hl7.At("MSH", 9, 1, 1), hl7.CodeUnsupportedMessageType,
			"message type %q is not supported: rls takes ADT A01 A04 A05 A08 A28 A31 A40 (ITI-8), QBP Q23 (ITI-9) and Q22 (ITI-21)", fhir.Clip(h.Type))
	}
	return path, nil
}

// ServeHL7 answers one message.
func (e *hl7Entry) ServeHL7(ctx context.Context, req *hl7.Request) [][]byte {
	s := e.s
	remote := ""
	if req.RemoteAddr != nil {
		remote = req.RemoteAddr.String()
	}
	if errors.Is(req.Err, hl7.ErrTooLarge) {
		h := hl7.PeekHeader(req.Message)
		s.logger.Warn("hl7 message refused: too large", "remote", model.BoundText(remote, model.MaxSourceLength), "limit", e.o.MaxMessageBytes)
		return e.deliver(h, e.refusal(h, nil, hl7.AR, hl7.Errorf(hl7.Location{}, hl7.CodeInternal,
			"the message is larger than %d bytes (hl7.max_message_bytes) and was not processed", e.o.MaxMessageBytes)))
	}
	m, perr := hl7.Parse(req.Message)
	h := hl7.PeekHeader(req.Message)
	if m != nil {
		h = m.Header()
	}
	if perr != nil && h.Type == "" {
		// Not even a header to answer to: refused before anything else (as a request
		// that reaches no route). The log names where and what, never the error's text:
		// it may quote the message, and so a patient.
		herr := asHL7Error(perr)
		s.logger.Info("hl7 message refused: no readable MSH", "remote", model.BoundText(remote, model.MaxSourceLength),
			"at", herr.Location.String(), "code", herr.Code)
		return e.deliver(h, e.refusal(h, nil, hl7.AR, herr))
	}
	path, herr := hl7Route(h)
	if herr != nil {
		s.logger.Info("hl7 message refused", "remote", model.BoundText(remote, model.MaxSourceLength), "type", model.BoundText(h.Type+"^"+h.Trigger, 16),
			"at", herr.Location.String(), "code", herr.Code)
		return e.deliver(h, e.refusal(h, m, hl7.AR, herr))
	}
	if path == "" {
		// QCN^J01: a continuation pointer holds all a query's state, so there is nothing
		// to cancel.
		return e.deliver(h, hl7.Ack(h, e.o.Responder, hl7.AA, newControlID(), time.Now(), "").Encode())
	}
	hasCert := req.TLS != nil && len(req.TLS.VerifiedChains) > 0
	sender := ""
	if !hasCert {
		if !e.o.TrustNetwork {
			s.edge.authFailed(clientAddress(&http.Request{RemoteAddr: remote}), "mllp", "")
			return e.deliver(h, e.refusal(h, m, hl7.AR, hl7.Errorf(hl7.At("MSH", 4), hl7.CodeInternal,
				"this listener identifies senders by their client certificate: connect over TLS with the participant's certificate")))
		}
		sender = s.hl7Sender(h.SendingFacility)
	}
	// Bounded as a forwarded request is, with room for its audit entry.
	ctx, cancel := context.WithTimeout(ctx, 2*s.opts.ForwardTimeout)
	defer cancel()
	r, err := e.request(ctx, path, req, m, sender)
	if err != nil {
		return e.deliver(h, e.refusal(h, m, hl7.AR, hl7.Errorf(hl7.Location{}, hl7.CodeInternal, "%v", err)))
	}
	rec := newMemoryResponse()
	s.mux.ServeHTTP(rec, r)
	if strings.HasPrefix(rec.Header().Get("Content-Type"), hl7ContentType) {
		return e.deliver(h, rec.body.Bytes())
	}
	// The policy point or the cluster refused the request before a route handler
	// answered (credentials, rate limit, fence, audit, leader): an OperationOutcome.
	return e.deliver(h, e.refusal(h, m, hl7.AR, outcomeError(rec.status, rec.body.Bytes())))
}

// request builds the in-process request of a message: the message as body, the sender's
// address and TLS state, the purpose of use of queries, and, for a query, the equivalent
// FHIR query string (what the audit entry keeps, as for PIXm and PDQm).
func (e *hl7Entry) request(ctx context.Context, path string, req *hl7.Request, m *hl7.Message, sender string) (*http.Request, error) {
	target := path
	if m != nil {
		if q := e.s.auditQueryOf(path, m); q != "" {
			target += "?" + q
		}
	}
	ctx = context.WithValue(ctx, hl7Origin{}, true)
	if sender != "" {
		ctx = context.WithValue(ctx, hl7SenderKey{}, sender)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(req.Message))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	r.RequestURI = r.URL.RequestURI()
	if req.RemoteAddr != nil {
		r.RemoteAddr = req.RemoteAddr.String()
	}
	r.TLS = req.TLS
	r.Header.Set("Content-Type", hl7ContentType)
	r.Header.Set(headerHL7Responder, e.o.Responder.Application+"|"+e.o.Responder.Facility)
	if strings.HasPrefix(path, "/v1/hl7/qbp/") {
		r.Header.Set(HeaderPurposeOfUse, e.o.Purpose)
	}
	return r, nil
}

// auditQueryOf is the FHIR query a query message is equivalent to, for its audit entry.
func (s *Server) auditQueryOf(path string, m *hl7.Message) string {
	switch path {
	case "/v1/hl7/qbp/pix":
		if q, herr := pixQueryOf(m, s.hl7Domain()); herr == nil {
			return q.values().Encode()
		}
	case "/v1/hl7/qbp/pdq":
		if q, herr := pdqQueryOf(m, s.hl7Domain()); herr == nil {
			return q.params.Encode()
		}
	}
	return ""
}

// hl7Sender is the active participant MSH-4 names, for a listener that trusts its
// network: by namespace (the participant's id) or universal id (its identifier system).
func (s *Server) hl7Sender(hd hl7.Repetition) string {
	ns := value(hd.Comp(1))
	system := ""
	if value(hd.Comp(2)) != "" {
		system = s.hl7Domain()(hl7.Subs("", value(hd.Comp(2)), value(hd.Comp(3))))
	}
	find := func() (id string) {
		_ = s.node.State().View(func(tx *state.Tx) error {
			if p, err := tx.Participant(ns); ns != "" && err == nil && (system == "" || system == p.IdentifierSystem) {
				id = p.ID
			} else if system != "" {
				if pid, ok := tx.ParticipantIDBySystem(system); ok {
					id = pid
				}
			}
			return nil
		})
		return id
	}
	id := find()
	if id == "" && s.syncWithLeader(context.Background()) {
		id = find()
	}
	return id
}

// facilityNames reports whether MSH-4 names participant p: its id as the namespace, or
// its identifier system as the universal id.
func (s *Server) facilityNames(hd hl7.Repetition, p model.Participant) bool {
	ns, uid := value(hd.Comp(1)), value(hd.Comp(2))
	if uid != "" {
		system := s.hl7Domain()(hl7.Subs("", uid, value(hd.Comp(3))))
		if system == "" || system != p.IdentifierSystem {
			return false
		}
		return ns == "" || ns == p.ID
	}
	return ns != "" && ns == p.ID
}

// refusal answers a message the handler refuses: an ACK, or for a query its RSP with the
// query acknowledgement, carrying the error.
func (e *hl7Entry) refusal(h hl7.Header, m *hl7.Message, code string, herr *hl7.Error) []byte {
	return hl7Refusal(h, m, e.o.Responder, code, herr)
}

func hl7Refusal(h hl7.Header, m *hl7.Message, from hl7.Responder, code string, herr *hl7.Error) []byte {
	if h.Type == "QBP" && m != nil && (h.Trigger == "Q22" || h.Trigger == "Q23") {
		return queryResponse(h, m, from, code, herr, queryResult{status: code}).Encode()
	}
	return hl7.Ack(h, from, code, newControlID(), time.Now(), "", herr).Encode()
}

// deliver sends the application's answer as the sender's acknowledgement mode asks.
// Original mode: the answer. Enhanced mode (MSH-15 or MSH-16 set): a commit
// acknowledgement (CA, CE or CR; the message was processed and committed before it is
// sent) as MSH-15 asks, then the application's answer as MSH-16 asks (AL always, ER on
// an error, SU on success, NE never; an empty or unknown one counts as AL).
func (e *hl7Entry) deliver(h hl7.Header, answer []byte) [][]byte {
	if !h.Enhanced() {
		return [][]byte{answer}
	}
	code, errs := hl7.AE, []*hl7.Segment(nil)
	if m, err := hl7.Parse(answer); err == nil {
		if msa := m.Segment("MSA"); msa != nil {
			code = msa.Value(1, 1)
		}
		errs = m.All("ERR")
	}
	commit := map[string]string{hl7.AA: hl7.CA, hl7.AE: hl7.CE, hl7.AR: hl7.CR}[code]
	if commit == "" {
		commit = hl7.CE
	}
	wants := func(mode string, ok bool) bool {
		switch strings.ToUpper(mode) {
		case "NE":
			return false
		case "ER":
			return !ok
		case "SU":
			return ok
		}
		return true // AL, empty, or a code table 0155 lacks: answer rather than stay silent
	}
	var out [][]byte
	if wants(h.AcceptAck, commit == hl7.CA) {
		ack := hl7.Ack(h, e.o.Responder, commit, newControlID(), time.Now(), "")
		ack.Add(errs...)
		out = append(out, ack.Encode())
	}
	if wants(h.ApplicationAck, code == hl7.AA) {
		out = append(out, answer)
	}
	return out
}

// asHL7Error is err as an HL7 error (a parse error is one already).
func asHL7Error(err error) *hl7.Error {
	var he *hl7.Error
	if errors.As(err, &he) {
		return he
	}
	return hl7.Errorf(hl7.Location{}, hl7.CodeInternal, "%v", err)
}

// outcomeError turns the OperationOutcome of a request the policy point or the cluster
// refused into an HL7 error the sender's interface analyst can act on.
func outcomeError(status int, body []byte) *hl7.Error {
	var oo fhir.OperationOutcome
	text := "the request was refused"
	if json.Unmarshal(body, &oo) == nil && len(oo.Issue) > 0 {
		text = oo.Issue[0].Diagnostics
	}
	switch status {
	case http.StatusUnauthorized:
		text = "the sender is not an active participant of the exchange (" + text + "); check MSH-4 or the client certificate"
	case http.StatusTooManyRequests:
		text = "too many messages from this sender; " + text
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		text = "the exchange cannot take the message now; resend it (" + text + ")"
	}
	return hl7.Errorf(hl7.Location{}, hl7.CodeInternal, "%s", text)
}

// newControlID draws a message control id (MSH-10) for rls's own messages.
func newControlID() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "RLS" + time.Now().UTC().Format("20060102150405.000000")
	}
	return "RLS" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// memoryResponse collects an in-process answer.
type memoryResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newMemoryResponse() *memoryResponse { return &memoryResponse{header: http.Header{}} }

func (m *memoryResponse) Header() http.Header { return m.header }

func (m *memoryResponse) WriteHeader(status int) {
	if m.status == 0 {
		m.status = status
	}
}

func (m *memoryResponse) Write(b []byte) (int, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	return m.body.Write(b)
}

// hl7Exchange is one message as a route handler sees it.
type hl7Exchange struct {
	m    *hl7.Message
	h    hl7.Header
	from hl7.Responder
	// perr is the message's parse error, if any: answered as the route's refusal.
	perr *hl7.Error
}

// hl7Request opens a message at an internal route: only the MLLP handler of this node or
// another node may call these routes (anyone else is answered as for a route that does
// not exist); MSH-4 must name the authenticated participant.
func (s *Server) hl7Request(r *http.Request, rq *request) (*hl7Exchange, error) {
	if !fromMLLP(r, rq) {
		return nil, notFound(nil, r, rq)
	}
	x := &hl7Exchange{from: hl7.Responder{Application: "RLS"}}
	if app, fac, ok := strings.Cut(r.Header.Get(headerHL7Responder), "|"); ok {
		x.from = hl7.Responder{Application: model.BoundText(app, 64), Facility: model.BoundText(fac, 64)}
	}
	m, err := hl7.Parse(rq.body)
	x.h = hl7.PeekHeader(rq.body)
	if err != nil {
		x.perr = asHL7Error(err)
		return x, nil
	}
	x.m, x.h = m, m.Header()
	return x, nil
}

// senderMismatch is the refusal of a message whose MSH-4 does not name the participant
// its certificate (or the listener) identified.
func (s *Server) senderMismatch(x *hl7Exchange, p model.Participant) *hl7.Error {
	if s.facilityNames(x.h.SendingFacility, p) {
		return nil
	}
	return hl7.Errorf(hl7.At("MSH", 4), hl7.CodeInternal,
		"MSH-4 (sending facility) must name the sending participant %q: its id as the namespace, or its identifier system as the universal id", p.ID)
}

// writeHL7 writes an HL7 answer; status is what the audit entry records of it.
func writeHL7(w http.ResponseWriter, status int, msg *hl7.Message) error {
	w.Header().Set("Content-Type", hl7ContentType)
	w.WriteHeader(status)
	_, err := w.Write(msg.Encode())
	return err
}
