package model

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file subscription.go -o subscription_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Subscription topics: what a participant may ask to be told about (FHIR Subscriptions
// Backport IG, one topic per Subscription). The values are the canonical URLs of the topics
// as Subscription.criteria names them.
const (
	// TopicEncounter: a person the participant holds a record of is registered, or has a
	// record updated, by another participant (an admission, a visit: a registration).
	TopicEncounter = "https://rls-hie.github.io/fhir/SubscriptionTopic/encounter"
	// TopicDocument: a DocumentReference is registered, or supersedes another, for a person
	// the participant holds a record of.
	TopicDocument = "https://rls-hie.github.io/fhir/SubscriptionTopic/document-available"
	// TopicIdentity: a record the participant registered is linked, unlinked or merged (its
	// person changes).
	TopicIdentity = "https://rls-hie.github.io/fhir/SubscriptionTopic/identity-change"
)

// Topics lists every topic in a fixed order.
var Topics = []string{TopicEncounter, TopicDocument, TopicIdentity}

// Subscription payload contents (Backport IG backport-payload-content).
const (
	PayloadEmpty        = "empty"
	PayloadIDOnly       = "id-only"
	PayloadFullResource = "full-resource"
)

// Subscription statuses (FHIR R4 Subscription.status).
const (
	SubscriptionRequested = "requested"
	SubscriptionActive    = "active"
	SubscriptionError     = "error"
	SubscriptionOff       = "off"
)

// MaxSubscriptionSecretLength bounds the HMAC secret (hex of up to 64 bytes).
const MaxSubscriptionSecretLength = 128

// Subscription is a participant's standing request to be told of events of one topic, at
// an HTTP endpoint (rest-hook), signed with its secret.
type Subscription struct {
	ID          string `json:"id"`
	Participant string `json:"participant"`
	Topic       string `json:"topic"`
	Endpoint    string `json:"endpoint"`
	// Payload is empty, id-only or full-resource; ContentType the channel's MIME type.
	Payload     string `json:"payload"`
	ContentType string `json:"content_type,omitempty"`
	// Secret is the key (hex) of the HMAC-SHA256 signature of every notification. It is
	// shown to the participant once, when the subscription is created.
	Secret string `json:"secret"`
	// Purpose is the purpose of use the notifications disclose under (policy.Purpose).
	Purpose string `json:"purpose"`
	Reason  string `json:"reason,omitempty"`
	// Status is requested, active, error (delivery keeps failing; it keeps being
	// retried) or off (disabled: nothing is kept for it).
	Status string `json:"status"`
	// LastError describes the last failed delivery; Failures counts the consecutive ones.
	LastError string `json:"last_error,omitempty"`
	Failures  uint64 `json:"failures,omitempty"`
	// Cursor is the sequence of the last event handled (delivered, or not for this
	// subscriber); Delivered counts the notifications delivered since the start, the
	// Backport IG's events-since-subscription-start.
	Cursor    uint64    `json:"cursor"`
	Delivered uint64    `json:"delivered"`
	Version   uint64    `json:"version"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// LastDelivered is when the leader last delivered a notification.
	LastDelivered time.Time `json:"last_delivered,omitempty"`
}

// Live reports whether events are kept and delivered for the subscription: active, or in
// error (it is retried, and resumes where it stopped).
func (s Subscription) Live() bool {
	return s.Status == SubscriptionActive || s.Status == SubscriptionError
}

// Validate checks a subscription's fields as a client may set them.
func (s Subscription) Validate() error {
	if err := ValidateID("id", s.ID); err != nil {
		return err
	}
	if err := ValidateID("participant", s.Participant); err != nil {
		return err
	}
	if !slices.Contains(Topics, s.Topic) {
		return fmt.Errorf("%w: topic %q is not one of %s", ErrInvalid, s.Topic, strings.Join(Topics, ", "))
	}
	if err := CheckText("endpoint", s.Endpoint, MaxURLLength); err != nil {
		return err
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%w: endpoint must be an absolute http(s) URL without credentials or fragment", ErrInvalid)
	}
	switch s.Payload {
	case PayloadEmpty, PayloadIDOnly, PayloadFullResource:
	default:
		return fmt.Errorf("%w: payload %q must be empty, id-only or full-resource", ErrInvalid, s.Payload)
	}
	if err := CheckText("content_type", s.ContentType, MaxCodeLength); err != nil {
		return err
	}
	if n := len(s.Secret); n < 32 || n > MaxSubscriptionSecretLength {
		return fmt.Errorf("%w: secret must be 32 to %d characters", ErrInvalid, MaxSubscriptionSecretLength)
	}
	if err := CheckText("secret", s.Secret, MaxSubscriptionSecretLength); err != nil {
		return err
	}
	if err := CheckText("purpose", s.Purpose, MaxPurposeLength); err != nil {
		return err
	}
	if s.Purpose == "" {
		return fmt.Errorf("%w: purpose of use is required", ErrInvalid)
	}
	if err := CheckFreeText("reason", s.Reason, MaxReasonLength); err != nil {
		return err
	}
	switch s.Status {
	case SubscriptionRequested, SubscriptionActive, SubscriptionError, SubscriptionOff:
	default:
		return fmt.Errorf("%w: status %q", ErrInvalid, s.Status)
	}
	return CheckFreeText("last_error", s.LastError, MaxReasonLength)
}

// NotifyEvent is one event of the notification log: derived inside Apply from what a
// command changed, numbered in log order (Seq is the event's stable id), kept while some
// subscription is live and has not passed it.
type NotifyEvent struct {
	Seq uint64 `json:"seq"`
	// Index is the log entry that produced the event; Time its leader's time stamp.
	Index uint64    `json:"index"`
	Time  time.Time `json:"time"`
	Topic string    `json:"topic"`
	// Action: registered or updated (encounter); registered or superseded (document);
	// linked, unlinked, merged, unmerged or rematched (identity).
	Action string `json:"action"`
	// Actor is the participant whose command produced the event.
	Actor string `json:"actor,omitempty"`
	// Record is the source record concerned: the one registered, the document's subject,
	// the record whose person changed. Owner holds it.
	Record string `json:"record,omitempty"`
	Owner  string `json:"owner,omitempty"`
	// EUID is the record's person after the event; Previous its person before (identity).
	EUID     string `json:"euid,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Document is the document registered (document events).
	Document string `json:"document,omitempty"`
}
