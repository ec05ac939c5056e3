package fhir

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// DirectiveOf reads a consent directive's contents (not its patient, which needs the
// state) out of a Consent, naming the element at fault.
func DirectiveOf(c Consent) (model.Consent, error) {
	var m model.Consent
	switch c.Status {
	case model.ConsentActive, model.ConsentInactive:
		m.Status = c.Status
	case "":
		return m, Invalid("Consent.status", "Consent.status is required (active, or inactive to revoke)")
	default:
		return m, Invalid("Consent.status", "Consent.status %q is not supported (active or inactive)", c.Status)
	}
	if c.Scope != nil && !hasCoding(c.Scope.Coding, ConsentScopeSystem, ConsentScopePrivacy) {
		return m, Invalid("Consent.scope", "only privacy consent (%s %s) is supported", ConsentScopeSystem, ConsentScopePrivacy)
	}
	if len(c.Policy) == 0 && c.PolicyRule == nil {
		return m, Errorf(http.StatusBadRequest, "invariant", "Consent", "R4 ppc-1: a Consent needs a policy or a policyRule (for example %s OPTOUT, or OPTINR for restrictions)", ActCodeSystem)
	}
	if c.Provision == nil {
		return m, Invalid("Consent.provision", "Consent.provision is required: type deny for an opt-out, or deny provisions naming participants (actor) or security labels")
	}
	if err := readProvision(&m, *c.Provision, "Consent.provision", true); err != nil {
		return m, err
	}
	if !m.OptOut && len(m.DenyParticipants) == 0 && len(m.WithholdLabels) == 0 {
		return m, Invalid("Consent.provision", "the directive restricts nothing: use type deny (opt-out), or deny provisions with actors or security labels")
	}
	slices.Sort(m.DenyParticipants)
	m.DenyParticipants = slices.Compact(m.DenyParticipants)
	slices.Sort(m.WithholdLabels)
	m.WithholdLabels = slices.Compact(m.WithholdLabels)
	terms := ConsentTerms{Scope: c.Scope, Category: c.Category, Policy: c.Policy, PolicyRule: c.PolicyRule, ActorRoles: actorRoles(*c.Provision)}
	var err error
	if m.Terms, err = json.Marshal(terms); err != nil {
		return m, fmt.Errorf("encode the terms of a Consent: %w", err)
	}
	return m, nil
}

// actorRoles lists the role of every actor of the provisions, the first for each participant.
func actorRoles(p ConsentProvision) []ActorRole {
	var out []ActorRole
	var walk func(ConsentProvision)
	walk = func(p ConsentProvision) {
		for _, a := range p.Actor {
			id, ok := strings.CutPrefix(a.Reference.Reference, "Organization/")
			if ok && a.Role != nil && !slices.ContainsFunc(out, func(r ActorRole) bool { return r.Participant == id }) {
				out = append(out, ActorRole{Participant: id, Role: *a.Role})
			}
		}
		for _, sub := range p.Provision {
			walk(sub)
		}
	}
	walk(p)
	return out
}

func readProvision(m *model.Consent, p ConsentProvision, elem string, top bool) error {
	switch p.Type {
	case "deny":
	case "permit", "":
		if len(p.Actor) > 0 || len(p.SecurityLabel) > 0 {
			return Errorf(http.StatusUnprocessableEntity, "not-supported", elem, "permit provisions with actors or labels are not supported: rls records restrictions (deny)")
		}
		if !top {
			return Errorf(http.StatusUnprocessableEntity, "not-supported", elem+".type", "a nested provision must be type deny")
		}
	default:
		return Invalid(elem+".type", "provision type %q must be deny or permit", p.Type)
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"actor", len(p.Actor)}, {"securityLabel", len(p.SecurityLabel)}, {"provision", len(p.Provision)}} {
		if err := model.CheckCount(elem+"."+l.name, l.n, model.MaxListLength); err != nil {
			return LimitError("", err)
		}
	}
	for i, l := range p.SecurityLabel {
		le := fmt.Sprintf("%s.securityLabel[%d]", elem, i)
		if err := model.CheckSystem(le+".system", l.System); err != nil {
			return LimitError("", err)
		}
		if err := model.CheckText(le+".code", l.Code, model.MaxCodeLength); err != nil {
			return LimitError("", err)
		}
	}
	if p.Type == "deny" {
		switch {
		case len(p.Actor) > 0 && len(p.SecurityLabel) > 0:
			return Errorf(http.StatusUnprocessableEntity, "not-supported", elem, "a deny provision names participants or security labels, not both")
		case len(p.Actor) > 0:
			for i, a := range p.Actor {
				id, ok := strings.CutPrefix(a.Reference.Reference, "Organization/")
				if !ok || model.ValidateID("participant", id) != nil {
					return Invalid(fmt.Sprintf("%s.actor[%d].reference", elem, i), "actor must reference Organization/{participant id}")
				}
				m.DenyParticipants = append(m.DenyParticipants, id)
			}
		case len(p.SecurityLabel) > 0:
			for i, l := range p.SecurityLabel {
				if l.Code == "" {
					return Invalid(fmt.Sprintf("%s.securityLabel[%d].code", elem, i), "a security label needs a code")
				}
				m.WithholdLabels = append(m.WithholdLabels, search2token(l))
			}
		case top:
			m.OptOut = true
		default:
			return Invalid(elem, "a nested deny provision needs actors or security labels")
		}
	}
	if !top && len(p.Provision) > 0 {
		return Errorf(http.StatusUnprocessableEntity, "not-supported", elem+".provision", "provisions nest one level deep")
	}
	for i, sub := range p.Provision {
		if err := readProvision(m, sub, fmt.Sprintf("%s.provision[%d]", elem, i), false); err != nil {
			return err
		}
	}
	return nil
}

// search2token is a label as the document index holds it: "system|code", or the bare code.
func search2token(c Coding) string {
	if c.System == "" {
		return c.Code
	}
	return c.System + "|" + c.Code
}

func hasCoding(cs []Coding, system, code string) bool {
	for _, c := range cs {
		if c.System == system && c.Code == code {
			return true
		}
	}
	return false
}

// ConsentOf renders a consent directive as a valid R4 Consent: the terms its sender gave
// (scope, category, policy, policyRule, actor roles), else rls's (patient-privacy, LOINC
// 59284-0, OPTOUT or OPTINR, IRCP).
func ConsentOf(m model.Consent) Consent {
	var terms ConsentTerms
	if len(m.Terms) > 0 {
		_ = json.Unmarshal(m.Terms, &terms) // written by DirectiveOf; a directive without terms takes the defaults
	}
	c := Consent{ResourceType: "Consent", ID: m.ID, Status: m.Status,
		Meta:     &Meta{VersionID: strconv.FormatUint(m.Version, 10), LastUpdated: m.Updated.UTC().Format(time.RFC3339Nano)},
		Scope:    &CodeableConcept{Coding: []Coding{{System: ConsentScopeSystem, Code: ConsentScopePrivacy}}},
		Category: []CodeableConcept{{Coding: []Coding{{System: LOINCSystem, Code: ConsentCategoryLOINC}}}},
		Patient:  ConsentPatient(m), DateTime: m.Created.UTC().Format(time.RFC3339),
		PolicyRule: PolicyRule(m.OptOut),
	}
	if terms.Scope != nil {
		c.Scope = terms.Scope
	}
	if len(terms.Category) > 0 {
		c.Category = terms.Category
	}
	if len(terms.Policy) > 0 || terms.PolicyRule != nil {
		c.Policy, c.PolicyRule = terms.Policy, terms.PolicyRule
	}
	role := func(id string) *CodeableConcept {
		for _, r := range terms.ActorRoles {
			if r.Participant == id {
				return &r.Role
			}
		}
		return RecipientRole()
	}
	if m.RecordedBy != "" {
		c.Organization = []Reference{{Reference: "Organization/" + m.RecordedBy}}
	}
	top := ConsentProvision{Type: "permit"}
	if m.OptOut {
		top.Type = "deny"
	}
	if len(m.DenyParticipants) > 0 {
		sub := ConsentProvision{Type: "deny"}
		for _, id := range m.DenyParticipants {
			sub.Actor = append(sub.Actor, ConsentActor{Role: role(id), Reference: Reference{Reference: "Organization/" + id}})
		}
		top.Provision = append(top.Provision, sub)
	}
	if len(m.WithholdLabels) > 0 {
		sub := ConsentProvision{Type: "deny"}
		for _, l := range m.WithholdLabels {
			sys, code, ok := strings.Cut(l, "|")
			if !ok {
				sys, code = "", l
			}
			sub.SecurityLabel = append(sub.SecurityLabel, Coding{System: sys, Code: code})
		}
		top.Provision = append(top.Provision, sub)
	}
	c.Provision = &top
	return c
}

// ConsentPatient is the patient a directive names: its one record, or its person.
func ConsentPatient(m model.Consent) *Reference {
	if len(m.Records) == 1 {
		return &Reference{Reference: "Patient/" + model.PatientID(m.Records[0])}
	}
	return &Reference{Reference: "Person/" + m.EUID}
}
