package fhir

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

const (
	endpointContainedID = "endpoint"
	endpointPayloadType = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"
)

// OrganizationOf renders a participant as a FHIR Organization, listing purposes (the
// purposes of use it is allowed) in the purpose-of-use extension. The token hash never
// leaves the server.
func OrganizationOf(p model.Participant, purposes []string) Organization {
	active := p.Active
	o := Organization{
		ResourceType: "Organization",
		ID:           p.ID,
		Meta:         &Meta{VersionID: strconv.FormatUint(p.Version, 10), LastUpdated: p.Updated.UTC().Format(time.RFC3339Nano)},
		Extension:    []Extension{{URL: ParticipantRoleURL, ValueCode: string(p.Role)}},
		Active:       &active,
		Type:         []CodeableConcept{{Coding: []Coding{{System: ParticipantKindSystem, Code: string(p.Kind)}}}},
		Name:         p.Name,
	}
	for _, pu := range purposes {
		o.Extension = append(o.Extension, Extension{URL: PurposeOfUseURL, ValueCode: pu})
	}
	if p.IdentifierSystem != "" {
		o.Identifier = []Identifier{{Use: "official", System: URISystem, Value: p.IdentifierSystem}}
	}
	if p.Endpoint != "" {
		o.Contained = []Endpoint{{
			ResourceType:   "Endpoint",
			ID:             endpointContainedID,
			Status:         "active",
			ConnectionType: Coding{System: EndpointConnectionType, Code: "hl7-fhir-rest"},
			PayloadType:    []CodeableConcept{{Coding: []Coding{{System: endpointPayloadType, Code: "any"}}}},
			Address:        p.Endpoint,
		}}
		o.Endpoint = []Reference{{Reference: "#" + endpointContainedID}}
	}
	return o
}

// ParticipantOf reads a participant out of an Organization, naming the element at fault in
// every error, and the purposes of use it lists, as sent (none: the role's defaults).
func ParticipantOf(o Organization) (model.Participant, []string, error) {
	p := model.Participant{ID: o.ID, Name: strings.TrimSpace(o.Name), Role: model.RoleParticipant, Active: true}
	var purposes []string
	if err := model.ValidateID("Organization.id", o.ID); err != nil {
		return p, nil, Invalid("Organization.id", "%v (it is the participant id)", err)
	}
	if p.Name == "" {
		return p, nil, Invalid("Organization.name", "Organization.name is required")
	}
	if o.Active != nil {
		p.Active = *o.Active
	}
	for _, t := range o.Type {
		for _, c := range t.Coding {
			if c.System == ParticipantKindSystem {
				p.Kind = model.ParticipantKind(c.Code)
			}
		}
	}
	if p.Kind == "" {
		return p, nil, Invalid("Organization.type", "Organization.type needs a coding from %s (hospital, practice, lab or hie)", ParticipantKindSystem)
	}
	if err := model.ValidateKind(p.Kind); err != nil {
		return p, nil, Invalid("Organization.type", "%v", err)
	}
	for i, e := range o.Extension {
		switch e.URL {
		case ParticipantRoleURL:
			p.Role = model.Role(e.ValueCode)
			if err := model.ValidateRole(p.Role); err != nil {
				return p, nil, Invalid(fmt.Sprintf("Organization.extension[%d]", i), "%v", err)
			}
		case PurposeOfUseURL:
			// Collected below; no extension at all means the role's default purposes.
			purposes = append(purposes, e.ValueCode)
		case ParticipantTokenURL:
			return p, nil, Invalid(fmt.Sprintf("Organization.extension[%d]", i), "tokens are issued by rls, never sent to it")
		default:
			return p, nil, Invalid(fmt.Sprintf("Organization.extension[%d]", i), "unsupported extension %q", e.URL)
		}
	}
	for i, id := range o.Identifier {
		if id.System != URISystem {
			return p, nil, Invalid(fmt.Sprintf("Organization.identifier[%d].system", i), "only the assigning authority identifier (system %s, value the URI of the participant's MRNs) is supported", URISystem)
		}
		if p.IdentifierSystem != "" {
			return p, nil, Invalid(fmt.Sprintf("Organization.identifier[%d]", i), "a participant has one assigning authority")
		}
		if err := model.ValidateSystemURI("identifier system", id.Value); err != nil {
			return p, nil, Invalid(fmt.Sprintf("Organization.identifier[%d].value", i), "%v", err)
		}
		p.IdentifierSystem = id.Value
	}
	for i, ref := range o.Endpoint {
		ep, ok := containedEndpoint(o, ref.Reference)
		if !ok {
			return p, nil, Invalid(fmt.Sprintf("Organization.endpoint[%d]", i), "endpoint must reference a contained Endpoint (\"#id\"); got %q", ref.Reference)
		}
		if err := model.ValidateHTTPURL("endpoint address", ep.Address); err != nil {
			return p, nil, Invalid("Organization.contained.address", "%v", err)
		}
		p.Endpoint = ep.Address
	}
	if len(o.Endpoint) > 1 {
		return p, nil, Invalid("Organization.endpoint", "a participant has one endpoint")
	}
	for i, c := range o.Contained {
		if c.ResourceType != "Endpoint" {
			return p, nil, Invalid(fmt.Sprintf("Organization.contained[%d]", i), "only a contained Endpoint is supported")
		}
	}
	if err := p.Validate(); err != nil {
		return p, nil, Invalid("Organization", "%v", err)
	}
	return p, purposes, nil
}

func containedEndpoint(o Organization, ref string) (Endpoint, bool) {
	id, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return Endpoint{}, false
	}
	for _, c := range o.Contained {
		if c.ID == id && c.ResourceType == "Endpoint" {
			return c, true
		}
	}
	return Endpoint{}, false
}

// WithToken adds a newly issued bearer token to an Organization (it is shown once).
func WithToken(o Organization, token string) Organization {
	o.Extension = append(o.Extension, Extension{URL: ParticipantTokenURL, ValueString: token})
	return o
}
