package hl7

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one message a Server received.
type Request struct {
	// Message is the frame's content. With Err set to ErrTooLarge it is the frame's
	// beginning only.
	Message []byte
	Err     error
	// RemoteAddr is the sender's address; TLS its connection state (nil over plain TCP).
	RemoteAddr net.Addr
	TLS        *tls.ConnectionState
}

// Handler answers messages. It returns the messages to send back, in order: usually one
// acknowledgement or query response; none when the sender asked for no acknowledgement
// (enhanced mode NE); two for an enhanced-mode accept acknowledgement followed by the
// application's.
type Handler interface {
	ServeHL7(ctx context.Context, req *Request) [][]byte
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) [][]byte

// ServeHL7 calls f.
func (f HandlerFunc) ServeHL7(ctx context.Context, req *Request) [][]byte { return f(ctx, req) }

// Server timeouts and limits when the fields are zero.
const (
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultReadTimeout    = 30 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultMaxConnections = 256
)

// Server accepts MLLP connections, many at once, each carrying any number of messages one
// after another (MLLP is a request-response protocol: the next message is read once the
// answer of the last is written).
type Server struct {
	Handler Handler
	// TLSConfig, if set, makes every connection TLS (mllps).
	TLSConfig *tls.Config
	// MaxMessageBytes bounds one message (DefaultMaxMessageBytes).
	MaxMessageBytes int
	// IdleTimeout is how long a connection may wait between messages; ReadTimeout how
	// long one message may take to arrive once begun (and a TLS handshake to complete);
	// WriteTimeout how long an answer may take to leave.
	IdleTimeout, ReadTimeout, WriteTimeout time.Duration
	// MaxConnections bounds the open connections; more are closed as they arrive.
	MaxConnections int
	Logger         *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closing   atomic.Bool
	wg        sync.WaitGroup
	// ctx ends when the server is closed for good: handlers still running are cancelled.
	ctx    context.Context
	cancel context.CancelFunc
}

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = errors.New("hl7: server closed")

func (s *Server) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*serverConn]struct{}{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func or[T comparable](v, fallback T) T {
	var zero T
	if v == zero {
		return fallback
	}
	return v
}

// Serve accepts connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	limit := or(s.MaxConnections, DefaultMaxConnections)
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			// Out of file descriptors and the like: wait and try again, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger().Warn("hl7 accept failed; retrying", "err", err, "wait", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		if len(s.conns) >= limit {
			s.mu.Unlock()
			s.logger().Warn("hl7 connection refused: too many open connections", "remote", nc.RemoteAddr().String(), "limit", limit)
			nc.Close()
			continue
		}
		c := &serverConn{s: s, nc: nc}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Shutdown stops accepting connections, closes those waiting for a message, lets those
// handling one finish and send their answer, and returns once every connection is closed
// or ctx ends (then it closes the rest, as Close does).
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.closing.Store(true)
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.interruptIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops the server at once: listeners and connections are closed and running
// handlers see their context end.
func (s *Server) Close() error {
	s.init()
	s.closing.Store(true)
	s.cancel()
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// serverConn is one connection.
type serverConn struct {
	s  *Server
	nc net.Conn
	// mu guards idle: the connection is waiting for a message's start block, so Shutdown
	// may close it without cutting a message.
	mu   sync.Mutex
	idle bool
}

func (c *serverConn) interruptIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle {
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

// setIdle marks the connection idle (or busy) and reports whether it may go on: a
// connection found idle after Shutdown began must close.
func (c *serverConn) setIdle(idle bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = idle
	return !(idle && c.s.closing.Load())
}

func (c *serverConn) serve() {
	s := c.s
	log := s.logger()
	remote := c.nc.RemoteAddr().String()
	defer func() {
		if r := recover(); r != nil {
			// A handler's panic must not stop the node: the connection is dropped.
			log.Error("hl7 connection handler panicked", "remote", remote, "panic", fmt.Sprint(r))
		}
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	readTimeout := or(s.ReadTimeout, DefaultReadTimeout)
	var state *tls.ConnectionState
	conn := c.nc
	if s.TLSConfig != nil {
		tc := tls.Server(c.nc, s.TLSConfig)
		_ = tc.SetDeadline(time.Now().Add(readTimeout))
		if err := tc.HandshakeContext(s.ctx); err != nil {
			log.Info("hl7 TLS handshake failed", "remote", remote, "err", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		state, conn = &cs, tc
	}
	log.Debug("hl7 connection opened", "remote", remote, "tls", state != nil)
	fr := NewFrameReader(conn, or(s.MaxMessageBytes, DefaultMaxMessageBytes))
	fr.OnStart = func() {
		c.setIdle(false)
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	}
	for {
		if !c.setIdle(true) {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(or(s.IdleTimeout, DefaultIdleTimeout)))
		msg, err := fr.Next()
		if err != nil && !errors.Is(err, ErrTooLarge) {
			switch {
			case errors.Is(err, io.EOF):
				log.Debug("hl7 connection closed by the sender", "remote", remote)
			case s.closing.Load():
				log.Debug("hl7 connection closed for shutdown", "remote", remote)
			default:
				log.Info("hl7 connection closed", "remote", remote, "err", err, "discarded_bytes", fr.Discarded)
			}
			return
		}
		c.setIdle(false)
		_ = conn.SetReadDeadline(time.Time{})
		answers := s.Handler.ServeHL7(s.ctx, &Request{Message: msg, Err: err, RemoteAddr: c.nc.RemoteAddr(), TLS: state})
		_ = conn.SetWriteDeadline(time.Now().Add(or(s.WriteTimeout, DefaultWriteTimeout)))
		for _, a := range answers {
			if err := WriteFrame(conn, a); err != nil {
				log.Info("hl7 answer not delivered; connection closed", "remote", remote, "err", err)
				return
			}
		}
		_ = conn.SetWriteDeadline(time.Time{})
	}
}
