package locator

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/nodeauth"
	"github.com/rls-hie/rls/raft/state"
)

// How this node takes part in node-to-node authentication (locator/nodeauth): it signs
// what it sends another node with the cluster key its state holds, recognises another
// node's credential or certificate, and, as a leader, draws the cluster key when the
// cluster has none (it is replicated in an audit-append command; the first key stored
// wins).

// signForward adds this node's credential to a request it forwards: the leader then knows
// another node sends it (the per-address limits were applied here), and, on an audited
// route, leaves the audit entry to this node, which must then have the key.
func (s *Server) signForward(ctx context.Context, req *http.Request, rq *request) error {
	if rq.audit == nil {
		if key := s.localClusterKey(); key != nil {
			nodeauth.SignRequest(req, key, s.node.ID(), rq.body)
		}
		return nil
	}
	key, err := s.clusterKey(ctx)
	if err != nil {
		return err
	}
	nodeauth.SignRequest(req, key, s.node.ID(), rq.body)
	return nil
}

// verifyNode checks a request's node credential against the cluster key this node holds,
// for the request URI it arrived with.
func (s *Server) verifyNode(r *http.Request, uri string, body []byte) (string, error) {
	var key []byte
	if err := s.node.State().View(func(tx *state.Tx) error { key = tx.ClusterKey(); return nil }); err != nil {
		return "", err
	}
	return nodeauth.VerifyRequest(r, key, uri, body)
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
	if key := s.localClusterKey(); key != nil {
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
		if key := s.localClusterKey(); key != nil {
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

// fromNode reports whether a request comes from another node of this cluster: signed with
// the node credential, or over TLS with a node certificate of the cluster CA.
func (s *Server) fromNode(r *http.Request, rq *request) bool {
	if nodeauth.Signed(r) {
		if _, err := s.verifyNode(r, rq.uri, rq.body); err == nil {
			return true
		}
	}
	return s.tlsFromNode(r)
}

// tlsFromNode reports a request over TLS with a node certificate of the cluster CA.
func (s *Server) tlsFromNode(r *http.Request) bool {
	_, ok := nodeauth.NodeCertificate(r, s.opts.ClusterCA)
	return ok
}
