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
	// ActCodeSystem holds the consent policy codes (OPTOUT, OPTINR) of Consent.policyRule.
	ActCodeSystem = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	// ParticipationTypeSystem holds IRCP (information recipient), the role of a participant
	// a provision denies.
	ParticipationTypeSystem = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
)

// PolicyRule is the Consent.policyRule of a directive: OPTOUT for an opt-out, OPTINR (opt-in
// with restrictions) for denied participants or withheld labels. R4's ppc-1 requires a
// policy or a policyRule.
func PolicyRule(optOut bool) *CodeableConcept {
	if optOut {
		return &CodeableConcept{Coding: []Coding{{System: ActCodeSystem, Code: "OPTOUT", Display: "opt-out"}}}
	}
	return &CodeableConcept{Coding: []Coding{{System: ActCodeSystem, Code: "OPTINR", Display: "opt-in with restrictions"}}}
}

// RecipientRole is the actor.role (required in R4) of a participant a provision denies.
func RecipientRole() *CodeableConcept {
	return &CodeableConcept{Coding: []Coding{{System: ParticipationTypeSystem, Code: "IRCP", Display: "information recipient"}}}
}

// NewConsent is a valid R4 privacy Consent about the patient reference with the given
// provision: scope patient-privacy, category LOINC 59284-0, the policy rule of the
// directive, and the recipient role on every actor that has none.
func NewConsent(status, patient string, provision ConsentProvision) Consent {
	optOut := provision.Type == "deny" && len(provision.Actor) == 0 && len(provision.SecurityLabel) == 0
	setRoles(&provision)
	return Consent{ResourceType: "Consent", Status: status,
		Scope:      &CodeableConcept{Coding: []Coding{{System: ConsentScopeSystem, Code: ConsentScopePrivacy}}},
		Category:   []CodeableConcept{{Coding: []Coding{{System: LOINCSystem, Code: ConsentCategoryLOINC}}}},
		Patient:    &Reference{Reference: patient},
		PolicyRule: PolicyRule(optOut),
		Provision:  &provision,
	}
}

func setRoles(p *ConsentProvision) {
	for i := range p.Actor {
		if p.Actor[i].Role == nil {
			p.Actor[i].Role = RecipientRole()
		}
	}
	for i := range p.Provision {
		setRoles(&p.Provision[i])
	}
}

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
	Policy       []ConsentPolicy   `json:"policy,omitempty"`
	PolicyRule   *CodeableConcept  `json:"policyRule,omitempty"`
	Provision    *ConsentProvision `json:"provision,omitempty"`
}

// ConsentPolicy is Consent.policy: the policy the consent refers to.
type ConsentPolicy struct {
	Authority string `json:"authority,omitempty"`
	URI       string `json:"uri,omitempty"`
}

// ConsentTerms is what of a sent Consent rls keeps and serves back without enforcing it
// (model.Consent.Terms): scope, category, policy, policyRule, and the role each denied
// participant was given.
type ConsentTerms struct {
	Scope      *CodeableConcept  `json:"scope,omitempty"`
	Category   []CodeableConcept `json:"category,omitempty"`
	Policy     []ConsentPolicy   `json:"policy,omitempty"`
	PolicyRule *CodeableConcept  `json:"policyRule,omitempty"`
	ActorRoles []ActorRole       `json:"actorRoles,omitempty"`
}

// ActorRole is the role a Consent gave a participant it denies.
type ActorRole struct {
	Participant string          `json:"participant"`
	Role        CodeableConcept `json:"role"`
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
