package locator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/rls-hie/rls/locator/console"
	"github.com/rls-hie/rls/locator/fence"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Health is the answer of GET /v1/health.
type Health struct {
	Status       string `json:"status"`
	Node         string `json:"node"`
	State        string `json:"state"`
	Leader       string `json:"leader,omitempty"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Lag          uint64 `json:"lag"`
	Reason       string `json:"reason,omitempty"`
	Version      string `json:"version,omitempty"`
}

// health is ok only when the node knows a leader and has applied all but HealthMaxLag of
// the entries it knows to be committed (Consul's autopilot uses 250 the same way).
func (s *Server) health(w http.ResponseWriter, r *http.Request, rq *request) error {
	local := s.node.Local()
	h := Health{Status: "ok", Node: local.ID, State: local.State, Leader: local.LeaderID,
		CommitIndex: local.CommitIndex, AppliedIndex: local.AppliedIndex, Version: s.opts.Version}
	if local.CommitIndex > local.AppliedIndex {
		h.Lag = local.CommitIndex - local.AppliedIndex
	}
	status := http.StatusOK
	switch {
	case local.LeaderID == "":
		h.Status, h.Reason, status = "unavailable", "no known leader", http.StatusServiceUnavailable
	case h.Lag > s.opts.HealthMaxLag:
		h.Status, h.Reason, status = "catching-up", fmt.Sprintf("%d committed entries not yet applied (limit %d)", h.Lag, s.opts.HealthMaxLag), http.StatusServiceUnavailable
	}
	return writeJSON(w, status, h)
}

// MemberStatus is one member in GET /v1/cluster/status: its configuration and, when it
// answered, its own view of itself.
type MemberStatus struct {
	raft.Member
	State         string `json:"state"`
	Term          uint64 `json:"term,omitempty"`
	LastLogIndex  uint64 `json:"last_log_index,omitempty"`
	CommitIndex   uint64 `json:"commit_index,omitempty"`
	AppliedIndex  uint64 `json:"applied_index"`
	LastContactMS int64  `json:"last_contact_ms"`
	Error         string `json:"error,omitempty"`
}

// ClusterStatus is the answer of GET /v1/cluster/status.
type ClusterStatus struct {
	Leader  string         `json:"leader"`
	Term    uint64         `json:"term"`
	Node    string         `json:"node"`
	Members []MemberStatus `json:"members"`
}

// clusterStatus asks every member for its own view, in parallel, so the operator sees each
// node's state and indexes rather than what this node guesses about them.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request, rq *request) error {
	members, err := s.node.Members()
	if err != nil {
		return err
	}
	local := s.node.Local()
	out := ClusterStatus{Leader: local.LeaderID, Term: local.Term, Node: local.ID, Members: make([]MemberStatus, len(members))}
	var wg sync.WaitGroup
	for i, m := range members {
		out.Members[i] = MemberStatus{Member: m, LastContactMS: -1}
		if m.ID == local.ID {
			out.Members[i].fill(local)
			continue
		}
		if m.HTTPAddr == "" {
			out.Members[i].State, out.Members[i].Error = "unknown", "no HTTP address in the catalog"
			continue
		}
		wg.Add(1)
		go func(ms *MemberStatus) {
			defer wg.Done()
			self, err := s.askSelf(r, ms.HTTPAddr)
			if err != nil {
				ms.State, ms.Error = "unreachable", err.Error()
				return
			}
			ms.fill(self)
		}(&out.Members[i])
	}
	wg.Wait()
	return writeJSON(w, http.StatusOK, out)
}

func (m *MemberStatus) fill(l raft.LocalStatus) {
	m.State, m.Term, m.LastLogIndex, m.CommitIndex, m.AppliedIndex, m.LastContactMS = l.State, l.Term, l.LastLogIndex, l.CommitIndex, l.AppliedIndex, l.LastContactMS
}

// askSelf asks a peer for its own status with the caller's credentials: its token, or the
// participant its client certificate named, vouched for by this node's certificate.
func (s *Server) askSelf(r *http.Request, base string) (raft.LocalStatus, error) {
	var l raft.LocalStatus
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, base+"/v1/cluster/self", nil)
	if err != nil {
		return l, err
	}
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	} else if c := s.sessionCookie(r); c != "" {
		// The web console's session: every node can open it (it is sealed with the
		// cluster's key).
		req.AddCookie(&http.Cookie{Name: console.CookieName(s.opts.Console), Value: c})
	}
	if id, ok := clientCertParticipant(r); ok {
		req.Header.Set(headerForwarded, s.node.ID())
		req.Header.Set(headerForwardedParticipant, id)
	}
	resp, err := s.peers.Do(req)
	if err != nil {
		return l, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return l, fmt.Errorf("status %d", resp.StatusCode)
	}
	return l, json.NewDecoder(resp.Body).Decode(&l)
}

func (s *Server) clusterSelf(w http.ResponseWriter, r *http.Request, rq *request) error {
	return writeJSON(w, http.StatusOK, s.node.Local())
}

// StateHash is the answer of GET /v1/cluster/state-hash.
type StateHash struct {
	Node  string `json:"node"`
	Index uint64 `json:"index"`
	Hash  string `json:"hash"`
}

// stateHash digests this node's state once it holds everything the node knows to be
// committed, so that nodes compared after writes stop agree on the latest index.
func (s *Server) stateHash(w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.node.CatchUp(ctx); err != nil {
		return err
	}
	d, err := s.node.State().Hash()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, StateHash{Node: s.node.ID(), Index: d.Index, Hash: d.Hash})
}

// FailedEntries is the answer of GET /v1/cluster/failed-entries: the log entries this
// node (like every node) could not apply and skipped.
type FailedEntries struct {
	Node    string              `json:"node"`
	Index   uint64              `json:"index"`
	Entries []state.FailedEntry `json:"entries"`
}

// failedEntries serves GET /v1/cluster/failed-entries.
func (s *Server) failedEntries(w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.node.CatchUp(ctx); err != nil {
		return err
	}
	out := FailedEntries{Node: s.node.ID(), Entries: []state.FailedEntry{}}
	err := s.node.State().View(func(tx *state.Tx) error {
		out.Index, _ = tx.Applied()
		failed, err := tx.FailedEntries()
		if failed != nil {
			out.Entries = failed
		}
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// JoinRequest is the body of POST /v1/cluster/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

func (s *Server) clusterJoin(w http.ResponseWriter, r *http.Request, rq *request) error {
	var j JoinRequest
	if err := decodeJSON(rq.body, &j); err != nil {
		return err
	}
	if err := model.ValidateID("id", j.ID); err != nil {
		return fhir.Invalid("id", "%v", err)
	}
	if _, _, err := net.SplitHostPort(j.RaftAddr); err != nil {
		return fhir.Invalid("raft_addr", "raft_addr %q must be host:port", fhir.Clip(j.RaftAddr))
	}
	if err := model.ValidateHTTPURL("http_addr", j.HTTPAddr); err != nil {
		return fhir.Invalid("http_addr", "%v", err)
	}
	if err := (model.Node{ID: j.ID, RaftAddr: j.RaftAddr, HTTPAddr: j.HTTPAddr}).Validate(); err != nil {
		return fhir.LimitError("", err)
	}
	index, err := s.node.Join(r.Context(), model.Node{ID: j.ID, RaftAddr: j.RaftAddr, HTTPAddr: j.HTTPAddr})
	if err != nil {
		return err
	}
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(index, 10))
	return writeJSON(w, http.StatusOK, map[string]any{"joined": j.ID, "index": index})
}

func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	if err := model.ValidateID("node id", id); err != nil {
		return fhir.Invalid("id", "%v", err)
	}
	index, err := s.node.Remove(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(index, 10))
	return writeJSON(w, http.StatusOK, map[string]any{"removed": id, "index": index})
}

// TransferRequest is the body of POST /v1/cluster/transfer-leadership.
type TransferRequest struct {
	To string `json:"to,omitempty"`
}

func (s *Server) transferLeadership(w http.ResponseWriter, r *http.Request, rq *request) error {
	var t TransferRequest
	if len(rq.body) > 0 {
		if err := decodeJSON(rq.body, &t); err != nil {
			return err
		}
	}
	from := s.node.ID()
	if err := s.node.TransferLeadership(t.To); err != nil {
		return err
	}
	// Report the new leader once this node has heard from it.
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	leader, err := s.waitLeader(ctx)
	if err != nil {
		return fmt.Errorf("leadership left %s but no new leader was seen: %w", from, err)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": leader.ID})
}

// snapshotSave streams a consistent copy of the state (the leader's, unless the caller asks
// for consistency=stale).
func (s *Server) snapshotSave(w http.ResponseWriter, r *http.Request, rq *request) error {
	// Recorded before the snapshot is taken, so a snapshot carries the record of its own
	// export.
	if rw, ok := w.(*responseWriter); ok && !s.auditBeforeStream(r, rw, rq) {
		return nil // the 503 is written
	}
	if err := s.node.SyncLocal(r.Context()); err != nil {
		return err
	}
	sn, err := s.node.State().BeginSnapshot()
	if err != nil {
		return err
	}
	defer sn.Release()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="rls-snapshot.db"`)
	w.Header().Set("X-Rls-Snapshot-Index", strconv.FormatUint(sn.Index(), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := sn.WriteTo(w); err != nil {
		// Headers are gone: the client sees a short body, which the CLI checks.
		s.logger.Error("stream snapshot", "err", err, "request_id", rq.id)
	}
	return nil
}

// snapshotRestore takes an uploaded snapshot, checks it on this node, and restores it on
// the leader (forwarding the checked file if this node is not the leader).
func (s *Server) snapshotRestore(w http.ResponseWriter, r *http.Request, rq *request) error {
	f, err := os.CreateTemp(s.opts.TempDir, "restore-*.db")
	if err != nil {
		return fmt.Errorf("spool snapshot: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, s.opts.MaxSnapshotBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fhir.Errorf(http.StatusRequestEntityTooLarge, "too-costly", "", "snapshot is larger than %d bytes", s.opts.MaxSnapshotBytes)
		}
		return fhir.Errorf(http.StatusBadRequest, "structure", "", "receive snapshot: %v", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool snapshot: %w", err)
	}
	if err := state.ValidateSnapshotFile(f.Name()); err != nil {
		return fhir.Invalid("", "%v", err)
	}
	if !s.node.IsLeader() {
		open := retryablehttp.ReaderFunc(func() (io.Reader, error) { return os.Open(f.Name()) })
		return s.forwardToLeader(w.(*responseWriter), r, rq, open)
	}
	index, err := s.node.Restore(r.Context(), f.Name())
	if err != nil {
		return err
	}
	s.logger.Warn("cluster state replaced from an uploaded snapshot", "bytes", n, "by", rq.principal.ID, "index", index)
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(index, 10))
	return writeJSON(w, http.StatusOK, map[string]any{"restored_bytes": n, "index": index})
}

func decodeJSON(body []byte, v any) error {
	if len(body) == 0 {
		return fhir.Invalid("", "the request body is empty")
	}
	// The body limit bounds its size; depth and characters are bounded as for a resource
	// (each FHIR resource a batch carries is checked again on its own).
	if err := fhir.CheckBounds(body, "body", fhir.Bounds{MaxDepth: fhir.MaxDepth}); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fhir.Errorf(http.StatusBadRequest, "structure", "", "malformed JSON body: %v", err)
	}
	if dec.More() {
		return fhir.Invalid("", "the body holds more than one JSON value")
	}
	return nil
}

// fenceStatus serves GET /v1/cluster/fence (see locator/fence).
func (s *Server) fenceStatus(w http.ResponseWriter, r *http.Request, rq *request) error {
	return writeJSON(w, http.StatusOK, fence.StatusOf(s.node.Local()))
}
