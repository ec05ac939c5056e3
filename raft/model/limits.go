package model

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The limits below bound every string that becomes part of a bbolt key or an index entry of
// the replicated state (and the lists that multiply them), far below bbolt's own limits (a
// key of at most 32 KiB): the API checks them at the edge and names the element at fault,
// and the FSM checks them again before a command writes anything, so that no command, from
// an old client, a batch, an import or a forged log entry, can reach a storage error inside
// Apply. Lengths are in characters (Unicode code points), so a limit of n is at most 4n
// bytes of UTF-8.
//
// They are documented for operators and integrators in README.md ("Limits"). Raising one
// is a change to the log's rules: bump LimitsVersion.
const (
	// MaxIDLength: FHIR ids (Patient, DocumentReference, Consent, Organization), participant,
	// node and consent ids, EUIDs and audit entry ids.
	MaxIDLength = 64
	// MaxSystemLength: an identifier system or code system URI (assigning authority).
	MaxSystemLength = 256
	// MaxIdentifierValueLength: an identifier value (MRN, document uniqueId; XDS bounds a
	// uniqueId at 128 characters).
	MaxIdentifierValueLength = 128
	// MaxRecordKeyLength: a record key "system|value".
	MaxRecordKeyLength = MaxSystemLength + 1 + MaxIdentifierValueLength
	// MaxNameLength: one family name, given name, prefix or suffix.
	MaxNameLength = 100
	// MaxNamePartCount: given names (first and middle) of one name.
	MaxNamePartCount = 8
	// MaxAddressLineLength and MaxAddressLineCount: the street lines of an address.
	MaxAddressLineLength = 200
	MaxAddressLineCount  = 5
	// MaxCityLength, MaxStateLength, MaxPostalCodeLength, MaxCountryLength: address parts.
	MaxCityLength       = 100
	MaxStateLength      = 64
	MaxPostalCodeLength = 20
	MaxCountryLength    = 64
	// MaxTelecomLength: a phone number or e-mail address (RFC 5321 bounds a path at 254).
	MaxTelecomLength = 254
	// MaxTelecomCount: phone numbers of one record.
	MaxTelecomCount = 10
	// MaxSSNLength: a social security number (9 digits, with separators).
	MaxSSNLength = 16
	// MaxDateLength: a date as YYYY-MM-DD.
	MaxDateLength = 10
	// MaxCodeLength: a code of a coding (document type, security label, purpose of use).
	MaxCodeLength = 256
	// MaxDisplayLength: a coding's display text and an author's or institution's name.
	MaxDisplayLength = 512
	// MaxTextLength: a document's title or description.
	MaxTextLength = 4096
	// MaxURLLength: a URL (document location, participant endpoint).
	MaxURLLength = 2048
	// MaxReasonLength: a data steward's reason or a review resolution's.
	MaxReasonLength = 1024
	// MaxListLength: the entries of one list (categories, events, security labels, authors,
	// relations of a document; identifiers, names, addresses, telecoms of a Patient; the
	// actors and labels of a consent directive; the purposes of a participant).
	MaxListLength = 64
	// MaxConsentRecords: the records a consent directive is anchored to (every record of a
	// person).
	MaxConsentRecords = 1000
	// MaxResourceBytes: one FHIR resource as the state keeps it (a Patient or a
	// DocumentReference as sent).
	MaxResourceBytes = 64 << 10
	// MaxBatchEntries: the registrations of one batch command.
	MaxBatchEntries = 2000
)

// Limits on the fields of an audit entry that come from the request (its headers, path and
// query). Each is recorded bounded; a request whose own header exceeds its limit is refused.
const (
	MaxOnBehalfOfLength = 256
	MaxRequestIDLength  = 64
	MaxAuditPathLength  = 1024
	MaxAuditQueryLength = 8 << 10
	MaxSourceLength     = 128
	MaxPurposeLength    = 64
	MaxBreakGlassLength = 500
	MaxActionLength     = 64
	MaxOutcomeLength    = 64
	// MaxAuditListLength bounds the persons and records one entry names.
	MaxAuditListLength = 10000
)

// Plausible birth dates: not before MinBirthYear, not after the day the command was
// stamped (one day of slack for time zones ahead of UTC).
const MinBirthYear = 1850

// LimitsVersion numbers the rules above. A leader stamps it on every command it proposes
// (command.Header.Limits); the FSM enforces the rules of the version an entry carries, so
// that entries written before a rule existed replay as they applied then and every node,
// whatever log it replays, reaches the same state.
const LimitsVersion = 1

// ErrTooLong marks a value beyond its limit; it wraps ErrInvalid.
var ErrTooLong = fmt.Errorf("%w: too long", ErrInvalid)

// ErrForbiddenCharacter marks a value holding a character rls refuses; it wraps ErrInvalid.
var ErrForbiddenCharacter = fmt.Errorf("%w: forbidden character", ErrInvalid)

// FieldError says which field broke which limit; it wraps ErrTooLong, ErrForbiddenCharacter
// or ErrInvalid. Its message never repeats the value (which may be a name or an MRN, and
// may be megabytes long).
type FieldError struct {
	Field  string
	Reason string
	err    error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
func (e *FieldError) Unwrap() error {
	if e.err == nil {
		return ErrInvalid
	}
	return e.err
}

func fieldError(kind error, field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), err: kind}
}

// FieldOf returns the field a limit error names, if it is one.
func FieldOf(err error) (string, bool) {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field, true
	}
	return "", false
}

// forbiddenRune reports the characters no stored text may hold: control characters (C0
// and C1, NUL included; tab, line feed and carriage return only where multiline is
// allowed), the bidirectional embedding, override and isolate controls that make text
// display in another order than it is stored ("Trojan Source"), the byte order mark and
// noncharacters.
func forbiddenRune(r rune, multiline bool) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return !multiline
	case unicode.IsControl(r):
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0xFEFF, r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
		return true
	}
	return false
}

// ForbiddenRune reports whether r is refused in stored text; multiline text (free-text
// narrative, descriptions) may hold tabs and line breaks.
func ForbiddenRune(r rune, multiline bool) bool { return forbiddenRune(r, multiline) }

func checkString(field, s string, max int, multiline bool) error {
	if !utf8.ValidString(s) {
		return fieldError(ErrForbiddenCharacter, field, "is not valid UTF-8")
	}
	n := 0
	for _, r := range s {
		n++
		if forbiddenRune(r, multiline) {
			return fieldError(ErrForbiddenCharacter, field, "holds the character %U at position %d, which rls does not store (control, bidirectional override or noncharacter)", r, n)
		}
	}
	if n > max {
		return fieldError(ErrTooLong, field, "is %d characters long; at most %d are allowed", n, max)
	}
	return nil
}

// CheckText checks a one-line value that reaches a key or an index: valid UTF-8, at most
// max characters, no forbidden character (tabs and line breaks included).
func CheckText(field, s string, max int) error { return checkString(field, s, max, false) }

// CheckFreeText is CheckText for multiline text (descriptions, reasons): tabs and line
// breaks are allowed.
func CheckFreeText(field, s string, max int) error { return checkString(field, s, max, true) }

// CheckCount checks that a list has at most max entries.
func CheckCount(field string, n, max int) error {
	if n > max {
		return fieldError(ErrTooLong, field, "has %d entries; at most %d are allowed", n, max)
	}
	return nil
}

// CheckSystem checks an identifier or code system: CheckText, and no '|' (which separates
// system from value in tokens and record keys).
func CheckSystem(field, s string) error {
	if err := CheckText(field, s, MaxSystemLength); err != nil {
		return err
	}
	if strings.Contains(s, "|") {
		return fieldError(ErrInvalid, field, "contains '|', which separates a system from its value")
	}
	return nil
}

// CheckRecordKey checks a record key "system|value".
func CheckRecordKey(field, key string) error {
	system, value, ok := strings.Cut(key, "|")
	if !ok || system == "" || value == "" {
		return fieldError(ErrInvalid, field, "must be an identifier system|value")
	}
	if err := CheckSystem(field, system); err != nil {
		return err
	}
	return CheckText(field, value, MaxIdentifierValueLength)
}

// CheckID checks an id (FHIR id grammar, at most MaxIDLength).
func CheckID(field, id string) error {
	if err := ValidateID(field, id); err != nil {
		return fieldError(ErrInvalid, field, "must be 1-%d letters, digits, '-' or '.'", MaxIDLength)
	}
	return nil
}

// CheckBirthDate checks a birth date of a flat record as the matcher takes it: YYYY,
// YYYY-MM, YYYY-MM-DD or YYYYMMDD, digits only (a date-entry typo that is not a calendar
// date is kept, so that its parts still compare), in a plausible year: from MinBirthYear to
// the year of now, and, when the date is complete and a calendar date, not after now (plus
// one day for time zones ahead of UTC). now is the command's stamped time in the FSM.
func CheckBirthDate(field, s string, now time.Time) error {
	if s == "" {
		return nil
	}
	digits := strings.ReplaceAll(s, "-", "")
	shapeOK := len(s) <= MaxDateLength
	switch len(s) {
	case 4, 8:
		shapeOK = shapeOK && len(digits) == len(s)
	case 7:
		shapeOK = s[4] == '-' && len(digits) == 6
	case 10:
		shapeOK = s[4] == '-' && s[7] == '-' && len(digits) == 8
	default:
		shapeOK = false
	}
	for _, r := range digits {
		shapeOK = shapeOK && r >= '0' && r <= '9'
	}
	if !shapeOK {
		return fieldError(ErrInvalid, field, "must be a date YYYY-MM-DD (or YYYY, YYYY-MM, YYYYMMDD)")
	}
	year := int(digits[0]-'0')*1000 + int(digits[1]-'0')*100 + int(digits[2]-'0')*10 + int(digits[3]-'0')
	if year < MinBirthYear || year > now.UTC().Year() {
		return fieldError(ErrInvalid, field, "year %04d is not a plausible birth year (%d to %d)", year, MinBirthYear, now.UTC().Year())
	}
	if len(digits) == 8 {
		if t, err := time.Parse("20060102", digits); err == nil && t.After(now.UTC().AddDate(0, 0, 1)) {
			return fieldError(ErrInvalid, field, "is in the future")
		}
	}
	return nil
}
