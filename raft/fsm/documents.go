package fsm

import (
	"encoding/json"
	"errors"
	"slices"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// Business outcomes of document registration.
var (
	// ErrInvalidDocument: the document metadata does not validate.
	ErrInvalidDocument = errors.New("invalid document")
	// ErrUnknownSubject: the document's patient is not a registered record or person.
	ErrUnknownSubject = errors.New("document subject is not a registered patient")
	// ErrUnknownHolder: the holder is not a participant.
	ErrUnknownHolder = errors.New("document holder is not a participant")
	// ErrNotHolder: only the participant holding a document may replace or change it.
	ErrNotHolder = errors.New("document belongs to another holder")
	// ErrUnknownTarget: relatesTo names a document that is not registered.
	ErrUnknownTarget = errors.New("relatesTo target is not a registered document")
)

// DocumentRegistered is the outcome of one document of a DocumentRegister command.
type DocumentRegistered struct {
	Document state.StoredDocument
	// Superseded lists the documents this one replaced.
	Superseded []string
	Err        error
}

// applyDocumentRegister stores document metadata; a "replaces" relation marks the older
// document superseded. Every check runs before the document's first write.
func (f *FSM) applyDocumentRegister(tx *state.Tx, h command.Header, c command.DocumentRegister) (any, error) {
	out := make([]DocumentRegistered, len(c.Documents))
	for i, r := range c.Documents {
		var d search.Document
		if err := json.Unmarshal(r.Document, &d); err != nil {
			out[i].Err = business("%w: %v", ErrInvalidDocument, err)
			continue
		}
		if h.Limits >= 1 {
			if err := command.CheckDocumentLimits(&d, h.Time); err != nil {
				out[i].Err = business("document %d: %w: %w", i, ErrInvalidDocument, err)
				continue
			}
		}
		stored, targets, err := checkDocument(tx, &d)
		if err != nil {
			if !isBusiness(err) {
				return nil, err
			}
			out[i].Err = err
			continue
		}
		if out[i], err = f.writeDocument(tx, h, stored, d, r.Resource, targets); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeDocument stores a checked document over its stored version (zero if new) and marks
// the current documents it replaces superseded.
func (f *FSM) writeDocument(tx *state.Tx, h command.Header, stored state.StoredDocument, d search.Document, resource []byte,
	targets []state.StoredDocument) (DocumentRegistered, error) {
	var out DocumentRegistered
	for _, t := range targets {
		if t.Document.Status == search.StatusCurrent {
			t.Document.Status = search.StatusSuperseded
			t.Version++
			t.Updated, t.Index = h.Time, f.applying.Index
			if err := tx.PutDocument(t); err != nil {
				return out, err
			}
			f.openDocs = append(f.openDocs, t.Document.ID)
			out.Superseded = append(out.Superseded, t.Document.ID)
		}
	}
	if stored.Version == 0 {
		stored.Registered = h.Time
	}
	stored.Document, stored.Resource = d, resource
	stored.Version++
	stored.Updated, stored.Index = h.Time, f.applying.Index
	if err := tx.PutDocument(stored); err != nil {
		return out, err
	}
	f.openDocs = append(f.openDocs, d.ID)
	out.Document = stored
	return out, nil
}

// checkDocument validates a document against the replicated state and returns its stored
// version (zero if new) and the documents it replaces.
func checkDocument(tx *state.Tx, d *search.Document) (state.StoredDocument, []state.StoredDocument, error) {
	if err := d.Validate(); err != nil {
		return state.StoredDocument{}, nil, business("%w: %v", ErrInvalidDocument, err)
	}
	if r, err := tx.MPI().Record(mpi.RecordKey(d.PatientRecord)); err != nil {
		return state.StoredDocument{}, nil, err
	} else if r == nil {
		return state.StoredDocument{}, nil, business("document %s: %w: %s", d.ID, ErrUnknownSubject, d.PatientRecord)
	}
	if d.PersonEUID != "" {
		if _, ok, err := tx.MPI().Person(d.PersonEUID); err != nil {
			return state.StoredDocument{}, nil, err
		} else if !ok {
			return state.StoredDocument{}, nil, business("document %s: %w: Person/%s", d.ID, ErrUnknownSubject, d.PersonEUID)
		}
	}
	holder, err := tx.Participant(d.Holder)
	if errors.Is(err, state.ErrNotFound) {
		return state.StoredDocument{}, nil, business("document %s: %w: %s", d.ID, ErrUnknownHolder, d.Holder)
	} else if err != nil {
		return state.StoredDocument{}, nil, err
	}
	if err := checkSubjectConsent(tx, d, holder); err != nil {
		return state.StoredDocument{}, nil, err
	}
	stored, exists, err := tx.Document(d.ID)
	if err != nil {
		return stored, nil, err
	}
	if exists && stored.Document.Holder != d.Holder {
		return stored, nil, business("document %s: %w (%s)", d.ID, ErrNotHolder, stored.Document.Holder)
	}
	if !d.MasterIdentifier.IsZero() {
		if other, ok := tx.DocumentIDByMaster(d.MasterIdentifier.Token()); ok && other != d.ID {
			return stored, nil, business("document %s: %w: master identifier %s belongs to %s", d.ID, ErrInvalidDocument, d.MasterIdentifier.Token(), other)
		}
	}
	var targets []state.StoredDocument
	for _, rel := range d.RelatesTo {
		if rel.Code != "replaces" {
			continue
		}
		t, ok, err := tx.Document(rel.Target)
		if err != nil {
			return stored, nil, err
		}
		if !ok {
			return stored, nil, business("document %s: %w: %s", d.ID, ErrUnknownTarget, rel.Target)
		}
		if t.Document.Holder != d.Holder {
			return stored, nil, business("document %s replaces %s: %w (%s)", d.ID, rel.Target, ErrNotHolder, t.Document.Holder)
		}
		targets = append(targets, t)
	}
	return stored, targets, nil
}

// checkSubjectConsent is the locator's rule (locator.checkSubjectConsent, after
// policy.Decide) applied again in Apply, against the directives the state holds when the
// entry applies: a participant an active directive of the person denies may not register a
// document about them, nor may one that holds no record of an opted-out person, unless it is
// the admin (not denied by name). Either is refused as an unknown subject.
func checkSubjectConsent(tx *state.Tx, d *search.Document, holder model.Participant) error {
	sr, err := tx.MPI().Record(mpi.RecordKey(d.PatientRecord))
	if err != nil || sr == nil {
		return err
	}
	person, ok, err := tx.MPI().Person(sr.EUID)
	if err != nil || !ok {
		return err
	}
	records := make([]string, len(person.Records))
	for i, k := range person.Records {
		records[i] = string(k)
	}
	directives, err := tx.ConsentsOfRecords(records)
	if err != nil {
		return err
	}
	optedOut := false
	for _, c := range directives {
		if !c.Active() {
			continue
		}
		if slices.Contains(c.DenyParticipants, holder.ID) {
			return business("document %s: %w", d.ID, ErrUnknownSubject)
		}
		optedOut = optedOut || c.OptOut
	}
	if !optedOut || holder.IsAdmin() {
		return nil
	}
	for _, k := range records {
		if meta, ok, err := tx.PatientMeta(k); err != nil {
			return err
		} else if ok && meta.Owner == holder.ID {
			return nil
		}
		if sys, _ := mpi.RecordKey(k).Split(); sys == holder.IdentifierSystem && holder.IdentifierSystem != "" {
			return nil
		}
	}
	return business("document %s: %w", d.ID, ErrUnknownSubject)
}

// ErrInvalidSubmission: an MHD submission whose list does not fit its documents or the
// state (no patient, another holder's list, two documents with one id).
var ErrInvalidSubmission = errors.New("invalid submission")

// DocumentsProvided is the outcome of a document-provide command: every document as
// registered and the submission set as stored.
type DocumentsProvided struct {
	Documents []DocumentRegistered
	List      state.StoredList
}

// applyDocumentProvide registers a submission all or nothing: every document and the list
// are checked before the first write; any refusal refuses the whole entry.
func (f *FSM) applyDocumentProvide(tx *state.Tx, h command.Header, c command.DocumentProvide) (any, error) {
	type checked struct {
		doc     search.Document
		stored  state.StoredDocument
		targets []state.StoredDocument
	}
	docs := make([]checked, len(c.Documents))
	seen := map[string]bool{}
	for i, r := range c.Documents {
		var d search.Document
		if err := json.Unmarshal(r.Document, &d); err != nil {
			return nil, business("document %d: %w: %v", i, ErrInvalidDocument, err)
		}
		if err := command.CheckDocumentLimits(&d, h.Time); err != nil {
			return nil, business("document %d: %w: %w", i, ErrInvalidDocument, err)
		}
		if seen[d.ID] {
			return nil, business("document %d: %w: document %s appears twice", i, ErrInvalidSubmission, d.ID)
		}
		seen[d.ID] = true
		if d.PatientRecord != c.List.PatientRecord || d.Holder != c.List.Holder {
			return nil, business("document %d: %w: its patient or holder is not the submission's", i, ErrInvalidSubmission)
		}
		stored, targets, err := checkDocument(tx, &d)
		if err != nil {
			return nil, err
		}
		docs[i] = checked{doc: d, stored: stored, targets: targets}
	}
	if r, err := tx.MPI().Record(mpi.RecordKey(c.List.PatientRecord)); err != nil {
		return nil, err
	} else if r == nil {
		return nil, business("list %s: %w: %s", c.List.ID, ErrUnknownSubject, c.List.PatientRecord)
	}
	old, exists, err := tx.List(c.List.ID)
	if err != nil {
		return nil, err
	}
	if exists && old.Holder != c.List.Holder {
		return nil, business("list %s: %w (%s)", c.List.ID, ErrNotHolder, old.Holder)
	}
	// Every check passed: write.
	out := DocumentsProvided{Documents: make([]DocumentRegistered, len(docs))}
	for i, d := range docs {
		var err error
		if out.Documents[i], err = f.writeDocument(tx, h, d.stored, d.doc, c.Documents[i].Resource, d.targets); err != nil {
			return nil, err
		}
	}
	list := state.StoredList{ID: c.List.ID, PatientRecord: c.List.PatientRecord, Holder: c.List.Holder, Resource: c.List.Resource,
		Version: old.Version + 1, Updated: h.Time}
	if err := tx.PutList(list); err != nil {
		return nil, err
	}
	out.List = list
	return out, nil
}
