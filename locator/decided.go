package locator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/nodeauth"
	"github.com/rls-hie/rls/raft/fsm"
)

// A follower asks the leader for the matching decisions of each patient registration entry
// it applies (fsm.DecisionSource), so that the matching is done once in the cluster rather
// than on every node. The leader holds an entry's decisions from the moment it applied it;
// the follower applies the entry at about the same time, so the leader's answer waits up to
// decidedWait for its own state machine to get there.
const (
	// decidedWait bounds how long the leader waits for an entry it has not applied yet: a
	// follower matches a batch of 500 records itself in some 30 ms, so a leader that much
	// later is better not waited for.
	decidedWait = 500 * time.Millisecond
	// decidedPause is how long a follower stops asking after a failed request (no leader,
	// a leader that does not answer, or one that had not applied the entry in time): it
	// matches every record itself meanwhile.
	decidedPause = 5 * time.Second
)

// decisionSource is this node's fsm.DecisionSource: the leader's internal endpoint.
type decisionSource struct {
	s      *Server
	client *http.Client
	// pausedUntil is when asking resumes after a failure (Unix nanoseconds).
	pausedUntil atomic.Int64
}

func newDecisionSource(s *Server) *decisionSource {
	return &decisionSource{s: s, client: &http.Client{Timeout: decidedWait + 500*time.Millisecond, Transport: peerTransport(s.opts.PeerTLS)}}
}

// Decided implements fsm.DecisionSource. It runs on the state machine's goroutine: every
// path returns within the client's timeout.
func (d *decisionSource) Decided(index, term uint64) (fsm.DecidedEntry, bool) {
	s := d.s
	if s.node.IsLeader() || time.Now().UnixNano() < d.pausedUntil.Load() {
		return fsm.DecidedEntry{}, false
	}
	e, err := d.ask(index, term)
	if err != nil {
		d.pausedUntil.Store(time.Now().Add(decidedPause).UnixNano())
		s.logger.Warn("the leader's matching decisions are not available; matching here", "index", index, "err", err)
		return fsm.DecidedEntry{}, false
	}
	return e, e.Index != 0
}

// ask requests an entry's decisions from the leader: the zero entry when it does not hold
// them, an error when it could not be asked.
func (d *decisionSource) ask(index, term uint64) (fsm.DecidedEntry, error) {
	s := d.s
	leader, err := s.node.Leader()
	if err != nil || leader.HTTPAddr == "" || leader.ID == s.node.ID() {
		return fsm.DecidedEntry{}, fmt.Errorf("no leader to ask")
	}
	key := s.localClusterKey()
	if key == nil {
		return fsm.DecidedEntry{}, fmt.Errorf("no cluster key yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), decidedWait+500*time.Millisecond)
	defer cancel()
	path := fmt.Sprintf("/v1/internal/decided?index=%d&term=%d", index, term)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(leader.HTTPAddr, "/")+path, nil)
	if err != nil {
		return fsm.DecidedEntry{}, fmt.Errorf("build request: %w", err)
	}
	nodeauth.SignRequest(req, key, s.node.ID(), nil)
	resp, err := d.client.Do(req)
	if err != nil {
		return fsm.DecidedEntry{}, fmt.Errorf("ask leader %s: %w", leader.ID, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var e fsm.DecidedEntry
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return fsm.DecidedEntry{}, fmt.Errorf("decode the decisions of leader %s: %w", leader.ID, err)
		}
		return e, nil
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fsm.DecidedEntry{}, nil
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fsm.DecidedEntry{}, fmt.Errorf("leader %s answered %d %s", leader.ID, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
}

// internalDecided is GET /v1/internal/decided?index=&term=: the matching decisions this node
// made applying that entry (see fsm.DecidedEntry), 404 if it holds none. Only another node
// of the cluster may ask: the decisions name patients' records and persons.
func (s *Server) internalDecided(w http.ResponseWriter, r *http.Request, rq *request) error {
	if !rq.fromNode {
		return fhir.Errorf(http.StatusForbidden, "forbidden", "", "only a node of the cluster reads matching decisions")
	}
	q := r.URL.Query()
	index, err1 := strconv.ParseUint(q.Get("index"), 10, 64)
	term, err2 := strconv.ParseUint(q.Get("term"), 10, 64)
	if err1 != nil || err2 != nil || index == 0 {
		return fhir.Errorf(http.StatusBadRequest, "value", "", "index and term must be positive integers")
	}
	ctx, cancel := context.WithTimeout(r.Context(), decidedWait)
	defer cancel()
	body, ok, err := s.node.DecidedJSON(ctx, index, term)
	if errors.Is(err, fsm.ErrNotAppliedYet) {
		// The follower is ahead: it should match by itself for a while.
		return fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "entry %d not applied here within %s", index, decidedWait)
	}
	if err != nil {
		return err
	}
	if !ok {
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "no decisions held for entry %d", index)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(body)
	return err
}
