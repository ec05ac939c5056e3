package fhir

import "encoding/json"

// DocumentReference is the FHIR R4 DocumentReference (IHE MHD): the metadata of one
// document and where it lives. Every R4 element is accepted; the ones the registry does
// not read are kept as raw JSON.
type DocumentReference struct {
	ResourceType      string              `json:"resourceType"`
	ID                string              `json:"id,omitempty"`
	Meta              *Meta               `json:"meta,omitempty"`
	ImplicitRules     string              `json:"implicitRules,omitempty"`
	Language          string              `json:"language,omitempty"`
	Text              json.RawMessage     `json:"text,omitempty"`
	Contained         []json.RawMessage   `json:"contained,omitempty"`
	Extension         []json.RawMessage   `json:"extension,omitempty"`
	ModifierExtension []json.RawMessage   `json:"modifierExtension,omitempty"`
	MasterIdentifier  *Identifier         `json:"masterIdentifier,omitempty"`
	Identifier        []Identifier        `json:"identifier,omitempty"`
	Status            string              `json:"status,omitempty"`
	DocStatus         string              `json:"docStatus,omitempty"`
	Type              *CodeableConcept    `json:"type,omitempty"`
	Category          []CodeableConcept   `json:"category,omitempty"`
	Subject           *Reference          `json:"subject,omitempty"`
	Date              string              `json:"date,omitempty"`
	Author            []Reference         `json:"author,omitempty"`
	Authenticator     *Reference          `json:"authenticator,omitempty"`
	Custodian         *Reference          `json:"custodian,omitempty"`
	RelatesTo         []DocumentRelatesTo `json:"relatesTo,omitempty"`
	Description       string              `json:"description,omitempty"`
	SecurityLabel     []CodeableConcept   `json:"securityLabel,omitempty"`
	Content           []DocumentContent   `json:"content,omitempty"`
	Context           *DocumentContext    `json:"context,omitempty"`
}

// DocumentRelatesTo is DocumentReference.relatesTo.
type DocumentRelatesTo struct {
	Code   string    `json:"code"`
	Target Reference `json:"target"`
}

// DocumentContent is DocumentReference.content.
type DocumentContent struct {
	Attachment Attachment `json:"attachment"`
	Format     *Coding    `json:"format,omitempty"`
}

// Attachment is a FHIR Attachment. rls never stores data: only where the document is.
type Attachment struct {
	ContentType string `json:"contentType,omitempty"`
	Language    string `json:"language,omitempty"`
	Data        string `json:"data,omitempty"`
	URL         string `json:"url,omitempty"`
	Size        *int64 `json:"size,omitempty"`
	Hash        string `json:"hash,omitempty"`
	Title       string `json:"title,omitempty"`
	Creation    string `json:"creation,omitempty"`
}

// DocumentContext is DocumentReference.context.
type DocumentContext struct {
	Encounter         []Reference       `json:"encounter,omitempty"`
	Event             []CodeableConcept `json:"event,omitempty"`
	Period            *Period           `json:"period,omitempty"`
	FacilityType      *CodeableConcept  `json:"facilityType,omitempty"`
	PracticeSetting   *CodeableConcept  `json:"practiceSetting,omitempty"`
	SourcePatientInfo *Reference        `json:"sourcePatientInfo,omitempty"`
	Related           []Reference       `json:"related,omitempty"`
}

// ContainedAuthor is the part of a contained Practitioner or Organization the registry
// reads for author search.
type ContainedAuthor struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Name         json.RawMessage `json:"name,omitempty"`
}
