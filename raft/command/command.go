// Package command defines the entries of rls's Raft log: a one-byte message type that is
// never renumbered, a payload-format version, and a MessagePack body holding the header the
// leader stamped (time, actor, request id) and the type's payload.
//
// Layout of an encoded entry:
//
//	byte 0   Type; the high bit (FlagIgnoreUnknown) tells an older node that does not know
//	         the type to skip the entry instead of stopping
//	byte 1   encoding version (currently 1: MessagePack)
//	byte 2…  the Header, then the payload, each a MessagePack map keyed by field name
//
// MessagePack (tinylib/msgp, generated code) rather than JSON because the FSM decodes every
// entry on every node: generated decoding is several times cheaper than reflection-based
// JSON (see BenchmarkApplyBatch), and maps keyed by name let a payload gain fields without a
// new version. Consul and Nomad also encode their Raft commands as MessagePack.
//
// Types are append-only: a new command gets the next free number and an old number is never
// reused, so logs written by any release decode the same way on every later one. The package
// also holds the limits a payload is checked against, by the API before it proposes and by
// the FSM before it applies. It has no I/O and must never import HTTP, the state or the FSM;
// of mpi and search it uses only the types its payloads carry (the matcher's record, the
// registry's document).
package command

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file command.go -o command_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc
//msgp:ignore Type Entry

import (
	"errors"
	"fmt"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/rls-hie/rls/raft/model"
)

// Type identifies a command. Values are stored in the log forever: append only.
type Type uint8

// FlagIgnoreUnknown, set on a type, lets a node that does not know the type skip it. Only
// commands whose absence cannot make nodes diverge may carry it.
const FlagIgnoreUnknown Type = 0x80

// Command types. Never renumber; add new ones at the end.
const (
	TypeBootstrapAdmin         Type = 1
	TypeNodeRegister           Type = 2
	TypeNodeDeregister         Type = 3
	TypeParticipantAdd         Type = 4
	TypeParticipantUpdate      Type = 5
	TypeParticipantSetActive   Type = 6
	TypeParticipantRotateToken Type = 7
	// TypeBarrier changes nothing: a new leader applies one before it serves strong reads,
	// so that its state provably holds every entry of earlier terms.
	TypeBarrier Type = 8 | FlagIgnoreUnknown
	// TypePatientRegister registers (or re-registers) source records and decides their
	// links inside the FSM; a batch carries many records (bulk import).
	TypePatientRegister Type = 9
	// TypeMatchConfigSet replaces the replicated match configuration.
	TypeMatchConfigSet Type = 10
	// TypeDocumentRegister registers or replaces document metadata (DocumentReference).
	TypeDocumentRegister Type = 11
	// Data steward actions on links; each is kept in the link history and respected by
	// later automatic matching.
	TypeRecordLink    Type = 12
	TypeRecordUnlink  Type = 13
	TypePersonMerge   Type = 14
	TypePersonUnmerge Type = 15
	TypeReviewResolve Type = 16
	// TypeAuditAppend appends a batch of audit entries to the hash-chained audit log.
	TypeAuditAppend Type = 17
)

// Base returns the type without its flag bits.
func (t Type) Base() Type { return t &^ FlagIgnoreUnknown }

// IgnoreIfUnknown reports whether a node that does not know the type may skip it.
func (t Type) IgnoreIfUnknown() bool { return t&FlagIgnoreUnknown != 0 }

func (t Type) String() string {
	switch t.Base() {
	case TypeBootstrapAdmin:
		return "bootstrap-admin"
	case TypeNodeRegister:
		return "node-register"
	case TypeNodeDeregister:
		return "node-deregister"
	case TypeParticipantAdd:
		return "participant-add"
	case TypeParticipantUpdate:
		return "participant-update"
	case TypeParticipantSetActive:
		return "participant-set-active"
	case TypeParticipantRotateToken:
		return "participant-rotate-token"
	case TypeBarrier.Base():
		return "barrier"
	case TypePatientRegister:
		return "patient-register"
	case TypeMatchConfigSet:
		return "match-config-set"
	case TypeDocumentRegister:
		return "document-register"
	case TypeRecordLink:
		return "record-link"
	case TypeRecordUnlink:
		return "record-unlink"
	case TypePersonMerge:
		return "person-merge"
	case TypePersonUnmerge:
		return "person-unmerge"
	case TypeReviewResolve:
		return "review-resolve"
	case TypeAuditAppend:
		return "audit-append"
	}
	if name, ok := privacyTypeName(t); ok {
		return name
	}
	if name, ok := mpiTypeName(t); ok {
		return name
	}
	if name, ok := mhdTypeName(t); ok {
		return name
	}
	if name, ok := hl7TypeName(t); ok {
		return name
	}
	if name, ok := notifyTypeName(t); ok {
		return name
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// FormatMsgpack is the only encoding so far.
const FormatMsgpack byte = 1

// Header is what the leader stamps on every command before proposing it, so that Apply
// never needs a clock or a random source of its own.
type Header struct {
	// Time is the leader's wall clock when it accepted the request, in UTC.
	Time time.Time `json:"time"`
	// Actor is the id of the participant that asked for the change.
	Actor string `json:"actor,omitempty"`
	// RequestID ties the entry to the API request (and its logs) that produced it.
	RequestID string `json:"request_id,omitempty"`
	// Limits is the version of the input limits (model.LimitsVersion) the proposing leader
	// validated the command against; the FSM enforces the same version before it writes.
	// Zero (entries from before the limits existed) applies them as those releases did.
	Limits uint16 `json:"limits,omitempty"`
}

// Entry is a log entry whose type is known and whose body is not yet decoded: each FSM
// handler decodes the body into the payload type it expects, in one pass.
type Entry struct {
	Type   Type
	Format byte
	body   []byte
}

// ErrMalformed is returned for bytes that are not a command this package can decode.
var ErrMalformed = errors.New("malformed command")

// Payload is what every command payload implements (generated by msgp).
type Payload interface {
	msgp.Marshaler
	msgp.Sizer
}

// Encode builds the log entry for a command of type t.
func Encode(t Type, h Header, payload Payload) ([]byte, error) {
	out := make([]byte, 2, 2+h.Msgsize()+payload.Msgsize())
	out[0], out[1] = byte(t), FormatMsgpack
	out, err := h.MarshalMsg(out)
	if err != nil {
		return nil, fmt.Errorf("encode %s header: %w", t, err)
	}
	out, err = payload.MarshalMsg(out)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", t, err)
	}
	return out, nil
}

// Decode reads an entry's type and format; the body is decoded by DecodeBody.
func Decode(data []byte) (Entry, error) {
	if len(data) < 2 {
		return Entry{}, fmt.Errorf("%w: %d bytes is shorter than the 2-byte prefix", ErrMalformed, len(data))
	}
	e := Entry{Type: Type(data[0]), Format: data[1], body: data[2:]}
	if e.Format != FormatMsgpack {
		return e, fmt.Errorf("%w: %s has unknown encoding %d", ErrMalformed, e.Type, e.Format)
	}
	return e, nil
}

// DecodeHeader decodes an entry's header alone (the FSM reads it again after the handler,
// to stamp what the entry produced).
func DecodeHeader(e Entry) (Header, error) {
	var h Header
	if _, err := h.UnmarshalMsg(e.body); err != nil {
		return h, fmt.Errorf("%w: %s header: %v", ErrMalformed, e.Type, err)
	}
	return h, nil
}

// DecodeBody decodes an entry's header and payload.
func DecodeBody[P any, PP interface {
	*P
	msgp.Unmarshaler
}](e Entry) (Header, P, error) {
	var h Header
	var p P
	rest, err := h.UnmarshalMsg(e.body)
	if err != nil {
		return h, p, fmt.Errorf("%w: %s header: %v", ErrMalformed, e.Type, err)
	}
	rest, err = PP(&p).UnmarshalMsg(rest)
	if err != nil {
		return h, p, fmt.Errorf("%w: %s payload: %v", ErrMalformed, e.Type, err)
	}
	if len(rest) != 0 {
		return h, p, fmt.Errorf("%w: %s has %d bytes after its payload", ErrMalformed, e.Type, len(rest))
	}
	return h, p, nil
}

// BootstrapAdmin creates the first admin participant of a new cluster. It is a no-op error
// once any admin exists, so every node that believes it bootstrapped may safely send it.
type BootstrapAdmin struct {
	Participant model.Participant `json:"participant"`
}

// NodeRegister records (or updates) a node's addresses in the catalog.
type NodeRegister struct {
	Node model.Node `json:"node"`
}

// NodeDeregister removes a node from the catalog.
type NodeDeregister struct {
	ID string `json:"id"`
}

// ParticipantAdd creates a participant; the token hash comes with it.
type ParticipantAdd struct {
	Participant model.Participant `json:"participant"`
}

// ParticipantUpdate replaces a participant's descriptive fields (name, kind, endpoint,
// identifier system, active). ExpectedVersion, when not zero, must equal the stored version
// (optimistic concurrency, FHIR If-Match).
type ParticipantUpdate struct {
	Participant     model.Participant `json:"participant"`
	ExpectedVersion uint64            `json:"expected_version,omitempty"`
}

// ParticipantSetActive enables or disables a participant. A disabled participant's token
// stops working on every node as soon as the entry is applied there.
type ParticipantSetActive struct {
	ID     string `json:"id"`
	Active bool   `json:"active"`
}

// Barrier is the (empty) payload of TypeBarrier.
type Barrier struct{}

// ParticipantRotateToken replaces a participant's token; the old one stops working.
type ParticipantRotateToken struct {
	ID        string `json:"id"`
	TokenHash string `json:"token_hash"`
}

// PatientRecord is a source record as a participant registered it: its identifier (the
// participant's assigning authority and the MRN) and the demographics matching compares.
// It is the log's own copy of the fields, so that the log format does not move when the
// matcher's types do.
type PatientRecord struct {
	System       string   `json:"system"`
	Value        string   `json:"value"`
	Given        []string `json:"given,omitempty"`
	Family       string   `json:"family,omitempty"`
	Suffix       string   `json:"suffix,omitempty"`
	BirthDate    string   `json:"birth_date,omitempty"`
	Sex          string   `json:"sex,omitempty"`
	AddressLines []string `json:"address_lines,omitempty"`
	City         string   `json:"city,omitempty"`
	State        string   `json:"state,omitempty"`
	PostalCode   string   `json:"postal_code,omitempty"`
	Phones       []string `json:"phones,omitempty"`
	Email        string   `json:"email,omitempty"`
	SSN          string   `json:"ssn,omitempty"`
}

// PatientRegistration is one record to register, with the EUID the leader drew for it in
// case matching decides it is a new person.
type PatientRegistration struct {
	Record  PatientRecord `json:"record"`
	NewEUID string        `json:"new_euid"`
	// Resource is the FHIR Patient as the participant sent it (without id and meta), kept
	// so that reads return it; empty for records from flat files.
	Resource []byte `json:"resource,omitempty"`
	// ExpectedVersion, when not zero, must equal the record's current version (FHIR
	// If-Match); zero registers or replaces unconditionally.
	ExpectedVersion uint64 `json:"expected_version,omitempty"`
	// Prepared is the record's normalised form and blocking keys (mpi.Prepared in its
	// binary form), computed once by the node that proposed it so that the nodes applying
	// it do not each compute them again. Empty in entries of earlier releases: the FSM
	// then prepares the record itself. Bytes that do not decode or do not follow from
	// Record (mpi.Prepared.Verify) refuse the record on every node alike.
	Prepared []byte `json:"prepared,omitempty"`
}

// PatientRegister registers records in order; each gets its own outcome, so one refused
// record does not stop the others of a batch.
type PatientRegister struct {
	Registrations []PatientRegistration `json:"registrations"`
}

// MatchConfigSet replaces the match configuration. Config is the mpi.Config as JSON (a
// rare, large command: its format is the matcher's documented JSON). Version must exceed the
// current version, so a stale proposal cannot undo a newer one.
type MatchConfigSet struct {
	Config []byte `json:"config"`
}

// DocumentRegistration is one document's metadata: search.Document as JSON (the registry's
// documented document format), and the DocumentReference as the holder sent it.
type DocumentRegistration struct {
	Document []byte `json:"document"`
	Resource []byte `json:"resource,omitempty"`
}

// DocumentRegister registers documents in order, each with its own outcome.
type DocumentRegister struct {
	Documents []DocumentRegistration `json:"documents"`
}

// RecordLink puts a record on a person (a steward's link): it stays there whatever later
// matching decides.
type RecordLink struct {
	Record string `json:"record"`
	EUID   string `json:"euid"`
	Reason string `json:"reason,omitempty"`
}

// RecordUnlink takes a record off its person into a new one (NewEUID, drawn by the
// leader); matching will never link it back to the person it left.
type RecordUnlink struct {
	Record  string `json:"record"`
	NewEUID string `json:"new_euid"`
	Reason  string `json:"reason,omitempty"`
}

// PersonMerge moves every record of From to Into; From ceases to exist.
type PersonMerge struct {
	From   string `json:"from"`
	Into   string `json:"into"`
	Reason string `json:"reason,omitempty"`
}

// PersonUnmerge undoes the last merge of EUID: the records it brought are moved back to a
// person with that EUID again, separated from the one they were merged into.
type PersonUnmerge struct {
	EUID   string `json:"euid"`
	Reason string `json:"reason,omitempty"`
}

// ReviewResolve settles a review item: link (to EUID, or the best candidate) or separate
// (never link the record to the candidates).
type ReviewResolve struct {
	Seq      uint64 `json:"seq"`
	Decision string `json:"decision"`
	EUID     string `json:"euid,omitempty"`
	Reason   string `json:"reason,omitempty"`
}
