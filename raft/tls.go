package raft

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// handshakeTimeout bounds an incoming Raft connection's TLS handshake, so a peer that
// connects and says nothing does not hold a connection handler for ever.
const handshakeTimeout = 10 * time.Second

// tlsStreamLayer carries Raft traffic over mutually authenticated TLS: it accepts only
// peers whose certificate the TLS configuration admits (pki.NodeConfig: a node certificate
// of the cluster CA) and presents this node's certificate when it dials. The handshake
// completes before raft reads a byte, so a peer without such a certificate never gets an
// RPC decoded, let alone an entry appended.
type tlsStreamLayer struct {
	net.Listener // plain TCP; Accept wraps each connection
	advertise    net.Addr
	config       *tls.Config
	logger       *slog.Logger
}

// NewTLSStreamLayer listens on bind for Raft over TLS; advertise is the address peers dial
// (nil: the listener's). Refused handshakes are logged to logger (nil: discarded). It is
// exported for tests that dial a node's Raft port with certificates of their own.
func NewTLSStreamLayer(bind string, advertise net.Addr, config *tls.Config, logger *slog.Logger) (hraft.StreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	return newTLSStreamLayer(ln, advertise, config, logger), nil
}

func newTLSStreamLayer(ln net.Listener, advertise net.Addr, config *tls.Config, logger *slog.Logger) *tlsStreamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &tlsStreamLayer{Listener: ln, advertise: advertise, config: config, logger: logger}
}

// tcpStreamLayer is plain TCP Raft on a listener handed over open (Config.Listener); it
// dials as hashicorp/raft's own TCP transport does.
type tcpStreamLayer struct {
	net.Listener
	advertise net.Addr
}

func (s *tcpStreamLayer) Addr() net.Addr { return s.advertise }

func (s *tcpStreamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return (&net.Dialer{Timeout: timeout}).Dial("tcp", string(address))
}

// Accept hands raft a connection whose handshake runs on raft's own goroutine for it (on
// the first read), so a slow or hostile peer never holds up the accept loop.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, s.config), logger: s.logger}, nil
}

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

// serverConn is an accepted connection that completes its handshake, within
// handshakeTimeout, before the first read or write, and logs a refused peer once with its
// address (raft's own log would only say a command could not be decoded).
type serverConn struct {
	*tls.Conn
	logger *slog.Logger
	once   sync.Once
	err    error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		c.Conn.SetDeadline(time.Now().Add(handshakeTimeout))
		if c.err = c.Conn.Handshake(); c.err != nil {
			c.logger.Warn("refused a raft connection", "remote", c.Conn.RemoteAddr().String(), "err", c.err)
			return
		}
		c.err = c.Conn.SetDeadline(time.Time{})
	})
	return c.err
}

func (c *serverConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *serverConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
