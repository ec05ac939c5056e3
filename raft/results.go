package raft

import "github.com/rls-hie/rls/raft/fsm"

// What applying a command produced, as Node.Apply (and Sandbox.Apply) return it: Applied.Value
// holds the command's result and the error its business refusal. The FSM defines them; they
// are named here so that the API layer depends on this package, the node, and never on the
// FSM's.
//
// Results by command type: participant commands give the stored model.Participant,
// consent-set the stored model.Consent, patient-register a []Registered (one per
// registration, in order), document-register a []DocumentRegistered, the steward's commands
// (record-link, record-unlink, person-merge, person-unmerge, review-resolve) a Relinked,
// mpi-rematch a []Rematched, audit-append an AuditAppended, and hl7-endpoint-set and
// hl7-endpoint-cursor the stored model.HL7Endpoint.
type (
	// Registered is the outcome of one registration of a patient-register command: the
	// matcher's decision and the record's registry entry, or the business error that
	// refused the record (it then changed nothing).
	Registered = fsm.Registered
	// DocumentRegistered is the outcome of one document of a document-register command.
	DocumentRegistered = fsm.DocumentRegistered
	// DocumentsProvided is the outcome of a document-provide command (MHD ITI-65).
	DocumentsProvided = fsm.DocumentsProvided
	// Relinked reports what a steward's action changed.
	Relinked = fsm.Relinked
	// Rematched is the outcome of one record of an mpi-rematch command.
	Rematched = fsm.Rematched
	// AuditAppended is the outcome of an audit batch: the entries as stored, duplicates of
	// entries already in the log left out.
	AuditAppended = fsm.AuditAppended
)

// Business errors: the FSM refused the command, or one record of a batch, and changed
// nothing for it. Callers test them with errors.Is; each is documented where the FSM
// defines it (raft/fsm).
var (
	// Participants and the cluster.
	ErrParticipantExists   = fsm.ErrParticipantExists
	ErrSystemInUse         = fsm.ErrSystemInUse
	ErrVersionConflict     = fsm.ErrVersionConflict
	ErrLastAdmin           = fsm.ErrLastAdmin
	ErrAlreadyBootstrapped = fsm.ErrAlreadyBootstrapped
	ErrTokenInUse          = fsm.ErrTokenInUse
	// ErrEntryFailed: the entry could not be applied on any node and was skipped.
	ErrEntryFailed = fsm.ErrEntryFailed

	// Patient registration and the match configuration.
	ErrInvalidRecord = fsm.ErrInvalidRecord
	ErrUnknownSystem = fsm.ErrUnknownSystem
	ErrEUIDInUse     = fsm.ErrEUIDInUse
	ErrStaleConfig   = fsm.ErrStaleConfig
	ErrInvalidConfig = fsm.ErrInvalidConfig

	// Document registration.
	ErrInvalidDocument = fsm.ErrInvalidDocument
	// ErrInvalidSubmission: an MHD submission whose documents or list do not fit together
	// or the state; nothing of it was written.
	ErrInvalidSubmission = fsm.ErrInvalidSubmission
	ErrUnknownSubject    = fsm.ErrUnknownSubject
	ErrUnknownHolder     = fsm.ErrUnknownHolder
	ErrNotHolder         = fsm.ErrNotHolder
	ErrUnknownTarget     = fsm.ErrUnknownTarget

	// The data steward's actions and rematching.
	ErrUnknownRecord   = fsm.ErrUnknownRecord
	ErrUnknownPerson   = fsm.ErrUnknownPerson
	ErrNothingToUndo   = fsm.ErrNothingToUndo
	ErrUnknownReview   = fsm.ErrUnknownReview
	ErrAlreadyResolved = fsm.ErrAlreadyResolved
	ErrInvalidAction   = fsm.ErrInvalidAction

	// Consent directives.
	ErrConsentExists = fsm.ErrConsentExists

	// MLLP endpoints of PIX update notifications.
	ErrEndpointExists  = fsm.ErrEndpointExists
	ErrUnknownEndpoint = fsm.ErrUnknownEndpoint
)

// Notification commands' refusals.
var (
	ErrSubscriptionExists  = fsm.ErrSubscriptionExists
	ErrUnknownSubscription = fsm.ErrUnknownSubscription
	ErrCursorAhead         = fsm.ErrCursorAhead
)
