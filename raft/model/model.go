// Package model defines the entities that live in rls's replicated state: participants
// (member hospitals, practices, labs and the HIE itself) and the catalog of cluster nodes.
//
// These are plain values shared by the command encoder, the FSM, the bbolt state store and
// the API layer. The package holds no I/O and must never import HTTP, Raft or storage code,
// so every layer can depend on it without cycles.
package model

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file model.go -o model_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// ParticipantKind says what sort of organisation a participant is.
type ParticipantKind string

// The participant kinds an HIE admits.
const (
	KindHospital ParticipantKind = "hospital"
	KindPractice ParticipantKind = "practice"
	KindLab      ParticipantKind = "lab"
	KindHIE      ParticipantKind = "hie"
)

// ParticipantKinds lists every valid kind, in the order help texts show them.
var ParticipantKinds = []ParticipantKind{KindHospital, KindPractice, KindLab, KindHIE}

// Role is what a participant's token is allowed to do.
type Role string

// Roles. Admin may administer the cluster and participants; participant may use the
// patient and document APIs on its own behalf; steward may do what a participant does and
// is also the exchange's data steward: it works the review queue, links, unlinks, merges
// and unmerges persons, and reads any person's link history and consent directives (the
// web console's role for the HIE's data-quality staff).
const (
	RoleParticipant Role = "participant"
	RoleAdmin       Role = "admin"
	RoleSteward     Role = "steward"
)

// Participant is a member organisation of the exchange and the principal behind a token.
type Participant struct {
	ID   string          `json:"id"`
	Name string          `json:"name"`
	Kind ParticipantKind `json:"kind"`
	Role Role            `json:"role"`
	// Endpoint is where the participant's own systems answer (document retrieval, etc.).
	Endpoint string `json:"endpoint,omitempty"`
	// IdentifierSystem is the participant's assigning authority URI: the system of the
	// local identifiers (MRNs) it registers. Unique across participants.
	IdentifierSystem string `json:"identifier_system,omitempty"`
	Active           bool   `json:"active"`
	// Version counts accepted changes, starting at 1; it is the FHIR meta.versionId.
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// TokenHash is the hex SHA-256 of the participant's bearer token. The token itself is
	// shown once, when issued, and never stored.
	TokenHash   string    `json:"token_hash"`
	TokenIssued time.Time `json:"token_issued"`
	// Purposes are the purposes of use (canonical codes of locator/policy, such as TREAT)
	// the admin allows the participant to query patient data for. Empty means the role's
	// default (policy.DefaultPurposes), so that participants created before purposes
	// existed keep a well-defined, narrow permission.
	Purposes []string `json:"purposes,omitempty"`
}

// IsAdmin reports whether the participant holds the admin role.
func (p Participant) IsAdmin() bool { return p.Role == RoleAdmin }

// IsSteward reports whether the participant may act as the exchange's data steward: the
// steward role, or the admin, which holds every role.
func (p Participant) IsSteward() bool { return p.Role == RoleSteward || p.Role == RoleAdmin }

// Node is a member of the Raft cluster as the catalog knows it: the addresses other nodes
// and clients use to reach it.
type Node struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	// HTTPAddr is the base URL of the node's API (scheme://host:port), used to forward
	// requests to the leader and to collect per-node status.
	HTTPAddr   string    `json:"http_addr"`
	Registered time.Time `json:"registered"`
}

// ErrInvalid marks input that breaks a validation rule; the message names the field.
var ErrInvalid = errors.New("invalid")

// isID reports whether id follows the FHIR id grammar: 1–64 of letters, digits, '-' and
// '.'. A loop rather than a regular expression: an import batch's audit entry names a
// thousand ids, checked by the API and again by every node's Apply, and the expression
// was a fortieth of a node's CPU through a bulk load.
func isID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// ValidateID checks that id is a valid FHIR resource id, which rls uses for participant
// and node ids alike.
func ValidateID(field, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is required", ErrInvalid, field)
	}
	if !isID(id) {
		return fmt.Errorf("%w: %s %q must be 1-64 letters, digits, '-' or '.'", ErrInvalid, field, id)
	}
	return nil
}

// ValidateKind checks that kind is one of ParticipantKinds.
func ValidateKind(kind ParticipantKind) error {
	for _, k := range ParticipantKinds {
		if kind == k {
			return nil
		}
	}
	return fmt.Errorf("%w: kind %q must be one of hospital, practice, lab, hie", ErrInvalid, kind)
}

// ValidateRole checks that role is participant, steward or admin.
func ValidateRole(role Role) error {
	if role == RoleParticipant || role == RoleSteward || role == RoleAdmin {
		return nil
	}
	return fmt.Errorf("%w: role %q must be participant, steward or admin", ErrInvalid, role)
}

// ValidateHTTPURL checks that s is an absolute http(s) URL with a host.
func ValidateHTTPURL(field, s string) error {
	if err := CheckText(field, s, MaxURLLength); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %s %q must be an absolute http or https URL", ErrInvalid, field, s)
	}
	return nil
}

// ValidateSystemURI checks that s is an absolute URI, such as urn:oid:1.2.3 or
// https://hospital.example/mrn, fit to be an identifier system.
func ValidateSystemURI(field, s string) error {
	if err := CheckSystem(field, s); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || (u.Opaque == "" && u.Host == "") {
		return fmt.Errorf("%w: %s %q must be an absolute URI (for example urn:oid:1.2.3 or https://example.org/mrn)", ErrInvalid, field, s)
	}
	return nil
}

// Validate checks a participant's own fields (not its uniqueness, which only the
// replicated state can judge).
func (p Participant) Validate() error {
	if err := ValidateID("id", p.ID); err != nil {
		return err
	}
	if p.Name == "" {
		return fmt.Errorf("%w: name is required", ErrInvalid)
	}
	if err := CheckText("name", p.Name, MaxParticipantNameLength); err != nil {
		return err
	}
	if err := ValidateKind(p.Kind); err != nil {
		return err
	}
	if err := ValidateRole(p.Role); err != nil {
		return err
	}
	if p.Endpoint != "" {
		if err := ValidateHTTPURL("endpoint", p.Endpoint); err != nil {
			return err
		}
	}
	if p.IdentifierSystem != "" {
		if err := ValidateSystemURI("identifier system", p.IdentifierSystem); err != nil {
			return err
		}
	}
	if p.Role != RoleAdmin && p.Kind != KindHIE && p.IdentifierSystem == "" {
		return fmt.Errorf("%w: identifier system is required for a %s (it is the assigning authority of its MRNs)", ErrInvalid, p.Kind)
	}
	if err := p.CheckTokenHash(); err != nil {
		return err
	}
	if err := CheckCount("purposes", len(p.Purposes), MaxListLength); err != nil {
		return err
	}
	for i, pu := range p.Purposes {
		if err := CheckText(fmt.Sprintf("purposes[%d]", i), pu, MaxPurposeLength); err != nil {
			return err
		}
	}
	return nil
}

// CheckTokenHash checks the form of the stored token hash (hex SHA-256), if any.
func (p Participant) CheckTokenHash() error {
	if p.TokenHash != "" && !tokenHashPattern.MatchString(p.TokenHash) {
		return &FieldError{Field: "token_hash", Reason: "must be 64 hex digits (SHA-256)"}
	}
	return nil
}

// MaxParticipantNameLength bounds a participant's name.
const MaxParticipantNameLength = 256

// tokenHashPattern is the form of a stored token hash: hex SHA-256.
var tokenHashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate checks a catalog entry: its id and addresses, bounded.
func (n Node) Validate() error {
	if err := ValidateID("node id", n.ID); err != nil {
		return err
	}
	if err := CheckText("raft address", n.RaftAddr, MaxSystemLength); err != nil {
		return err
	}
	return CheckText("HTTP address", n.HTTPAddr, MaxURLLength)
}

// PatientMeta is what rls keeps about a registered source record besides its
// demographics (which the matcher keeps): its FHIR id, owner, version history and the FHIR
// Patient resource as the participant sent it.
type PatientMeta struct {
	// Key is the record key, "system|value".
	Key string `json:"key"`
	// ID is the FHIR Patient id, derived from the key (PatientID).
	ID string `json:"id"`
	// Owner is the participant whose assigning authority the system is.
	Owner   string    `json:"owner"`
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Resource is the Patient JSON as registered (without id and meta); empty for records
	// registered from flat files.
	Resource []byte `json:"resource,omitempty"`
}

// PatientID derives the FHIR Patient id of a record key: stable, the same on every node,
// and free of the identifier itself (an MRN in a URL would land in access logs).
func PatientID(key string) string {
	var buf [96]byte // keys of usual length are hashed from the stack
	sum := sha256.Sum256(append(buf[:0], key...))
	return hex.EncodeToString(sum[:16])
}

// LinkEvent is one entry of a person's link history. The history is append-only: every
// automatic decision and every steward action adds an event.
type LinkEvent struct {
	// Seq orders the events of the whole cluster (assigned in log order).
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Action: "registered", "linked", "unlinked", "merged", "unmerged", "review-resolved".
	Action string `json:"action"`
	EUID   string `json:"euid"`
	// Record is the source record concerned, if any; Records lists the records a merge
	// moved (so that an unmerge can move them back).
	Record  string   `json:"record,omitempty"`
	Records []string `json:"records,omitempty"`
	// Other is the other person concerned (merge source or target, previous person).
	Other   string  `json:"other,omitempty"`
	Outcome string  `json:"outcome,omitempty"`
	Score   float64 `json:"score,omitempty"`
	Actor   string  `json:"actor"`
	Reason  string  `json:"reason,omitempty"`
}

// TimeOrderedID is an id of 32 hex digits: the second now falls in (32 bits), then the 96
// bits of random the caller drew. The state keys persons (by EUID) and audit entries (by
// id) in B-trees: ids wholly at random put each new one on a page of its own across the
// whole tree, ids that grow with time put them together at its end (UUIDv7's reason, RFC
// 9562), and 96 random bits still keep two draws of one second apart.
func TimeOrderedID(now time.Time, random [12]byte) string {
	var b [16]byte
	binary.BigEndian.PutUint32(b[:4], uint32(now.Unix()))
	copy(b[4:], random[:])
	return hex.EncodeToString(b[:])
}
