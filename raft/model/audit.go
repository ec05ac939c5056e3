package model

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file audit.go -o audit_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import "time"

// AuditEntry is one audited API request: who asked (participant, on-behalf-of user, purpose
// of use, break-the-glass reason), what (action, query), about whom (the persons and source
// records disclosed), with what outcome, from where, and when. The node that received the
// request fills it in; Seq, Recorded, PrevHash and Hash are assigned by the FSM when the
// entry is appended to the replicated audit log.
//
// Names, birth dates and addresses never appear as fields of their own; the query string a
// caller sent (which may hold demographics) is kept, since accounting for a disclosure
// needs it, and the audit log is readable by admins only.
type AuditEntry struct {
	// ID is drawn at random by the receiving node: the FSM appends an ID once, so a batch
	// retried after a lost answer (leader change) is not recorded twice.
	ID string `json:"id"`
	// Seq numbers the log from 1; Recorded is the leader's time stamped on the command
	// that appended it.
	Seq      uint64    `json:"seq,omitempty"`
	Recorded time.Time `json:"recorded"`
	// Observed is the receiving node's clock when the request arrived.
	Observed time.Time `json:"observed"`
	// Node received the request (and audited it); Source is the caller's network address.
	Node      string `json:"node"`
	Source    string `json:"source,omitempty"`
	RequestID string `json:"request_id,omitempty"`

	Participant string `json:"participant,omitempty"`
	OnBehalfOf  string `json:"on_behalf_of,omitempty"`
	Purpose     string `json:"purpose,omitempty"`
	BreakGlass  string `json:"break_glass,omitempty"`

	// Action names the operation (patient-read, locate, steward-merge…).
	Action string `json:"action"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`

	// EUIDs and Records are the persons and source records (identifier system|value
	// keys) the request disclosed or changed.
	EUIDs   []string `json:"euids,omitempty"`
	Records []string `json:"records,omitempty"`

	// Status is the HTTP status answered; Outcome the OperationOutcome issue code of a
	// failure.
	Status  int    `json:"status"`
	Outcome string `json:"outcome,omitempty"`

	// PrevHash and Hash chain the log: Hash = SHA-256(PrevHash || the entry encoded with
	// Hash empty), hex.
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Success reports whether the request succeeded (a 2xx or 3xx answer).
func (e AuditEntry) Success() bool { return e.Status > 0 && e.Status < 400 }
