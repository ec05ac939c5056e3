package search

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Status is the availability status of a document (XDS availabilityStatus,
// FHIR DocumentReference.status).
type Status string

// The document statuses of FHIR R4 DocumentReference.status.
const (
	StatusCurrent        Status = "current"
	StatusSuperseded     Status = "superseded"
	StatusEnteredInError Status = "entered-in-error"
)

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusCurrent, StatusSuperseded, StatusEnteredInError:
		return true
	}
	return false
}

// Code is one coding of a coded value (FHIR Coding, XDS code with its scheme).
// It is indexed as the token "system|code" and as the bare code, so a FHIR
// token search with or without a system finds it; Display is not indexed.
type Code struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// Token returns the FHIR token form "system|code" ("|code" when the code has
// no system).
func (c Code) Token() string { return c.System + "|" + c.Code }

// IsZero reports whether the coding is absent.
func (c Code) IsZero() bool { return c == Code{} }

// Identifier is a business identifier: an assigning authority (system) and a
// value.
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// Token returns the FHIR token form "system|value".
func (id Identifier) Token() string { return id.System + "|" + id.Value }

// IsZero reports whether the identifier is absent.
func (id Identifier) IsZero() bool { return id == Identifier{} }

// Period is the time of the service the document describes (XDS
// serviceStartTime/serviceStopTime, FHIR DocumentReference.context.period). A
// zero bound is open: a period with only a start is still running.
type Period struct {
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
}

// IsZero reports whether the document has no service period.
func (p Period) IsZero() bool { return p.Start.IsZero() && p.End.IsZero() }

// Author is a document author (XDS author, FHIR DocumentReference.author as a
// contained Practitioner and its Organization).
type Author struct {
	Given       []string `json:"given,omitempty"`
	Family      string   `json:"family,omitempty"`
	Institution string   `json:"institution,omitempty"`
	// InstitutionID is the institution's identifier as "system|value".
	InstitutionID string `json:"institution_id,omitempty"`
}

// Relation links a document to another one (FHIR DocumentReference.relatesTo,
// XDS association). Code is replaces, transforms, signs or appends.
type Relation struct {
	Code   string `json:"code"`
	Target string `json:"target"`
}

// Document is the metadata of one registered document and where it lives. It
// is what the replicated state stores and what this package indexes; it holds
// no clinical content.
type Document struct {
	// ID is the registry's id of the entry (the FHIR resource id).
	ID               string     `json:"id"`
	MasterIdentifier Identifier `json:"master_identifier,omitzero"`
	Status           Status     `json:"status"`

	// PatientRecord is the key "system|value" of the source record (a
	// participant's patient) the document belongs to.
	PatientRecord string `json:"patient_record"`
	// PersonEUID is the enterprise ID of the person that record is linked to.
	// The caller keeps it current: when links change it re-indexes the
	// documents of the records that moved.
	PersonEUID string `json:"person_euid,omitempty"`

	Type            Code   `json:"type,omitzero"`
	Category        []Code `json:"category,omitempty"`
	Format          Code   `json:"format,omitzero"`
	FacilityType    Code   `json:"facility_type,omitzero"`
	PracticeSetting Code   `json:"practice_setting,omitzero"`
	Events          []Code `json:"events,omitempty"`
	// SecurityLabels holds the confidentiality code (v3 Confidentiality
	// N/R/V…, XDS confidentialityCode) and any other security labels (v3
	// ActCode such as HIV or PSY), as FHIR R4 DocumentReference.securityLabel
	// carries both.
	SecurityLabels []Code `json:"security_labels,omitempty"`

	// Created is when the document was created (XDS creationTime, FHIR
	// attachment.creation / DocumentReference.date). It is the date searches
	// filter and sort on.
	Created       time.Time `json:"created,omitzero"`
	ServicePeriod Period    `json:"service_period,omitzero"`

	Authors     []Author `json:"authors,omitempty"`
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`

	MIMEType string `json:"mime_type,omitempty"`
	Size     int64  `json:"size,omitempty"`
	// Hash is the attachment hash as FHIR carries it (base64 SHA-1).
	Hash     string `json:"hash,omitempty"`
	Language string `json:"language,omitempty"`

	// Holder is the id of the participant that holds the document.
	Holder string `json:"holder"`
	// RepositoryID is the holder's repository unique id (XDS repositoryUniqueId).
	RepositoryID string `json:"repository_id,omitempty"`
	// URL is where the holder serves the document (content.attachment.url).
	URL string `json:"url,omitempty"`

	RelatesTo []Relation `json:"relates_to,omitempty"`
	// Related are the records the document is about beside its subject (FHIR
	// context.related, XDS referenceIdList: an order, an encounter, a referral),
	// searched by MHD ITI-67's related parameter.
	Related []Related `json:"related,omitempty"`
}

// Related is one related record: a FHIR reference ("Encounter/123" or an absolute
// URL), its identifier, or both.
type Related struct {
	Reference  string     `json:"reference,omitempty"`
	Identifier Identifier `json:"identifier,omitzero"`
}

// Dates outside [earliestDate, latestDate), years 1800 to 2199, are refused:
// Bleve stores dates as int64 nanoseconds (years 1677–2262), and the open
// bounds of a service period are indexed as dates just beyond this range.
var (
	earliestDate = time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)
	latestDate   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ErrInvalidDocument is wrapped by every [DocumentError]: a document that
// cannot be indexed as it is. Indexing refuses it rather than skipping it.
var ErrInvalidDocument = errors.New("search: invalid document")

// DocumentError says which field of which document cannot be indexed.
type DocumentError struct {
	ID     string // the document's id, as given
	Field  string // JSON path of the field, e.g. "events[1].code"
	Reason string
}

func (e *DocumentError) Error() string {
	return fmt.Sprintf("search: invalid document %q: %s: %s", e.ID, e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidDocument) true.
func (e *DocumentError) Unwrap() error { return ErrInvalidDocument }

// maxIDLength follows the FHIR id datatype (1–64 characters).
const maxIDLength = 64

// Validate reports the first field that would make the document unsearchable
// or ambiguous in the index, as a *DocumentError: an id that is not a FHIR
// id, an unknown status, a record key that is not "system|value", a code or
// keyword with '|' or control characters, invalid UTF-8, a date outside the
// years 1800–2199, a service period that ends before it starts, a negative
// size. Only ID, Status, PatientRecord and Holder are required.
func (d *Document) Validate() error {
	fail := func(field, format string, args ...any) error {
		return &DocumentError{ID: d.ID, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if err := checkID(d.ID); err != "" {
		return fail("id", "%s", err)
	}
	if !d.Status.Valid() {
		return fail("status", "%q is not current, superseded or entered-in-error", d.Status)
	}
	if err := checkKey(d.PatientRecord); err != "" {
		return fail("patient_record", "%s", err)
	}
	if d.PersonEUID != "" {
		if err := checkKeyword(d.PersonEUID); err != "" {
			return fail("person_euid", "%s", err)
		}
	}
	if err := checkKeyword(d.Holder); err != "" {
		return fail("holder", "%s", err)
	}
	if !d.MasterIdentifier.IsZero() {
		if err := checkTokenParts(d.MasterIdentifier.System, d.MasterIdentifier.Value); err != "" {
			return fail("master_identifier", "%s", err)
		}
	}
	single := []struct {
		field string
		code  Code
	}{
		{"type", d.Type}, {"format", d.Format}, {"facility_type", d.FacilityType},
		{"practice_setting", d.PracticeSetting},
	}
	for _, s := range single {
		if err := checkCode(s.code, true); err != "" {
			return fail(s.field, "%s", err)
		}
	}
	lists := []struct {
		field string
		codes []Code
	}{
		{"category", d.Category}, {"events", d.Events}, {"security_labels", d.SecurityLabels},
	}
	for _, l := range lists {
		for i, c := range l.codes {
			if err := checkCode(c, false); err != "" {
				return fail(fmt.Sprintf("%s[%d]", l.field, i), "%s", err)
			}
		}
	}
	if !d.Created.IsZero() {
		if err := checkDate(d.Created); err != "" {
			return fail("created", "%s", err)
		}
	}
	if p := d.ServicePeriod; !p.IsZero() {
		if !p.Start.IsZero() {
			if err := checkDate(p.Start); err != "" {
				return fail("service_period.start", "%s", err)
			}
		}
		if !p.End.IsZero() {
			if err := checkDate(p.End); err != "" {
				return fail("service_period.end", "%s", err)
			}
		}
		if !p.Start.IsZero() && !p.End.IsZero() && p.End.Before(p.Start) {
			return fail("service_period", "end %s is before start %s",
				p.End.Format(time.RFC3339), p.Start.Format(time.RFC3339))
		}
	}
	for i, a := range d.Authors {
		for j, g := range a.Given {
			if err := checkText(g); err != "" {
				return fail(fmt.Sprintf("authors[%d].given[%d]", i, j), "%s", err)
			}
		}
		fields := []struct{ field, value string }{
			{"family", a.Family}, {"institution", a.Institution}, {"institution_id", a.InstitutionID},
		}
		for _, f := range fields {
			if err := checkText(f.value); err != "" {
				return fail(fmt.Sprintf("authors[%d].%s", i, f.field), "%s", err)
			}
		}
	}
	texts := []struct{ field, value string }{
		{"title", d.Title}, {"description", d.Description}, {"mime_type", d.MIMEType},
		{"hash", d.Hash}, {"language", d.Language}, {"repository_id", d.RepositoryID}, {"url", d.URL},
	}
	for _, t := range texts {
		if err := checkText(t.value); err != "" {
			return fail(t.field, "%s", err)
		}
	}
	if d.Size < 0 {
		return fail("size", "%d is negative", d.Size)
	}
	for i, r := range d.RelatesTo {
		if r.Code == "" || r.Target == "" {
			return fail(fmt.Sprintf("relates_to[%d]", i), "code and target are required")
		}
	}
	for i, r := range d.Related {
		if r.Reference == "" && r.Identifier.IsZero() {
			return fail(fmt.Sprintf("related[%d]", i), "a reference or an identifier is required")
		}
		if r.Reference != "" {
			if err := checkKeyword(r.Reference); err != "" {
				return fail(fmt.Sprintf("related[%d].reference", i), "%s", err)
			}
		}
		if !r.Identifier.IsZero() {
			if err := checkTokenParts(r.Identifier.System, r.Identifier.Value); err != "" {
				return fail(fmt.Sprintf("related[%d].identifier", i), "%s", err)
			}
		}
	}
	return nil
}

func checkID(id string) string {
	if id == "" {
		return "is required"
	}
	if len(id) > maxIDLength {
		return fmt.Sprintf("is %d characters, longer than %d", len(id), maxIDLength)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Sprintf("%q has a character outside A-Z a-z 0-9 - .", id)
		}
	}
	return ""
}

// checkKey validates a record key "system|value".
func checkKey(key string) string {
	system, value, ok := strings.Cut(key, "|")
	if !ok {
		return fmt.Sprintf("%q is not system|value", key)
	}
	if system == "" || value == "" {
		return fmt.Sprintf("%q needs both a system and a value", key)
	}
	return checkTokenParts(system, value)
}

// checkTokenParts refuses a '|' in either part, which would make the token
// "system|code" ambiguous, and text the index cannot hold.
func checkTokenParts(system, code string) string {
	if code == "" {
		return "code or value is required"
	}
	if strings.Contains(system, "|") || strings.Contains(code, "|") {
		return fmt.Sprintf("%q|%q contains '|'", system, code)
	}
	if err := checkKeyword(code); err != "" {
		return err
	}
	if system != "" {
		return checkKeyword(system)
	}
	return ""
}

func checkCode(c Code, optional bool) string {
	if optional && c.IsZero() {
		return ""
	}
	if err := checkTokenParts(c.System, c.Code); err != "" {
		return err
	}
	return checkText(c.Display)
}

// checkKeyword refuses what cannot be an exact-match term: empty values,
// invalid UTF-8 and control characters (the locate aggregate joins keywords
// with a control character).
func checkKeyword(s string) string {
	if s == "" {
		return "is required"
	}
	if s != strings.TrimSpace(s) {
		return fmt.Sprintf("%q has leading or trailing space", s)
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Sprintf("contains control character %U", r)
		}
	}
	return ""
}

func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return fmt.Sprintf("contains control character %U", r)
		}
	}
	return ""
}

func checkDate(t time.Time) string {
	if t.Before(earliestDate) || !t.Before(latestDate) {
		return fmt.Sprintf("%s is outside %d–%d", t.Format(time.RFC3339), earliestDate.Year(), latestDate.Year()-1)
	}
	return ""
}
