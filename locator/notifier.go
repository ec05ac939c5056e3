package locator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rls-hie/rls/locator/audit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/notify"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// NotifyOptions configures the delivery of subscription notifications.
type NotifyOptions struct {
	// AllowHTTP admits http:// endpoints; AllowLocal loopback and link-local addresses.
	// Both are for development and tests (rls agent -dev), never production.
	AllowHTTP, AllowLocal bool
	// Timeout bounds one attempt; Retries more attempts are made, with exponential backoff
	// and jitter from RetryMin to RetryMax, before a delivery counts as failed.
	Timeout            time.Duration
	Retries            int
	RetryMin, RetryMax time.Duration
	// ErrorBackoffMax caps the wait before a subscription in error is tried again (it
	// doubles from RetryMax with every failed delivery).
	ErrorBackoffMax time.Duration
	// Poll is how often an idle subscription looks for new events.
	Poll time.Duration
	// Batch is how many events one round of a subscription reads, audits and then
	// reports progress for.
	Batch int
	// TLS verifies HTTPS endpoints (nil: the system's roots).
	TLS *tls.Config
}

func (o *NotifyOptions) setDefaults() {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.RetryMin == 0 {
		o.RetryMin = 200 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 5 * time.Second
	}
	if o.ErrorBackoffMax == 0 {
		o.ErrorBackoffMax = 5 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Batch == 0 {
		o.Batch = 200
	}
}

func (s *Server) notifyPolicy() notify.Policy {
	return notify.Policy{AllowHTTP: s.opts.Notify.AllowHTTP, AllowLocal: s.opts.Notify.AllowLocal}
}

// RunNotifier delivers subscription notifications while this node leads, until ctx ends.
// Every node runs it; only the leader (once ready) delivers, one worker per live
// subscription, each in event order from the subscription's replicated cursor, so a new
// leader resumes where the last report of the old one left it: at least once, in order.
func (s *Server) RunNotifier(ctx context.Context) {
	var wg sync.WaitGroup
	workers := map[string]*subscriptionWorker{}
	stop := func(id string) {
		w := workers[id]
		w.cancel()
		<-w.done // never two workers for one subscription: its order depends on it
		delete(workers, id)
	}
	stopAll := func() {
		for id := range workers {
			stop(id)
		}
	}
	defer wg.Wait()
	defer stopAll()
	tick := time.NewTicker(s.opts.Notify.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !s.node.LeaderReady() {
			stopAll()
			continue
		}
		var live []model.Subscription
		var head uint64
		err := s.node.State().View(func(tx *state.Tx) error {
			subs, err := tx.Subscriptions()
			for _, m := range subs {
				if m.Live() {
					live = append(live, m)
				}
			}
			head = tx.NotifyHead()
			return err
		})
		if err != nil {
			s.logger.Error("notifier: read subscriptions", "err", err)
			continue
		}
		s.notifyMetrics.Events.Set(float64(head))
		for id, w := range workers {
			i := slices.IndexFunc(live, func(m model.Subscription) bool { return m.ID == id })
			// A subscription turned off goes; one its owner changed (endpoint, status: a
			// fix) starts again at once from its cursor, rather than after its error wait.
			if i < 0 || live[i].Version != w.version {
				stop(id)
				if i < 0 {
					s.notifyMetrics.Lag.DeleteLabelValues(id)
				}
			}
		}
		for _, m := range live {
			if _, running := workers[m.ID]; running {
				continue
			}
			wctx, cancel := context.WithCancel(ctx)
			w := &subscriptionWorker{cancel: cancel, done: make(chan struct{}), version: m.Version}
			workers[m.ID] = w
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				defer close(w.done)
				s.deliverSubscription(wctx, id)
			}(m.ID)
		}
	}
}

// subscriptionWorker is the running delivery of one subscription, at one version of it.
type subscriptionWorker struct {
	cancel  context.CancelFunc
	done    chan struct{}
	version uint64
}

// planned is one event of a round: delivered (with its notification and audit entry) or
// passed over (not for this subscriber, or withheld by the policy).
type planned struct {
	seq     uint64
	deliver bool
	n       notify.Notification
	entry   model.AuditEntry
}

// deliverSubscription is one subscription's worker: rounds of up to Batch events, each
// audited before it is sent, sent in order, the progress proposed after the round. A
// failed send stops the round there; the subscription goes to error and is tried again
// after a growing wait, from the event that failed.
func (s *Server) deliverSubscription(ctx context.Context, id string) {
	opts := s.opts.Notify
	var cursor, delivered uint64
	var lastReport time.Time
	started := false
	for ctx.Err() == nil {
		var sub model.Subscription
		var plan []planned
		var head uint64
		var refused error
		err := s.node.State().View(func(tx *state.Tx) error {
			m, ok, err := tx.Subscription(id)
			if err != nil || !ok {
				return err
			}
			sub = m
			if !started || m.Cursor > cursor {
				cursor, delivered, started = m.Cursor, m.Delivered, true
			}
			head = tx.NotifyHead()
			if !m.Live() {
				return nil
			}
			events, err := tx.NotifyEventsAfter(cursor, opts.Batch)
			if err != nil || len(events) == 0 {
				return err
			}
			subscriber, err := tx.Participant(m.Participant)
			if err != nil {
				return err
			}
			access, err := policy.Authorize(subscriber, m.Purpose, "")
			if err == nil && !subscriber.Active {
				err = fmt.Errorf("participant %s is disabled", subscriber.ID)
			}
			if err != nil {
				refused = err
				return nil
			}
			plan, err = s.planEvents(tx, m, policy.NewGuard(access), events, delivered)
			return err
		})
		if err != nil {
			s.logger.Error("notifier: plan a round", "subscription", id, "err", err)
			s.sleep(ctx, opts.RetryMax)
			continue
		}
		if sub.ID == "" || !sub.Live() {
			return
		}
		s.notifyMetrics.Lag.WithLabelValues(id).Set(float64(head - min(head, cursor)))
		if refused != nil {
			// The subscriber may not receive anything now: hold its events, say why.
			s.reportProgress(ctx, sub, cursor, delivered, fmt.Errorf("not allowed: %w", refused))
			s.sleep(ctx, s.errorBackoff(sub.Failures+1))
			continue
		}
		if len(plan) == 0 {
			if cursor > sub.Cursor && sub.Status == model.SubscriptionActive {
				// Idle: record the events passed over without a report.
				if err := s.reportProgress(ctx, sub, cursor, delivered, nil); err == nil {
					lastReport = time.Now()
				}
			}
			s.sleep(ctx, opts.Poll)
			continue
		}
		if err := s.auditNotifications(ctx, plan); err != nil {
			s.logger.Warn("notifier: audit before delivery failed; retrying", "subscription", id, "err", err)
			s.sleep(ctx, opts.RetryMin)
			continue
		}
		var sendErr error
		var failed uint64
		next, count := cursor, delivered
		for _, p := range plan {
			if p.deliver {
				if sendErr = s.notifySender.Send(ctx, p.n); sendErr != nil {
					failed = p.seq
					break
				}
				count++
			}
			next = p.seq
		}
		if ctx.Err() != nil {
			return
		}
		// A round that only passed over events (none for this subscriber) is reported at
		// most once a second: the worker goes on from its own cursor, and a new leader
		// would only pass over them again.
		if sendErr == nil && count == delivered && sub.Status == model.SubscriptionActive && time.Since(lastReport) < time.Second {
			cursor = next
		} else if err := s.reportProgress(ctx, sub, next, count, sendErr); err == nil {
			cursor, delivered, lastReport = next, count, time.Now()
		} else if ctx.Err() == nil {
			s.logger.Warn("notifier: progress not recorded; the round will be sent again", "subscription", id, "err", err)
		}
		s.notifyMetrics.Lag.WithLabelValues(id).Set(float64(head - min(head, next)))
		if sendErr != nil {
			s.logger.Warn("notification delivery failed", "subscription", id, "event", failed, "failures", sub.Failures+1, "err", sendErr)
			s.sleep(ctx, s.errorBackoff(sub.Failures+1))
		}
	}
}

// errorBackoff is the wait before a subscription that failed n times in a row is tried
// again: doubling from RetryMax, capped, with jitter.
func (s *Server) errorBackoff(n uint64) time.Duration {
	o := s.opts.Notify
	d := o.RetryMax
	for i := uint64(1); i < n && d < o.ErrorBackoffMax; i++ {
		d *= 2
	}
	d = min(d, o.ErrorBackoffMax)
	return d/2 + rand.N(d/2+1)
}

func (s *Server) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// reportProgress proposes a subscription's cursor and status after a round (only when
// something changed) and waits until the leader's readers see it.
func (s *Server) reportProgress(ctx context.Context, sub model.Subscription, cursor, delivered uint64, sendErr error) error {
	c := command.SubscriptionCursor{ID: sub.ID, Cursor: cursor, Delivered: delivered, Status: model.SubscriptionActive}
	if sendErr != nil {
		c.Status, c.Failures = model.SubscriptionError, sub.Failures+1
		c.LastError = model.BoundFreeText(sendErr.Error(), model.MaxReasonLength)
	}
	if c.Cursor == sub.Cursor && c.Delivered == sub.Delivered && c.Status == sub.Status && c.Failures == sub.Failures && c.LastError == sub.LastError {
		return nil
	}
	if err := c.Check(); err != nil {
		return err
	}
	a, err := s.node.Apply(ctx, command.TypeSubscriptionCursor, command.Header{RequestID: "notify-" + sub.ID}, &c)
	if err != nil {
		return err
	}
	return s.node.WaitApplied(ctx, a.Index)
}

// auditNotifications records the audit entries of a round's deliveries before any is
// sent (one commit for the round): a notification discloses as a query answer does.
func (s *Server) auditNotifications(ctx context.Context, plan []planned) error {
	if s.opts.auditOff {
		return nil
	}
	var entries []model.AuditEntry
	for _, p := range plan {
		if p.deliver {
			entries = append(entries, p.entry)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return s.audit.Record(ctx, entries...)
}

// planEvents decides, for each event, whether this subscriber is told of it (the topic,
// whose patient it concerns, and the disclosure rule applied with the subscription's
// purpose of use, exactly as for a query), and builds the notifications of those it is.
func (s *Server) planEvents(tx *state.Tx, sub model.Subscription, g *policy.Guard, events []model.NotifyEvent, delivered uint64) ([]planned, error) {
	st := &roundState{guardState: guardState{tx}, persons: map[string]recordPerson{}, own: map[string][]string{}}
	out := make([]planned, 0, len(events))
	now := time.Now().UTC()
	base := s.notificationBase(tx)
	for _, ev := range events {
		p := planned{seq: ev.Seq}
		content, err := s.eventContent(tx, st, sub, g, ev)
		if err != nil {
			return nil, err
		}
		if content != nil {
			number := delivered + 1
			body, err := notificationBody(sub, ev, number, content, base, now)
			if err != nil {
				return nil, err
			}
			p.deliver, delivered = true, number
			p.n = notify.Notification{Subscription: sub.ID, Endpoint: sub.Endpoint, Secret: sub.Secret, EventID: ev.Seq, ContentType: sub.ContentType, Body: body}
			id, err := audit.NewID()
			if err != nil {
				return nil, err
			}
			p.entry = model.AuditEntry{ID: id, Observed: now, Node: s.node.ID(), RequestID: "notify-" + sub.ID + "-" + strconv.FormatUint(ev.Seq, 10),
				Participant: sub.Participant, Purpose: sub.Purpose, Action: "subscription-notify", Method: "POST",
				Path: "/fhir/Subscription/" + sub.ID, Query: "event=" + strconv.FormatUint(ev.Seq, 10),
				EUIDs: content.euids, Records: content.records, Status: 200}
			audit.Bound(&p.entry)
		}
		out = append(out, p)
	}
	return out, nil
}

// eventContent is what a subscriber is told of an event, or nil when the event is not for
// it or the policy withholds it.
type eventContent struct {
	focus    string
	resource any
	created  bool
	context  []string
	euids    []string
	records  []string // FHIR Patient ids, for the audit entry
}

func (s *Server) eventContent(tx *state.Tx, st *roundState, sub model.Subscription, g *policy.Guard, ev model.NotifyEvent) (*eventContent, error) {
	if ev.Topic != sub.Topic {
		return nil, nil
	}
	full := sub.Payload == model.PayloadFullResource
	withheld := func() (*eventContent, error) {
		s.notifyMetrics.Withheld.WithLabelValues(sub.ID).Inc()
		return nil, nil
	}
	switch sub.Topic {
	case model.TopicEncounter:
		if ev.Owner == sub.Participant || ev.Record == "" {
			return nil, nil
		}
		euid, ok, err := st.RecordPerson(ev.Record)
		if err != nil || !ok {
			return nil, err
		}
		own, err := st.ownRecords(euid, sub.Participant)
		if err != nil || len(own) == 0 {
			return nil, err
		}
		if d, err := g.Record(st, ev.Record); err != nil {
			return nil, err
		} else if !d.Disclose {
			return withheld()
		}
		c := &eventContent{focus: "Patient/" + model.PatientID(ev.Record), created: ev.Action == "registered",
			euids: []string{euid}, records: []string{model.PatientID(ev.Record)}}
		c.context = append(c.context, "Person/"+euid)
		for _, k := range own {
			c.context = append(c.context, "Patient/"+model.PatientID(k))
		}
		if full {
			p, err := loadPatientByKey(tx, g, ev.Record)
			if err != nil {
				return nil, err
			}
			c.resource = p
		}
		return c, nil
	case model.TopicDocument:
		if ev.Owner == sub.Participant || ev.Document == "" {
			return nil, nil
		}
		sd, ok, err := tx.Document(ev.Document)
		if err != nil || !ok {
			return nil, err
		}
		euid := sd.Document.PersonEUID
		if sd.Document.PatientRecord != "" {
			e, ok, err := st.RecordPerson(sd.Document.PatientRecord)
			if err != nil || !ok {
				return nil, err
			}
			euid = e
		}
		own, err := st.ownRecords(euid, sub.Participant)
		if err != nil || len(own) == 0 {
			return nil, err
		}
		if ok, err := g.Document(st, sd.Document); err != nil {
			return nil, err
		} else if !ok {
			return withheld()
		}
		c := &eventContent{focus: "DocumentReference/" + sd.Document.ID, created: sd.Version == 1, euids: []string{euid}}
		if sd.Document.PatientRecord != "" {
			c.context = append(c.context, "Patient/"+model.PatientID(sd.Document.PatientRecord))
			c.records = append(c.records, model.PatientID(sd.Document.PatientRecord))
		}
		for _, k := range own {
			c.context = append(c.context, "Patient/"+model.PatientID(k))
		}
		if full {
			body, err := fhir.StoredDocument(sd.Resource, sd.Document, sd.Version, sd.Updated)
			if err != nil {
				return nil, err
			}
			c.resource = body
		}
		return c, nil
	case model.TopicIdentity:
		if ev.Owner != sub.Participant || ev.Record == "" {
			return nil, nil
		}
		// The record is the subscriber's own; the persons around it are disclosed as a
		// query of them would be.
		c := &eventContent{focus: "Patient/" + model.PatientID(ev.Record), records: []string{model.PatientID(ev.Record)}}
		var others []string
		for _, euid := range []string{ev.EUID, ev.Previous} {
			if euid == "" {
				continue
			}
			d, err := g.Person(st, euid)
			if err != nil {
				return nil, err
			}
			if !d.Disclose {
				continue
			}
			c.context = append(c.context, "Person/"+euid)
			c.euids = append(c.euids, euid)
			if euid != ev.EUID {
				continue
			}
			records, err := personRecords(tx, euid)
			if err != nil {
				return nil, err
			}
			for _, k := range records {
				if k != ev.Record {
					others = append(others, "Patient/"+model.PatientID(k))
				}
			}
		}
		// The persons first (new, then previous), then the other records of the new one.
		c.context = append(c.context, others...)
		if full {
			p, err := loadPatientByKey(tx, g, ev.Record)
			if err != nil {
				return nil, err
			}
			c.resource = p
		}
		return c, nil
	}
	return nil, nil
}

// roundState is the state as one round of a subscription reads it: the person of each
// record and the subscriber's records on each person are read once per round (a round of
// events about one busy patient would otherwise decode the same records hundreds of
// times). A round reads one transaction, so the answers cannot change within it.
type roundState struct {
	guardState
	persons map[string]recordPerson
	own     map[string][]string
}

type recordPerson struct {
	euid string
	ok   bool
}

// RecordPerson is guardState's, remembered for the round.
func (r *roundState) RecordPerson(key string) (string, bool, error) {
	if p, ok := r.persons[key]; ok {
		return p.euid, p.ok, nil
	}
	euid, ok, err := r.guardState.RecordPerson(key)
	if err != nil {
		return "", false, err
	}
	r.persons[key] = recordPerson{euid, ok}
	return euid, ok, nil
}

// ownRecords lists the subscriber's records on a person.
func (r *roundState) ownRecords(euid, participant string) ([]string, error) {
	if own, ok := r.own[euid]; ok {
		return own, nil
	}
	records, err := personRecords(r.tx, euid)
	if err != nil {
		return nil, err
	}
	own := []string{}
	for _, k := range records {
		owner, err := recordOwner(r.tx, k)
		if err != nil {
			return nil, err
		}
		if owner == participant {
			own = append(own, k)
		}
	}
	r.own[euid] = own
	return own, nil
}

// notificationBody is the Backport IG notification Bundle of one event: its id is the
// subscription and the event's sequence, the same on every delivery of the event.
func notificationBody(sub model.Subscription, ev model.NotifyEvent, number uint64, c *eventContent, base string, now time.Time) ([]byte, error) {
	ne := fhir.NotificationEvent{Number: number, Action: ev.Action, Time: ev.Time}
	if sub.Payload != model.PayloadEmpty {
		ne.Focus, ne.Context = c.focus, c.context
	}
	status := fhir.SubscriptionStatus(sub, "event-notification", number, []fhir.NotificationEvent{ne})
	focus, resource := "", any(nil)
	if sub.Payload != model.PayloadEmpty {
		focus = c.focus
	}
	fullURL := ""
	if focus != "" && base != "" {
		fullURL = absolute(base, focus)
	}
	if sub.Payload == model.PayloadFullResource {
		resource = c.resource
	}
	b := fhir.Notification(sub.ID+"-"+strconv.FormatUint(ev.Seq, 10), status, focus, fullURL, resource, c.created, now)
	return json.Marshal(b)
}

// notificationBase is the FHIR base of the absolute fullUrl of a notification's focus:
// the configured public base, else the delivering leader's own API address, read from the
// catalog in the transaction the caller holds (a second one could wait forever, see
// state.Store.CheckNesting).
func (s *Server) notificationBase(tx *state.Tx) string {
	if s.opts.PublicBaseURL != "" {
		return strings.TrimRight(s.opts.PublicBaseURL, "/")
	}
	if id := s.node.LeaderID(); id != "" {
		if leader, err := tx.Node(id); err == nil && leader.HTTPAddr != "" {
			return strings.TrimRight(leader.HTTPAddr, "/") + "/fhir"
		}
	}
	return ""
}
