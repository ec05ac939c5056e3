package fhir

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// HL7V2MediaType is the media type of HL7 v2 messages in ER7 (the pipe-and-hat
// encoding): what an MLLP endpoint receives.
const HL7V2MediaType = "x-application/hl7-v2+er7"

// HL7EndpointOf reads an Endpoint (an MLLP endpoint for PIX update notifications), naming
// the element at fault. Its participant is the one managingOrganization references, or
// owner when it references none; whether the caller may register an endpoint for that
// participant is the caller's to decide. The id is left for the caller to draw or take
// from the URL.
func HL7EndpointOf(e EndpointResource, owner string) (model.HL7Endpoint, error) {
	m := model.HL7Endpoint{Status: e.Status, Address: e.Address, Name: e.Name, Participant: owner}
	if e.ConnectionType.System != EndpointConnectionType || e.ConnectionType.Code != ConnectionTypeMLLP {
		return m, Invalid("Endpoint.connectionType", "connectionType must be %s|%s: rls notifies over MLLP", EndpointConnectionType, ConnectionTypeMLLP)
	}
	if len(e.PayloadType) == 0 {
		return m, Invalid("Endpoint.payloadType", "payloadType is required (for example the text \"ITI-10 PIX Update Notification\")")
	}
	if e.ManagingOrganization != nil {
		id, ok := strings.CutPrefix(e.ManagingOrganization.Reference, "Organization/")
		if !ok || model.ValidateID("participant", id) != nil {
			return m, Invalid("Endpoint.managingOrganization", "managingOrganization must reference Organization/{participant id}")
		}
		m.Participant = id
	}
	for i, x := range e.Extension {
		if x.URL != PIXDomainURL {
			return m, Errorf(http.StatusBadRequest, "not-supported", fmt.Sprintf("Endpoint.extension[%d]", i), "extension %q is not supported on Endpoint", Clip(x.URL))
		}
		if err := model.ValidateSystemURI("domain", x.ValueURI); err != nil {
			return m, LimitError(fmt.Sprintf("Endpoint.extension[%d].valueUri", i), err)
		}
		if !slices.Contains(m.Domains, x.ValueURI) {
			m.Domains = append(m.Domains, x.ValueURI)
		}
	}
	m.ID = "pending" // a valid id, so that Validate judges the rest
	err := m.Validate()
	m.ID = ""
	if err != nil {
		field, _ := model.FieldOf(err)
		elem := map[string]string{"status": "Endpoint.status", "address": "Endpoint.address", "name": "Endpoint.name"}[field]
		if strings.HasPrefix(field, "domains") {
			elem = "Endpoint.extension"
		}
		if field == "participant" {
			elem = "Endpoint.managingOrganization"
		}
		return m, LimitError(elem, err)
	}
	return m, nil
}

// EndpointOf renders an MLLP endpoint as an Endpoint, with its version and last update as
// the meta a client reads back.
func EndpointOf(e model.HL7Endpoint) EndpointResource {
	r := EndpointResource{ResourceType: "Endpoint", ID: e.ID, Status: e.Status, Name: e.Name, Address: e.Address,
		Meta:                 &Meta{VersionID: strconv.FormatUint(e.Version, 10), LastUpdated: e.Updated.UTC().Format(time.RFC3339Nano)},
		ConnectionType:       Coding{System: EndpointConnectionType, Code: ConnectionTypeMLLP},
		ManagingOrganization: &Reference{Reference: "Organization/" + e.Participant},
		PayloadType:          []CodeableConcept{{Text: "IHE ITI-10 PIX Update Notification (ADT^A31)"}},
		PayloadMimeType:      []string{HL7V2MediaType},
	}
	for _, d := range e.Domains {
		r.Extension = append(r.Extension, URIExtension{URL: PIXDomainURL, ValueURI: d})
	}
	return r
}
