package hl7

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// Client is one MLLP connection to a receiver: it sends messages and reads the answers.
// It is not safe for concurrent use (MLLP answers in order, one message at a time).
type Client struct {
	conn net.Conn
	fr   *FrameReader
	addr string
}

// Dial connects to addr (host:port), over TLS when cfg is set.
func Dial(ctx context.Context, addr string, cfg *tls.Config) (*Client, error) {
	var d net.Dialer
	var conn net.Conn
	var err error
	if cfg != nil {
		td := tls.Dialer{NetDialer: &d, Config: cfg}
		conn, err = td.DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return &Client{conn: conn, fr: NewFrameReader(conn, DefaultMaxMessageBytes*16), addr: addr}, nil
}

// Send writes one message.
func (c *Client) Send(ctx context.Context, msg []byte) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultWriteTimeout)
	}
	_ = c.conn.SetWriteDeadline(deadline)
	if err := WriteFrame(c.conn, msg); err != nil {
		return fmt.Errorf("send to %s: %w", c.addr, err)
	}
	return nil
}

// Receive reads the next message the receiver sends.
func (c *Client) Receive(ctx context.Context) ([]byte, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultReadTimeout)
	}
	_ = c.conn.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetReadDeadline(time.Now()) })
	defer stop()
	msg, err := c.fr.Next()
	if err != nil {
		return msg, fmt.Errorf("read answer from %s: %w", c.addr, err)
	}
	return msg, nil
}

// Exchange sends msg and returns the answer.
func (c *Client) Exchange(ctx context.Context, msg []byte) ([]byte, error) {
	if err := c.Send(ctx, msg); err != nil {
		return nil, err
	}
	return c.Receive(ctx)
}

// Raw gives access to the connection (tests write malformed frames through it).
func (c *Client) Raw() net.Conn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
