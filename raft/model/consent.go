package model

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file consent.go -o consent_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import "time"

// Consent statuses (FHIR Consent.status, the subset rls records).
const (
	ConsentActive   = "active"
	ConsentInactive = "inactive"
)

// Consent is a patient's privacy directive as the replicated state keeps it. It is
// anchored to source records (record keys), not to an EUID: records move between persons
// when a steward links, unlinks or merges, and the directive must follow the patient, so the
// policy point evaluates, at query time, every directive anchored to any record of the
// person being disclosed.
type Consent struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Records are the record keys ("system|value") the directive is anchored to: the
	// Patient it names, or every record of the Person it names when it was recorded.
	Records []string `json:"records"`
	// EUID is the person the patient was when the directive was recorded (informational).
	EUID string `json:"euid,omitempty"`
	// OptOut: the patient is not disclosed to anyone through the exchange (break-the-glass
	// excepted).
	OptOut bool `json:"opt_out,omitempty"`
	// DenyParticipants are participant ids that may not see the patient at all.
	DenyParticipants []string `json:"deny_participants,omitempty"`
	// WithholdLabels are security labels ("system|code" or a bare code) whose documents are
	// withheld from everyone (for example 42 CFR Part 2 substance-use records).
	WithholdLabels []string `json:"withhold_labels,omitempty"`
	// Terms is what the sender's Consent said that rls keeps and serves back but does not
	// enforce: its scope, category, policy, policyRule and the role of each denied actor, as
	// FHIR JSON (locator/fhir's ConsentTerms). Empty for directives recorded before it.
	Terms []byte `json:"terms,omitempty"`
	// RecordedBy is the participant that recorded (or last changed) the directive.
	RecordedBy string    `json:"recorded_by"`
	Version    uint64    `json:"version"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
}

// Active reports whether the directive is in force.
func (c Consent) Active() bool { return c.Status == ConsentActive }
