package locator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/nodeauth"
	"github.com/rls-hie/rls/locator/policy"
)

// The fence makes security changes (a consent directive, a token revoked or rotated, a
// participant disabled or its purposes changed) take effect on every node at once: once the
// change is acknowledged to the client, no node answers with state that lacks it, whatever
// consistency the caller asked for.
//
// Two halves, with one interval L (Options.FenceInterval):
//
//   - Acknowledgement (leader): a security command is acknowledged only when every other
//     member reports it applied to the state its readers see, or, if some member does not
//     confirm (down, partitioned, slow), once L has passed since it was applied on the
//     leader. Members are asked over GET /v1/cluster/fence with the node credential (the
//     term and indexes it answers are what a forged Raft message needs, so only nodes and
//     the admin may read them).
//
//   - Serving (follower): a follower answers an authenticated request itself (stale reads,
//     its own status) only under a lease: at local time t0 it asked the leader for its
//     commit index C0, and only until t0 + 0.9·L, and only once its readable state holds C0.
//     A command committed before the leader answered is at or below C0; one committed after
//     it was acknowledged no earlier than commit + L > t0 + L, when the lease has expired.
//     So a follower that has not applied an acknowledged change refuses (503, retry)
//     instead of disclosing. The lease is renewed, one round trip, when it is older than
//     L/2, on the next request that needs it.
//
//   - The leader serves under the same rule by construction: it applies every command
//     before acknowledging it, and the acknowledgement waits until its readers see it. A new
//     leader serves only once it is ready (its barrier applied, so it holds every earlier
//     entry).
//
// Why this is safe with hashicorp/raft: the follower's own raft.LastContact is not enough,
// because heartbeats (which refresh it) travel apart from log replication and carry no
// commit index: a follower with a stalled disk keeps hearing heartbeats while missing
// entries. The lease is taken from the leader's commit index itself. The remaining
// assumption is raft's own leader lease: a deposed leader keeps believing it leads for at
// most LeaderLeaseTimeout, so L must exceed it (cmd/rls checks L ≥ 2 × leader_lease_timeout),
// and clocks must run at the same rate (not be synchronised) for L to mean the same on
// both sides; the 10% margin covers drift.
type fence struct {
	s        *Server
	interval time.Duration

	mu     sync.Mutex
	lease  fenceLease
	renew  chan struct{} // closed when an in-flight renewal ends; nil if none
	client *http.Client
}

type fenceLease struct {
	start  time.Time // local time the lease request was sent
	index  uint64    // the leader's commit index it answered
	leader string
}

// FenceStatus is the answer of GET /v1/cluster/fence: what a node's readers see and, on a
// ready leader, its commit index.
type FenceStatus struct {
	Node          string `json:"node"`
	State         string `json:"state"`
	LeaderReady   bool   `json:"leader_ready"`
	Term          uint64 `json:"term"`
	CommitIndex   uint64 `json:"commit_index"`
	ReadableIndex uint64 `json:"readable_index"`
}

func newFence(s *Server, interval time.Duration) *fence {
	return &fence{s: s, interval: interval, client: &http.Client{Timeout: interval / 2, Transport: peerTransport(s.opts.PeerTLS)}}
}

// fenceStatus serves GET /v1/cluster/fence.
func (s *Server) fenceStatus(w http.ResponseWriter, r *http.Request, rq *request) error {
	l := s.node.Local()
	return writeJSON(w, http.StatusOK, FenceStatus{Node: l.ID, State: l.State, LeaderReady: l.LeaderReady, Term: l.Term,
		CommitIndex: l.CommitIndex, ReadableIndex: l.ReadableIndex})
}

// unfenced is the 503 a node gives when it cannot show it holds every acknowledged change.
func unfenced(format string, args ...any) error {
	return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", format, args...))
}

// admit lets a request that this node answers itself proceed only when the node provably
// holds every security change acknowledged so far (see fence).
func (f *fence) admit(ctx context.Context) error {
	n := f.s.node
	if n.IsLeader() {
		if !n.LeaderReady() {
			return unfenced("this node was just elected and is not ready to serve yet; retry")
		}
		return nil
	}
	lease, err := f.current(ctx)
	if err != nil {
		return err
	}
	valid := lease.start.Add(f.interval * 9 / 10)
	if time.Now().After(valid) {
		return unfenced("node %s has not heard from a leader recently enough to serve; retry, or read from the leader", n.ID())
	}
	ctx, cancel := context.WithDeadline(ctx, valid)
	defer cancel()
	if err := n.WaitApplied(ctx, lease.index); err != nil {
		return unfenced("node %s has not yet applied index %d; retry, or read from the leader", n.ID(), lease.index)
	}
	return nil
}

// current returns the lease, renewing it first when it is older than half the interval.
// Concurrent requests share one renewal.
func (f *fence) current(ctx context.Context) (fenceLease, error) {
	f.mu.Lock()
	if time.Since(f.lease.start) < f.interval/2 {
		l := f.lease
		f.mu.Unlock()
		return l, nil
	}
	wait := f.renew
	if wait == nil {
		wait = make(chan struct{})
		f.renew = wait
		go f.renewLease(wait)
	}
	f.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return fenceLease{}, fmt.Errorf("renew fence lease: %w", ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lease, nil
}

func (f *fence) renewLease(done chan struct{}) {
	defer func() {
		f.mu.Lock()
		f.renew = nil
		f.mu.Unlock()
		close(done)
	}()
	start := time.Now()
	st, err := f.askLeader(start)
	if err != nil {
		f.s.logger.Debug("fence lease not renewed", "err", err)
		return
	}
	f.mu.Lock()
	f.lease = fenceLease{start: start, index: st.CommitIndex, leader: st.Node}
	f.mu.Unlock()
}

func (f *fence) askLeader(start time.Time) (FenceStatus, error) {
	var st FenceStatus
	leader, err := f.s.node.Leader()
	if err != nil {
		return st, err
	}
	if leader.HTTPAddr == "" {
		return st, fmt.Errorf("leader %s has no HTTP address in the catalog yet", leader.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.interval/2)
	defer cancel()
	if st, err = f.ask(ctx, leader.HTTPAddr); err != nil {
		return st, err
	}
	if st.State != "leader" || !st.LeaderReady || st.Node != leader.ID {
		return st, fmt.Errorf("node %s answered as %s (ready %v), not as the ready leader", st.Node, st.State, st.LeaderReady)
	}
	return st, nil
}

func (f *fence) ask(ctx context.Context, base string) (FenceStatus, error) {
	var st FenceStatus
	const path = "/v1/cluster/fence"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return st, err
	}
	if key := f.s.localClusterKey(); key != nil {
		nodeauth.SignRequest(req, key, f.s.node.ID(), nil)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("ask %s for its fence status: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("ask %s for its fence status: status %d", base, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decode fence status of %s: %w", base, err)
	}
	return st, nil
}

// acknowledge returns once a security command applied at index may be acknowledged: the
// leader's readers see it, and every other member has applied it or the interval has
// passed (see fence). It never fails the command, which is committed; it only delays the
// answer.
func (f *fence) acknowledge(ctx context.Context, index uint64) error {
	deadline := time.Now().Add(f.interval)
	if err := f.s.node.WaitApplied(ctx, index); err != nil {
		return err
	}
	members, err := f.s.node.Members()
	if err != nil {
		return f.sleepUntil(ctx, deadline)
	}
	pending := map[string]string{}
	for _, m := range members {
		if m.ID != f.s.node.ID() {
			pending[m.ID] = m.HTTPAddr
		}
	}
	if len(pending) == 0 {
		return nil
	}
	for len(pending) > 0 && time.Now().Before(deadline) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for id, addr := range pending {
			if addr == "" {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				actx, cancel := context.WithDeadline(ctx, deadline)
				defer cancel()
				if st, err := f.ask(actx, addr); err == nil && st.ReadableIndex >= index {
					mu.Lock()
					delete(pending, id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	return f.sleepUntil(ctx, deadline)
}

func (f *fence) sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// privacy is the server's policy state: the fence and the per-participant rate limiter.
type privacy struct {
	fence   *fence
	limiter *policy.Limiter
}

func newPrivacy(s *Server, o Options) *privacy {
	return &privacy{fence: newFence(s, o.FenceInterval), limiter: policy.NewLimiter(o.RateLimit, o.RateBurst, nil)}
}
