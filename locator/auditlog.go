package locator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/audit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/nodeauth"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Request headers the audit trail records.
const (
	// HeaderOnBehalfOf names the user of the participant's system who made the request.
	HeaderOnBehalfOf = "X-Rls-On-Behalf-Of"
	// headerAuditReport carries, from the leader back to the node that forwarded a
	// request, what the request disclosed (audit.Report), so that node writes the one
	// audit entry.
	headerAuditReport = "X-Rls-Audit-Report"
	// headerAuditedUpstream tells the node that forwarded a request with a streamed answer
	// that the node answering it recorded its audit entry (see auditBeforeStream).
	headerAuditedUpstream = "X-Rls-Audited-Upstream"
)

// The node that received a request from its client records the request's one audit entry
// (see locator/audit): wrap begins it, handlers tell it what they disclose, finishAudit
// completes it and holds the answer (status, headers and body buffered) until the entry
// is committed.

// disclose notes persons (EUIDs) and source records (Patient ids) the request disclosed or
// changed. Handlers call it with what they put in the answer.
func (rq *request) disclose(euids []string, records []string) {
	rq.audit.Disclose(euids, records)
}

// disclosePatient notes a Patient resource put in an answer: its record and its person.
func (rq *request) disclosePatient(p fhir.Patient) {
	var euids []string
	for _, id := range p.Identifier {
		if id.System == fhir.EUIDSystem {
			euids = append(euids, id.Value)
		}
	}
	rq.disclose(euids, []string{p.ID})
}

// disclosePerson notes a Person resource put in an answer: the person and its records.
func (rq *request) disclosePerson(p fhir.Person) {
	var records []string
	for _, l := range p.Link {
		if id, ok := strings.CutPrefix(l.Target.Reference, "Patient/"); ok {
			records = append(records, id)
		}
	}
	rq.disclose([]string{p.ID}, records)
}

// recordIDs maps record keys (system|value) to their Patient ids, which carry no MRN.
func recordIDs(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = model.PatientID(k)
	}
	return out
}

// beginAudit starts the entry of an audited request and holds its answer back.
func (s *Server) beginAudit(w *responseWriter, r *http.Request, rt route, rq *request) {
	if s.opts.auditOff {
		return
	}
	w.held = !rt.streamAnswer
	rq.audit = audit.Begin(time.Now(), audit.Request{Node: s.node.ID(), Source: r.RemoteAddr, RequestID: rq.id,
		OnBehalfOf: r.Header.Get(HeaderOnBehalfOf), Action: rt.audit, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		// A search by POST carries its query in the body, as $match does.
		QueryInBody: rt.pattern == "/fhir/Patient/_search"})
}

// finishAudit completes the entry with the outcome and records it (or, for a request a
// node forwarded, reports it), then releases the held answer — or replaces it with a 503
// when the entry could not be recorded.
//
// A request nobody authenticated is not recorded: it was refused before it could touch
// anything (401, or 400/413/429 before authentication), and recording it would let anyone
// without credentials write into every node's replicated state. Nor is a participant's
// request refused by its rate limit (429): it read and changed nothing, and recording each
// would let one participant flood the log it is limited to protect. The edge counts and
// logs both (rls_http_refused_total).
func (s *Server) finishAudit(r *http.Request, w *responseWriter, rq *request, serveErr error) {
	o := audit.Outcome{Participant: rq.principal.ID, Tentative: rq.tentative, Purpose: rq.purpose, BreakGlass: rq.breakGlass,
		Body: rq.body, Status: w.status, Failed: serveErr != nil}
	if serveErr != nil {
		o.Code = apiError(serveErr).Issue.Code
	}
	e := rq.audit.Complete(o)

	if rq.fromNode && nodeauth.Signed(r) {
		// Forwarded by another node, whose credential serve verified: it records the entry.
		w.Header().Set(headerAuditReport, audit.ReportOf(e).Encode())
		s.logger.Debug("audit left to the forwarding node", "request_id", rq.id)
		s.auditMetrics.Entry("reported", 0)
		w.release()
		return
	}
	if e.Participant == "" || (rq.refused && e.Status == http.StatusTooManyRequests) {
		s.auditMetrics.Entry("not-admitted", 0)
		w.release()
		return
	}
	if err := command.CheckAuditEntry("", &e); err != nil {
		// Every field was bounded as it was taken; this would be a bug, and the FSM would
		// refuse the whole batch with it.
		s.logger.Error("audit entry out of bounds", "err", err, "request_id", rq.id)
		audit.Bound(&e)
	}

	start := time.Now()
	id, err := audit.NewID()
	if err == nil {
		e.ID = id
		err = s.audit.Record(r.Context(), e)
	}
	result := "recorded"
	if err != nil {
		result = "failed"
	}
	s.auditMetrics.Entry(result, time.Since(start))
	if err != nil {
		s.logger.Error("audit entry not recorded; answer withheld", "err", err, "request_id", rq.id, "action", e.Action, "participant", e.Participant)
		w.discard()
		fe := fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "the request could not be audited, so it is not answered; retry shortly")
		if code := audit.Actions[e.Action].Code; code == "R" || code == "E" {
			// A read changed nothing and may be retried; a write was applied, its answer
			// withheld: the caller must check before retrying.
			fe = notApplied(fe)
		}
		s.writeError(w, fe)
	}
	if rq.audit.BeforeStream && w.status == 0 {
		return // recorded; the handler writes the answer now
	}
	w.release()
}

// auditBeforeStream records the entry of a route whose answer is streamed (a snapshot
// download: the whole state, too large to hold back) before anything is written, as a
// disclosure with status 200: better a record of a download that then broke off than a
// download without a record. It returns false when the entry could not be recorded; the
// 503 is then written and the handler must write nothing more.
//
// The node that streams records the entry itself, also when a follower forwarded the
// request (the follower copies the stream and could only record after it): it marks the
// answer with headerAuditedUpstream so that the follower records nothing.
func (s *Server) auditBeforeStream(r *http.Request, w *responseWriter, rq *request) bool {
	if rq.audit == nil {
		return true
	}
	forwarded := nodeauth.Signed(r)
	r.Header.Del(nodeauth.Header)
	rq.audit.BeforeStream = true
	w.held = true
	s.finishAudit(r, w, rq, nil)
	rq.audit = nil
	if w.status != 0 {
		return false // the 503, released by finishAudit
	}
	w.held = false
	if forwarded {
		w.Header().Set(headerAuditedUpstream, s.node.ID())
	}
	return true
}

// adoptReport takes what the leader reported about a request this node forwarded.
func (rq *request) adoptReport(h http.Header) {
	raw := h.Get(headerAuditReport)
	h.Del(headerAuditReport)
	if h.Get(headerAuditedUpstream) != "" {
		// The leader recorded the entry of a streamed answer itself.
		h.Del(headerAuditedUpstream)
		rq.audit = nil
		return
	}
	if rq.audit == nil || raw == "" {
		return
	}
	rep, ok := audit.DecodeReport(raw)
	if !ok {
		return
	}
	rq.audit.Adopt(rep)
	rq.purpose, rq.breakGlass = rep.Purpose, rep.BreakGlass
}

// commitAudit is the Batcher's commit: on the leader it proposes the batch; on a follower
// it sends the batch to the leader's internal endpoint. It retries (a new leader, a lost
// answer) until the Batcher's timeout: the log appends an entry ID once.
func (s *Server) commitAudit(ctx context.Context, entries []model.AuditEntry) error {
	s.auditMetrics.Commit(len(entries))
	wait := 20 * time.Millisecond
	for {
		var err error
		if s.node.IsLeader() {
			err = s.applyAudit(ctx, entries)
		} else {
			err = s.sendAudit(ctx, entries)
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("record %d audit entries: %w", len(entries), err)
		case <-time.After(wait):
			wait = min(2*wait, 500*time.Millisecond)
		}
	}
}

func (s *Server) applyAudit(ctx context.Context, entries []model.AuditEntry) error {
	c := &command.AuditAppend{Entries: entries}
	var key []byte
	if err := s.node.State().View(func(tx *state.Tx) error { key = tx.ClusterKey(); return nil }); err != nil {
		return err
	}
	if key == nil {
		var err error
		if c.ClusterKey, err = nodeauth.NewClusterKey(); err != nil {
			return err
		}
	}
	_, err := s.node.Apply(ctx, command.TypeAuditAppend, command.Header{Actor: s.node.ID()}, c)
	return err
}

// sendAudit hands a batch to the leader, in requests that fit under the leader's body limit.
func (s *Server) sendAudit(ctx context.Context, entries []model.AuditEntry) error {
	limit := int(s.opts.MaxBodyBytes / 2)
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && (n == 0 || size+entries[n].Msgsize() <= limit) {
			size += entries[n].Msgsize()
			n++
		}
		if err := s.sendAuditChunk(ctx, entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// sendAuditChunk sends entries to the leader, authenticated with this node's credential.
func (s *Server) sendAuditChunk(ctx context.Context, entries []model.AuditEntry) error {
	key, err := s.clusterKey(ctx)
	if err != nil {
		return err
	}
	body, err := (&command.AuditAppend{Entries: entries}).MarshalMsg(nil)
	if err != nil {
		return fmt.Errorf("encode audit batch: %w", err)
	}
	leader, err := s.waitLeader(ctx)
	if err != nil {
		return err
	}
	const path = "/v1/internal/audit"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(leader.HTTPAddr, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build audit batch request: %w", err)
	}
	nodeauth.SignRequest(req, key, s.node.ID(), body)
	req.Header.Set("Content-Type", "application/msgpack")
	resp, err := s.auditClient.Do(req)
	if err != nil {
		return fmt.Errorf("send audit batch to leader %s: %w", leader.ID, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("leader %s refused the audit batch: %d %s", leader.ID, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// internalAudit is POST /v1/internal/audit: a follower's batch of audit entries, recorded
// by the leader. Only a node credential is accepted.
func (s *Server) internalAudit(w http.ResponseWriter, r *http.Request, rq *request) error {
	if _, err := s.verifyNode(r, r.URL.RequestURI(), rq.body); err != nil {
		return unauthorized("internal endpoint: %v", err)
	}
	if !s.node.IsLeader() {
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "node %s is not the leader", s.node.ID()))
	}
	var c command.AuditAppend
	if _, err := c.UnmarshalMsg(rq.body); err != nil {
		return fhir.Errorf(http.StatusBadRequest, "structure", "", "decode audit batch: %v", err)
	}
	for i := range c.Entries {
		if c.Entries[i].ID == "" || model.CheckID("id", c.Entries[i].ID) != nil {
			return fhir.Invalid("id", "audit entry without a well-formed id")
		}
		audit.Bound(&c.Entries[i])
	}
	if err := s.audit.Record(r.Context(), c.Entries...); err != nil {
		return fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "%v", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// locatedRecords lists the Patient ids of the records a locate answer names.
func locatedRecords(res LocateResult) []string {
	var keys []string
	for _, l := range res.Locations {
		for _, id := range l.Identifiers {
			keys = append(keys, string(mpi.KeyOf(id.System, id.Value)))
		}
	}
	return recordIDs(keys)
}

// discloseRecordKeys notes source records given by key (system|value), with the persons
// they belong to now.
func (s *Server) discloseRecordKeys(rq *request, keys ...string) {
	if rq.audit == nil {
		return
	}
	_ = s.node.State().View(func(tx *state.Tx) error {
		discloseRecordKeysTx(tx, rq, keys...)
		return nil
	})
}

// discloseRecordKeysTx is discloseRecordKeys inside a transaction the caller holds.
func discloseRecordKeysTx(tx *state.Tx, rq *request, keys ...string) {
	if rq.audit == nil {
		return
	}
	var euids []string
	for _, k := range keys {
		if sr, err := tx.MPI().Record(mpi.RecordKey(k)); err == nil && sr != nil {
			euids = append(euids, sr.EUID)
		}
	}
	rq.disclose(euids, recordIDs(keys))
}
