package fhir

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// FHIR Subscriptions R5 Backport IG for R4 (hl7.fhir.uv.subscriptions-backport, STU 1.1):
// the profiles and extensions rls reads and writes.
const (
	BackportBase                = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	ProfileBackportSubscription = BackportBase + "backport-subscription"
	ProfileNotificationBundle   = BackportBase + "backport-subscription-notification-r4"
	ProfileSubscriptionStatus   = BackportBase + "backport-subscription-status-r4"
	ExtPayloadContent           = BackportBase + "backport-payload-content"
	ExtFilterCriteria           = BackportBase + "backport-filter-criteria"
	ExtMaxCount                 = BackportBase + "backport-max-count"
	ExtTimeout                  = BackportBase + "backport-timeout"
	ExtHeartbeatPeriod          = BackportBase + "backport-heartbeat-period"
	// ExtPurposeOfUse carries the purpose of use the notifications disclose under (a code
	// of the participant's granted purposes, as X-Rls-Purpose-Of-Use on a query).
	ExtPurposeOfUse = "https://rls-hie.github.io/fhir/StructureDefinition/purpose-of-use"
	// ExtSubscriptionSecret carries the HMAC-SHA256 key of the notifications' signature:
	// the subscriber may set it when creating a subscription, and the answer to the
	// creation holds it once; no read returns it.
	ExtSubscriptionSecret = "https://rls-hie.github.io/fhir/StructureDefinition/subscription-secret"
	// ExtEventAction says what happened in a notification event (registered, updated,
	// replaced, linked, unlinked, merged, unmerged, rematched).
	ExtEventAction = "https://rls-hie.github.io/fhir/StructureDefinition/notification-event-action"
	// ExtEventsDelivered, ExtPendingEvents and ExtLastDelivered report progress on a read:
	// notifications delivered, events the subscription has still to pass (delivered or
	// not for it), and when the last one was delivered.
	ExtEventsDelivered = "https://rls-hie.github.io/fhir/StructureDefinition/subscription-events-delivered"
	ExtPendingEvents   = "https://rls-hie.github.io/fhir/StructureDefinition/subscription-pending-events"
	ExtLastDelivered   = "https://rls-hie.github.io/fhir/StructureDefinition/subscription-last-delivered"
	// FHIRJSON is the only channel payload MIME type.
	FHIRJSON = "application/fhir+json"
)

// ProfiledMeta is Resource.meta with the profiles a resource claims.
type ProfiledMeta struct {
	VersionID   string   `json:"versionId,omitempty"`
	LastUpdated string   `json:"lastUpdated,omitempty"`
	Profile     []string `json:"profile,omitempty"`
}

// PrimitiveExtensions holds the extensions of a primitive element (FHIR JSON "_element").
type PrimitiveExtensions struct {
	Extension []Extension `json:"extension,omitempty"`
}

// SubscriptionChannel is Subscription.channel.
type SubscriptionChannel struct {
	Extension []Extension          `json:"extension,omitempty"`
	Type      string               `json:"type"`
	Endpoint  string               `json:"endpoint,omitempty"`
	Payload   string               `json:"payload,omitempty"`
	PayloadX  *PrimitiveExtensions `json:"_payload,omitempty"`
	Header    []string             `json:"header,omitempty"`
}

// Subscription is the FHIR R4 Subscription resource as the Backport IG profiles it:
// criteria is the topic's canonical URL.
type Subscription struct {
	ResourceType string               `json:"resourceType"`
	ID           string               `json:"id,omitempty"`
	Meta         *ProfiledMeta        `json:"meta,omitempty"`
	Extension    []Extension          `json:"extension,omitempty"`
	Status       string               `json:"status"`
	End          string               `json:"end,omitempty"`
	Reason       string               `json:"reason"`
	Criteria     string               `json:"criteria"`
	CriteriaX    *PrimitiveExtensions `json:"_criteria,omitempty"`
	Error        string               `json:"error,omitempty"`
	Channel      SubscriptionChannel  `json:"channel"`
}

// SubscriptionOf reads what a client may set of a subscription: topic, endpoint, payload,
// purpose of use (extension, else purpose), reason, status (requested, active or off) and
// the secret (extension; empty: rls draws one). Id, subscriber and counters are rls's.
func SubscriptionOf(s Subscription, purpose string) (model.Subscription, error) {
	var m model.Subscription
	if s.End != "" {
		return m, Invalid("Subscription.end", "rls subscriptions do not end by themselves; set status off to stop one")
	}
	if s.CriteriaX != nil && len(s.CriteriaX.Extension) > 0 {
		return m, Invalid("Subscription.criteria", "filter criteria are not supported: a topic's events are those of the patients you hold records of")
	}
	if !slices.Contains(model.Topics, s.Criteria) {
		return m, Invalid("Subscription.criteria", "criteria must be a topic's canonical URL: one of %s", strings.Join(model.Topics, ", "))
	}
	if strings.TrimSpace(s.Reason) == "" {
		return m, Invalid("Subscription.reason", "Subscription.reason is required")
	}
	if s.Channel.Type != "rest-hook" {
		return m, Invalid("Subscription.channel.type", "channel type %q is not supported: rls delivers by rest-hook", s.Channel.Type)
	}
	if s.Channel.Endpoint == "" {
		return m, Invalid("Subscription.channel.endpoint", "Subscription.channel.endpoint is required")
	}
	if len(s.Channel.Header) > 0 {
		return m, Invalid("Subscription.channel.header", "channel headers are not supported: notifications are signed (X-Rls-Signature)")
	}
	for _, e := range s.Channel.Extension {
		switch e.URL {
		case ExtHeartbeatPeriod, ExtTimeout, ExtMaxCount:
			return m, Invalid("Subscription.channel.extension", "%s is not supported", e.URL)
		default:
			return m, Invalid("Subscription.channel.extension", "unknown extension %s", e.URL)
		}
	}
	ct := s.Channel.Payload
	if ct == "" {
		ct = FHIRJSON
	}
	if ct != FHIRJSON && ct != "application/json" {
		return m, Invalid("Subscription.channel.payload", "payload MIME type %q is not supported: use %s", ct, FHIRJSON)
	}
	content := model.PayloadIDOnly
	if s.Channel.PayloadX != nil {
		for _, e := range s.Channel.PayloadX.Extension {
			if e.URL != ExtPayloadContent {
				return m, Invalid("Subscription.channel._payload", "unknown extension %s", e.URL)
			}
			content = e.ValueCode
		}
	}
	switch content {
	case model.PayloadEmpty, model.PayloadIDOnly, model.PayloadFullResource:
	default:
		return m, Invalid("Subscription.channel._payload", "payload content %q must be empty, id-only or full-resource", content)
	}
	for _, e := range s.Extension {
		switch e.URL {
		case ExtPurposeOfUse:
			purpose = e.ValueCode
		case ExtSubscriptionSecret:
			m.Secret = e.ValueString
		case ExtEventsDelivered, ExtPendingEvents, ExtLastDelivered:
		default:
			return m, Invalid("Subscription.extension", "unknown extension %s", e.URL)
		}
	}
	if purpose == "" {
		return m, Invalid("Subscription.extension", "the purpose of use is required: extension %s (valueCode), or the X-Rls-Purpose-Of-Use header", ExtPurposeOfUse)
	}
	if m.Secret != "" && (len(m.Secret) < 32 || len(m.Secret) > model.MaxSubscriptionSecretLength) {
		return m, Invalid("Subscription.extension", "the secret must be 32 to %d characters", model.MaxSubscriptionSecretLength)
	}
	switch s.Status {
	case "", model.SubscriptionRequested, model.SubscriptionActive:
		m.Status = model.SubscriptionActive
	case model.SubscriptionOff:
		m.Status = model.SubscriptionOff
	default:
		return m, Invalid("Subscription.status", "status %q cannot be set: use requested, active or off", s.Status)
	}
	m.Topic, m.Endpoint, m.Payload, m.ContentType, m.Purpose, m.Reason = s.Criteria, s.Channel.Endpoint, content, ct, purpose, s.Reason
	return m, nil
}

// SubscriptionResource is a stored subscription as FHIR shows it (never with its secret).
func SubscriptionResource(s model.Subscription) Subscription {
	delivered := int(min(s.Delivered, 1<<31-1))
	out := Subscription{
		ResourceType: "Subscription", ID: s.ID,
		Meta: &ProfiledMeta{VersionID: strconv.FormatUint(s.Version, 10), LastUpdated: s.Updated.UTC().Format(time.RFC3339Nano),
			Profile: []string{ProfileBackportSubscription}},
		Extension: []Extension{{URL: ExtPurposeOfUse, ValueCode: s.Purpose}, {URL: ExtEventsDelivered, ValueInteger: &delivered}},
		Status:    s.Status, Reason: s.Reason, Criteria: s.Topic, Error: s.LastError,
		Channel: SubscriptionChannel{Type: "rest-hook", Endpoint: s.Endpoint, Payload: s.ContentType,
			PayloadX: &PrimitiveExtensions{Extension: []Extension{{URL: ExtPayloadContent, ValueCode: s.Payload}}}},
	}
	return out
}

// SubscriptionProgress adds the progress extensions to a subscription read, head being
// the newest event of the log.
func SubscriptionProgress(res Subscription, s model.Subscription, head uint64) Subscription {
	pending := 0
	if s.Live() && head > s.Cursor {
		pending = int(min(head-s.Cursor, 1<<31-1))
	}
	res.Extension = append(res.Extension, Extension{URL: ExtPendingEvents, ValueInteger: &pending})
	if !s.LastDelivered.IsZero() {
		res.Extension = append(res.Extension, Extension{URL: ExtLastDelivered, ValueString: s.LastDelivered.UTC().Format(time.RFC3339Nano)})
	}
	return res
}

// NotificationEvent is one event a SubscriptionStatus reports.
type NotificationEvent struct {
	Number  uint64
	Action  string
	Time    time.Time
	Focus   string   // reference, e.g. Patient/{id}; empty for the payload "empty"
	Context []string // additional-context references
}

// SubscriptionStatus is the Backport IG's SubscriptionStatus for R4 (a profiled
// Parameters): kind is event-notification, handshake, heartbeat or query-status.
func SubscriptionStatus(s model.Subscription, kind string, sinceStart uint64, events []NotificationEvent) Parameters {
	p := Parameters{ResourceType: "Parameters", Meta: &ProfiledMeta{Profile: []string{ProfileSubscriptionStatus}}}
	p.Parameter = append(p.Parameter,
		Parameter{Name: "subscription", ValueReference: &Reference{Reference: "Subscription/" + s.ID}},
		Parameter{Name: "topic", ValueCanonical: s.Topic},
		Parameter{Name: "status", ValueCode: s.Status},
		Parameter{Name: "type", ValueCode: kind},
		Parameter{Name: "events-since-subscription-start", ValueString: strconv.FormatUint(sinceStart, 10)},
	)
	for _, ev := range events {
		parts := []Parameter{
			{Name: "event-number", ValueString: strconv.FormatUint(ev.Number, 10)},
			{Name: "timestamp", ValueInstant: ev.Time.UTC().Format(time.RFC3339Nano)},
		}
		if ev.Focus != "" {
			parts = append(parts, Parameter{Name: "focus", ValueReference: &Reference{Reference: ev.Focus}})
		}
		for _, c := range ev.Context {
			parts = append(parts, Parameter{Name: "additional-context", ValueReference: &Reference{Reference: c}})
		}
		ne := Parameter{Name: "notification-event", Part: parts}
		if ev.Action != "" {
			ne.Extension = []Extension{{URL: ExtEventAction, ValueCode: ev.Action}}
		}
		p.Parameter = append(p.Parameter, ne)
	}
	if s.LastError != "" {
		p.Parameter = append(p.Parameter, Parameter{Name: "error", ValueString: s.LastError})
	}
	return p
}

// NotificationEntry is an entry of a notification Bundle (history): a resource, or for
// id-only only its address, with the request and response history bundles require.
type NotificationEntry struct {
	FullURL  string         `json:"fullUrl,omitempty"`
	Resource any            `json:"resource,omitempty"`
	Request  *EntryRequest  `json:"request,omitempty"`
	Response *EntryResponse `json:"response,omitempty"`
}

// EntryRequest is Bundle.entry.request.
type EntryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// EntryResponse is Bundle.entry.response.
type EntryResponse struct {
	Status string `json:"status"`
}

// NotificationBundle is a Backport IG notification: a Bundle of type history whose first
// entry is the SubscriptionStatus.
type NotificationBundle struct {
	ResourceType string              `json:"resourceType"`
	ID           string              `json:"id"`
	Meta         *ProfiledMeta       `json:"meta"`
	Type         string              `json:"type"`
	Timestamp    string              `json:"timestamp"`
	Entry        []NotificationEntry `json:"entry"`
}

// Notification builds the notification Bundle of one event: the status first, then the
// focus (full-resource: with the resource; id-only: its address only), fullURL the
// focus's absolute address. id is the Bundle's id (stable for the event, so a receiver can
// drop a duplicate).
func Notification(id string, status Parameters, focus, fullURL string, resource any, created bool, now time.Time) NotificationBundle {
	b := NotificationBundle{
		ResourceType: "Bundle", ID: id, Type: "history",
		Meta:      &ProfiledMeta{Profile: []string{ProfileNotificationBundle}},
		Timestamp: now.UTC().Format(time.RFC3339Nano),
	}
	subRef := status.Parameter[0].ValueReference.Reference
	b.Entry = append(b.Entry, NotificationEntry{
		FullURL:  "urn:uuid:" + uuidOf(id),
		Resource: status,
		Request:  &EntryRequest{Method: http.MethodGet, URL: subRef + "/$status"},
		Response: &EntryResponse{Status: "200"},
	})
	if focus != "" {
		if fullURL == "" {
			fullURL = focus
		}
		e := NotificationEntry{FullURL: fullURL, Request: &EntryRequest{Method: http.MethodPut, URL: focus}, Response: &EntryResponse{Status: "200"}}
		if created {
			e.Request.Method, e.Request.URL, e.Response.Status = http.MethodPost, strings.Split(focus, "/")[0], "201"
		}
		if resource != nil {
			e.Resource = resource
		}
		b.Entry = append(b.Entry, e)
	}
	return b
}

// uuidOf formats a stable UUID-shaped name from an id (the status entry's fullUrl): the
// first 128 bits of its SHA-256, version and variant nibbles 8 (custom, RFC 9562).
func uuidOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-8" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}
