// Package locator is rls's API: FHIR R4 under /fhir and native JSON under /v1, served by
// every node, and the HL7 v2 interface (ITI-8, ITI-9, ITI-21 over MLLP, whose messages
// take the same path through internal routes; ITI-10 notifications sent by the leader). It
// authenticates the calling participant, enforces roles in one place (the route table),
// turns writes into Raft commands stamped on the leader (forwarding them there from a
// follower), serves reads at the consistency the caller asks for, and exposes health and
// Prometheus metrics.
//
// Its parts with a job of their own are subpackages, none of which imports locator: fhir
// (resources, decoding, mapping), hl7 (the HL7 v2 wire format and MLLP), policy (the
// access rules and the request guard), fence (security changes on every node at once),
// audit (audit capture and group commit) and nodeauth (node-to-node authentication). Only cmd/ imports this package. It must never be
// imported by raft/, mpi/ or search/, and it reaches the FSM only through raft (never
// raft/fsm).
package locator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rls-hie/rls/locator/audit"
	"github.com/rls-hie/rls/locator/console"
	"github.com/rls-hie/rls/locator/fence"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/nodeauth"
	"github.com/rls-hie/rls/locator/notify"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/model"
)

// Response headers every answer carries.
const (
	HeaderAppliedIndex = "X-Rls-Applied-Index"
	HeaderNode         = "X-Rls-Node"
	HeaderRaftIndex    = "X-Rls-Raft-Index"
	HeaderLastContact  = "X-Rls-Last-Contact"
	HeaderLeader       = "X-Rls-Leader"
	HeaderRequestID    = "X-Request-Id"
	HeaderConsistency  = "X-Rls-Consistency"
	// HeaderNotApplied marks a 503 whose request certainly changed nothing, so it may be
	// retried (at the leader).
	HeaderNotApplied = "X-Rls-Not-Applied"
	// headerForwarded marks a request one node passed to another (to the leader, or a
	// status query); it is never forwarded again.
	headerForwarded = "X-Rls-Forwarded-By"
	// headerForwardedParticipant names the participant whose client certificate the
	// forwarding node verified; the leader believes it only from a cluster node's
	// certificate (see certParticipant).
	headerForwardedParticipant = "X-Rls-Forwarded-Participant"
)

// Options configures a Server.
type Options struct {
	Node   *raft.Node
	Logger *slog.Logger
	// Registry serves /metrics and receives the HTTP metrics; nil disables both.
	Registry *prometheus.Registry
	// MaxBodyBytes caps request bodies (413 beyond); MaxSnapshotBytes caps uploaded
	// snapshots.
	MaxBodyBytes     int64
	MaxSnapshotBytes int64
	// HealthMaxLag is how many committed entries a node may still have to apply and be
	// healthy.
	HealthMaxLag uint64
	// ForwardTimeout bounds a forwarded request, waiting for a leader included.
	ForwardTimeout time.Duration
	// TempDir receives uploaded snapshots before they are checked.
	TempDir string
	Version string
	// PeerTLS is the client side of this node's HTTPS calls to other nodes (forwarding to
	// the leader, peer status): the CA that verifies their API certificates and this
	// node's certificate. Nil uses Go's defaults (plain-HTTP clusters).
	PeerTLS *tls.Config
	// ClusterCA recognises other nodes' client certificates (pki.IsClusterNode): only a
	// node may tell this one which participant's certificate a forwarded request came
	// with. Nil: no forwarded certificate identity is trusted.
	ClusterCA *x509.CertPool

	// auditOff disables the audit trail. Unexported on purpose: only this package's
	// benchmarks set it (to measure what audit costs); no configuration can turn audit off.
	auditOff bool
	// FenceInterval is L of the security fence (see fence): the longest a security change
	// waits for an unresponsive node before it is acknowledged, and the lease a follower
	// serves under. It must exceed raft's LeaderLeaseTimeout.
	FenceInterval time.Duration
	// RateLimit is each participant's sustained requests per second on this node, RateBurst
	// its burst; zero RateLimit disables the limit.
	RateLimit float64
	RateBurst int
	// AddressRateLimit is each client address's requests per second on this node before
	// authentication (AddressRateBurst its burst); AuthFailureRate and AuthFailureBurst
	// bound the failed authentications of one address, beyond which it is refused before
	// authentication until its allowance refills. Zero takes the defaults; a negative rate
	// disables the limit.
	AddressRateLimit float64
	AddressRateBurst int
	AuthFailureRate  float64
	AuthFailureBurst int
	// MaxResponseBytes bounds the answer of one request: a search page ends early (with
	// a next link) before it grows beyond it, and a forwarded answer beyond it is refused.
	MaxResponseBytes int64
	// Console configures the web console's sessions (locator/console).
	Console console.Options
	// PublicBaseURL is the FHIR service base clients reach rls at (https://rls.hie.org/fhir),
	// for the absolute URLs of Bundle links, entry.fullUrl and Location. Empty: the scheme
	// and host each request came to, with /fhir.
	PublicBaseURL string
	// Notify configures the delivery of subscription notifications (RunNotifier).
	Notify NotifyOptions
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxSnapshotBytes == 0 {
		o.MaxSnapshotBytes = 8 << 30
	}
	if o.HealthMaxLag == 0 {
		o.HealthMaxLag = 250
	}
	if o.ForwardTimeout == 0 {
		o.ForwardTimeout = 15 * time.Second
	}
	if o.FenceInterval == 0 {
		o.FenceInterval = DefaultFenceInterval
	}
	if o.RateBurst == 0 {
		o.RateBurst = max(1, int(2*o.RateLimit))
	}
	if o.AddressRateLimit == 0 {
		o.AddressRateLimit = DefaultAddressRateLimit
	}
	if o.AddressRateBurst == 0 {
		o.AddressRateBurst = max(1, int(2*o.AddressRateLimit))
	}
	if o.AuthFailureRate == 0 {
		o.AuthFailureRate = DefaultAuthFailureRate
	}
	if o.AuthFailureBurst == 0 {
		o.AuthFailureBurst = DefaultAuthFailureBurst
	}
	if o.MaxResponseBytes == 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	o.Console = o.Console.WithDefaults()
	o.Notify.setDefaults()
}

// DefaultMaxResponseBytes bounds an answer (Options.MaxResponseBytes).
const DefaultMaxResponseBytes = 16 << 20

// pageBudget is what the resources of one search page may add up to: half the answer's
// bound leaves room for the Bundle around them and the indentation.
func (s *Server) pageBudget() int { return int(s.opts.MaxResponseBytes / 2) }

// DefaultFenceInterval is L of the security fence: above the default raft leader lease
// (1 s) with room for drift and a renewal round trip.
const DefaultFenceInterval = 2 * time.Second

// Server serves the API of one node.
type Server struct {
	opts    Options
	node    *raft.Node
	logger  *slog.Logger
	mux     *http.ServeMux
	forward *retryablehttp.Client
	peers   *http.Client
	metrics *httpMetrics
	// audit group-commits the audit entries of this node's requests.
	audit        *audit.Batcher
	auditClient  *http.Client
	auditMetrics *audit.Metrics
	// fence makes security changes hold on every node once acknowledged; limiter is the
	// per-participant rate limit.
	fence   *fence.Fence
	limiter *policy.Limiter
	edge    *edge
	// sequencer proposes the numbered batches of an import stream in their order.
	sequencer *batchSequencer
	// consoleAssets are the web console's files; crossOrigin refuses browsers'
	// cross-origin changes made with its session.
	consoleAssets *console.Assets
	crossOrigin   *http.CrossOriginProtection
	// notifySender delivers subscription notifications (on the leader, RunNotifier).
	notifySender  *notify.Sender
	notifyMetrics *notify.Metrics
}

// access is who may call a route.
type access int

const (
	public      access = iota // no token (health, metrics)
	participant               // any active participant
	admin                     // participants with the admin role
	// steward: participants with the steward role, and the admin (the data steward's
	// review queue and link tools, and the web console).
	steward
	// clusterNode: another node of the cluster (node credential or node certificate), or
	// the admin; the cluster's internals (its fence, its key, audit batches).
	clusterNode
)

// placement is where a route is served.
type placement int

const (
	// onLeader: writes, forwarded to the leader from a follower.
	onLeader placement = iota
	// byConsistency: reads; default and strong go to the leader, stale is served here.
	byConsistency
	// onThisNode: this node's own view (status, state hash, health).
	onThisNode
)

// request is what the middleware learned about a call before its handler runs.
type request struct {
	id          string
	principal   model.Participant
	body        []byte
	consistency string
	// uri is the request URI as it arrived (the policy point takes its own parameter out
	// of the query; a forwarding node signed the original).
	uri string
	// purpose and breakGlass are the purpose of use and break-the-glass reason of a query
	// of patient data (X-Rls-Purpose-Of-Use, X-Rls-Break-Glass-Reason) as the policy point
	// (admit) accepted them; guard applies them to every patient disclosed, and the audit
	// entry records them.
	purpose    string
	breakGlass string
	guard      *policy.Guard
	// audit is the request's audit entry in the making (nil if the route is not audited).
	audit *audit.Capture
	// addr is the client's address (see clientAddress); fromNode: another node of the
	// cluster sent the request (see fromNode), so the per-address limits do not apply.
	addr     string
	fromNode bool
	// tentative is the participant this node's state says the credentials name, on a
	// request it forwards without authenticating: the audit entry names it if the leader
	// never answers.
	tentative string
	// refused: the request was refused before admission and the edge logged it.
	refused bool
	// session is the console session that authenticated the request, if any.
	session *console.Session
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rq *request) error

type route struct {
	method, pattern string
	access          access
	place           placement
	// streamBody leaves the body unread for the handler (snapshot uploads).
	streamBody bool
	// streamAnswer: the answer is too large to hold until its audit entry commits (a
	// snapshot is the whole state); the handler records the entry before the first byte
	// leaves (auditBeforeStream).
	streamAnswer bool
	// audit names the action of a route that touches patient data (see audit.Actions):
	// every call of it, answered or refused, leaves exactly one audit entry.
	audit string
	// patientData: the route discloses patient data, so it needs an allowed purpose of use
	// and passes every patient through the request's guard.
	patientData bool
	// readsAudit: the route reads the audit log, so a read waits until the audit entries
	// before it are readable too (the others skip a trailing run of them).
	readsAudit bool
	// diagnostic: an admin view of the cluster itself (no patient data) that a node serves
	// even when the security fence cannot vouch for its state, so that an operator can see
	// a partitioned node.
	diagnostic bool
	handle     handlerFunc
}

// New builds the server of one node.
func New(opts Options) *Server {
	opts.setDefaults()
	s := &Server{
		opts:   opts,
		node:   opts.Node,
		logger: opts.Logger,
		mux:    http.NewServeMux(),
		peers:  &http.Client{Timeout: 3 * time.Second, Transport: peerTransport(opts.PeerTLS)},
	}
	s.forward = newForwardClient(s)
	s.auditClient = &http.Client{Timeout: opts.ForwardTimeout, Transport: peerTransport(opts.PeerTLS)}
	s.audit = audit.NewBatcher(s.commitAudit, audit.BatcherOptions{Timeout: opts.ForwardTimeout})
	s.node.SetDecisionSource(newDecisionSource(s))
	s.fence = fence.New(s.node, opts.FenceInterval, peerTransport(opts.PeerTLS), s.localClusterKey, opts.Logger)
	s.limiter = policy.NewLimiter(opts.RateLimit, opts.RateBurst, nil)
	s.sequencer = newBatchSequencer(opts.Logger)
	var reg prometheus.Registerer
	if opts.Registry != nil {
		reg = opts.Registry
	}
	s.edge = newEdge(opts, opts.Logger, reg)
	s.crossOrigin = http.NewCrossOriginProtection()
	assets, err := console.NewAssets()
	if err != nil {
		panic(err) // embedded at build time: a broken build, not a condition to handle
	}
	s.consoleAssets = assets
	s.notifyMetrics = notify.NewMetrics(reg)
	s.notifySender = notify.NewSender(notify.SenderOptions{Policy: s.notifyPolicy(), Timeout: opts.Notify.Timeout, Retries: opts.Notify.Retries,
		RetryMin: opts.Notify.RetryMin, RetryMax: opts.Notify.RetryMax, TLS: opts.Notify.TLS, Metrics: s.notifyMetrics})
	if opts.Registry != nil {
		s.metrics = newHTTPMetrics(opts.Registry)
		s.auditMetrics = audit.NewMetrics(opts.Registry)
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry}))
	}
	for _, rt := range append(s.routes(), s.hl7Routes()...) {
		if _, ok := audit.Actions[rt.audit]; rt.audit != "" && !ok {
			panic(fmt.Sprintf("route %s %s names unknown audit action %q", rt.method, rt.pattern, rt.audit))
		}
		s.mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	s.mux.Handle("/", s.wrap(route{pattern: "/", access: public, place: onThisNode, handle: notFound}))
	return s
}

// Handler returns the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() []route {
	return []route{
		{method: "GET", pattern: "/v1/health", access: public, place: onThisNode, handle: s.health},
		{method: "GET", pattern: "/fhir/metadata", access: public, place: onThisNode, handle: s.metadata},

		// The web console (locator/console): its files, and its session.
		{method: "GET", pattern: "/ui", access: public, place: onThisNode, handle: consoleRoot},
		{method: "GET", pattern: "/ui/{path...}", access: public, place: onThisNode, handle: s.consoleAsset},
		{method: "POST", pattern: "/ui/session", access: steward, place: onThisNode, audit: "console-sign-in", handle: s.consoleSignIn},
		{method: "GET", pattern: "/ui/session", access: steward, place: onThisNode, handle: s.consoleSessionInfo},
		{method: "DELETE", pattern: "/ui/session", access: public, place: onThisNode, handle: s.consoleSignOut},

		{method: "GET", pattern: "/v1/cluster/fence", access: clusterNode, place: onThisNode, diagnostic: true, handle: s.fenceStatus},
		{method: "GET", pattern: "/v1/cluster/status", access: admin, place: onThisNode, diagnostic: true, handle: s.clusterStatus},
		{method: "GET", pattern: "/v1/cluster/self", access: admin, place: onThisNode, diagnostic: true, handle: s.clusterSelf},
		{method: "GET", pattern: "/v1/cluster/state-hash", access: admin, place: onThisNode, diagnostic: true, handle: s.stateHash},
		{method: "GET", pattern: "/v1/cluster/failed-entries", access: admin, place: onThisNode, diagnostic: true, handle: s.failedEntries},
		{method: "POST", pattern: "/v1/cluster/join", access: admin, place: onLeader, handle: s.clusterJoin},
		{method: "DELETE", pattern: "/v1/cluster/members/{id}", access: admin, place: onLeader, handle: s.clusterRemove},
		{method: "POST", pattern: "/v1/cluster/transfer-leadership", access: admin, place: onLeader, handle: s.transferLeadership},
		{method: "GET", pattern: "/v1/cluster/snapshot", access: admin, place: byConsistency, readsAudit: true, audit: "snapshot-download", streamAnswer: true, handle: s.snapshotSave},
		{method: "POST", pattern: "/v1/cluster/restore", access: admin, place: onThisNode, streamBody: true, audit: "snapshot-restore", handle: s.snapshotRestore},

		{method: "GET", pattern: "/debug/pprof/{profile...}", access: admin, place: onThisNode, diagnostic: true, handle: profile},

		{method: "GET", pattern: "/v1/mpi/config", access: steward, place: byConsistency, handle: s.matchConfig},
		{method: "PUT", pattern: "/v1/mpi/config", access: admin, place: onLeader, handle: s.putMatchConfig},
		{method: "POST", pattern: "/v1/mpi/train", access: admin, place: onLeader, audit: "mpi-train", handle: s.train},
		{method: "POST", pattern: "/v1/mpi/rematch", access: admin, place: onLeader, audit: "mpi-rematch", handle: s.rematch},
		{method: "GET", pattern: "/v1/mpi/scores", access: steward, place: byConsistency, handle: s.matchScores},
		{method: "GET", pattern: "/v1/mpi/explain", access: steward, place: byConsistency, audit: "mpi-explain", handle: s.explain},

		{method: "POST", pattern: "/fhir/Patient", access: participant, place: onLeader, audit: "patient-create", handle: s.createPatient},
		{method: "PUT", pattern: "/fhir/Patient", access: participant, place: onLeader, audit: "patient-update", handle: s.conditionalUpdatePatient},
		{method: "PUT", pattern: "/fhir/Patient/{id}", access: participant, place: onLeader, audit: "patient-update", handle: s.updatePatient},
		{method: "GET", pattern: "/fhir/Patient/{id}", access: participant, place: byConsistency, patientData: true, audit: "patient-read", handle: s.readPatient},
		{method: "GET", pattern: "/fhir/Patient/{id}/_history/{vid}", access: participant, place: byConsistency, patientData: true, audit: "patient-read", handle: vread(s.readPatient)},
		{method: "GET", pattern: "/fhir/Patient", access: participant, place: byConsistency, patientData: true, audit: "patient-search", handle: s.searchPatients},
		{method: "POST", pattern: "/fhir/Patient/_search", access: participant, place: byConsistency, patientData: true, audit: "patient-search", handle: s.searchPatientsPost},
		{method: "POST", pattern: "/fhir/Patient/$match", access: participant, place: byConsistency, patientData: true, audit: "patient-match", handle: s.matchPatient},
		{method: "GET", pattern: "/fhir/Patient/$ihe-pix", access: participant, place: byConsistency, patientData: true, audit: "patient-pix", handle: s.pix},
		{method: "POST", pattern: "/v1/patients/batch", access: participant, place: onLeader, audit: "patient-batch", handle: s.registerBatch},
		{method: "GET", pattern: "/fhir/Person/{euid}", access: participant, place: byConsistency, patientData: true, audit: "person-read", handle: s.readPerson},

		{method: "POST", pattern: "/fhir/DocumentReference", access: participant, place: onLeader, audit: "document-create", handle: s.createDocument},
		{method: "PUT", pattern: "/fhir/DocumentReference/{id}", access: participant, place: onLeader, audit: "document-update", handle: s.createDocument},
		{method: "GET", pattern: "/fhir/DocumentReference/{id}", access: participant, place: byConsistency, patientData: true, audit: "document-read", handle: s.readDocument},
		{method: "GET", pattern: "/fhir/DocumentReference/{id}/_history/{vid}", access: participant, place: byConsistency, patientData: true, audit: "document-read", handle: vread(s.readDocument)},
		{method: "GET", pattern: "/fhir/DocumentReference", access: participant, place: byConsistency, patientData: true, audit: "document-search", handle: s.searchDocuments},
		{method: "POST", pattern: "/fhir", access: participant, place: onLeader, audit: "document-provide", handle: s.provideDocuments},
		{method: "GET", pattern: "/fhir/List/{id}", access: participant, place: byConsistency, patientData: true, audit: "list-read", handle: s.readList},
		{method: "GET", pattern: "/fhir/List/{id}/_history/{vid}", access: participant, place: byConsistency, patientData: true, audit: "list-read", handle: vread(s.readList)},
		{method: "GET", pattern: "/fhir/List", access: participant, place: byConsistency, patientData: true, audit: "list-search", handle: s.searchLists},
		{method: "POST", pattern: "/v1/documents/batch", access: participant, place: onLeader, audit: "document-batch", handle: s.registerDocumentBatch},
		{method: "GET", pattern: "/v1/locate", access: participant, place: byConsistency, patientData: true, audit: "locate", handle: s.locate},

		{method: "GET", pattern: "/v1/review", access: steward, place: byConsistency, audit: "review-list", handle: s.listReviews},
		{method: "GET", pattern: "/v1/review/{seq}", access: steward, place: byConsistency, audit: "review-read", handle: s.showReview},
		{method: "POST", pattern: "/v1/review/{seq}/resolve", access: steward, place: onLeader, audit: "review-resolve", handle: s.resolveReview},
		{method: "POST", pattern: "/v1/steward/link", access: steward, place: onLeader, audit: "steward-link", handle: s.linkRecord},
		{method: "POST", pattern: "/v1/steward/unlink", access: steward, place: onLeader, audit: "steward-unlink", handle: s.unlinkRecord},
		{method: "POST", pattern: "/v1/steward/merge", access: steward, place: onLeader, audit: "steward-merge", handle: s.mergePersons},
		{method: "POST", pattern: "/v1/steward/unmerge", access: steward, place: onLeader, audit: "steward-unmerge", handle: s.unmergePerson},
		{method: "GET", pattern: "/v1/persons/{euid}/history", access: steward, place: byConsistency, audit: "person-history", handle: s.personHistory},

		{method: "GET", pattern: "/fhir/AuditEvent", access: admin, place: byConsistency, readsAudit: true, audit: "audit-search", handle: s.searchAuditEvents},
		{method: "GET", pattern: "/v1/audit", access: admin, place: byConsistency, readsAudit: true, audit: "audit-search", handle: s.listAudit},
		{method: "GET", pattern: "/v1/audit/verify", access: admin, place: byConsistency, readsAudit: true, handle: s.verifyAudit},
		// Node to node: the node credential or a node certificate (or the admin).
		{method: "POST", pattern: "/v1/internal/audit", access: clusterNode, place: onThisNode, diagnostic: true, handle: s.internalAudit},
		{method: "POST", pattern: "/v1/internal/cluster-key", access: clusterNode, place: onThisNode, diagnostic: true, handle: s.internalClusterKey},
		{method: "GET", pattern: "/v1/internal/decided", access: clusterNode, place: onThisNode, handle: s.internalDecided},

		{method: "POST", pattern: "/fhir/Consent", access: participant, place: onLeader, audit: "consent-create", handle: s.createConsent},
		{method: "PUT", pattern: "/fhir/Consent/{id}", access: participant, place: onLeader, audit: "consent-update", handle: s.updateConsent},
		{method: "GET", pattern: "/fhir/Consent/{id}", access: participant, place: byConsistency, audit: "consent-read", handle: s.readConsent},
		{method: "GET", pattern: "/fhir/Consent/{id}/_history/{vid}", access: participant, place: byConsistency, audit: "consent-read", handle: vread(s.readConsent)},
		{method: "GET", pattern: "/fhir/Consent", access: participant, place: byConsistency, audit: "consent-search", handle: s.searchConsents},

		{method: "POST", pattern: "/fhir/Subscription", access: participant, place: onLeader, audit: "subscription-create", handle: s.createSubscription},
		{method: "PUT", pattern: "/fhir/Subscription/{id}", access: participant, place: onLeader, audit: "subscription-update", handle: s.updateSubscription},
		{method: "GET", pattern: "/fhir/Subscription/{id}", access: participant, place: byConsistency, handle: s.readSubscription},
		{method: "GET", pattern: "/fhir/Subscription/{id}/$status", access: participant, place: byConsistency, handle: s.subscriptionStatus},
		{method: "GET", pattern: "/fhir/Subscription", access: participant, place: byConsistency, handle: s.searchSubscriptions},

		{method: "POST", pattern: "/fhir/Organization", access: admin, place: onLeader, handle: s.createOrganization},
		{method: "GET", pattern: "/fhir/Organization", access: participant, place: byConsistency, handle: s.searchOrganizations},
		{method: "GET", pattern: "/fhir/Organization/{id}", access: participant, place: byConsistency, handle: s.readOrganization},
		{method: "GET", pattern: "/fhir/Organization/{id}/_history/{vid}", access: participant, place: byConsistency, handle: vread(s.readOrganization)},
		{method: "PUT", pattern: "/fhir/Organization/{id}", access: admin, place: onLeader, handle: s.updateOrganization},
		{method: "POST", pattern: "/fhir/Organization/{id}/{operation}", access: admin, place: onLeader, handle: s.organizationOperation},
	}
}

// wrap is the single path every call takes: request id, metrics and access log, the
// per-address limits, body limit, placement (forwarding to the leader, consistency),
// authentication and the role check.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rq := &request{id: requestID(r), uri: r.URL.RequestURI(), addr: clientAddress(r)}
		rw := &responseWriter{ResponseWriter: w, node: s.node}
		if !rt.streamAnswer && !strings.HasPrefix(rt.pattern, "/debug/") {
			rw.limit = s.opts.MaxResponseBytes
		}
		rw.Header().Set(HeaderRequestID, rq.id)
		if rt.audit != "" {
			s.beginAudit(rw, r, rt, rq)
		}
		err := s.serve(rw, r, rt, rq)
		if rw.overflow {
			if !rw.held {
				// Part of the answer is out: cut the connection, so that the client sees a
				// broken answer rather than a complete-looking one.
				s.logger.Warn("answer exceeded its bound; connection cut", "route", rt.pattern, "request_id", rq.id, "limit", rw.limit)
				panic(http.ErrAbortHandler)
			}
			rw.discard()
			err = fhir.Errorf(http.StatusInternalServerError, "too-costly", "", "the answer would exceed %d bytes; ask for less (a smaller _count, narrower criteria)", rw.limit)
		}
		if err != nil {
			s.writeError(rw, err)
		}
		status := rw.status
		if status == 0 {
			status = http.StatusOK
		}
		if status == http.StatusUnauthorized && !rq.fromNode {
			// Refused credentials: counted and logged here (bounded), never audited.
			s.edge.authFailed(rq.addr, rt.pattern, rq.id)
			rq.refused = true
		}
		if rq.audit != nil {
			s.finishAudit(r, rw, rq, err)
		}
		if s.metrics != nil {
			s.metrics.observe(rt.pattern, r.Method, status, time.Since(start))
		}
		s.logOutcome(rq, rt.pattern, status)
		if rq.refused {
			return // the edge logged it, within its allowance
		}
		level := slog.LevelInfo
		if rt.access == public && status < 400 {
			level = slog.LevelDebug
		}
		s.logger.Log(r.Context(), level, "http request", "method", model.BoundText(r.Method, 16), "path", model.BoundText(r.URL.Path, maxLoggedPath), "route", rt.pattern,
			"status", status, "duration_ms", time.Since(start).Milliseconds(), "participant", rq.principal.ID,
			"request_id", rq.id, "remote", model.BoundText(r.RemoteAddr, model.MaxSourceLength), "forwarded", rw.forwarded)
	})
}

func (s *Server) serve(w *responseWriter, r *http.Request, rt route, rq *request) error {
	// A node certificate proves a node at once; a node credential needs the body it signs.
	rq.fromNode = s.tlsFromNode(r)
	signed := !rq.fromNode && nodeauth.Signed(r)
	if !rq.fromNode && !signed {
		if err := s.edge.admitAddress(rq.addr); err != nil {
			rq.refused = true
			return err
		}
	}
	if !rt.streamBody {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return fhir.Errorf(http.StatusRequestEntityTooLarge, "too-costly", "", "request body is larger than %d bytes", s.opts.MaxBodyBytes)
			}
			return fhir.Errorf(http.StatusBadRequest, "structure", "", "read request body: %v", err)
		}
		rq.body = body
	}
	if signed {
		rq.fromNode = s.fromNode(r, rq)
		if !rq.fromNode {
			// Not a node after all (a forged or stale credential): a client like any other.
			r.Header.Del(nodeauth.Header)
			s.edge.refuse(refusedUnauthenticated, rq.addr, rt.pattern, rq.id)
			if err := s.edge.admitAddress(rq.addr); err != nil {
				rq.refused = true
				return err
			}
		}
	}
	if !rq.fromNode {
		// Only a node may say it forwarded a request, or whose certificate it verified.
		r.Header.Del(headerForwarded)
		r.Header.Del(headerForwardedParticipant)
		r.Header.Del(headerForwardedBase)
		r.Header.Del(headerForwardedHL7Sender)
		r.Header.Del(headerHL7Origin)
		// A browser's cross-origin change is refused here, at the node the browser
		// called (a forwarded request comes from a node).
		if err := s.browserOrigin(r); err != nil {
			return err
		}
	}
	if rt.pattern == "/fhir" || strings.HasPrefix(rt.pattern, "/fhir/") {
		w.base = s.fhirBase(r, rq)
		pretty, err := negotiate(r, rq.body)
		if err != nil {
			return err
		}
		w.pretty = pretty
	}
	switch rt.place {
	case onLeader:
		if !s.node.IsLeader() {
			return s.forwardToLeader(w, r, rq, nil)
		}
	case byConsistency:
		mode, err := consistency(r)
		if err != nil {
			return err
		}
		rq.consistency = mode
		if mode != "stale" && !s.node.IsLeader() {
			return s.forwardToLeader(w, r, rq, nil)
		}
		if err := s.prepareRead(r.Context(), w, mode, rt.readsAudit); err != nil {
			return err
		}
	}
	if rt.access == public || (rt.access == clusterNode && rq.fromNode) {
		return rt.handle(w, r, rq)
	}
	if !rt.diagnostic && rt.access != clusterNode {
		// Before authentication: a token revoked everywhere must not pass here.
		if err := s.fence.Admit(r.Context()); err != nil {
			return err
		}
	}
	p, err := s.authenticateRequest(w, r, rt, rq)
	if err != nil {
		return err
	}
	rq.principal = p
	if (rt.access == admin || rt.access == clusterNode) && !p.IsAdmin() {
		return fhir.Errorf(http.StatusForbidden, "forbidden", "", "participant %q lacks the admin role this operation needs", p.ID)
	}
	if rt.access == steward && !p.IsSteward() {
		return fhir.Errorf(http.StatusForbidden, "forbidden", "", "participant %q lacks the steward role this operation needs", p.ID)
	}
	if err := s.admit(r, rt, rq); err != nil {
		return err
	}
	return rt.handle(w, r, rq)
}

// consistency reads the read mode from ?consistency= or the X-Rls-Consistency header.
func consistency(r *http.Request) (string, error) {
	mode := r.URL.Query().Get("consistency")
	if mode == "" {
		mode = r.Header.Get(HeaderConsistency)
	}
	switch mode {
	case "":
		return "default", nil
	case "default", "strong", "stale":
		return mode, nil
	}
	return "", fhir.Invalid("consistency", "consistency %q must be default, strong or stale", mode)
}

// prepareRead makes this node's state fit to answer a read of the given mode.
func (s *Server) prepareRead(ctx context.Context, w http.ResponseWriter, mode string, readsAudit bool) error {
	switch {
	case mode == "strong" && readsAudit:
		return s.node.VerifyStrong(ctx)
	case mode == "strong":
		return s.node.VerifyStrongData(ctx)
	case mode == "default" && readsAudit:
		// Read-your-writes: what this leader acknowledged must be visible.
		return s.node.SyncLocal(ctx)
	case mode == "default":
		return s.node.SyncLocalData(ctx)
	default:
		lc := s.node.LastContact()
		w.Header().Set(HeaderLastContact, strconv.FormatInt(lc.Milliseconds(), 10))
		return nil
	}
}

// profile serves Go's runtime profiles to admins (CPU, heap, goroutines…), so an
// operator can see where a slow node spends its time.
func profile(w http.ResponseWriter, r *http.Request, rq *request) error {
	switch name := r.PathValue("profile"); name {
	case "", "index":
		pprof.Index(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
	return nil
}

func notFound(w http.ResponseWriter, r *http.Request, rq *request) error {
	return fhir.Errorf(http.StatusNotFound, "not-supported", "", "no such endpoint: %s %s", r.Method, r.URL.Path)
}

// responseWriter stamps the node's headers on every answer and remembers the status. When
// held (audited routes), it buffers the whole answer until release, so that nothing
// reaches the client before the request's audit entry is committed.
type responseWriter struct {
	http.ResponseWriter
	node *raft.Node
	// base is the FHIR service base of the request (fhirBase), on /fhir routes.
	base string
	// pretty: the client asked for indented JSON (_pretty=true, on /fhir routes).
	pretty    bool
	status    int
	forwarded bool
	held      bool
	buf       bytes.Buffer
	// limit bounds the bytes of the answer (0: unbounded); overflow: a write went beyond
	// it, so the answer is incomplete and must not reach the client as if it were whole.
	limit    int64
	written  int64
	overflow bool
}

// errAnswerTooLarge is what a write beyond the answer's bound returns.
var errAnswerTooLarge = errors.New("the answer exceeds this node's bound on answers")

func (w *responseWriter) WriteHeader(status int) {
	if w.status != 0 {
		return
	}
	w.status = status
	if !w.held {
		w.send()
	}
}

func (w *responseWriter) send() {
	if !w.forwarded {
		w.Header().Set(HeaderNode, w.node.ID())
		w.Header().Set(HeaderAppliedIndex, strconv.FormatUint(w.node.AppliedIndex(), 10))
	}
	w.ResponseWriter.WriteHeader(w.status)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.limit > 0 && w.written+int64(len(b)) > w.limit {
		w.overflow = true
		return 0, errAnswerTooLarge
	}
	w.written += int64(len(b))
	if w.held {
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *responseWriter) Flush() {
	if w.held {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// release sends a held answer.
func (w *responseWriter) release() {
	if !w.held {
		return
	}
	w.held = false
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.send()
	if _, err := w.ResponseWriter.Write(w.buf.Bytes()); err == nil {
		w.buf.Reset()
	}
}

// discard drops a held answer (and the headers describing it) so another can be written.
func (w *responseWriter) discard() {
	w.status, w.forwarded, w.written, w.overflow = 0, false, 0, false
	w.buf.Reset()
	for _, h := range []string{"Content-Type", "Content-Length", "Location", "ETag", "Last-Modified", HeaderRaftIndex, HeaderNode, HeaderAppliedIndex} {
		w.Header().Del(h)
	}
}

// writeJSON answers with v as JSON (the native API).
func writeJSON(w http.ResponseWriter, status int, v any) error {
	return writeAs(w, "application/json", status, v)
}

// writeFHIR answers with a FHIR resource.
func writeFHIR(w http.ResponseWriter, status int, v any) error {
	return writeAs(w, "application/fhir+json", status, v)
}

func writeAs(w http.ResponseWriter, contentType string, status int, v any) error {
	if contentType == "application/fhir+json" {
		v = absolutize(w, v)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	if rw := responseWriterOf(w); rw != nil && rw.pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}

func newRequestID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "unknown"
	}
	return hex.EncodeToString(b[:])
}
