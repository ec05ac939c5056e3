package fhir

// Consent terminology rls uses.
const (
	// PurposeOfUseURL is the Organization extension listing a participant's allowed
	// purposes of use (one valueCode each).
	PurposeOfUseURL = Base + "/StructureDefinition/purpose-of-use"
	// ConsentScopeSystem and ConsentScopePrivacy: the scope of every directive rls keeps.
	ConsentScopeSystem  = "http://terminology.hl7.org/CodeSystem/consentscope"
	ConsentScopePrivacy = "patient-privacy"
	// ConsentCategoryLOINC 59284-0 is "Patient Consent".
	LOINCSystem          = "http://loinc.org"
	ConsentCategoryLOINC = "59284-0"
)

// Consent is the FHIR R4 Consent resource, the subset a privacy directive needs.
type Consent struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id,omitempty"`
	Meta         *Meta             `json:"meta,omitempty"`
	Status       string            `json:"status"`
	Scope        *CodeableConcept  `json:"scope,omitempty"`
	Category     []CodeableConcept `json:"category,omitempty"`
	Patient      *Reference        `json:"patient,omitempty"`
	DateTime     string            `json:"dateTime,omitempty"`
	Organization []Reference       `json:"organization,omitempty"`
	PolicyRule   *CodeableConcept  `json:"policyRule,omitempty"`
	Provision    *ConsentProvision `json:"provision,omitempty"`
}

// ConsentProvision is Consent.provision: deny or permit, for actors and security labels,
// with nested exceptions.
type ConsentProvision struct {
	Type          string             `json:"type,omitempty"`
	Actor         []ConsentActor     `json:"actor,omitempty"`
	SecurityLabel []Coding           `json:"securityLabel,omitempty"`
	Provision     []ConsentProvision `json:"provision,omitempty"`
}

// ConsentActor is Consent.provision.actor.
type ConsentActor struct {
	Role      *CodeableConcept `json:"role,omitempty"`
	Reference Reference        `json:"reference"`
}
