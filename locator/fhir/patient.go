package fhir

import "encoding/json"

// Identifier systems and extensions of the patient API.
const (
	// EUIDSystem is the system of rls enterprise identifiers (the person's EUID).
	EUIDSystem = Base + "/sid/euid"
	// SSNSystem is the US social security number system.
	SSNSystem = "http://hl7.org/fhir/sid/us-ssn"
	// MatchDecisionURL is the extension that reports the match decision on a registered
	// Patient: outcome, score and person.
	MatchDecisionURL = Base + "/StructureDefinition/match-decision"
	// MatchGradeURL is the FHIR match-grade extension on $match entries.
	MatchGradeURL = "http://hl7.org/fhir/StructureDefinition/match-grade"
	// MatchFieldURL reports one field's agreement level and weight on a $match entry.
	MatchFieldURL = Base + "/StructureDefinition/match-field"
)

// HumanName is a FHIR HumanName.
type HumanName struct {
	Use    string   `json:"use,omitempty"`
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Prefix []string `json:"prefix,omitempty"`
	Suffix []string `json:"suffix,omitempty"`
	Period *Period  `json:"period,omitempty"`
}

// Period is a FHIR Period.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// ContactPoint is a FHIR ContactPoint (telecom).
type ContactPoint struct {
	System string  `json:"system,omitempty"`
	Value  string  `json:"value,omitempty"`
	Use    string  `json:"use,omitempty"`
	Rank   int     `json:"rank,omitempty"`
	Period *Period `json:"period,omitempty"`
}

// Address is a FHIR Address.
type Address struct {
	Use        string   `json:"use,omitempty"`
	Type       string   `json:"type,omitempty"`
	Text       string   `json:"text,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	District   string   `json:"district,omitempty"`
	State      string   `json:"state,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
	Period     *Period  `json:"period,omitempty"`
}

// PatientLink is a FHIR Patient.link.
type PatientLink struct {
	Other Reference `json:"other"`
	Type  string    `json:"type"`
}

// Patient is the FHIR R4 Patient resource: a source record. Every R4 element is accepted;
// the ones matching does not read are kept as raw JSON and returned as they came.
type Patient struct {
	ResourceType         string            `json:"resourceType"`
	ID                   string            `json:"id,omitempty"`
	Meta                 *Meta             `json:"meta,omitempty"`
	ImplicitRules        string            `json:"implicitRules,omitempty"`
	Language             string            `json:"language,omitempty"`
	Text                 json.RawMessage   `json:"text,omitempty"`
	Contained            []json.RawMessage `json:"contained,omitempty"`
	Extension            []json.RawMessage `json:"extension,omitempty"`
	ModifierExtension    []json.RawMessage `json:"modifierExtension,omitempty"`
	Identifier           []Identifier      `json:"identifier,omitempty"`
	Active               *bool             `json:"active,omitempty"`
	Name                 []HumanName       `json:"name,omitempty"`
	Telecom              []ContactPoint    `json:"telecom,omitempty"`
	Gender               string            `json:"gender,omitempty"`
	GenderElement        json.RawMessage   `json:"_gender,omitempty"`
	BirthDate            string            `json:"birthDate,omitempty"`
	BirthDateElement     json.RawMessage   `json:"_birthDate,omitempty"`
	DeceasedBoolean      *bool             `json:"deceasedBoolean,omitempty"`
	DeceasedDateTime     string            `json:"deceasedDateTime,omitempty"`
	Address              []Address         `json:"address,omitempty"`
	MaritalStatus        json.RawMessage   `json:"maritalStatus,omitempty"`
	MultipleBirthBoolean *bool             `json:"multipleBirthBoolean,omitempty"`
	MultipleBirthInteger *int              `json:"multipleBirthInteger,omitempty"`
	Photo                []json.RawMessage `json:"photo,omitempty"`
	Contact              []json.RawMessage `json:"contact,omitempty"`
	Communication        []json.RawMessage `json:"communication,omitempty"`
	GeneralPractitioner  []json.RawMessage `json:"generalPractitioner,omitempty"`
	ManagingOrganization json.RawMessage   `json:"managingOrganization,omitempty"`
	Link                 []PatientLink     `json:"link,omitempty"`
}

// PersonLink is a FHIR Person.link.
type PersonLink struct {
	Target    Reference `json:"target"`
	Assurance string    `json:"assurance,omitempty"`
}

// Person is the FHIR Person resource: the enterprise identity (EUID) that links the source
// records (Patients) rls holds for one individual, with the golden view of its
// demographics.
type Person struct {
	ResourceType string         `json:"resourceType"`
	ID           string         `json:"id"`
	Meta         *Meta          `json:"meta,omitempty"`
	Identifier   []Identifier   `json:"identifier,omitempty"`
	Name         []HumanName    `json:"name,omitempty"`
	Telecom      []ContactPoint `json:"telecom,omitempty"`
	Gender       string         `json:"gender,omitempty"`
	BirthDate    string         `json:"birthDate,omitempty"`
	Address      []Address      `json:"address,omitempty"`
	Active       *bool          `json:"active,omitempty"`
	Link         []PersonLink   `json:"link,omitempty"`
}

// Parameter is one Parameters.parameter.
type Parameter struct {
	Extension       []Extension     `json:"extension,omitempty"`
	Name            string          `json:"name"`
	ValueBoolean    *bool           `json:"valueBoolean,omitempty"`
	ValueInteger    *int            `json:"valueInteger,omitempty"`
	ValueString     string          `json:"valueString,omitempty"`
	ValueCode       string          `json:"valueCode,omitempty"`
	ValueIdentifier *Identifier     `json:"valueIdentifier,omitempty"`
	ValueReference  *Reference      `json:"valueReference,omitempty"`
	ValueCanonical  string          `json:"valueCanonical,omitempty"`
	ValueInstant    string          `json:"valueInstant,omitempty"`
	Resource        json.RawMessage `json:"resource,omitempty"`
	Part            []Parameter     `json:"part,omitempty"`
}

// Parameters is the FHIR Parameters resource (operation input and output).
type Parameters struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *ProfiledMeta `json:"meta,omitempty"`
	Parameter    []Parameter   `json:"parameter,omitempty"`
}

// SearchInfo is Bundle.entry.search.
type SearchInfo struct {
	Mode      string      `json:"mode,omitempty"`
	Score     *float64    `json:"score,omitempty"`
	Extension []Extension `json:"extension,omitempty"`
}
