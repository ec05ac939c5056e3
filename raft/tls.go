package raft

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"
)

// tlsStreamLayer carries Raft traffic over mutually authenticated TLS: it accepts only
// peers whose certificate the TLS configuration admits (pki.NodeConfig: a node certificate
// of the cluster CA) and presents this node's certificate when it dials. The handshake
// runs before raft reads or writes a byte, so a peer without such a certificate never gets
// an RPC decoded, let alone an entry appended.
type tlsStreamLayer struct {
	net.Listener // a tls.Listener over TCP
	advertise    net.Addr
	config       *tls.Config
}

// NewTLSStreamLayer listens on bind for Raft over TLS; advertise is the address peers dial.
// It is exported for tests that dial a node's Raft port with certificates of their own.
func NewTLSStreamLayer(bind string, advertise net.Addr, config *tls.Config) (hraft.StreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &tlsStreamLayer{Listener: tls.NewListener(ln, config), advertise: advertise, config: config}, nil
}

// Accept hands raft a connection whose handshake runs on raft's own goroutine for it (on
// the first read), so a slow or hostile peer never holds up the accept loop.
func (s *tlsStreamLayer) Accept() (net.Conn, error) { return s.Listener.Accept() }

// Addr is the advertised address, which raft records in the configuration.
func (s *tlsStreamLayer) Addr() net.Addr { return s.advertise }

// Dial connects and completes the handshake within timeout, so a peer that rejects this
// node's certificate fails the dial rather than the first RPC.
func (s *tlsStreamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", string(address), s.config)
	if err != nil {
		return nil, fmt.Errorf("raft TLS dial %s: %w", address, err)
	}
	return conn, nil
}
