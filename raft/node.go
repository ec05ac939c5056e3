// Package raft owns rls's replication: one Node holds the hashicorp/raft instance, its log
// and stable store (raft-boltdb), its snapshot store and transport, and the FSM over the
// node's bbolt state. It proposes commands (stamped with the leader's time), serves the
// consistency levels of reads, and manages cluster membership and snapshots.
//
// Subpackages: command (log entry format), model (replicated entities), state (bbolt
// store), fsm (applying entries), pki (certificates), rafttest (in-process nodes for
// tests). The FSM's results and business errors reach callers through this package
// (results.go), so that they never import fsm. This package must never import HTTP or API
// code; the API layer (locator/) calls it.
package raft

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/fsm"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// Errors callers act on. Each says whether the request can have been applied.
var (
	// ErrNotLeader: this node is not the leader; nothing was proposed. Safe to retry at
	// the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: the cluster has no known leader right now; nothing was proposed.
	ErrNoLeader = errors.New("no leader")
	// ErrLeaderNotReady: this node has just become leader and has not yet confirmed that
	// its state holds every earlier entry; strong reads must wait.
	ErrLeaderNotReady = errors.New("leader is not ready for strong reads yet")
	// ErrOutcomeUnknown: the command was proposed but leadership was lost before it was
	// known to commit. It may or may not have been applied; do not blindly retry.
	ErrOutcomeUnknown = errors.New("outcome unknown: leadership lost after the command was proposed")
	// ErrNodeExists: a join named a node id or address the cluster already has.
	ErrNodeExists = errors.New("node already a member")
	// ErrNodeNotFound: the node is not a member of the cluster.
	ErrNodeNotFound = errors.New("node is not a member")
	// ErrLastVoter: removing the node would leave the cluster without a voter.
	ErrLastVoter = errors.New("cannot remove the only voter")
)

// Config describes one node.
type Config struct {
	NodeID  string
	DataDir string
	// BindAddr is the host:port the Raft transport listens on; AdvertiseAddr is what
	// other nodes dial (defaults to BindAddr).
	BindAddr      string
	AdvertiseAddr string
	// Listener, when set, is an open listener the Raft transport serves on instead of
	// listening on BindAddr itself (which then defaults to its address). Tests hand one
	// over, so that no other listener can be given its port between choosing and binding.
	Listener net.Listener
	// HTTPAddr is this node's API base URL, recorded in the catalog for request forwarding.
	HTTPAddr string
	// Bootstrap makes a node with no state start a new single-voter cluster.
	Bootstrap bool
	// BootstrapAdmin, if set, is the admin the first leader creates when the state has no
	// admin yet (it carries only the token's hash).
	BootstrapAdmin *model.Participant

	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// ApplyTimeout bounds how long a proposal may wait to be committed and applied.
	ApplyTimeout time.Duration

	Logger *slog.Logger
	// Registerer receives the node's Prometheus metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Transport replaces the TCP transport (tests use in-memory or faulty transports).
	Transport hraft.Transport
	// TLS, when set, carries Raft traffic over mutually authenticated TLS with this
	// configuration (pki.NodeConfig: a node certificate of the cluster CA on both ends);
	// nil keeps plain TCP, for -dev and tests.
	TLS *tls.Config
	// PeerDialAddrs maps a peer's node id to the address this node dials to reach it,
	// instead of the address the peer advertises: for peers behind NAT or a proxy, and
	// for fault-injection tests that route each directed link through a proxy of its own.
	PeerDialAddrs map[string]string
	// CheckStateNesting makes the state panic when a goroutine holding one of its
	// transactions opens another (state.Store.CheckNesting): for tests, which turn it on
	// for every node they start.
	CheckStateNesting bool
}

func (c *Config) setDefaults() {
	if c.BindAddr == "" && c.Listener != nil {
		c.BindAddr = c.Listener.Addr().String()
	}
	if c.AdvertiseAddr == "" {
		c.AdvertiseAddr = c.BindAddr
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Node is one member of an rls cluster.
type Node struct {
	cfg    Config
	logger *slog.Logger

	raft      *hraft.Raft
	fsm       *fsm.FSM
	store     *state.Store
	docs      *docIndex
	logStore  *raftboltdb.BoltStore
	snapshots hraft.SnapshotStore
	transport hraft.Transport

	// hadState: the node started with existing Raft state (it is, or was, a member).
	hadState bool

	notifyCh    chan bool
	leaderReady atomic.Bool
	// leaderTerm counts leadership changes so that work started for one term can tell it
	// has been overtaken.
	leaderTerm atomic.Uint64
	metrics    *metrics

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Open starts a node on cfg.DataDir, creating it if needed. A node whose state file is
// behind its newest snapshot (for example after the file was lost) restores the snapshot
// first; otherwise it keeps its state and replays only the log entries it lacks.
func Open(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := model.ValidateID("node id", cfg.NodeID); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	n := &Node{cfg: cfg, logger: cfg.Logger, notifyCh: make(chan bool, 4), stop: make(chan struct{})}
	n.metrics = newMetrics(n)
	ok := false
	defer func() {
		if !ok {
			n.closeStores()
		}
	}()

	var err error
	if n.store, err = state.Open(filepath.Join(cfg.DataDir, "state.db"), cfg.Logger); err != nil {
		return nil, err
	}
	if cfg.CheckStateNesting {
		n.store.CheckNesting()
	}
	if n.docs, err = openDocIndex(filepath.Join(cfg.DataDir, "search"), n.store, cfg.Logger); err != nil {
		return nil, err
	}
	if n.fsm, err = fsm.New(n.store, cfg.Logger, fsm.WithObservers(n.metrics.observeBatch, n.metrics.observeCommit, n.metrics.observeFlush),
		fsm.WithCommitHooks(n.docs.committed, n.docs.restored), fsm.WithFlushHook(n.docs.flushed)); err != nil {
		return nil, err
	}
	n.docs.requestFlush = n.fsm.RequestFlush
	if n.logStore, n.snapshots, err = openRaftStores(cfg); err != nil {
		return nil, err
	}
	if err := n.catchUpFromSnapshot(); err != nil {
		return nil, err
	}
	if n.transport = cfg.Transport; n.transport == nil {
		if n.transport, err = newTCPTransport(cfg, n.store); err != nil {
			return nil, err
		}
	}
	exists, err := hraft.HasExistingState(n.logStore, n.logStore, n.snapshots)
	if err != nil {
		return nil, fmt.Errorf("inspect raft state: %w", err)
	}
	n.hadState = exists
	fsmForRaft := restoreCountingFSM{FSM: n.fsm, restores: n.metrics.restores}
	if n.raft, err = hraft.NewRaft(raftConfig(cfg, n.notifyCh), fsmForRaft, n.logStore, n.logStore, n.snapshots, n.transport); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	if cfg.Bootstrap && !exists {
		boot := hraft.Configuration{Servers: []hraft.Server{{Suffrage: hraft.Voter, ID: hraft.ServerID(cfg.NodeID), Address: hraft.ServerAddress(cfg.AdvertiseAddr)}}}
		if err := n.raft.BootstrapCluster(boot).Error(); err != nil {
			n.raft.Shutdown()
			return nil, fmt.Errorf("bootstrap cluster: %w", err)
		}
		n.logger.Info("bootstrapped a new cluster", "node", cfg.NodeID)
	}
	if cfg.Registerer != nil {
		if err := n.metrics.register(cfg.Registerer); err != nil {
			n.raft.Shutdown()
			return nil, err
		}
	}
	n.wg.Add(1)
	go n.watchLeadership()
	ok = true
	return n, nil
}

// restoreCountingFSM is the FSM as raft drives it: every snapshot raft restores into it (one
// installed from the leader when this node fell too far behind, or a user restore) counts
// in rls_fsm_restores_total, so that an operator, or a test, can tell catch-up through the
// log from catch-up through a whole snapshot, and spot an install loop.
type restoreCountingFSM struct {
	*fsm.FSM
	restores prometheus.Counter
}

func (f restoreCountingFSM) Restore(rc io.ReadCloser) error {
	if err := f.FSM.Restore(rc); err != nil {
		return err
	}
	f.restores.Inc()
	return nil
}

func raftConfig(cfg Config, notifyCh chan bool) *hraft.Config {
	c := hraft.DefaultConfig()
	c.LocalID = hraft.ServerID(cfg.NodeID)
	c.Logger = newHCLog(cfg.Logger, "raft")
	c.NotifyCh = notifyCh
	// The FSM keeps its own durable state and applied index, so a restart must not wipe it
	// with the last snapshot; raft replays only the entries after it.
	c.NoSnapshotRestoreOnStart = true
	// Let concurrent Apply calls share one log write and one FSM transaction.
	c.BatchApplyCh = true
	// A leader that removes itself steps down to follower instead of shutting raft down:
	// shutting down stops raft's FSM loop with committed entries still queued for it, and
	// their futures (the RemoveServer itself, concurrent Applies) are then never answered,
	// so their callers hang for ever. A removed node does not stand for election (it is not
	// in the configuration); the operator stops its process. Consul does the same.
	c.ShutdownOnRemove = false
	if cfg.SnapshotThreshold > 0 {
		c.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		c.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		c.TrailingLogs = cfg.TrailingLogs
	}
	if cfg.HeartbeatTimeout > 0 {
		c.HeartbeatTimeout = cfg.HeartbeatTimeout
	}
	if cfg.ElectionTimeout > 0 {
		c.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		c.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		c.LeaderLeaseTimeout = c.HeartbeatTimeout
	}
	return c
}

func openRaftStores(cfg Config) (*raftboltdb.BoltStore, hraft.SnapshotStore, error) {
	path := filepath.Join(cfg.DataDir, "raft.db")
	logStore, err := raftboltdb.New(raftboltdb.Options{
		Path: path,
		BoltOptions: &bolt.Options{
			Timeout: 5 * time.Second,
			// The log is mostly appended and truncated: the map freelist without syncing it
			// avoids rewriting the whole freelist on every commit.
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open raft log %s: %w", path, err)
	}
	snapshots, err := hraft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, newHCLog(cfg.Logger, "snapshots"))
	if err != nil {
		logStore.Close()
		return nil, nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return logStore, snapshots, nil
}

// catchUpFromSnapshot restores the newest snapshot into the state when the state holds less
// than it: raft, told not to restore on start, would otherwise replay only the entries after
// the snapshot.
func (n *Node) catchUpFromSnapshot() error {
	metas, err := n.snapshots.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil
	}
	newest := metas[0]
	applied := n.fsm.AppliedIndex()
	if applied >= newest.Index {
		return nil
	}
	n.logger.Warn("state is behind the newest snapshot; restoring it", "applied_index", applied, "snapshot_index", newest.Index, "snapshot", newest.ID)
	_, rc, err := n.snapshots.Open(newest.ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", newest.ID, err)
	}
	if err := n.fsm.Restore(rc); err != nil {
		return err
	}
	n.metrics.restores.Inc()
	return nil
}

func newTCPTransport(cfg Config, catalog *state.Store) (hraft.Transport, error) {
	advertise, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
	if err != nil {
		return nil, fmt.Errorf("resolve raft advertise address %q: %w", cfg.AdvertiseAddr, err)
	}
	tc := &hraft.NetworkTransportConfig{
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newHCLog(cfg.Logger, "raft-net"),
	}
	if len(cfg.PeerDialAddrs) > 0 {
		tc.ServerAddressProvider = dialAddrs{overrides: cfg.PeerDialAddrs, catalog: catalog}
	}
	if cfg.TLS != nil {
		ln := cfg.Listener
		if ln == nil {
			if ln, err = net.Listen("tcp", cfg.BindAddr); err != nil {
				return nil, fmt.Errorf("listen for raft on %s: %w", cfg.BindAddr, err)
			}
		}
		tc.Stream = newTLSStreamLayer(ln, advertise, cfg.TLS, cfg.Logger)
		return hraft.NewNetworkTransportWithConfig(tc), nil
	}
	if cfg.Listener != nil {
		tc.Stream = &tcpStreamLayer{Listener: cfg.Listener, advertise: advertise}
		return hraft.NewNetworkTransportWithConfig(tc), nil
	}
	t, err := hraft.NewTCPTransportWithConfig(cfg.BindAddr, advertise, tc)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", cfg.BindAddr, err)
	}
	return t, nil
}

// dialAddrs overrides the addresses dialled for some peers; the others are dialled at the
// Raft address the node catalog has for them.
type dialAddrs struct {
	overrides map[string]string
	catalog   *state.Store
}

func (d dialAddrs) ServerAddr(id hraft.ServerID) (hraft.ServerAddress, error) {
	if addr, ok := d.overrides[string(id)]; ok {
		return hraft.ServerAddress(addr), nil
	}
	var node model.Node
	err := d.catalog.View(func(tx *state.Tx) error {
		var err error
		node, err = tx.Node(string(id))
		return err
	})
	if err != nil {
		return "", err // raft then dials the address in its configuration
	}
	return hraft.ServerAddress(node.RaftAddr), nil
}

// Close shuts the node down: raft first (so nothing more is applied), then the stores.
func (n *Node) Close() error {
	var errs []error
	n.closeOnce.Do(func() {
		close(n.stop)
		if n.raft != nil {
			if err := n.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("shut down raft: %w", err))
			}
		}
		n.wg.Wait()
		// Closing pooled connections lets the peers' handlers of them return.
		if nt, ok := n.transport.(*hraft.NetworkTransport); ok {
			nt.CloseStreams()
		}
		if c, ok := n.transport.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close transport: %w", err))
			}
		}
		if n.cfg.Registerer != nil {
			n.metrics.unregister(n.cfg.Registerer)
		}
		errs = append(errs, n.closeStores())
	})
	return errors.Join(errs...)
}

func (n *Node) closeStores() error {
	var errs []error
	if n.fsm != nil {
		n.fsm.Close()
	}
	if n.docs != nil {
		if err := n.docs.close(); err != nil {
			errs = append(errs, fmt.Errorf("close document index: %w", err))
		}
	}
	if n.logStore != nil {
		if err := n.logStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log: %w", err))
		}
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Documents returns the document search index (derived from the state; see WaitIndexed).
func (n *Node) Documents() *search.Index { return n.docs.ix }

// WaitIndexed blocks until the document index reflects the state readers see at index.
func (n *Node) WaitIndexed(ctx context.Context, index uint64) error { return n.docs.wait(ctx, index) }

// HasState reports whether the node started with Raft state of its own (so it must not
// bootstrap or join again).
func (n *Node) HasState() bool { return n.hadState }

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// State returns the replicated state for reading.
func (n *Node) State() *state.Store { return n.store }

// AppliedIndex returns the index of the last log entry applied to this node's state.
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// WaitApplied blocks until this node's state holds log entry index, or ctx ends.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	return n.fsm.WaitApplied(ctx, index)
}

// SyncLocal waits until the state readers see holds every entry this node has applied, so
// that a read after a write acknowledged by this node sees it.
func (n *Node) SyncLocal(ctx context.Context) error {
	return n.fsm.WaitApplied(ctx, n.fsm.LatestIndex())
}

// SyncLocalData is SyncLocal for a read that does not read the audit log: audit entries
// applied after the last other change need not be committed first (FSM.WaitChanges).
func (n *Node) SyncLocalData(ctx context.Context) error {
	return n.fsm.WaitChanges(ctx, n.fsm.LatestIndex())
}

// CatchUp waits until the state readers see holds every entry this node knows to be
// committed (on a follower, as of the leader's last message).
func (n *Node) CatchUp(ctx context.Context) error {
	return n.fsm.WaitApplied(ctx, max(n.fsm.LatestIndex(), n.raft.CommitIndex()))
}

// DecidedJSON returns the matching decisions this node made applying the patient
// registration entry at index (see fsm.DecisionSource), as JSON encoded once for every
// follower that asks.
func (n *Node) DecidedJSON(ctx context.Context, index, term uint64) ([]byte, bool, error) {
	return n.fsm.DecidedJSON(ctx, index, term)
}

// SetDecisionSource sets where this node asks for the matching decisions of the
// registration entries it applies (nil: it matches every record itself).
func (n *Node) SetDecisionSource(src fsm.DecisionSource) { n.fsm.SetDecisionSource(src) }

// IsLeader reports whether this node currently leads.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// LeaderReady reports whether this node leads and has confirmed its state holds every
// entry of earlier terms.
func (n *Node) LeaderReady() bool { return n.IsLeader() && n.leaderReady.Load() }

// LeaderID returns the id of the current leader as Raft knows it ("" when none), without
// reading the state: the state machine's goroutine may ask (see locator's decision source).
func (n *Node) LeaderID() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Leader returns the catalog entry of the current leader (its HTTP address included), or
// ErrNoLeader. It reads the state: never call it on the state machine's goroutine, whose
// open batch a growing state file waits for (see fsm.DecisionSource).
func (n *Node) Leader() (model.Node, error) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return model.Node{}, ErrNoLeader
	}
	var node model.Node
	err := n.store.View(func(tx *state.Tx) error {
		var err error
		node, err = tx.Node(string(id))
		return err
	})
	if errors.Is(err, state.ErrNotFound) {
		// Known to raft but not yet in the catalog (it is registering itself right now).
		return model.Node{ID: string(id), RaftAddr: string(addr)}, nil
	}
	return node, err
}

// LastContact returns how long ago this node last heard from the leader (zero on the
// leader itself).
func (n *Node) LastContact() time.Duration {
	if n.IsLeader() {
		return 0
	}
	t := n.raft.LastContact()
	if t.IsZero() {
		return -1
	}
	return time.Since(t)
}

// Applied is the outcome of a committed command.
type Applied struct {
	// Index is the Raft log index the command was applied at.
	Index uint64
	// Value is what the command produced (for example the stored participant).
	Value any
}

// Apply proposes a command and waits until it is committed and applied on this node, the
// leader. The header's time is stamped here if the caller did not, and so is the version of
// the input limits (model.LimitsVersion) the FSM holds the entry to. A business error from
// the FSM is returned as is (with the index); ErrNotLeader means nothing was proposed;
// ErrOutcomeUnknown means it may have been applied.
func (n *Node) Apply(ctx context.Context, t command.Type, h command.Header, payload command.Payload) (Applied, error) {
	return n.ApplyInTurn(ctx, t, h, payload, nil)
}

// ApplyInTurn is Apply that calls handed, if not nil, as soon as the command has been
// handed to Raft (or refused), before it is committed: a caller that must propose several
// commands in a given order lets the next one go then, so that they are replicated and
// applied in that order while several are in flight.
func (n *Node) ApplyInTurn(ctx context.Context, t command.Type, h command.Header, payload command.Payload, handed func()) (Applied, error) {
	// pass lets the next command go exactly once: after the hand-over, or on the way out
	// when this one never reached Raft.
	pass := func() {
		if handed != nil {
			handed()
			handed = nil
		}
	}
	defer pass()
	if !n.IsLeader() {
		return Applied{}, ErrNotLeader
	}
	if h.Time.IsZero() {
		h.Time = time.Now().UTC()
	}
	// This leader holds its proposals to these limits (the API checked them), and says so:
	// every node's FSM then checks the entry against the same rules.
	h.Limits = model.LimitsVersion
	n.fsm.PrepareProposal(t, payload)
	data, err := command.Encode(t, h, payload)
	if err != nil {
		return Applied{}, err
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	start := time.Now()
	f := n.raft.Apply(data, timeout)
	pass()
	if err := f.Error(); err != nil {
		return Applied{}, classifyApplyError(t, err)
	}
	n.metrics.applyDuration.Observe(time.Since(start).Seconds())
	resp, ok := f.Response().(fsm.Response)
	if !ok {
		return Applied{Index: f.Index()}, fmt.Errorf("apply %s: unexpected FSM response %T", t, f.Response())
	}
	return Applied{Index: f.Index(), Value: resp.Value}, resp.Err
}

func classifyApplyError(t command.Type, err error) error {
	switch {
	case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrEnqueueTimeout), errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		// Refused before the entry reached the log.
		return fmt.Errorf("apply %s: %w (%v)", t, ErrNotLeader, err)
	default:
		// Leadership lost or shutdown after the entry was appended: it may still commit.
		return fmt.Errorf("apply %s: %w (%v)", t, ErrOutcomeUnknown, err)
	}
}

// VerifyStrong makes a strong (linearizable) read safe on this node: it must be a leader
// that has confirmed its state after election, it confirms with a quorum that it still
// leads, and it waits until its state holds everything committed before the read arrived.
func (n *Node) VerifyStrong(ctx context.Context) error {
	return n.verifyStrong(ctx, n.fsm.WaitApplied)
}

// VerifyStrongData is VerifyStrong for a read that does not read the audit log
// (FSM.WaitChanges).
func (n *Node) VerifyStrongData(ctx context.Context) error {
	return n.verifyStrong(ctx, n.fsm.WaitChanges)
}

func (n *Node) verifyStrong(ctx context.Context, wait func(context.Context, uint64) error) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if !n.leaderReady.Load() {
		return ErrLeaderNotReady
	}
	commit := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("verify leadership: %w (%v)", ErrNotLeader, err)
	}
	return wait(ctx, commit)
}

// watchLeadership follows raft's leadership notifications: a new leader first applies a
// barrier command (so its state holds all earlier entries), then registers itself in the
// catalog and creates the bootstrap admin if the cluster has none.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case leading := <-n.notifyCh:
			term := n.leaderTerm.Add(1)
			n.leaderReady.Store(false)
			if leading {
				n.logger.Info("gained leadership", "node", n.cfg.NodeID)
				n.wg.Add(1)
				go n.prepareLeadership(term)
			} else {
				n.logger.Info("lost leadership", "node", n.cfg.NodeID)
			}
		}
	}
}

func (n *Node) prepareLeadership(term uint64) {
	defer n.wg.Done()
	current := func() bool { return n.leaderTerm.Load() == term && n.IsLeader() }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for attempt := 0; current(); attempt++ {
		err := n.establish(ctx, current)
		if err == nil {
			return
		}
		n.logger.Warn("preparing leadership", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Node) establish(ctx context.Context, current func() bool) error {
	if _, err := n.Apply(ctx, command.TypeBarrier, command.Header{Actor: n.cfg.NodeID}, command.Barrier{}); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	if !current() {
		return nil
	}
	// The barrier is applied, but readers (registerSelf, bootstrapAdmin) see only committed
	// state: make it visible first, or a node that replayed its log would register itself
	// again.
	if err := n.SyncLocal(ctx); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	if err := n.ensureClusterKey(ctx); err != nil {
		return err
	}
	n.leaderReady.Store(true)
	n.logger.Info("leader ready", "node", n.cfg.NodeID, "applied_index", n.AppliedIndex())
	if err := n.registerSelf(ctx); err != nil {
		return err
	}
	return n.bootstrapAdmin(ctx)
}

// ensureClusterKey draws the secret nodes authenticate their calls to each other with (the
// node credential of locator/audit), if the cluster has none yet: every node then has it
// from the log before it needs it, and no node has to ask for it unauthenticated.
func (n *Node) ensureClusterKey(ctx context.Context) error {
	var key []byte
	if err := n.store.View(func(tx *state.Tx) error { key = tx.ClusterKey(); return nil }); err != nil || key != nil {
		return err
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("draw cluster key: %w", err)
	}
	a, err := n.Apply(ctx, command.TypeAuditAppend, command.Header{Actor: n.cfg.NodeID}, &command.AuditAppend{ClusterKey: key})
	if err != nil {
		return fmt.Errorf("store cluster key: %w", err)
	}
	return n.fsm.WaitApplied(ctx, a.Index)
}

func (n *Node) registerSelf(ctx context.Context) error {
	self := model.Node{ID: n.cfg.NodeID, RaftAddr: n.cfg.AdvertiseAddr, HTTPAddr: n.cfg.HTTPAddr}
	var known model.Node
	err := n.store.View(func(tx *state.Tx) error {
		var err error
		known, err = tx.Node(self.ID)
		return err
	})
	if err == nil && known.RaftAddr == self.RaftAddr && known.HTTPAddr == self.HTTPAddr {
		return nil
	}
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return err
	}
	if _, err := n.Apply(ctx, command.TypeNodeRegister, command.Header{Actor: n.cfg.NodeID}, &command.NodeRegister{Node: self}); err != nil {
		return fmt.Errorf("register self in catalog: %w", err)
	}
	return nil
}

func (n *Node) bootstrapAdmin(ctx context.Context) error {
	admin := n.cfg.BootstrapAdmin
	if admin == nil {
		return nil
	}
	hasAdmin := false
	err := n.store.View(func(tx *state.Tx) error {
		all, err := tx.Participants()
		for _, p := range all {
			hasAdmin = hasAdmin || p.IsAdmin()
		}
		return err
	})
	if err != nil || hasAdmin {
		return err
	}
	_, err = n.Apply(ctx, command.TypeBootstrapAdmin, command.Header{Actor: n.cfg.NodeID}, &command.BootstrapAdmin{Participant: *admin})
	if err != nil && !errors.Is(err, fsm.ErrAlreadyBootstrapped) {
		return fmt.Errorf("create bootstrap admin: %w", err)
	}
	n.logger.Info("created the bootstrap admin participant", "id", admin.ID)
	return nil
}
