package locator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/notify"
	"github.com/rls-hie/rls/raft/model"
)

// hookReceiver is a real HTTP endpoint that records the notifications it is sent, verifying
// each signature with the secret of its subscription.
type hookReceiver struct {
	t       testing.TB
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	secrets map[string]string
	// down makes it answer 503, as an endpoint under maintenance does.
	down atomic.Bool
}

type received struct {
	subscription string
	eventID      uint64
	signed       bool
	bundle       testBundle
	at           time.Time
}

// testBundle is a notification as a receiver parses it.
type testBundle struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Type         string `json:"type"`
	Timestamp    string `json:"timestamp"`
	Meta         struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
	Entry []testEntry `json:"entry"`
}

type testEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response *struct {
		Status string `json:"status"`
	} `json:"response"`
}

// status returns the bundle's SubscriptionStatus and the values of its parameters (parts
// of notification-event prefixed "event.").
func (b testBundle) status(t testing.TB) (fhir.Parameters, map[string][]string) {
	t.Helper()
	if len(b.Entry) == 0 {
		t.Fatalf("notification %s has no entries", b.ID)
	}
	var p fhir.Parameters
	if err := json.Unmarshal(b.Entry[0].Resource, &p); err != nil {
		t.Fatal(err)
	}
	values := map[string][]string{}
	value := func(x fhir.Parameter) string {
		switch {
		case x.ValueReference != nil:
			return x.ValueReference.Reference
		case x.ValueCanonical != "":
			return x.ValueCanonical
		case x.ValueCode != "":
			return x.ValueCode
		case x.ValueInstant != "":
			return x.ValueInstant
		}
		return x.ValueString
	}
	for _, x := range p.Parameter {
		if x.Name == "notification-event" {
			for _, part := range x.Part {
				values["event."+part.Name] = append(values["event."+part.Name], value(part))
			}
			for _, e := range x.Extension {
				if e.URL == fhir.ExtEventAction {
					values["event.action"] = append(values["event.action"], e.ValueCode)
				}
			}
			continue
		}
		values[x.Name] = append(values[x.Name], value(x))
	}
	return p, values
}

func newHookReceiver(t testing.TB) *hookReceiver {
	r := &hookReceiver{t: t, secrets: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var b testBundle
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// What rls sends is R4, as what it answers is.
		if err := fhir.ValidateR4(body, "Bundle"); err != nil {
			t.Errorf("a notification is not valid R4: %v\n%.600s", err, body)
		}
		id, _ := strconv.ParseUint(req.Header.Get(notify.HeaderEventID), 10, 64)
		sub := req.Header.Get(notify.HeaderSubscription)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, received{subscription: sub, eventID: id, bundle: b, at: time.Now(),
			signed: notify.Verify(r.secrets[sub], body, req.Header.Get(notify.HeaderSignature))})
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) of(sub string) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []received
	for _, g := range r.got {
		if g.subscription == sub {
			out = append(out, g)
		}
	}
	return out
}

// testNotifyOptions are delivery settings for tests: loopback and plain HTTP allowed,
// short waits.
func testNotifyOptions(o *Options) {
	o.Notify = NotifyOptions{AllowHTTP: true, AllowLocal: true, Poll: 20 * time.Millisecond, Retries: 1,
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, ErrorBackoffMax: 200 * time.Millisecond, Timeout: 2 * time.Second}
}

// newNotifyAPI is a test node whose notifier runs.
func newNotifyAPI(t *testing.T) *testAPI {
	return newTestAPIWith(t, func(o *Options) func(*Server) {
		testNotifyOptions(o)
		return func(s *Server) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.RunNotifier(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
		}
	})
}

// subscribe creates a subscription of tok's participant and registers its secret with
// the receiver.
func (r *hookReceiver) subscribe(t testing.TB, a *testAPI, tok, topic, payload string) string {
	t.Helper()
	body := map[string]any{
		"resourceType": "Subscription", "status": "requested", "reason": "care coordination", "criteria": topic,
		"extension": []any{map[string]any{"url": fhir.ExtPurposeOfUse, "valueCode": "TREAT"}},
		"channel": map[string]any{"type": "rest-hook", "endpoint": r.srv.URL + "/notify", "payload": "application/fhir+json",
			"_payload": map[string]any{"extension": []any{map[string]any{"url": fhir.ExtPayloadContent, "valueCode": payload}}}},
	}
	code, data, _ := a.do("POST", "/fhir/Subscription", tok, body, nil)
	if code != http.StatusCreated {
		t.Fatalf("subscribe: %d %s", code, data)
	}
	var s fhir.Subscription
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	secret := ""
	for _, e := range s.Extension {
		if e.URL == fhir.ExtSubscriptionSecret {
			secret = e.ValueString
		}
	}
	if s.ID == "" || len(secret) < 32 || s.Status != "active" {
		t.Fatalf("subscription created without id, secret or active status: %s", data)
	}
	r.mu.Lock()
	r.secrets[s.ID] = secret
	r.mu.Unlock()
	return s.ID
}

// checkNotification holds a notification to the Backport IG: a history Bundle with the
// notification profile, the SubscriptionStatus first (profile, subscription, topic, type
// event-notification, an event number), the focus after it; signed.
func checkNotification(t *testing.T, g received, sub, topic, focusType string, full bool) map[string][]string {
	t.Helper()
	b := g.bundle
	if !g.signed {
		t.Errorf("notification %s: the signature does not verify", b.ID)
	}
	if b.ResourceType != "Bundle" || b.Type != "history" || len(b.Meta.Profile) != 1 || b.Meta.Profile[0] != fhir.ProfileNotificationBundle || b.Timestamp == "" {
		t.Errorf("notification %s is not a Backport notification Bundle: %+v", b.ID, b)
	}
	p, v := b.status(t)
	if p.ResourceType != "Parameters" || p.Meta == nil || len(p.Meta.Profile) != 1 || p.Meta.Profile[0] != fhir.ProfileSubscriptionStatus {
		t.Errorf("first entry is not a SubscriptionStatus: %s", b.Entry[0].Resource)
	}
	if b.Entry[0].Request == nil || b.Entry[0].Request.URL != "Subscription/"+sub+"/$status" || b.Entry[0].Response == nil {
		t.Errorf("status entry request/response: %+v", b.Entry[0])
	}
	want := map[string]string{"subscription": "Subscription/" + sub, "topic": topic, "type": "event-notification", "status": "active"}
	for k, w := range want {
		if len(v[k]) != 1 || v[k][0] != w {
			t.Errorf("status %s = %v, want %s", k, v[k], w)
		}
	}
	if len(v["event.event-number"]) != 1 || v["events-since-subscription-start"][0] != v["event.event-number"][0] {
		t.Errorf("event number %v, events since start %v", v["event.event-number"], v["events-since-subscription-start"])
	}
	focus := v["event.focus"]
	if len(focus) != 1 || !strings.HasPrefix(focus[0], focusType+"/") {
		t.Fatalf("focus = %v, want a %s", focus, focusType)
	}
	// R4: fullUrl is absolute, the focus's address on the delivering node.
	if len(b.Entry) != 2 || !strings.HasPrefix(b.Entry[1].FullURL, "http") || !strings.HasSuffix(b.Entry[1].FullURL, "/fhir/"+focus[0]) ||
		b.Entry[1].Request == nil || b.Entry[1].Response == nil {
		t.Fatalf("focus entry: %+v", b.Entry)
	}
	if full {
		var res struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(b.Entry[1].Resource, &res); err != nil || focusType+"/"+res.ID != focus[0] {
			t.Errorf("full-resource focus entry holds %s, want %s (%v)", b.Entry[1].Resource, focus[0], err)
		}
	} else if len(b.Entry[1].Resource) != 0 {
		t.Errorf("id-only notification carries the resource: %s", b.Entry[1].Resource)
	}
	if !strings.HasPrefix(b.ID, sub+"-") || b.ID != sub+"-"+strconv.FormatUint(g.eventID, 10) {
		t.Errorf("bundle id %s, event id %d: the id must be the subscription and the event", b.ID, g.eventID)
	}
	return v
}

// TestNotificationsReachSubscriber is check 1: A subscribes to encounters and documents for
// its patients; B registers the same person and a document for them; a real HTTP receiver
// gets both notifications, valid Backport IG Bundles, signed, within 2 s.
func TestNotificationsReachSubscriber(t *testing.T) {
	a := newNotifyAPI(t)
	tokA, tokB := a.participants()
	rcv := newHookReceiver(t)
	if code, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil); code != 201 {
		t.Fatalf("register at A: %d %s", code, body)
	}
	encounters := rcv.subscribe(t, a, tokA, model.TopicEncounter, model.PayloadFullResource)
	documents := rcv.subscribe(t, a, tokA, model.TopicDocument, model.PayloadIDOnly)
	// B's own subscription must hear nothing of B's own registrations.
	ownB := rcv.subscribe(t, a, tokB, model.TopicEncounter, model.PayloadIDOnly)

	start := time.Now()
	code, body, _ := a.do("POST", "/fhir/Patient", tokB, patientJSON(sysB, "B-1", "Maggie", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	if code != 201 {
		t.Fatalf("register at B: %d %s", code, body)
	}
	patB := model.PatientID(sysB + "|B-1")
	docB := (docWorld{a: a}).register(t, tokB, docJSON("urn:oid:1.2.3.77", "Patient/"+patB, "current", "34133-9", "2026-03-01", "Discharge summary"))
	testkit.WaitFor(t, 2*time.Second, "both notifications at A's endpoint", func() bool {
		return len(rcv.of(encounters)) >= 1 && len(rcv.of(documents)) >= 1
	})
	t.Logf("both notifications received %v after B's registration", time.Since(start).Round(time.Millisecond))

	enc := rcv.of(encounters)
	if len(enc) != 1 {
		t.Fatalf("%d encounter notifications, want 1", len(enc))
	}
	v := checkNotification(t, enc[0], encounters, model.TopicEncounter, "Patient", true)
	if v["event.focus"][0] != "Patient/"+patB || v["event.event-number"][0] != "1" || v["event.action"][0] != "registered" {
		t.Errorf("encounter event: %v", v)
	}
	if !strings.Contains(strings.Join(v["event.additional-context"], " "), "Patient/"+model.PatientID(sysA+"|A-1")) {
		t.Errorf("the encounter does not name A's own record: %v", v["event.additional-context"])
	}
	doc := rcv.of(documents)
	v = checkNotification(t, doc[0], documents, model.TopicDocument, "DocumentReference", false)
	if v["event.focus"][0] != "DocumentReference/"+docB {
		t.Errorf("document focus %v, want DocumentReference/%s", v["event.focus"], docB)
	}
	if n := len(rcv.of(ownB)); n != 0 {
		t.Errorf("B was notified %d times of its own registration", n)
	}

	// Every delivery is audited, under the subscription's purpose of use.
	list := a.auditList(t, "participant=hosp-a")
	notified := 0
	for _, e := range list.Entries {
		if e.Action == "subscription-notify" && e.Purpose == "TREAT" && len(e.EUIDs) == 1 {
			notified++
		}
	}
	if notified != 2 {
		t.Errorf("%d audited notifications to hosp-a, want 2", notified)
	}

	// The status operation reports the progress. The notifier records a delivery round
	// through Raft once the endpoint has answered, so the count may trail the receipt.
	testkit.WaitFor(t, 2*time.Second, "$status to count the delivered event", func() bool {
		code, body, _ = a.do("GET", "/fhir/Subscription/"+encounters+"/$status", tokA, nil, nil)
		_, v := (testBundle{Entry: []testEntry{{Resource: body}}}).status(t)
		return code == 200 && v["type"][0] == "query-status" && v["events-since-subscription-start"][0] == "1"
	})
	// Another participant does not see A's subscription.
	if code, _, _ := a.do("GET", "/fhir/Subscription/"+encounters, tokB, nil, nil); code != 404 {
		t.Errorf("B reads A's subscription: %d, want 404", code)
	}
}

// TestNotificationsRespectConsent is check 3: events of an opted-out patient, and of a
// patient who denied the subscriber, are not delivered; an event the subscriber may see,
// registered after them, is, and numbered as the first (withheld events are not counted).
func TestNotificationsRespectConsent(t *testing.T) {
	a := newNotifyAPI(t)
	tokA, tokB := a.participants()
	rcv := newHookReceiver(t)
	reg := func(tok, sys, mrn, given, family, birth, zip, phone string) {
		t.Helper()
		if code, body, _ := a.do("POST", "/fhir/Patient", tok, patientJSON(sys, mrn, given, family, birth, "female", zip, phone), nil); code != 201 && code != 200 {
			t.Fatalf("register %s: %d %s", mrn, code, body)
		}
	}
	// P opts out (A records it); R denies hosp-a (B records it); Q has no directive. A and B
	// both hold a record of each.
	reg(tokA, sysA, "A-P", "Margaret", "Okonjo", "1958-02-14", "62704", "2175550123")
	reg(tokA, sysA, "A-R", "Ruth", "Calloway", "1971-07-30", "10001", "2125550111")
	reg(tokA, sysA, "A-Q", "Quinn", "Abernathy", "1983-11-05", "30301", "4045550177")
	reg(tokB, sysB, "B-R", "Ruth", "Calloway", "1971-07-30", "10001", "2125550111")
	a.consent(t, tokA, consentJSON("Patient/"+model.PatientID(sysA+"|A-P"), true, nil, nil))
	a.consent(t, tokB, consentJSON("Patient/"+model.PatientID(sysB+"|B-R"), false, []string{"hosp-a"}, nil))

	sub := rcv.subscribe(t, a, tokA, model.TopicEncounter, model.PayloadIDOnly)
	reg(tokB, sysB, "B-P", "Maggie", "Okonjo", "1958-02-14", "62704", "2175550123") // opted out
	reg(tokB, sysB, "B-R", "Ruth", "Calloway", "1971-07-30", "10001", "2125550199") // denies A (an update)
	reg(tokB, sysB, "B-Q", "Quinn", "Abernathy", "1983-11-05", "30301", "4045550177")
	testkit.WaitFor(t, 5*time.Second, "Q's notification", func() bool { return len(rcv.of(sub)) >= 1 })
	// The notifier handles events in order: once Q's (the last) is delivered, the others
	// were decided. Give it a moment more to show any extra delivery.
	if err := testkit.Poll(300*time.Millisecond, 20*time.Millisecond, func() bool { return len(rcv.of(sub)) > 1 }); err == nil {
		t.Errorf("more than one notification delivered: %d", len(rcv.of(sub)))
	}
	got := rcv.of(sub)
	v := checkNotification(t, got[0], sub, model.TopicEncounter, "Patient", false)
	if v["event.focus"][0] != "Patient/"+model.PatientID(sysB+"|B-Q") || v["event.event-number"][0] != "1" {
		t.Errorf("delivered %v, want only Q's registration as event 1", v)
	}
	// The subscription has passed the withheld events: nothing is pending.
	testkit.WaitFor(t, 3*time.Second, "cursor past every event", func() bool {
		_, body, _ := a.do("GET", "/fhir/Subscription/"+sub, tokA, nil, nil)
		var s fhir.Subscription
		json.Unmarshal(body, &s)
		for _, e := range s.Extension {
			if e.URL == fhir.ExtPendingEvents && e.ValueInteger != nil {
				return *e.ValueInteger == 0
			}
		}
		return false
	})
}

// TestIdentityChangeNotifications is check 4: a link, an unlink and a merge of a record
// each notify the participant that registered it, in order, with the new and the previous
// person; the holder of a record that did not move hears nothing.
func TestIdentityChangeNotifications(t *testing.T) {
	a := newNotifyAPI(t)
	tokA, tokB := a.participants()
	rcv := newHookReceiver(t)
	keyA := sysA + "|A-1"
	a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	a.do("POST", "/fhir/Patient", tokB, patientJSON(sysB, "B-9", "Thomas", "Reed", "1990-01-20", "male", "10001", "2125550199"), nil)
	x := a.euidOfRecord(t, tokA, keyA)
	y := a.euidOfRecord(t, tokB, sysB+"|B-9")
	subA := rcv.subscribe(t, a, tokA, model.TopicIdentity, model.PayloadFullResource)
	subB := rcv.subscribe(t, a, tokB, model.TopicIdentity, model.PayloadIDOnly)

	a.post(t, "/v1/steward/link", map[string]any{"record": keyA, "euid": y, "reason": "same person, confirmed by phone"})
	var res struct {
		EUID string `json:"euid"`
	}
	json.Unmarshal(a.post(t, "/v1/steward/unlink", map[string]any{"record": keyA, "reason": "different mother's maiden name"}), &res)
	z := res.EUID
	a.post(t, "/v1/steward/merge", map[string]any{"from": z, "into": y, "reason": "duplicate after all"})

	testkit.WaitFor(t, 5*time.Second, "three identity notifications", func() bool { return len(rcv.of(subA)) >= 3 })
	got := rcv.of(subA)
	want := []struct{ action, now, before string }{{"linked", y, x}, {"unlinked", z, y}, {"merged", y, z}}
	if len(got) != len(want) {
		t.Fatalf("%d notifications, want %d", len(got), len(want))
	}
	for i, w := range want {
		v := checkNotification(t, got[i], subA, model.TopicIdentity, "Patient", true)
		ctx := strings.Join(v["event.additional-context"], " ")
		if v["event.action"][0] != w.action || v["event.focus"][0] != "Patient/"+model.PatientID(keyA) ||
			!strings.HasPrefix(ctx, "Person/"+w.now+" Person/"+w.before) || v["event.event-number"][0] != strconv.Itoa(i+1) {
			t.Errorf("notification %d: action %v focus %v context %q number %v; want %s from %s to %s", i+1, v["event.action"], v["event.focus"], ctx, v["event.event-number"], w.action, w.before, w.now)
		}
		if i > 0 && got[i].eventID <= got[i-1].eventID {
			t.Errorf("event ids out of order: %d after %d", got[i].eventID, got[i-1].eventID)
		}
	}
	if ctx := strings.Join(checkNotification(t, got[0], subA, model.TopicIdentity, "Patient", true)["event.additional-context"], " "); !strings.Contains(ctx, "Patient/"+model.PatientID(sysB+"|B-9")) {
		t.Errorf("the link does not name the other record of the person: %q", ctx)
	}
	if n := len(rcv.of(subB)); n != 0 {
		t.Errorf("B, whose record never moved, got %d identity notifications", n)
	}
}

// TestSubscriptionInputIsChecked: a subscription the rules refuse gets a clear
// OperationOutcome and nothing is stored; a participant reads and changes only its own.
func TestSubscriptionInputIsChecked(t *testing.T) {
	a := newTestAPI(t) // production endpoint rules: https only, no local addresses
	tokA, tokB := a.participants()
	sub := func(mut func(m map[string]any)) map[string]any {
		m := map[string]any{
			"resourceType": "Subscription", "status": "requested", "reason": "alerts", "criteria": model.TopicEncounter,
			"extension": []any{map[string]any{"url": fhir.ExtPurposeOfUse, "valueCode": "TREAT"}},
			"channel":   map[string]any{"type": "rest-hook", "endpoint": "https://ehr.example.org/notify", "payload": "application/fhir+json"},
		}
		if mut != nil {
			mut(m)
		}
		return m
	}
	channel := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) { m["channel"].(map[string]any)[k] = v }
	}
	for _, c := range []struct {
		what   string
		mut    func(map[string]any)
		status int
		says   string
	}{
		{"plain http", channel("endpoint", "http://ehr.example.org/notify"), 422, "https"},
		{"loopback", channel("endpoint", "https://127.0.0.1:8443/notify"), 422, "loopback"},
		{"metadata service", channel("endpoint", "https://169.254.169.254/latest"), 422, "link-local"},
		{"unknown topic", func(m map[string]any) { m["criteria"] = "Patient?name=smith" }, 400, "topic"},
		{"websocket", channel("type", "websocket"), 400, "rest-hook"},
		{"payload type", channel("payload", "application/xml"), 400, "payload"},
		{"payload content", channel("_payload", map[string]any{"extension": []any{map[string]any{"url": fhir.ExtPayloadContent, "valueCode": "everything"}}}), 400, "payload content"},
		{"no purpose", func(m map[string]any) { delete(m, "extension") }, 400, "purpose of use"},
		{"purpose not granted", func(m map[string]any) {
			m["extension"] = []any{map[string]any{"url": fhir.ExtPurposeOfUse, "valueCode": "HRESCH"}}
		}, 403, "HRESCH"},
		{"short secret", func(m map[string]any) {
			m["extension"] = append(m["extension"].([]any), map[string]any{"url": fhir.ExtSubscriptionSecret, "valueString": "short"})
		}, 400, "secret"},
		{"no reason", func(m map[string]any) { delete(m, "reason") }, 400, "reason"},
		{"unknown element", func(m map[string]any) { m["topic"] = "x" }, 400, "topic"},
		{"end", func(m map[string]any) { m["end"] = "2030-01-01T00:00:00Z" }, 400, "end"},
	} {
		code, body, _ := a.do("POST", "/fhir/Subscription", tokA, sub(c.mut), map[string]string{HeaderPurposeOfUse: ""})
		if code != c.status || !strings.Contains(string(body), `"OperationOutcome"`) || !strings.Contains(string(body), c.says) {
			t.Errorf("%s: %d %s, want %d mentioning %q", c.what, code, body, c.status, c.says)
		}
	}
	code, body, _ := a.do("GET", "/fhir/Subscription", testAdminToken, nil, nil)
	if code != 200 || strings.Contains(string(body), `"Subscription/`) {
		t.Fatalf("refused subscriptions were stored: %d %s", code, body)
	}

	code, body, _ = a.do("POST", "/fhir/Subscription", tokA, sub(nil), nil)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var s fhir.Subscription
	json.Unmarshal(body, &s)
	if _, body, _ = a.do("GET", "/fhir/Subscription/"+s.ID, tokA, nil, nil); strings.Contains(string(body), fhir.ExtSubscriptionSecret) {
		t.Errorf("a read returns the secret: %s", body)
	}
	// B can neither read nor change A's subscription; A turns it off.
	s.Status, s.Meta, s.Extension = "off", nil, []fhir.Extension{{URL: fhir.ExtPurposeOfUse, ValueCode: "TREAT"}}
	if code, _, _ := a.do("PUT", "/fhir/Subscription/"+s.ID, tokB, s, nil); code != 404 {
		t.Errorf("B changes A's subscription: %d, want 404", code)
	}
	if code, body, _ := a.do("PUT", "/fhir/Subscription/"+s.ID, tokA, s, map[string]string{"If-Match": `W/"1"`}); code != 200 || !strings.Contains(string(body), `"status": "off"`) {
		t.Errorf("turn off: %d %s", code, body)
	}
	if code, _, _ := a.do("PUT", "/fhir/Subscription/"+s.ID, tokA, s, map[string]string{"If-Match": `W/"1"`}); code != 412 {
		t.Errorf("stale If-Match: %d, want 412 (R4's version conflict)", code)
	}
	if _, body, _ := a.do("GET", "/fhir/Subscription?status=off", testAdminToken, nil, nil); !strings.Contains(string(body), "Subscription/"+s.ID) {
		t.Errorf("the admin does not list A's subscription: %s", body)
	}
}
