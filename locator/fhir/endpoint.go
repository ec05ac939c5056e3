package fhir

// Identifiers of the HL7 v2 endpoints participants register for PIX update notifications.
const (
	// ConnectionTypeMLLP is the endpoint-connection-type code of an MLLP endpoint.
	ConnectionTypeMLLP = "hl7v2-mllp"
	// PIXDomainURL is the extension listing, one per repetition, the identifier systems an
	// endpoint wants in its notifications (none: every domain).
	PIXDomainURL = Base + "/StructureDefinition/pix-domain"
)

// URIExtension is an extension whose value is a URI.
type URIExtension struct {
	URL      string `json:"url"`
	ValueURI string `json:"valueUri"`
}

// EndpointResource is the FHIR R4 Endpoint resource on its own (/fhir/Endpoint): an MLLP
// endpoint of a participant (managingOrganization) that receives PIX update notifications
// (IHE ITI-10, ADT^A31).
type EndpointResource struct {
	ResourceType         string            `json:"resourceType"`
	ID                   string            `json:"id,omitempty"`
	Meta                 *Meta             `json:"meta,omitempty"`
	Extension            []URIExtension    `json:"extension,omitempty"`
	Identifier           []Identifier      `json:"identifier,omitempty"`
	Status               string            `json:"status"`
	ConnectionType       Coding            `json:"connectionType"`
	Name                 string            `json:"name,omitempty"`
	ManagingOrganization *Reference        `json:"managingOrganization,omitempty"`
	PayloadType          []CodeableConcept `json:"payloadType"`
	PayloadMimeType      []string          `json:"payloadMimeType,omitempty"`
	Address              string            `json:"address"`
}
