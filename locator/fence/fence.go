// Package fence makes security changes (a consent directive, a token revoked or rotated, a
// participant disabled or its purposes changed) take effect on every node at once: once the
// change is acknowledged to the client, no node answers with state that lacks it, whatever
// consistency the caller asked for.
//
// Two halves, with one interval L (locator's Options.FenceInterval):
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
//
// It is the neighbour of locator/policy: policy decides, the fence makes a change of what
// policy reads hold everywhere once acknowledged. It must never import locator; the node's
// HTTP side (the endpoint that serves Status, the 503 its errors become) is locator's.
package fence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/rls-hie/rls/locator/nodeauth"
	"github.com/rls-hie/rls/raft"
)

// Fence is one node's side of the fence.
type Fence struct {
	node     *raft.Node
	interval time.Duration
	// key returns the cluster key this node holds (nil: none yet), to sign its questions
	// to other nodes with.
	key    func() []byte
	logger *slog.Logger
	client *http.Client

	mu         sync.Mutex
	lease      lease
	renew      chan struct{} // closed when an in-flight renewal ends; nil if none
	renewStart time.Time     // when the renewal in flight asked the leader
}

type lease struct {
	start  time.Time // local time the lease request was sent
	index  uint64    // the leader's commit index it answered
	leader string
}

// Status is the answer of GET /v1/cluster/fence: what a node's readers see and, on a ready
// leader, its commit index.
type Status struct {
	Node          string `json:"node"`
	State         string `json:"state"`
	LeaderReady   bool   `json:"leader_ready"`
	Term          uint64 `json:"term"`
	CommitIndex   uint64 `json:"commit_index"`
	ReadableIndex uint64 `json:"readable_index"`
}

// New returns the fence of node with interval L; transport carries its calls to other
// nodes, key returns the cluster key it signs them with.
func New(node *raft.Node, interval time.Duration, transport http.RoundTripper, key func() []byte, logger *slog.Logger) *Fence {
	return &Fence{node: node, interval: interval, key: key, logger: logger, client: &http.Client{Timeout: interval / 2, Transport: transport}}
}

// StatusOf is a node's fence status, from its view of itself.
func StatusOf(l raft.LocalStatus) Status {
	return Status{Node: l.ID, State: l.State, LeaderReady: l.LeaderReady, Term: l.Term, CommitIndex: l.CommitIndex, ReadableIndex: l.ReadableIndex}
}

// ErrUnfenced: this node cannot show that it holds every security change acknowledged so
// far, so it must not answer (the API answers 503, safe to retry).
var ErrUnfenced = errors.New("not fenced")

// unfenced is an ErrUnfenced that says why.
type unfenced string

func (e unfenced) Error() string        { return string(e) }
func (e unfenced) Is(target error) bool { return target == ErrUnfenced }

func unfencedf(format string, args ...any) error { return unfenced(fmt.Sprintf(format, args...)) }

// Admit lets a request that this node answers itself proceed only when the node provably
// holds every security change acknowledged so far (see fence).
func (f *Fence) Admit(ctx context.Context) error {
	n := f.node
	if n.IsLeader() {
		if !n.LeaderReady() {
			return unfencedf("this node was just elected and is not ready to serve yet; retry")
		}
		return nil
	}
	lease, err := f.current(ctx)
	if err != nil {
		return err
	}
	valid := lease.start.Add(f.interval * 9 / 10)
	if time.Now().After(valid) {
		return unfencedf("node %s has not heard from a leader recently enough to serve; retry, or read from the leader", n.ID())
	}
	ctx, cancel := context.WithDeadline(ctx, valid)
	defer cancel()
	if err := n.WaitApplied(ctx, lease.index); err != nil {
		return unfencedf("node %s has not yet applied index %d; retry, or read from the leader", n.ID(), lease.index)
	}
	return nil
}

// current returns the lease, renewing it first when it is older than half the interval.
// Concurrent requests share one renewal.
func (f *Fence) current(ctx context.Context) (lease, error) {
	return f.leaseSince(ctx, time.Now().Add(-f.interval/2))
}

// leaseSince returns a lease taken at or after t, renewing it first if the one held is
// older; if the leader does not answer, the older lease. Concurrent requests share a
// renewal that asked the leader late enough.
func (f *Fence) leaseSince(ctx context.Context, t time.Time) (lease, error) {
	for {
		f.mu.Lock()
		if !f.lease.start.Before(t) {
			l := f.lease
			f.mu.Unlock()
			return l, nil
		}
		wait := f.renew
		joined := wait != nil && !f.renewStart.Before(t)
		if wait == nil {
			wait = make(chan struct{})
			f.renew, f.renewStart = wait, time.Now()
			joined = true
			go f.renewLease(wait, f.renewStart)
		}
		f.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return lease{}, fmt.Errorf("renew fence lease: %w", ctx.Err())
		}
		if joined {
			// Renewed, or not (the leader did not answer): the caller sees which by the
			// lease's start.
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.lease, nil
		}
		// The renewal in flight asked before t: the next one will not.
	}
}

func (f *Fence) renewLease(done chan struct{}, start time.Time) {
	defer func() {
		f.mu.Lock()
		f.renew = nil
		f.mu.Unlock()
		close(done)
	}()
	st, err := f.askLeader(start)
	if err != nil {
		f.logger.Debug("fence lease not renewed", "err", err)
		return
	}
	f.mu.Lock()
	if !start.Before(f.lease.start) {
		f.lease = lease{start: start, index: st.CommitIndex, leader: st.Node}
	}
	f.mu.Unlock()
}

// Sync waits until this node's readable state holds every entry the leader had committed
// when this call began (a round trip to the leader from a follower, shared by concurrent
// callers): for a read that must see what another node acknowledged an instant ago, such as
// a participant added through the leader whose first request reaches a follower that has
// not received the entry yet. A follower's own commit index cannot tell it what it has not
// heard of.
func (f *Fence) Sync(ctx context.Context) error {
	if f.node.IsLeader() {
		return f.node.CatchUp(ctx)
	}
	asked := time.Now()
	l, err := f.leaseSince(ctx, asked)
	if err != nil {
		return err
	}
	if l.start.Before(asked) {
		return unfencedf("node %s could not ask the leader for its commit index; retry, or send to the leader", f.node.ID())
	}
	return f.node.WaitApplied(ctx, l.index)
}

func (f *Fence) askLeader(start time.Time) (Status, error) {
	var st Status
	leader, err := f.node.Leader()
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

func (f *Fence) ask(ctx context.Context, base string) (Status, error) {
	var st Status
	const path = "/v1/cluster/fence"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return st, err
	}
	if key := f.key(); key != nil {
		nodeauth.SignRequest(req, key, f.node.ID(), nil)
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

// Acknowledge returns once a security command applied at index may be acknowledged: the
// leader's readers see it, and every other member has applied it or the interval has
// passed (see fence). It never fails the command, which is committed; it only delays the
// answer.
func (f *Fence) Acknowledge(ctx context.Context, index uint64) error {
	deadline := time.Now().Add(f.interval)
	if err := f.node.WaitApplied(ctx, index); err != nil {
		return err
	}
	members, err := f.node.Members()
	if err != nil {
		return f.sleepUntil(ctx, deadline)
	}
	pending := map[string]string{}
	for _, m := range members {
		if m.ID != f.node.ID() {
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

func (f *Fence) sleepUntil(ctx context.Context, t time.Time) error {
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
