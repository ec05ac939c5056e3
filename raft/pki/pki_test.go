package pki

import (
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"
)

func TestParticipantID(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("test CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		leaf Leaf
		want string
		err  error
	}{
		{"URI SAN", Leaf{CommonName: "other", URIs: []*url.URL{ParticipantURI("hosp-a")}}, "hosp-a", nil},
		{"CN", Leaf{CommonName: "hosp-b"}, "hosp-b", nil},
		{"node certificate", Leaf{CommonName: "admin", URIs: []*url.URL{NodeURI("n1")}}, "", ErrNoIdentity},
		{"nothing", Leaf{}, "", ErrNoIdentity},
		{"unrelated URI", Leaf{URIs: []*url.URL{{Scheme: "https", Host: "x.example"}}}, "", ErrNoIdentity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.leaf.NotBefore, tc.leaf.NotAfter, tc.leaf.Client = now.Add(-time.Minute), now.Add(time.Minute), true
			is, err := ca.Issue(tc.leaf)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParticipantID(is.Cert)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("ParticipantID = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestTLSNodeConfigRefusal checks that a node refuses a peer from another CA and that the
// failure is recognised as a certificate refusal (not retried), unlike a refused dial.
func TestTLSNodeConfigRefusal(t *testing.T) {
	now := time.Now()
	ca, _ := NewCA("cluster", now.Add(-time.Hour), now.Add(time.Hour))
	other, _ := NewCA("other", now.Add(-time.Hour), now.Add(time.Hour))
	pair := func(ca *CA, id string) tls.Certificate {
		is, err := ca.IssueNode(id, []string{"127.0.0.1"}, now.Add(-time.Minute), now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		c, err := is.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", NodeConfig(pair(ca, "n1"), ca.Pool()))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	// The dialler trusts the cluster CA, so only the server's check can fail.
	cfg := NodeConfig(pair(other, "x"), ca.Pool())
	cert := cfg.Certificates[0]
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err == nil {
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the server's refusal comes after
		conn.Close()
	}
	if err == nil || !IsHandshakeRefusal(err) {
		t.Fatalf("other CA's node: err = %v, want a handshake refusal", err)
	}
	conn, err = tls.Dial("tcp", ln.Addr().String(), NodeConfig(pair(ca, "n2"), ca.Pool()))
	if err != nil {
		t.Fatalf("cluster node refused: %v", err)
	}
	conn.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := tls.Dial("tcp", addr, cfg); err == nil || IsHandshakeRefusal(err) {
		t.Fatalf("refused dial: err = %v, want a non-certificate error", err)
	}
}
