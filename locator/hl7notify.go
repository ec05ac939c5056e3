package locator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rls-hie/rls/locator/audit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// PIX update notifications (IHE ITI-10): when the cross-references of a person change
// (a registration links a record to it, a steward links, unlinks, merges or unmerges, a
// review is resolved, a rematch moves a record), every active HL7 endpoint that wants an
// identifier of the person gets ADT^A31 with the person's identifiers in its domains.
//
// The queue is the replicated link history itself, read in order from each endpoint's
// cursor (the state indexes it by sequence while an endpoint is active). Only the leader
// delivers: one worker per endpoint sends the notifications of a batch of link events one
// by one, each acknowledged before the next, then proposes the endpoint's new cursor
// (hl7-endpoint-cursor). A leader that dies before its cursor commits leaves the batch to
// the next leader, which sends it again: delivery is at least once, in order, and a
// receiver may see a notification twice (A31 carries the person's whole current set, so a
// repeat changes nothing). A receiver that is down or answers AR/CR is retried with
// backoff, never skipped; one that answers AE/CE (the message is wrong for it) is counted
// and passed. Each notification is audited, like a PIX query's answer, before it is sent,
// and the consent rule of PIX applies: an opted-out person, or one who denied the
// endpoint's participant, is not notified about.

// HL7NotifierOptions configures the PIX update notifier.
type HL7NotifierOptions struct {
	// Interval is how often the leader looks for new link events (250 ms).
	Interval time.Duration
	// Batch bounds the link events a worker handles before it records its cursor (100).
	Batch int
	// Responder names rls in the MSH of its notifications (RLS).
	Responder hl7.Responder
	// TLS is the client configuration of mllps:// endpoints (the CA their certificates
	// chain to, and this node's certificate); nil refuses mllps endpoints.
	TLS *tls.Config
	// MaxBackoff caps the wait between attempts at an endpoint that does not accept (30 s).
	MaxBackoff time.Duration
	// AckTimeout bounds the wait for an endpoint's acknowledgement (30 s).
	AckTimeout time.Duration
}

func (o *HL7NotifierOptions) setDefaults() {
	if o.Interval == 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Batch == 0 {
		o.Batch = 100
	}
	if o.Responder.Application == "" {
		o.Responder.Application = "RLS"
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 30 * time.Second
	}
}

type notifyMetrics struct {
	sent *prometheus.CounterVec
}

func newNotifyMetrics(reg *prometheus.Registry) *notifyMetrics {
	m := &notifyMetrics{sent: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rls_hl7_notifications_total",
		Help: "PIX update notifications (ADT^A31) by result: delivered (AA/CA), rejected (AE/CE, not sent again), retried (no answer, AR or CR).",
	}, []string{"result"})}
	if reg != nil {
		if err := reg.Register(m.sent); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				m.sent = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m
}

// RunHL7Notifier delivers PIX update notifications while this node leads, until ctx ends.
// Every node runs it; only the leader's does anything.
func (s *Server) RunHL7Notifier(ctx context.Context, o HL7NotifierOptions) {
	o.setDefaults()
	n := &notifier{s: s, o: o, metrics: newNotifyMetrics(s.opts.Registry), workers: map[string]*notifyWorker{}}
	defer n.stopAll()
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		n.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type notifier struct {
	s       *Server
	o       HL7NotifierOptions
	metrics *notifyMetrics
	workers map[string]*notifyWorker
}

type notifyWorker struct {
	endpoint model.HL7Endpoint
	cancel   context.CancelFunc
	done     chan struct{}
}

// reconcile runs one worker per active endpoint while this node leads, and none otherwise.
func (n *notifier) reconcile(ctx context.Context) {
	if !n.s.node.LeaderReady() {
		n.stopAll()
		return
	}
	var endpoints []model.HL7Endpoint
	if err := n.s.node.State().View(func(tx *state.Tx) error {
		var err error
		endpoints, err = tx.HL7Endpoints()
		return err
	}); err != nil {
		n.s.logger.Error("hl7 notifier: read endpoints", "err", err)
		return
	}
	wanted := map[string]model.HL7Endpoint{}
	for _, e := range endpoints {
		if e.Active() {
			wanted[e.ID] = e
		}
	}
	for id, w := range n.workers {
		e, ok := wanted[id]
		select {
		case <-w.done:
			ok = false // it stopped on its own (leadership lost, or an error): start it again
		default:
		}
		if !ok || e.Address != w.endpoint.Address || !slices.Equal(e.Domains, w.endpoint.Domains) || e.Participant != w.endpoint.Participant {
			w.cancel()
			<-w.done
			delete(n.workers, id)
		}
	}
	for id, e := range wanted {
		if _, running := n.workers[id]; running {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &notifyWorker{endpoint: e, cancel: cancel, done: make(chan struct{})}
		n.workers[id] = w
		go func() {
			defer close(w.done)
			n.run(wctx, e)
		}()
	}
}

func (n *notifier) stopAll() {
	for id, w := range n.workers {
		w.cancel()
		<-w.done
		delete(n.workers, id)
	}
}

// run is one endpoint's worker: batches of link events from its cursor, each batch's
// notifications delivered in order, then the cursor recorded.
func (n *notifier) run(ctx context.Context, e model.HL7Endpoint) {
	log := n.s.logger.With("endpoint", e.ID, "participant", e.Participant)
	conn := &endpointConn{o: n.o, endpoint: e}
	defer conn.close()
	// A new leader reads only once its state holds every entry of earlier terms.
	if err := n.s.node.SyncLocal(ctx); err != nil {
		return
	}
	for ctx.Err() == nil && n.s.node.LeaderReady() {
		cursor, pending, err := n.next(e.ID)
		if err != nil {
			log.Error("hl7 notifier: read the link history", "err", err)
			return
		}
		if len(pending.events) == 0 {
			if !sleep(ctx, n.o.Interval) {
				return
			}
			continue
		}
		delivered, rejected := 0, 0
		for _, euid := range pending.persons {
			msg, disclosed, ok, err := n.notification(e, euid)
			if err != nil {
				log.Error("hl7 notifier: build a notification", "err", err, "euid", euid)
				return
			}
			if !ok {
				continue
			}
			if err := n.audit(ctx, e, euid, disclosed); err != nil {
				log.Warn("hl7 notifier: notification not audited, so not sent; retrying", "err", err)
				return
			}
			result, err := n.deliver(ctx, conn, msg, log)
			if err != nil {
				return // leadership lost or stopping: the next leader sends the batch again
			}
			if result == hl7.AA {
				delivered++
			} else {
				rejected++
			}
		}
		last := pending.events[len(pending.events)-1]
		if _, err := n.s.node.Apply(ctx, command.TypeHL7EndpointCursor, command.Header{Actor: n.s.node.ID()},
			&command.HL7EndpointCursor{ID: e.ID, Cursor: last, Delivered: uint64(delivered), Rejected: uint64(rejected)}); err != nil {
			log.Warn("hl7 notifier: cursor not recorded; the batch will be sent again", "err", err, "cursor", cursor)
			return
		}
		// The next batch starts after this cursor: read it back.
		if err := n.s.node.SyncLocal(ctx); err != nil {
			return
		}
	}
}

// batch is the next link events of an endpoint and the persons they concern, in order.
type batch struct {
	events  []uint64
	persons []string
}

// next reads the link events after an endpoint's cursor: the persons whose
// cross-references they changed, each once.
func (n *notifier) next(id string) (uint64, batch, error) {
	var b batch
	var cursor uint64
	err := n.s.node.State().View(func(tx *state.Tx) error {
		e, ok, err := tx.HL7Endpoint(id)
		if err != nil || !ok || !e.Active() {
			return err
		}
		cursor = e.Cursor
		return tx.LinkEventsAfter(e.Cursor, n.o.Batch, func(ev model.LinkEvent) error {
			b.events = append(b.events, ev.Seq)
			changed, err := crossReferenceChanged(tx, ev)
			if err != nil {
				return err
			}
			if changed && !slices.Contains(b.persons, ev.EUID) {
				b.persons = append(b.persons, ev.EUID)
			}
			return nil
		})
	})
	return cursor, b, err
}

// crossReferenceChanged reports whether a link event changed the set of records of its
// person: every steward action, merge and rematch move does; a registration does when it
// linked a record to a person it was not on already (not a new person, not an update of
// a record that stays where it was).
func crossReferenceChanged(tx *state.Tx, ev model.LinkEvent) (bool, error) {
	switch ev.Action {
	case "linked", "unlinked", "merged", "unmerged":
		return true, nil
	case "review-resolved":
		return len(ev.Reason) >= 4 && ev.Reason[:4] == "link", nil
	case "registered":
		if ev.Outcome != string(mpi.OutcomeLinked) {
			return false, nil
		}
		history, err := tx.LinkHistory(ev.EUID)
		if err != nil {
			return false, err
		}
		for i := len(history) - 1; i >= 0; i-- {
			h := history[i]
			if h.Seq >= ev.Seq || (h.Record != ev.Record && !slices.Contains(h.Records, ev.Record)) {
				continue
			}
			// The record's last event on this person before this one: on it already,
			// unless that event took it away.
			return h.Action == "unlinked" && h.EUID == ev.EUID, nil
		}
		return true, nil
	}
	return false, nil
}

// notification builds the A31 for a person and an endpoint: PID-3 holds the person's
// identifiers in the endpoint's domains (the EUID too when it lists rls's domain or none).
// ok is false when there is nothing to send: the person is gone (merged away), has no
// identifier in those domains, or may not be disclosed to the endpoint's participant.
func (n *notifier) notification(e model.HL7Endpoint, euid string) (msg []byte, records []string, ok bool, err error) {
	wants := func(system string) bool { return len(e.Domains) == 0 || slices.Contains(e.Domains, system) }
	var ids hl7.Field
	err = n.s.node.State().View(func(tx *state.Tx) error {
		p, err := tx.Participant(e.Participant)
		if errors.Is(err, state.ErrNotFound) || (err == nil && (!p.Active || !slices.Contains(policy.Allowed(p), policy.Treat))) {
			return nil
		}
		if err != nil {
			return err
		}
		person, found, err := tx.MPI().Person(euid)
		if err != nil || !found {
			return err
		}
		var keys []string
		for _, k := range person.Records {
			keys = append(keys, string(k))
		}
		directives, err := tx.ConsentsOfRecords(keys)
		if err != nil {
			return err
		}
		if d := policy.Decide(policy.Access{Participant: e.Participant, Purpose: policy.Treat}, directives, false); !d.Disclose {
			return nil
		}
		if wants(fhir.EUIDSystem) {
			ids = append(ids, cxOf(tx, fhir.EUIDSystem, euid))
		}
		for _, k := range person.Records {
			sys, val := k.Split()
			if wants(sys) {
				ids = append(ids, cxOf(tx, sys, val))
				records = append(records, model.PatientID(string(k)))
			}
		}
		return nil
	})
	if err != nil || len(records) == 0 {
		return nil, nil, false, err
	}
	now := time.Now()
	// Addressed to the endpoint's participant (MSH-6), as an answer to it would be.
	to := hl7.Header{Version: "2.5", ProcessingID: "P", SendingFacility: hl7.Comps(e.Participant), Delims: hl7.DefaultDelimiters}
	m := hl7.Reply(to, n.o.Responder, hl7.Comps("ADT", "A31", "ADT_A05"), newControlID(), now)
	pid := hl7.NewSegment("PID")
	pid.Set(3, ids)
	pid.Set(5, pseudoName)
	m.Add(hl7.NewSegment("EVN", hl7.Text("A31"), hl7.Text(hl7.FormatTime(now))), pid, hl7.NewSegment("PV1", nil, hl7.Text("N")))
	return m.Encode(), records, true, nil
}

// audit records the disclosure a notification makes before it is sent.
func (n *notifier) audit(ctx context.Context, e model.HL7Endpoint, euid string, records []string) error {
	id, err := audit.NewID()
	if err != nil {
		return err
	}
	entry := model.AuditEntry{
		ID: id, Observed: time.Now().UTC(), Node: n.s.node.ID(), Source: model.BoundText(e.Address, model.MaxSourceLength),
		Participant: e.Participant, Purpose: string(policy.Treat), Action: "pix-notify", Method: "MLLP",
		Path: "ADT^A31", Query: "endpoint=" + e.ID, EUIDs: []string{euid}, Records: records, Status: 200,
	}
	audit.Bound(&entry)
	actx, cancel := context.WithTimeout(ctx, n.s.opts.ForwardTimeout)
	defer cancel()
	return n.s.audit.Record(actx, entry)
}

// deliver sends one notification until the endpoint accepts it (AA or CA: "AA") or
// rejects its content (AE or CE: "AE"), retrying with backoff anything else. It gives up
// only when this node stops leading or ctx ends.
func (n *notifier) deliver(ctx context.Context, conn *endpointConn, msg []byte, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}) (string, error) {
	wait := 250 * time.Millisecond
	for {
		code, errCode, err := conn.send(ctx, msg)
		switch {
		case err == nil && (code == hl7.AA || code == hl7.CA):
			n.metrics.sent.WithLabelValues("delivered").Inc()
			return hl7.AA, nil
		case err == nil && (code == hl7.AE || code == hl7.CE):
			n.metrics.sent.WithLabelValues("rejected").Inc()
			log.Warn("hl7 notification rejected by the endpoint (AE); not sent again", "err_code", errCode)
			return hl7.AE, nil
		case err == nil:
			err = fmt.Errorf("the endpoint answered %s (ERR-3 %q)", model.BoundText(code, 8), errCode)
		}
		n.metrics.sent.WithLabelValues("retried").Inc()
		log.Info("hl7 notification not accepted; retrying", "err", err, "wait", wait)
		conn.close()
		if !sleep(ctx, wait) || !n.s.node.LeaderReady() {
			return "", errors.New("stopped")
		}
		wait = min(2*wait, n.o.MaxBackoff)
	}
}

// endpointConn is a worker's MLLP connection to its endpoint, opened when needed.
type endpointConn struct {
	o        HL7NotifierOptions
	endpoint model.HL7Endpoint
	mu       sync.Mutex
	client   *hl7.Client
}

// send delivers one message and returns the acknowledgement code and the HL7 error code
// (ERR-3) the endpoint gave, if any.
func (c *endpointConn) send(ctx context.Context, msg []byte) (string, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.o.AckTimeout)
	defer cancel()
	if c.client == nil {
		addr, useTLS, err := model.MLLPAddress(c.endpoint.Address)
		if err != nil {
			return "", "", err
		}
		var cfg *tls.Config
		if useTLS {
			if c.o.TLS == nil {
				return "", "", errors.New("mllps endpoint, but this node has no TLS client configuration")
			}
			cfg = c.o.TLS.Clone()
		}
		if c.client, err = hl7.Dial(ctx, addr, cfg); err != nil {
			return "", "", err
		}
	}
	raw, err := c.client.Exchange(ctx, msg)
	if err != nil {
		return "", "", err
	}
	ack, err := hl7.Parse(raw)
	if err != nil {
		var herr *hl7.Error
		if errors.As(err, &herr) {
			// Located, never quoted: the text may repeat the endpoint's answer.
			return "", "", fmt.Errorf("unreadable acknowledgement (at %s, code %d)", herr.Location, herr.Code)
		}
		return "", "", errors.New("unreadable acknowledgement")
	}
	msa := ack.Segment("MSA")
	if msa == nil {
		return "", "", errors.New("the acknowledgement has no MSA segment")
	}
	// What the endpoint's text says is not kept: it may quote the patient it is about.
	errCode := ""
	if e := ack.Segment("ERR"); e != nil {
		errCode = model.BoundText(e.Value(3, 1), 16)
	}
	return msa.Value(1, 1), errCode, nil
}

func (c *endpointConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		c.client.Close()
		c.client = nil
	}
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
