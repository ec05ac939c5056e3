package hl7

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func frame(s string) string { return "\x0b" + s + "\x1c\r" }

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		max     int
		want    []string
		wantErr []error
		discard int64
	}{
		{name: "two frames", stream: frame("A") + frame("BB"), want: []string{"A", "BB"}},
		{name: "garbage between frames is dropped", stream: "junk\r\n" + frame("A") + "xx" + frame("B"), want: []string{"A", "B"}, discard: 8},
		{name: "end block without CR", stream: "\x0bA\x1c\x0bB\x1c\r", want: []string{"A", "B"}},
		{name: "restarted frame", stream: "\x0bhalf" + frame("whole"), want: []string{"whole"}, discard: 5},
		{name: "oversized frame then a good one", stream: frame(strings.Repeat("x", 100)) + frame("ok"), max: 10,
			want: []string{strings.Repeat("x", 100)[:100], "ok"}, wantErr: []error{ErrTooLarge, nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fr := NewFrameReader(strings.NewReader(tc.stream), tc.max)
			for i, want := range tc.want {
				got, err := fr.Next()
				var wantErr error
				if i < len(tc.wantErr) {
					wantErr = tc.wantErr[i]
				}
				if !errors.Is(err, wantErr) || (wantErr == nil && err != nil) {
					t.Fatalf("frame %d: err = %v, want %v", i, err, wantErr)
				}
				if string(got) != want {
					t.Fatalf("frame %d = %q, want %q", i, got, want)
				}
			}
			if _, err := fr.Next(); !errors.Is(err, io.EOF) {
				t.Errorf("after the last frame: %v, want EOF", err)
			}
			if fr.Discarded != tc.discard {
				t.Errorf("discarded %d bytes, want %d", fr.Discarded, tc.discard)
			}
		})
	}
	if _, err := NewFrameReader(strings.NewReader("\x0bcut"), 0).Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("stream ending inside a frame: %v", err)
	}
	// An oversized frame keeps only its beginning, however long it is.
	big := frame("MSH|" + strings.Repeat("y", 3<<20))
	got, err := NewFrameReader(strings.NewReader(big), 1<<20).Next()
	if !errors.Is(err, ErrTooLarge) || len(got) != keptOfTooLarge || !bytes.HasPrefix(got, []byte("MSH|yyy")) {
		t.Errorf("oversized: %d bytes kept, err %v", len(got), err)
	}
}

// echoServer answers every message with "ACK:" and the message, or "TOO LARGE".
func echoServer(t *testing.T, s *Server) string {
	t.Helper()
	if s.Handler == nil {
		s.Handler = HandlerFunc(func(ctx context.Context, r *Request) [][]byte {
			if r.Err != nil {
				return [][]byte{[]byte("TOO LARGE")}
			}
			return [][]byte{append([]byte("ACK:"), r.Message...)}
		})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

func TestServerManyConnectionsAndMessages(t *testing.T) {
	addr := echoServer(t, &Server{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := Dial(ctx, addr, nil)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for i := range 50 {
				msg := fmt.Sprintf("c%d-m%d", c, i)
				got, err := cl.Exchange(ctx, []byte(msg))
				if err != nil || string(got) != "ACK:"+msg {
					errs <- fmt.Errorf("%s: %q %v", msg, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServerOversizedMessageKeepsTheConnection(t *testing.T) {
	addr := echoServer(t, &Server{MaxMessageBytes: 64})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got, err := cl.Exchange(ctx, bytes.Repeat([]byte("z"), 10_000)); err != nil || string(got) != "TOO LARGE" {
		t.Fatalf("oversized: %q %v", got, err)
	}
	if got, err := cl.Exchange(ctx, []byte("small")); err != nil || string(got) != "ACK:small" {
		t.Fatalf("after oversized: %q %v", got, err)
	}
}

func TestServerIdleTimeoutAndConnectionLimit(t *testing.T) {
	addr := echoServer(t, &Server{IdleTimeout: 200 * time.Millisecond, MaxConnections: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, _ := Dial(ctx, addr, nil)
	b, _ := Dial(ctx, addr, nil)
	defer a.Close()
	defer b.Close()
	if _, err := a.Exchange(ctx, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exchange(ctx, []byte("2")); err != nil {
		t.Fatal(err)
	}
	// A third connection is closed at once.
	c, err := Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exchange(ctx, []byte("3")); err == nil {
		t.Error("third connection was served beyond the limit of 2")
	}
	// An idle connection is closed after the idle timeout.
	_ = a.Raw().SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := a.Raw().Read(make([]byte, 1)); err == nil || time.Since(start) > 4*time.Second {
		t.Errorf("idle connection not closed by the server: %v after %v", err, time.Since(start))
	}
}

func TestServerGracefulShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var handled atomic.Int32
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, r *Request) [][]byte {
		if string(r.Message) == "slow" {
			close(entered)
			<-release
		}
		handled.Add(1)
		return [][]byte{append([]byte("ACK:"), r.Message...)}
	})}
	addr := echoServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	busy, _ := Dial(ctx, addr, nil)
	idle, _ := Dial(ctx, addr, nil)
	defer busy.Close()
	defer idle.Close()
	if _, err := idle.Exchange(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	answer := make(chan string, 1)
	go func() {
		got, err := busy.Exchange(ctx, []byte("slow"))
		answer <- fmt.Sprintf("%s %v", got, err)
	}()
	<-entered
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	// The idle connection is closed; the busy one finishes.
	_ = idle.Raw().SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Raw().Read(make([]byte, 1)); err == nil {
		t.Error("idle connection still open during shutdown")
	}
	close(release)
	if got := <-answer; got != "ACK:slow <nil>" {
		t.Errorf("in-flight message during shutdown: %s", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := Dial(ctx, addr, nil); err == nil {
		// The listener is closed; a dial may still succeed on some systems only if the
		// port was reused, which it is not this quickly.
		t.Error("the server still accepts connections after Shutdown")
	}
}
