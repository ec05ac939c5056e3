package raft

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/pki"
)

// testCerts is a cluster CA, an unrelated CA, and the Raft TLS configurations made from
// them; certificates live ten minutes, long enough for any test.
type testCerts struct {
	t           testing.TB
	ca, otherCA *pki.CA
}

func newTestCerts(t testing.TB) *testCerts {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("test cluster CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("some other CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &testCerts{t: t, ca: ca, otherCA: other}
}

func (c *testCerts) pair(is pki.Issued, err error) tls.Certificate {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
	cert, err := is.TLSCertificate()
	if err != nil {
		c.t.Fatal(err)
	}
	return cert
}

// alwaysPresent makes a client send its certificate even when the server's request names
// other CAs (Go's client would otherwise send none), so the server's verification of it is
// what the test exercises.
func alwaysPresent(c *tls.Config) *tls.Config {
	cert := c.Certificates[0]
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return c
}

// node is node id's Raft TLS configuration, its certificate signed by signer and valid
// from notBefore for ten minutes, trusting the cluster CA.
func (c *testCerts) node(signer *pki.CA, id string, notBefore time.Time) *tls.Config {
	return pki.NodeConfig(c.pair(signer.IssueNode(id, []string{"127.0.0.1"}, notBefore, notBefore.Add(10*time.Minute))), c.ca.Pool())
}

func (c *testCerts) valid(id string) *tls.Config {
	return c.node(c.ca, id, time.Now().Add(-time.Minute))
}

// TestTLSClusterReplicates forms a three-node cluster whose Raft traffic is mutual TLS
// (nodes join and replicate a participant write; every node ends with the same state).
func TestTLSClusterReplicates(t *testing.T) {
	certs := newTestCerts(t)
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.TLS = certs.valid(cfg.NodeID) })
	a := addParticipant(t, c.leader(), 1)
	c.waitApplied(a.Index)
	c.waitConverged()
}

// TestTLSRaftPortRejects dials a TLS node's Raft port with a client that has no
// certificate, a certificate from another CA, an expired one, a participant's (same CA,
// no node identity), or no TLS at all, and sends the AppendEntries a new leader would: a
// higher term and one more entry. Each is refused and the node's log and leadership stay
// as they were. The same request from a valid node certificate is then accepted, which
// shows the refusals come from TLS and not from the request.
func TestTLSRaftPortRejects(t *testing.T) {
	certs := newTestCerts(t)
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.TLS = certs.valid(cfg.NodeID) })
	n := c.leader()
	// Let the new leader finish registering itself, so that its log holds still.
	testkit.WaitFor(t, 5*time.Second, "the leader in the catalog", func() bool {
		l, err := n.Leader()
		return err == nil && l.HTTPAddr != ""
	})
	target := hraft.ServerAddress(c.cfgs[0].BindAddr)

	noCert := certs.valid("intruder")
	noCert.Certificates = nil
	participantCert := pki.NodeConfig(certs.pair(certs.ca.IssueParticipant("hosp-a", time.Now().Add(-time.Minute), time.Now().Add(10*time.Minute))), certs.ca.Pool())
	cases := []struct {
		name   string
		config *tls.Config // nil: plain TCP
	}{
		{"no TLS", nil},
		{"no certificate", noCert},
		{"other CA", alwaysPresent(certs.node(certs.otherCA, "intruder", time.Now().Add(-time.Minute)))},
		{"expired", alwaysPresent(certs.node(certs.ca, "intruder", time.Now().Add(-time.Hour)))},
		{"not yet valid", alwaysPresent(certs.node(certs.ca, "intruder", time.Now().Add(time.Hour)))},
		{"participant certificate", alwaysPresent(participantCert)},
	}
	appendNext := func(tr hraft.Transport) (hraft.AppendEntriesResponse, error) {
		last := n.raft.LastIndex()
		var prev hraft.Log
		if err := n.logStore.GetLog(last, &prev); err != nil {
			t.Fatalf("read last log entry: %v", err)
		}
		term := n.raft.CurrentTerm() + 1
		req := &hraft.AppendEntriesRequest{
			RPCHeader:    hraft.RPCHeader{ProtocolVersion: hraft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")},
			Term:         term,
			PrevLogEntry: last, PrevLogTerm: prev.Term,
			// A no-op, left uncommitted: accepted, it would only lengthen the log.
			Entries:           []*hraft.Log{{Index: last + 1, Term: term, Type: hraft.LogNoop}},
			LeaderCommitIndex: last,
		}
		var resp hraft.AppendEntriesResponse
		err := tr.AppendEntries("n1", target, req, &resp)
		return resp, err
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := dialTransport(t, tc.config)
			before, term := n.raft.LastIndex(), n.raft.CurrentTerm()
			resp, err := appendNext(tr)
			if err == nil {
				t.Fatalf("AppendEntries over %s was answered: %+v", tc.name, resp)
			}
			t.Logf("refused: %v", err)
			if got := n.raft.LastIndex(); got != before {
				t.Fatalf("log grew from %d to %d", before, got)
			}
			if !n.IsLeader() || n.raft.CurrentTerm() != term {
				t.Fatalf("the node stepped down or changed term")
			}
		})
	}
	t.Run("valid node certificate", func(t *testing.T) {
		tr := dialTransport(t, certs.valid("n2"))
		before := n.raft.LastIndex()
		resp, err := appendNext(tr)
		if err != nil || !resp.Success {
			t.Fatalf("AppendEntries with a valid node certificate: %+v, %v", resp, err)
		}
		if got := n.raft.LastIndex(); got != before+1 {
			t.Fatalf("log at %d, want %d", got, before+1)
		}
	})
}

// dialTransport is a Raft transport that dials with config (nil: plain TCP).
func dialTransport(t *testing.T, config *tls.Config) hraft.Transport {
	t.Helper()
	logger := newHCLog(slog.New(slog.DiscardHandler), "test")
	var tr *hraft.NetworkTransport
	if config == nil {
		var err error
		if tr, err = hraft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, logger); err != nil {
			t.Fatal(err)
		}
	} else {
		stream, err := NewTLSStreamLayer("127.0.0.1:0", nil, config, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{Stream: stream, MaxPool: 1, Timeout: 2 * time.Second, Logger: logger})
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestTLSNodeFromOtherCACannotJoin adds, as an admin would, a node whose certificate comes
// from another CA to a TLS cluster: the leader cannot replicate to it (each side refuses
// the other's certificate), so it never holds any state or knows a leader, while the
// cluster goes on committing without it.
func TestTLSNodeFromOtherCACannotJoin(t *testing.T) {
	certs := newTestCerts(t)
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.TLS = certs.valid(cfg.NodeID) })

	cfg := fastConfig(t, "n4", t.TempDir())
	cfg.TLS = pki.NodeConfig(certs.pair(certs.otherCA.IssueNode("n4", []string{"127.0.0.1"}, time.Now().Add(-time.Minute), time.Now().Add(10*time.Minute))), certs.otherCA.Pool())
	outsider, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = c.leader().Join(ctx, model.Node{ID: "n4", RaftAddr: cfg.BindAddr, HTTPAddr: cfg.HTTPAddr})
	cancel()
	if err != nil {
		t.Fatalf("join (the configuration change commits with the three TLS nodes): %v", err)
	}
	a := addParticipant(t, c.leader(), 7)
	c.waitApplied(a.Index)
	c.waitConverged()
	// Heartbeats are every ~20 ms with these timeouts: a quarter second is many rounds.
	deadline := time.Now().Add(250 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := outsider.AppliedIndex(); got != 0 {
			t.Fatalf("the other CA's node applied up to %d", got)
		}
		if l := outsider.Local(); l.LeaderID != "" || l.LastLogIndex != 0 {
			t.Fatalf("the other CA's node heard from the cluster: %+v", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
