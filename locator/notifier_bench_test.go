package locator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/notify"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// BenchmarkNotificationDrain is check 5: 10 participants hold a record of one person and
// each subscribes to its documents; another participant registers 10,000 documents for
// the person while the notifier is stopped; then the notifier starts and the benchmark
// times the drain of all 100,000 notifications (10,000 events × 10 subscribers) to a real
// HTTP receiver on loopback, which verifies every signature. Every delivery is decided by
// the policy point and audited through Raft, as in production.
//
//	go test -run '^$' -bench NotificationDrain -benchtime 1x ./locator/
func BenchmarkNotificationDrain(b *testing.B) {
	const subscribers, events, batch = 10, 10_000, 500
	for range b.N {
		b.StopTimer()
		var srv *Server
		a := newTestAPIWith(b, func(o *Options) func(*Server) {
			testNotifyOptions(o)
			o.MaxBodyBytes = 16 << 20
			return func(s *Server) { srv = s }
		})
		var delivered, bad atomic.Int64
		var mu sync.Mutex
		secrets := map[string]string{}
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			secret := secrets[r.Header.Get(notify.HeaderSubscription)]
			mu.Unlock()
			if !notify.Verify(secret, body, r.Header.Get(notify.HeaderSignature)) {
				bad.Add(1)
			}
			delivered.Add(1)
		}))
		b.Cleanup(rcv.Close)

		patient := func(sys string) map[string]any {
			return patientJSON(sys, "MRN-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123")
		}
		tokens := make([]string, subscribers+1)
		for i := range tokens {
			sys := fmt.Sprintf("urn:oid:2.16.840.1.113883.3.%d", 8000+i)
			_, body, _ := a.do("POST", "/fhir/Organization", testAdminToken, org(fmt.Sprintf("p%d", i), sys), nil)
			tokens[i] = tokenOf(b, body)
			if code, body, _ := a.do("POST", "/fhir/Patient", tokens[i], patient(sys), nil); code != 201 {
				b.Fatalf("register: %d %s", code, body)
			}
		}
		for i := 1; i <= subscribers; i++ {
			body := map[string]any{
				"resourceType": "Subscription", "status": "requested", "reason": "benchmark", "criteria": model.TopicDocument,
				"extension": []any{map[string]any{"url": fhir.ExtPurposeOfUse, "valueCode": "TREAT"}},
				"channel":   map[string]any{"type": "rest-hook", "endpoint": rcv.URL, "payload": "application/fhir+json"},
			}
			code, data, _ := a.do("POST", "/fhir/Subscription", tokens[i], body, nil)
			if code != 201 {
				b.Fatalf("subscribe: %d %s", code, data)
			}
			var s fhir.Subscription
			json.Unmarshal(data, &s)
			for _, e := range s.Extension {
				if e.URL == fhir.ExtSubscriptionSecret {
					secrets[s.ID] = e.ValueString
				}
			}
		}
		subject := "Patient/" + model.PatientID("urn:oid:2.16.840.1.113883.3.8000|MRN-1")
		for first := 0; first < events; first += batch {
			var docs []json.RawMessage
			for k := first; k < min(first+batch, events); k++ {
				d, _ := json.Marshal(map[string]any{
					"resourceType":     "DocumentReference",
					"masterIdentifier": map[string]any{"system": "urn:ietf:rfc:3986", "value": fmt.Sprintf("urn:oid:1.2.3.4.%d", k)},
					"status":           "current",
					"type":             map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "11506-3"}}},
					"subject":          map[string]any{"reference": subject},
					"content":          []any{map[string]any{"attachment": map[string]any{"url": fmt.Sprintf("https://docs.example/%d", k)}}},
				})
				docs = append(docs, d)
			}
			if code, body, _ := a.do("POST", "/v1/documents/batch", tokens[0], DocumentBatchRequest{Documents: docs}, nil); code != 200 {
				b.Fatalf("document batch: %d %.300s", code, body)
			}
		}
		var head uint64
		a.node.SyncLocal(context.Background())
		a.node.State().View(func(tx *state.Tx) error { head = tx.NotifyHead(); return nil })
		if head < events {
			b.Fatalf("%d events in the log, want %d", head, events)
		}

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		b.StartTimer()
		start := time.Now()
		go func() { defer close(done); srv.RunNotifier(ctx) }()
		testkit.WaitFor(b, 10*time.Minute, "every notification", func() bool { return delivered.Load() >= subscribers*events })
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		<-done
		if n := bad.Load(); n != 0 {
			b.Fatalf("%d notifications with a bad signature", n)
		}
		rate := float64(delivered.Load()) / elapsed.Seconds()
		b.ReportMetric(rate, "deliveries/s")
		b.ReportMetric(0, "ns/op")
		b.Logf("%d notifications (%d events × %d subscribers) delivered in %v: %.0f deliveries/s", delivered.Load(), events, subscribers, elapsed.Round(time.Millisecond), rate)
	}
}
