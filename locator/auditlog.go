package locator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/audit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Request headers the audit trail records.
const (
	// HeaderOnBehalfOf names the user of the participant's system who made the request.
	HeaderOnBehalfOf = "X-Rls-On-Behalf-Of"
	// headerNodeCredential authenticates a call from another node of the cluster (see
	// audit.Sign).
	headerNodeCredential = "X-Rls-Node-Credential"
	// headerAuditReport carries, from the leader back to the node that forwarded a
	// request, what the request disclosed, so that node writes the one audit entry.
	headerAuditReport = "X-Rls-Audit-Report"
	// headerAuditedUpstream tells the node that forwarded a request with a streamed answer
	// that the node answering it recorded its audit entry (see auditBeforeStream).
	headerAuditedUpstream = "X-Rls-Audited-Upstream"
)

// Exactly one audit entry per request, written by the node that received the request from
// the client (the entry node):
//
//   - a request served where it arrived (a stale read on a follower, anything on the
//     leader) is recorded there;
//   - a request a follower forwards to the leader carries the follower's node credential;
//     the leader then records nothing and returns, in headerAuditReport, the participant it
//     authenticated and what it disclosed, which the follower records with the outcome the
//     client sees — also when the leader never answered (killed mid-request: the entry
//     says 502/503 and discloses nothing, which is what reached the client);
//   - a forwarded request whose credential does not verify is recorded by both nodes:
//     twice is an annoyance, never recording it would be a hole.
//
// The answer is held back (status, headers and body buffered) until the entry is durably
// committed through Raft; if it cannot be, the client gets 503 and none of the data.
// Entries carry a random ID and the FSM appends an ID once, so a batch that is retried
// (a leader died after committing it, before answering) is not recorded twice.

// auditState is the audit entry a request builds as it runs.
type auditState struct {
	entry   model.AuditEntry
	euids   []string
	records []string
	// reported: the leader reported on a request this node forwarded.
	reported bool
	// queryFromBody: the query is the request body ($match).
	queryFromBody bool
	// beforeStream: the entry is recorded before the answer is written (auditBeforeStream),
	// so a recorded entry releases nothing.
	beforeStream bool
	// outcome is the issue code the leader reported for a forwarded request.
	outcome string
}

// auditReport is what headerAuditReport carries (base64 of its JSON).
type auditReport struct {
	Participant string   `json:"participant,omitempty"`
	Outcome     string   `json:"outcome,omitempty"`
	Purpose     string   `json:"purpose,omitempty"`
	BreakGlass  string   `json:"break_glass,omitempty"`
	EUIDs       []string `json:"euids,omitempty"`
	Records     []string `json:"records,omitempty"`
}

// disclose notes persons (EUIDs) and source records (Patient ids) the request disclosed or
// changed. Handlers call it with what they put in the answer.
func (rq *request) disclose(euids []string, records []string) {
	if rq.audit == nil {
		return
	}
	for _, e := range euids {
		if e != "" && !slices.Contains(rq.audit.euids, e) {
			rq.audit.euids = append(rq.audit.euids, e)
		}
	}
	for _, r := range records {
		if r != "" && !slices.Contains(rq.audit.records, r) {
			rq.audit.records = append(rq.audit.records, r)
		}
	}
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
	// Every field taken from the request is bounded (model's audit limits), whatever it
	// was: the entry is copied to every node.
	rq.audit = &auditState{entry: model.AuditEntry{
		Observed:   time.Now().UTC(),
		Node:       s.node.ID(),
		Source:     boundText(r.RemoteAddr, model.MaxSourceLength),
		RequestID:  rq.id,
		OnBehalfOf: boundText(r.Header.Get(HeaderOnBehalfOf), model.MaxOnBehalfOfLength),
		Action:     rt.audit,
		Method:     boundText(r.Method, model.MaxActionLength),
		Path:       boundText(r.URL.Path, model.MaxAuditPathLength),
		Query:      boundFreeText(r.URL.RawQuery, model.MaxAuditQueryLength),
	}}
	if rt.audit == "patient-match" || rt.pattern == "/fhir/Patient/_search" {
		// $match's query is its body (a Parameters resource), as is a search by POST's.
		rq.audit.queryFromBody = true
	}
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
	a := rq.audit
	e := a.entry
	// What the policy point judged (normalised, HPAYMT → PAYMENT), here or, for a forwarded
	// request, at the leader (adoptReport).
	e.Purpose = boundText(rq.purpose, model.MaxPurposeLength)
	e.BreakGlass = boundFreeText(rq.breakGlass, model.MaxBreakGlassLength)
	if a.queryFromBody {
		// $match's query is its body (a Parameters resource).
		e.Query = boundFreeText(string(rq.body), model.MaxAuditQueryLength)
	}
	if !a.reported {
		e.Participant = rq.principal.ID
		if e.Participant == "" {
			// Forwarded, and the leader never answered: whom this node's state says it was.
			e.Participant = rq.tentative
		}
	}
	e.EUIDs, e.Records = boundIDs(a.euids), boundIDs(a.records)
	e.Status = w.status
	if e.Status == 0 {
		e.Status = http.StatusOK
	}
	switch {
	case serveErr != nil:
		e.Outcome = apiError(serveErr).Issue.Code
	case a.reported:
		e.Outcome = boundText(a.outcome, model.MaxOutcomeLength)
	}

	if rq.fromNode && r.Header.Get(headerNodeCredential) != "" {
		// Forwarded by another node, whose credential serve verified: it records the entry.
		rep, _ := json.Marshal(auditReport{Participant: e.Participant, Outcome: e.Outcome, Purpose: e.Purpose, BreakGlass: e.BreakGlass, EUIDs: e.EUIDs, Records: e.Records})
		w.Header().Set(headerAuditReport, base64.StdEncoding.EncodeToString(rep))
		s.logger.Debug("audit left to the forwarding node", "request_id", rq.id)
		s.auditMetrics.entry("reported", 0)
		w.release()
		return
	}
	if e.Participant == "" || (rq.refused && e.Status == http.StatusTooManyRequests) {
		s.auditMetrics.entry("not-admitted", 0)
		w.release()
		return
	}
	if err := command.CheckAuditEntry("", &e); err != nil {
		// Every field was bounded above; this would be a bug, and the FSM would refuse the
		// whole batch with it.
		s.logger.Error("audit entry out of bounds", "err", err, "request_id", rq.id)
		boundAuditEntry(&e)
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
	s.auditMetrics.entry(result, time.Since(start))
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
	if a.beforeStream && w.status == 0 {
		return // recorded; the handler writes the answer now
	}
	w.release()
}

// boundAuditEntry holds every field of an entry to the audit limits the FSM checks
// (command.CheckAuditEntry), cutting and cleaning what is beyond them: one bad entry must
// never make the FSM refuse a whole batch of others. Entries this node builds are bounded as
// they are made; this is for entries another node sends (a node of an older release).
func boundAuditEntry(e *model.AuditEntry) {
	for _, f := range []struct {
		v   *string
		max int
	}{
		{&e.Node, model.MaxIDLength}, {&e.Source, model.MaxSourceLength}, {&e.RequestID, model.MaxRequestIDLength},
		{&e.Participant, model.MaxIDLength}, {&e.OnBehalfOf, model.MaxOnBehalfOfLength}, {&e.Purpose, model.MaxPurposeLength},
		{&e.Action, model.MaxActionLength}, {&e.Method, model.MaxActionLength}, {&e.Path, model.MaxAuditPathLength},
		{&e.Outcome, model.MaxOutcomeLength},
	} {
		*f.v = boundText(*f.v, f.max)
	}
	e.BreakGlass = boundFreeText(e.BreakGlass, model.MaxBreakGlassLength)
	e.Query = boundFreeText(e.Query, model.MaxAuditQueryLength)
	e.EUIDs, e.Records = boundIDs(e.EUIDs), boundIDs(e.Records)
}

// boundIDs sorts the ids an entry names, keeping only well-formed ones, at most
// model.MaxAuditListLength of them.
func boundIDs(ids []string) []string {
	out := sorted(slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return model.CheckID("id", id) != nil }))
	return out[:min(len(out), model.MaxAuditListLength)]
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
	forwarded := r.Header.Get(headerNodeCredential) != ""
	r.Header.Del(headerNodeCredential)
	rq.audit.beforeStream = true
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

func sorted(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	out := slices.Clone(v)
	slices.Sort(out)
	return out
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
	b, err := base64.StdEncoding.DecodeString(raw)
	var rep auditReport
	if err != nil || json.Unmarshal(b, &rep) != nil {
		return
	}
	rq.audit.reported = true
	rq.audit.entry.Participant = boundText(rep.Participant, model.MaxIDLength)
	rq.audit.outcome = rep.Outcome
	rq.purpose, rq.breakGlass = rep.Purpose, rep.BreakGlass
	rq.disclose(rep.EUIDs, rep.Records)
}

// signForward adds this node's credential to a request it forwards: the leader then knows
// another node sends it (the per-address limits were applied here), and, on an audited
// route, leaves the audit entry to this node, which must then have the key.
func (s *Server) signForward(ctx context.Context, req *http.Request, rq *request) error {
	if rq.audit == nil {
		if key := s.localClusterKey(); key != nil {
			req.Header.Set(headerNodeCredential, audit.Sign(key, s.node.ID(), time.Now(), req.Method, req.URL.RequestURI(), rq.body))
		}
		return nil
	}
	key, err := s.clusterKey(ctx)
	if err != nil {
		return err
	}
	req.Header.Set(headerNodeCredential, audit.Sign(key, s.node.ID(), time.Now(), req.Method, req.URL.RequestURI(), rq.body))
	return nil
}

func (s *Server) verifyNode(cred, method, uri string, body []byte) (string, error) {
	var key []byte
	if err := s.node.State().View(func(tx *state.Tx) error { key = tx.ClusterKey(); return nil }); err != nil {
		return "", err
	}
	return audit.Verify(key, cred, time.Now(), method, uri, body)
}

// localClusterKey returns the cluster key this node holds, or nil.
func (s *Server) localClusterKey() []byte {
	var key []byte
	_ = s.node.State().View(func(tx *state.Tx) error { key = tx.ClusterKey(); return nil })
	return key
}

// clusterKey returns the cluster key, drawing it on a leader if the cluster has none yet,
// and waiting for it to arrive on a follower.
func (s *Server) clusterKey(ctx context.Context) ([]byte, error) {
	read := func() []byte {
		var key []byte
		_ = s.node.State().View(func(tx *state.Tx) error { key = tx.ClusterKey(); return nil })
		return key
	}
	if key := read(); key != nil {
		return key, nil
	}
	for {
		// Every leader draws the key when it becomes ready (raft.Node), so a follower only
		// waits for it to arrive through the log.
		if s.node.IsLeader() {
			if err := s.ensureClusterKey(ctx); err != nil {
				return nil, err
			}
		}
		_ = s.node.CatchUp(ctx)
		if key := read(); key != nil {
			return key, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no cluster key yet: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ensureClusterKey makes the leader draw the cluster key if the state has none.
func (s *Server) ensureClusterKey(ctx context.Context) error {
	var key []byte
	if err := s.node.State().View(func(tx *state.Tx) error { key = tx.ClusterKey(); return nil }); err != nil {
		return err
	}
	if key != nil {
		return nil
	}
	return s.applyAudit(ctx, nil)
}

// commitAudit is the Batcher's commit: on the leader it proposes the batch; on a follower
// it sends the batch to the leader's internal endpoint. It retries (a new leader, a lost
// answer) until the Batcher's timeout: the log appends an entry ID once.
func (s *Server) commitAudit(ctx context.Context, entries []model.AuditEntry) error {
	s.auditMetrics.commit(len(entries))
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
		if c.ClusterKey, err = audit.NewClusterKey(); err != nil {
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
	req.Header.Set(headerNodeCredential, audit.Sign(key, s.node.ID(), time.Now(), http.MethodPost, path, body))
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
	if _, err := s.verifyNode(r.Header.Get(headerNodeCredential), r.Method, r.URL.RequestURI(), rq.body); err != nil {
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
		boundAuditEntry(&c.Entries[i])
	}
	if err := s.audit.Record(r.Context(), c.Entries...); err != nil {
		return fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "%v", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// internalClusterKey is POST /v1/internal/cluster-key: the leader draws the cluster key if
// none exists (a leader does when it becomes ready; this serves nodes of older releases and
// the admin). It returns nothing; the key arrives through the log.
func (s *Server) internalClusterKey(w http.ResponseWriter, r *http.Request, rq *request) error {
	if !s.node.IsLeader() {
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "node %s is not the leader", s.node.ID()))
	}
	if err := s.ensureClusterKey(r.Context()); err != nil {
		return err
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
