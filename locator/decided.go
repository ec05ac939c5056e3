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
	// a leader that does not answer or answers an error): it matches every record itself
	// meanwhile. A leader that only had not applied the entry in time costs that entry
	// alone: the next may well be there, and a follower that matched on for seconds took
	// CPU from the leader where they share cores (15–19% of 540,000 records).
	decidedPause = 5 * time.Second
	// headerDecidedState marks the leader's 503 that means "not applied here yet", as
	// opposed to a node that cannot answer at all.
	headerDecidedState = "X-Rls-Decided"
	decidedNotApplied  = "not-applied"
)

// errLeaderBehind is ask's error when the leader had not applied the entry in time.
var errLeaderBehind = errors.New("the leader had not applied the entry in time")

// decisionSource is this node's fsm.DecisionSource: the leader's internal endpoint.
//
// Decided runs on the state machine's goroutine, which must never open a transaction of
// the state (see fsm.DecisionSource): where to ask (the leader's address in the catalog)
// and what to sign with (the cluster key) are read from the state by a goroutine of its
// own, and Decided only uses what it found for the leader Raft names now. Until it has, a
// follower matches by itself.
type decisionSource struct {
	s      *Server
	client *http.Client
	// lookup reads where to ask from the state; it may wait for the state machine.
	lookup func() (*decidedTarget, error)
	// target is the last lookup's answer (nil before the first, or after a failed request);
	// looking is set while a lookup runs.
	target  atomic.Pointer[decidedTarget]
	looking atomic.Bool
	// pausedUntil is when asking resumes after a failure (Unix nanoseconds).
	pausedUntil atomic.Int64
}

// decidedTarget is where a follower asks for decisions: the leader's id and API base URL,
// and the cluster key that signs the request.
type decidedTarget struct {
	leaderID string
	baseURL  string
	key      []byte
}

func newDecisionSource(s *Server) *decisionSource {
	d := &decisionSource{s: s, client: &http.Client{Timeout: decidedWait + 500*time.Millisecond, Transport: peerTransport(s.opts.PeerTLS)}}
	d.lookup = d.lookupLeader
	return d
}

// Decided implements fsm.DecisionSource. Every path returns within the client's timeout
// and none reads the state.
func (d *decisionSource) Decided(index, term uint64) (fsm.DecidedEntry, bool) {
	s := d.s
	if s.node.IsLeader() || time.Now().UnixNano() < d.pausedUntil.Load() {
		return fsm.DecidedEntry{}, false
	}
	t := d.target.Load()
	if t == nil || t.leaderID != s.node.LeaderID() {
		d.startLookup()
		return fsm.DecidedEntry{}, false
	}
	e, err := d.ask(t, index, term)
	if errors.Is(err, errLeaderBehind) {
		s.logger.Debug("the leader had not applied the entry in time; matching it here", "index", index)
		return fsm.DecidedEntry{}, false
	}
	if err != nil {
		// The leader may have moved to another address: look it up again after the pause.
		d.target.CompareAndSwap(t, nil)
		d.pausedUntil.Store(time.Now().Add(decidedPause).UnixNano())
		s.logger.Warn("the leader's matching decisions are not available; matching here", "index", index, "err", err)
		return fsm.DecidedEntry{}, false
	}
	return e, e.Index != 0
}

// startLookup reads where to ask on a goroutine of its own, unless one is reading already.
func (d *decisionSource) startLookup() {
	if !d.looking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer d.looking.Store(false)
		t, err := d.lookup()
		if err != nil {
			d.s.logger.Debug("no leader to ask for matching decisions yet", "err", err)
			return
		}
		d.target.Store(t)
	}()
}

// lookupLeader reads the current leader's catalog entry and the cluster key from the state.
func (d *decisionSource) lookupLeader() (*decidedTarget, error) {
	s := d.s
	leader, err := s.node.Leader()
	if err != nil {
		return nil, fmt.Errorf("find the leader: %w", err)
	}
	if leader.HTTPAddr == "" || leader.ID == s.node.ID() {
		return nil, fmt.Errorf("leader %q has no API address to ask", leader.ID)
	}
	key := s.localClusterKey()
	if key == nil {
		return nil, errors.New("no cluster key yet")
	}
	return &decidedTarget{leaderID: leader.ID, baseURL: strings.TrimRight(leader.HTTPAddr, "/"), key: key}, nil
}

// ask requests an entry's decisions from the leader: the zero entry when it does not hold
// them, an error when it could not be asked.
func (d *decisionSource) ask(t *decidedTarget, index, term uint64) (fsm.DecidedEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), decidedWait+500*time.Millisecond)
	defer cancel()
	path := fmt.Sprintf("/v1/internal/decided?index=%d&term=%d", index, term)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.baseURL+path, nil)
	if err != nil {
		return fsm.DecidedEntry{}, fmt.Errorf("build request: %w", err)
	}
	nodeauth.SignRequest(req, t.key, d.s.node.ID(), nil)
	resp, err := d.client.Do(req)
	if err != nil {
		return fsm.DecidedEntry{}, fmt.Errorf("ask leader %s: %w", t.leaderID, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var e fsm.DecidedEntry
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return fsm.DecidedEntry{}, fmt.Errorf("decode the decisions of leader %s: %w", t.leaderID, err)
		}
		return e, nil
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fsm.DecidedEntry{}, nil
	case http.StatusServiceUnavailable:
		if resp.Header.Get(headerDecidedState) == decidedNotApplied {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			return fsm.DecidedEntry{}, errLeaderBehind
		}
		fallthrough
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fsm.DecidedEntry{}, fmt.Errorf("leader %s answered %d %s", t.leaderID, resp.StatusCode, strings.TrimSpace(string(msg)))
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
		// The follower is ahead: it matches this entry by itself.
		w.Header().Set(headerDecidedState, decidedNotApplied)
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
