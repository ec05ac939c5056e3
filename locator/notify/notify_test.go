package notify

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckEndpoint(t *testing.T) {
	prod, dev := Policy{}, Policy{AllowHTTP: true, AllowLocal: true}
	for _, c := range []struct {
		url       string
		prod, dev bool
	}{
		{"https://ehr.example.org/fhir/notify", true, true},
		{"https://10.2.3.4:8443/notify", true, true}, // a private network is where HIE members live
		{"http://ehr.example.org/notify", false, true},
		{"https://127.0.0.1/notify", false, true},
		{"https://[::1]/notify", false, true},
		{"https://localhost:9000/notify", false, true},
		{"https://api.localhost/notify", false, true},
		{"https://169.254.169.254/latest/meta-data", false, true}, // cloud metadata
		{"https://[fe80::1]/notify", false, true},
		{"https://0.0.0.0/notify", false, true},
		{"https://[::ffff:127.0.0.1]/notify", false, true},
		{"https://224.0.0.1/notify", false, true},
		{"ftp://ehr.example.org/notify", false, false},
		{"https://user:pw@ehr.example.org/notify", false, false},
		{"https://ehr.example.org/notify#x", false, false},
		{"/relative", false, false},
		{"https://", false, false},
	} {
		if err := prod.CheckEndpoint(c.url); (err == nil) != c.prod || (err != nil && !errors.Is(err, ErrEndpoint)) {
			t.Errorf("production %s: %v, want allowed=%v", c.url, err, c.prod)
		}
		if err := dev.CheckEndpoint(c.url); (err == nil) != c.dev {
			t.Errorf("dev %s: %v, want allowed=%v", c.url, err, c.dev)
		}
	}
}

// TestSenderRefusesLocalAddressesWhenConnecting: a name that passed the check at creation
// but resolves to loopback (DNS re-pointed at the node) is refused at connection time,
// and the refusal is not retried.
func TestSenderRefusesLocalAddressesWhenConnecting(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	endpoint := strings.Replace(srv.URL, "127.0.0.1", "localtest.invalid", 1)
	s := NewSender(SenderOptions{Policy: Policy{AllowHTTP: true}, Retries: 3, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
	// Resolve the name to loopback without DNS: dial the server's address directly.
	s.client.HTTPClient.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		d := &net.Dialer{Control: Policy{AllowHTTP: true}.control}
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}
	err := s.Send(context.Background(), Notification{Subscription: "s1", Endpoint: endpoint + "/n", Secret: strings.Repeat("k", 32), EventID: 1, Body: []byte("{}")})
	if err == nil || !strings.Contains(err.Error(), "loopback") || hits != 0 {
		t.Fatalf("send to a name resolving to loopback: %v, %d requests reached it", err, hits)
	}
	// Allowed, the same send arrives, signed.
	s = NewSender(SenderOptions{Policy: Policy{AllowHTTP: true, AllowLocal: true}})
	if err := s.Send(context.Background(), Notification{Subscription: "s1", Endpoint: srv.URL + "/n", Secret: strings.Repeat("k", 32), EventID: 1, Body: []byte("{}")}); err != nil || hits != 1 {
		t.Fatalf("allowed send: %v, %d requests", err, hits)
	}
}

// TestSenderRetriesWithBackoff: a 503 is retried (and counted), a 400 is final.
func TestSenderRetriesWithBackoff(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		switch {
		case r.URL.Path == "/bad":
			w.WriteHeader(http.StatusBadRequest)
		case calls < 3:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			if !Verify("0123456789abcdef0123456789abcdef", []byte(`{"a":1}`), r.Header.Get(HeaderSignature)) || r.Header.Get(HeaderEventID) != "7" {
				w.WriteHeader(http.StatusUnauthorized)
			}
		}
	}))
	defer srv.Close()
	m := NewMetrics(nil)
	s := NewSender(SenderOptions{Policy: Policy{AllowHTTP: true, AllowLocal: true}, Retries: 3, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Metrics: m})
	n := Notification{Subscription: "s1", Endpoint: srv.URL + "/ok", Secret: "0123456789abcdef0123456789abcdef", EventID: 7, Body: []byte(`{"a":1}`)}
	if err := s.Send(context.Background(), n); err != nil || calls != 3 {
		t.Fatalf("send through two 503s: %v after %d calls", err, calls)
	}
	calls = 10
	n.Endpoint = srv.URL + "/bad"
	if err := s.Send(context.Background(), n); err == nil || calls != 11 {
		t.Fatalf("a 400 must fail at once: %v after %d calls", err, calls-10)
	}
}

func TestJitterBackoffStaysInBounds(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	seen := map[time.Duration]bool{}
	for attempt := range 8 {
		for range 50 {
			d := JitterBackoff(lo, hi, attempt, nil)
			ceiling := min(lo<<attempt, hi)
			if d < lo || d > ceiling {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, lo, ceiling)
			}
			seen[d] = true
		}
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct waits: no jitter", len(seen))
	}
	resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": []string{"1"}}}
	if d := JitterBackoff(lo, hi, 0, resp); d != time.Second {
		t.Errorf("Retry-After 1: waited %v", d)
	}
}
