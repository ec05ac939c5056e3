package mpi

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// ErrInvalidRecord is returned (wrapped) when a record cannot be registered:
// its identifier is missing or malformed.
var ErrInvalidRecord = errors.New("invalid record")

// ErrInvalidEUID is returned (wrapped) when the EUID offered for a new person
// is empty or already names an existing person.
var ErrInvalidEUID = errors.New("invalid EUID")

// ErrInvalidConfig is returned (wrapped) when a match configuration does not
// describe the fields and levels this version of the package compares.
var ErrInvalidConfig = errors.New("invalid match configuration")

// ErrNotFound is returned (wrapped) when a record named in a call is not
// stored.
var ErrNotFound = errors.New("not found")

// ErrCorruptStore is returned (wrapped) when the store contradicts itself, for
// example a record names a person that does not exist.
var ErrCorruptStore = errors.New("mpi store is inconsistent")

// RecordKey identifies a source record: "system|value", the participant's
// assigning authority and the local identifier (MRN) it gave the patient. The
// FHIR token syntax is used on purpose so keys read naturally in logs; the
// system may not contain '|', so the split is unambiguous.
type RecordKey string

// KeyOf builds the record key of an identifier.
func KeyOf(system, value string) RecordKey {
	return RecordKey(system + "|" + value)
}

// Split returns the system and value of a key.
func (k RecordKey) Split() (system, value string) {
	s, v, _ := strings.Cut(string(k), "|")
	return s, v
}

// Record is one source record as a participant registered it. Only System and
// Value are required; every other field may be empty, and an empty field is
// neutral evidence (neither for nor against a link).
type Record struct {
	// System is the assigning authority (participant URI or OID).
	System string `json:"system"`
	// Value is the local identifier (MRN) the system gave the patient.
	Value string `json:"value"`
	// Given holds the given names in order: the first is the given (first)
	// name, the rest are middle names (FHIR HumanName.given).
	Given []string `json:"given,omitempty"`
	// Family is the family (last) name, possibly hyphenated or multi-part.
	Family string `json:"family,omitempty"`
	// Suffix is a generational suffix (Jr, Sr, II, III…). A suffix written
	// inside Given or Family is also recognised.
	Suffix string `json:"suffix,omitempty"`
	// BirthDate is YYYY-MM-DD (YYYYMMDD is accepted). A date whose parts are
	// digits but not a calendar date is kept: its parts still compare.
	BirthDate string `json:"birth_date,omitempty"`
	// Sex is the administrative sex: female/male/other/unknown or F/M/O/U.
	Sex string `json:"sex,omitempty"`
	// AddressLines are the street lines of the home address.
	AddressLines []string `json:"address_lines,omitempty"`
	City         string   `json:"city,omitempty"`
	State        string   `json:"state,omitempty"`
	PostalCode   string   `json:"postal_code,omitempty"`
	Phones       []string `json:"phones,omitempty"`
	Email        string   `json:"email,omitempty"`
	// SSN is the full social security number or only its last 4 digits.
	SSN string `json:"ssn,omitempty"`
}

// Key returns the record's key.
func (r Record) Key() RecordKey { return KeyOf(r.System, r.Value) }

// Validate reports whether the record can be registered: it needs a system
// without '|' and a value, neither with control characters.
func (r Record) Validate() error {
	if strings.TrimSpace(r.System) == "" || strings.TrimSpace(r.Value) == "" {
		return fmt.Errorf("%w: identifier system and value are required", ErrInvalidRecord)
	}
	if strings.Contains(r.System, "|") {
		return fmt.Errorf("%w: identifier system %q contains '|'", ErrInvalidRecord, r.System)
	}
	if strings.IndexFunc(r.System, unicode.IsControl) >= 0 || strings.IndexFunc(r.Value, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: identifier contains control characters", ErrInvalidRecord)
	}
	return nil
}

// Field names. The comparison fields (FieldNames) name the parts of a
// Config and an Explanation; eval's --without list takes the record fields
// (RecordFieldNames), of which address, city, state and postal code are
// compared together as the location.
const (
	FieldGiven     = "given"
	FieldMiddle    = "middle"
	FieldFamily    = "family"
	FieldBirthDate = "birth_date"
	FieldSex       = "sex"
	FieldAddress   = "address"
	FieldCity      = "city"
	FieldState     = "state"
	FieldPostal    = "postal_code"
	FieldPhone     = "phone"
	FieldEmail     = "email"
	FieldSSN       = "ssn"
	FieldLocation  = "location"
)

// FieldNames lists the compared fields in their fixed scoring order. Scores
// are summed in this order, which keeps floating-point results identical on
// every node.
func FieldNames() []string {
	return []string{FieldGiven, FieldMiddle, FieldFamily, FieldBirthDate, FieldSex,
		FieldLocation, FieldPhone, FieldEmail, FieldSSN}
}

// RecordFieldNames lists the fields of a Record that WithoutFields can empty.
func RecordFieldNames() []string {
	return []string{FieldGiven, FieldMiddle, FieldFamily, FieldBirthDate, FieldSex,
		FieldAddress, FieldCity, FieldState, FieldPostal, FieldPhone, FieldEmail, FieldSSN}
}

// WithoutFields returns a copy of r with the named fields emptied, to measure
// matching when those fields are absent. Unknown names are an error.
func WithoutFields(r Record, fields []string) (Record, error) {
	out := r
	out.Given = append([]string(nil), r.Given...)
	for _, f := range fields {
		switch strings.ToLower(strings.TrimSpace(f)) {
		case "":
		case FieldGiven, "given_name", "first":
			if len(out.Given) > 0 {
				out.Given[0] = ""
			}
		case FieldMiddle, "middle_name":
			if len(out.Given) > 1 {
				out.Given = out.Given[:1]
			}
		case FieldFamily, "family_name", "surname", "last":
			out.Family = ""
		case FieldBirthDate, "dob", "birthdate", "date_of_birth":
			out.BirthDate = ""
		case FieldSex, "gender":
			out.Sex = ""
		case FieldAddress, "address_line", "address_lines":
			out.AddressLines = nil
		case FieldCity, "suburb":
			out.City = ""
		case FieldLocation:
			out.AddressLines, out.City, out.State, out.PostalCode = nil, "", "", ""
		case FieldState:
			out.State = ""
		case FieldPostal, "postal", "postcode", "zip":
			out.PostalCode = ""
		case FieldPhone, "phones":
			out.Phones = nil
		case FieldEmail:
			out.Email = ""
		case FieldSSN, "soc_sec_id":
			out.SSN = ""
		case "suffix":
			out.Suffix = ""
		default:
			return Record{}, fmt.Errorf("unknown field %q (known: %s, suffix)", f, strings.Join(RecordFieldNames(), ", "))
		}
	}
	return out, nil
}
