package command

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file subscription.go -o subscription_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import (
	"fmt"

	"github.com/rls-hie/rls/raft/model"
)

// Notification commands (FHIR Subscriptions). Numbered from 24: 21 and 22 are the HL7 v2
// endpoint commands and 23 is reserved for the FHIR work that runs beside this one; the
// numbers are as permanent as those in command.go.
const (
	// TypeSubscriptionSet creates or changes a subscription (FHIR Subscription).
	TypeSubscriptionSet Type = 24
	// TypeSubscriptionCursor records a subscription's delivery progress: its cursor (never
	// moved back), the count delivered, and its status after the attempt (active or error).
	TypeSubscriptionCursor Type = 25
)

// notifyTypeName names the notification commands for Type.String.
func notifyTypeName(t Type) (string, bool) {
	switch t.Base() {
	case TypeSubscriptionSet:
		return "subscription-set", true
	case TypeSubscriptionCursor:
		return "subscription-cursor", true
	}
	return "", false
}

// SubscriptionSet stores Subscription. Create refuses an id that exists; otherwise
// ExpectedVersion, when not zero, must equal the stored version. The leader draws the id
// and the secret; Apply sets the cursor (a new or re-enabled subscription starts after the
// newest event), the counters and the times.
type SubscriptionSet struct {
	Subscription    model.Subscription `json:"subscription"`
	ExpectedVersion uint64             `json:"expected_version,omitempty"`
	Create          bool               `json:"create,omitempty"`
}

// Check holds the subscription to the model's rules.
func (c *SubscriptionSet) Check() error { return c.Subscription.Validate() }

// SubscriptionCursor is what the leader's deliverer reports after a round of one
// subscription: events up to Cursor were handled, Delivered notifications were sent in
// all, and the subscription is now Status (active, or error with LastError and Failures).
type SubscriptionCursor struct {
	ID        string `json:"id"`
	Cursor    uint64 `json:"cursor"`
	Delivered uint64 `json:"delivered"`
	Status    string `json:"status"`
	LastError string `json:"last_error,omitempty"`
	Failures  uint64 `json:"failures,omitempty"`
}

// Check validates the progress report.
func (c *SubscriptionCursor) Check() error {
	if err := model.CheckID("id", c.ID); err != nil {
		return err
	}
	if c.Status != model.SubscriptionActive && c.Status != model.SubscriptionError {
		return fmt.Errorf("%w: status %q must be active or error", model.ErrInvalid, c.Status)
	}
	return model.CheckFreeText("last_error", c.LastError, model.MaxReasonLength)
}
