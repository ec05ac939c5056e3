package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/notify"
)

// notifyHCL lets the nodes deliver to the test's receiver on loopback over plain HTTP,
// with short retry waits.
const notifyHCL = `notify {
  allow_http = true
  allow_local_endpoints = true
  retries = 1
  retry_min = "50ms"
  retry_max = "200ms"
  error_backoff_max = "500ms"
  timeout = "2s"
}
`

// eventReceiver is a real HTTP endpoint recording, in arrival order, the event id and
// event number of every notification it accepts.
type eventReceiver struct {
	srv    *httptest.Server
	secret atomic.Value // string
	down   atomic.Bool
	mu     sync.Mutex
	got    []deliveredEvent
	bad    []string
}

type deliveredEvent struct {
	id, number uint64
}

func newEventReceiver(t *testing.T) *eventReceiver {
	r := &eventReceiver{}
	r.secret.Store("")
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if !notify.Verify(r.secret.Load().(string), body, req.Header.Get(notify.HeaderSignature)) {
			r.bad = append(r.bad, "bad signature")
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var b struct {
			Type  string `json:"type"`
			Entry []struct {
				Resource struct {
					Parameter []struct {
						Name string `json:"name"`
						Part []struct {
							Name        string `json:"name"`
							ValueString string `json:"valueString"`
						} `json:"part"`
					} `json:"parameter"`
				} `json:"resource"`
			} `json:"entry"`
		}
		json.Unmarshal(body, &b)
		var number uint64
		if len(b.Entry) > 0 {
			for _, p := range b.Entry[0].Resource.Parameter {
				for _, part := range p.Part {
					if p.Name == "notification-event" && part.Name == "event-number" {
						number, _ = strconv.ParseUint(part.ValueString, 10, 64)
					}
				}
			}
		}
		id, _ := strconv.ParseUint(req.Header.Get(notify.HeaderEventID), 10, 64)
		if b.Type != "history" || number == 0 || id == 0 {
			r.bad = append(r.bad, fmt.Sprintf("malformed notification: type %q, number %d, id %d", b.Type, number, id))
		}
		r.got = append(r.got, deliveredEvent{id: id, number: number})
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// distinct returns the notifications received, first deliveries only, in arrival order,
// and how many were duplicates.
func (r *eventReceiver) distinct() (first []deliveredEvent, dups int, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[uint64]bool{}
	for _, e := range r.got {
		if seen[e.id] {
			dups++
			continue
		}
		seen[e.id] = true
		first = append(first, e)
	}
	return first, dups, append([]string(nil), r.bad...)
}

// TestNotificationsSurviveLeaderKill is check 2: notifications are pending (the receiver
// is down) when the leader is SIGKILLed; once another node leads and the receiver is back,
// every event arrives at least once, in order, none missing, counted by event id.
func TestNotificationsSurviveLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster")
	}
	c := NewCluster(t, Options{Nodes: 3, ExtraHCL: notifyHCL})
	const sysA, sysB = "urn:oid:1.2.840.99.71", "urn:oid:1.2.840.99.72"
	tokA := c.addParticipant("hosp-a", sysA)
	tokB := c.addParticipant("hosp-b", sysB)
	const before, during, after = 5, 10, 5
	total := before + during + after
	register := func(node int, tok, sys string, n int) {
		t.Helper()
		p := personDemographics(n, 71)
		p["identifier"] = []any{map[string]any{"system": sys, "value": fmt.Sprintf("N-%d", n)}}
		c.WaitFor(30*time.Second, fmt.Sprintf("registration of person %d at %s", n, sys), func() bool {
			code, _, err := c.callAs(node, tok, "POST", "/fhir/Patient", p, nil)
			return err == nil && (code == 201 || code == 200)
		})
	}
	leader := c.WaitLeader(20 * time.Second)
	for n := range total {
		register(leader, tokA, sysA, n)
	}
	rcv := newEventReceiver(t)
	sub := map[string]any{
		"resourceType": "Subscription", "status": "requested", "reason": "encounter alerts", "criteria": "https://rls-hie.github.io/fhir/SubscriptionTopic/encounter",
		"extension": []any{map[string]any{"url": "https://rls-hie.github.io/fhir/StructureDefinition/purpose-of-use", "valueCode": "TREAT"}},
		"channel":   map[string]any{"type": "rest-hook", "endpoint": rcv.srv.URL + "/rls", "payload": "application/fhir+json"},
	}
	code, body, err := c.callAs(leader, tokA, "POST", "/fhir/Subscription", sub, nil)
	if err != nil || code != 201 {
		t.Fatalf("subscribe: %d %s %v", code, body, err)
	}
	var created struct {
		ID        string `json:"id"`
		Extension []struct {
			URL         string `json:"url"`
			ValueString string `json:"valueString"`
		} `json:"extension"`
	}
	json.Unmarshal(body, &created)
	for _, e := range created.Extension {
		if e.URL == "https://rls-hie.github.io/fhir/StructureDefinition/subscription-secret" {
			rcv.secret.Store(e.ValueString)
		}
	}

	// Phase 1: the receiver is up.
	for n := range before {
		register(leader, tokB, sysB, n)
	}
	c.WaitFor(20*time.Second, "the first notifications", func() bool { f, _, _ := rcv.distinct(); return len(f) == before })

	// Phase 2: the receiver is down; the leader retries, the subscription goes to error.
	rcv.down.Store(true)
	for n := before; n < before+during; n++ {
		register(leader, tokB, sysB, n)
	}
	c.WaitFor(20*time.Second, "the subscription in error", func() bool {
		code, body, err := c.callAs(leader, tokA, "GET", "/fhir/Subscription/"+created.ID, nil, nil)
		var s struct{ Status string }
		json.Unmarshal(body, &s)
		return err == nil && code == 200 && s.Status == "error"
	})
	c.Kill(leader)
	newLeader := c.WaitLeader(30*time.Second, leader)
	t.Logf("leader %s killed with %d notifications pending; %s leads", c.Nodes[leader].ID, during, c.Nodes[newLeader].ID)

	// Phase 3: more events under the new leader, then the receiver comes back.
	for n := before + during; n < total; n++ {
		register(newLeader, tokB, sysB, n)
	}
	rcv.down.Store(false)
	c.WaitFor(60*time.Second, "every notification", func() bool { f, _, _ := rcv.distinct(); return len(f) >= total })

	first, dups, bad := rcv.distinct()
	if len(bad) > 0 {
		t.Errorf("receiver refused notifications: %v", bad)
	}
	if len(first) != total {
		t.Fatalf("%d distinct events, want %d", len(first), total)
	}
	for i, e := range first {
		if e.number != uint64(i+1) {
			t.Errorf("distinct event %d has event number %d: an event is missing or out of order", i+1, e.number)
		}
		if i > 0 && e.id <= first[i-1].id {
			t.Errorf("event id %d arrived after %d: out of order", e.id, first[i-1].id)
		}
	}
	// Duplicates are re-sends of the round the dead leader had not reported: each is an
	// event already delivered, with the same id and number.
	t.Logf("%d events delivered, %d duplicates re-sent after the failover", len(first), dups)
	c.WaitFor(20*time.Second, "the subscription active again", func() bool {
		code, body, err := c.callAs(newLeader, tokA, "GET", "/fhir/Subscription/"+created.ID, nil, nil)
		var s struct{ Status string }
		json.Unmarshal(body, &s)
		return err == nil && code == 200 && s.Status == "active"
	})
}
