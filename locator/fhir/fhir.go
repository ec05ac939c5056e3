// Package fhir is rls's FHIR R4 layer, all of it but the HTTP server: the wire types of the
// resources rls speaks (the elements it uses), validation of every resource against FHIR R4
// (ValidateR4, over the embedded R4 schema of r4/) that names the offending element by its
// FHIRPath, OperationOutcome errors, and the mapping between those resources and
// rls's own values: Patient to the log's patient record and back (RecordOf, StoredPatient),
// Person from a person's records (PersonOf), DocumentReference to the registry's document
// and back (DocumentOf, StoredDocument), Consent to a consent directive and back
// (DirectiveOf, ConsentOf), Organization to a participant and back (ParticipantOf,
// OrganizationOf), a person to its golden Patient (GoldenPatient), Endpoint to an MLLP
// endpoint of PIX update notifications and back (HL7EndpointOf, EndpointOf), and an audit
// entry to an AuditEvent (AuditEventOf). Mapping holds every element to the limits of
// raft/model and names the element at fault.
//
// It reads no state and applies no policy: what needs the replicated state (whether a
// document's subject is registered, under which system a participant registers) comes in
// as a function from its caller, locator. It imports raft/model, raft/command, mpi and
// search (and, for validation, santhosh-tekuri/jsonschema), and must never import locator,
// the Raft node, the state or the FSM.
package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Base is the canonical base of the code systems and extensions rls defines.
const Base = "https://rls-hie.github.io/fhir"

// Systems and extension URLs rls defines or uses.
const (
	ParticipantKindSystem  = Base + "/CodeSystem/participant-kind"
	ParticipantRoleURL     = Base + "/StructureDefinition/participant-role"
	ParticipantTokenURL    = Base + "/StructureDefinition/participant-token"
	URISystem              = "urn:ietf:rfc:3986"
	EndpointConnectionType = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
)

// Meta is FHIR Resource.meta. versionId and lastUpdated are rls's; profile, security, tag
// and source are the sender's and kept.
type Meta struct {
	Extension   []json.RawMessage `json:"extension,omitempty"`
	VersionID   string            `json:"versionId,omitempty"`
	LastUpdated string            `json:"lastUpdated,omitempty"`
	Source      string            `json:"source,omitempty"`
	Profile     []string          `json:"profile,omitempty"`
	Security    []Coding          `json:"security,omitempty"`
	Tag         []Coding          `json:"tag,omitempty"`
}

// SenderMeta is what of a received meta rls keeps (profile, security, tag, source,
// extensions), without the versionId and lastUpdated rls assigns; nil if nothing is left.
func SenderMeta(m *Meta) *Meta {
	if m == nil {
		return nil
	}
	kept := Meta{Extension: m.Extension, Source: m.Source, Profile: m.Profile, Security: m.Security, Tag: m.Tag}
	if len(kept.Extension) == 0 && kept.Source == "" && len(kept.Profile) == 0 && len(kept.Security) == 0 && len(kept.Tag) == 0 {
		return nil
	}
	return &kept
}

// Stamped is the sender's meta with rls's version and time.
func Stamped(m *Meta, version, lastUpdated string) *Meta {
	out := Meta{VersionID: version, LastUpdated: lastUpdated}
	if s := SenderMeta(m); s != nil {
		out.Extension, out.Source, out.Profile, out.Security, out.Tag = s.Extension, s.Source, s.Profile, s.Security, s.Tag
	}
	return &out
}

// Identifier is a FHIR Identifier.
type Identifier struct {
	Extension []json.RawMessage `json:"extension,omitempty"`
	Use       string            `json:"use,omitempty"`
	Type      *CodeableConcept  `json:"type,omitempty"`
	System    string            `json:"system,omitempty"`
	Value     string            `json:"value,omitempty"`
	Period    *Period           `json:"period,omitempty"`
	Assigner  *Reference        `json:"assigner,omitempty"`
}

// Coding is a FHIR Coding.
type Coding struct {
	System       string `json:"system,omitempty"`
	Version      string `json:"version,omitempty"`
	Code         string `json:"code,omitempty"`
	Display      string `json:"display,omitempty"`
	UserSelected *bool  `json:"userSelected,omitempty"`
}

// CodeableConcept is a FHIR CodeableConcept.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Reference is a FHIR Reference.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Extension is a FHIR Extension with the value types rls uses.
type Extension struct {
	URL            string      `json:"url"`
	ValueCode      string      `json:"valueCode,omitempty"`
	ValueString    string      `json:"valueString,omitempty"`
	ValueDecimal   *float64    `json:"valueDecimal,omitempty"`
	ValueInteger   *int        `json:"valueInteger,omitempty"`
	ValueReference *Reference  `json:"valueReference,omitempty"`
	Extension      []Extension `json:"extension,omitempty"`
}

// Endpoint is the FHIR Endpoint resource, used contained in an Organization.
type Endpoint struct {
	ResourceType   string            `json:"resourceType"`
	ID             string            `json:"id,omitempty"`
	Status         string            `json:"status"`
	ConnectionType Coding            `json:"connectionType"`
	PayloadType    []CodeableConcept `json:"payloadType"`
	Address        string            `json:"address"`
}

// Organization is the FHIR Organization resource: an rls participant.
type Organization struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id,omitempty"`
	Meta         *Meta             `json:"meta,omitempty"`
	Extension    []Extension       `json:"extension,omitempty"`
	Contained    []Endpoint        `json:"contained,omitempty"`
	Identifier   []Identifier      `json:"identifier,omitempty"`
	Active       *bool             `json:"active,omitempty"`
	Type         []CodeableConcept `json:"type,omitempty"`
	Name         string            `json:"name,omitempty"`
	Endpoint     []Reference       `json:"endpoint,omitempty"`
}

// BundleEntry is one entry of a Bundle.
type BundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource any             `json:"resource,omitempty"`
	Search   *SearchInfo     `json:"search,omitempty"`
	Request  *BundleRequest  `json:"request,omitempty"`
	Response *BundleResponse `json:"response,omitempty"`
}

// BundleRequest is Bundle.entry.request (transaction).
type BundleRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// BundleResponse is Bundle.entry.response (transaction-response).
type BundleResponse struct {
	Status       string `json:"status"`
	Location     string `json:"location,omitempty"`
	Etag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

// BundleLink is a paging link of a Bundle.
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// Bundle is a FHIR Bundle (searchset).
type Bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Total        int           `json:"total"`
	Link         []BundleLink  `json:"link,omitempty"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// OperationOutcome is the FHIR error (and information) resource.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Error is an API error: an HTTP status and the OperationOutcome issue that explains it.
type Error struct {
	Status int
	Issue  Issue
	// Header holds extra response headers (Retry-After, the leader's address, …).
	Header map[string]string
}

func (e *Error) Error() string {
	if len(e.Issue.Expression) > 0 {
		return fmt.Sprintf("%s (%s)", e.Issue.Diagnostics, strings.Join(e.Issue.Expression, ", "))
	}
	return e.Issue.Diagnostics
}

// Outcome wraps the error's issue in an OperationOutcome.
func (e *Error) Outcome() OperationOutcome {
	return OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{e.Issue}}
}

// Errorf builds an Error with an issue of the given FHIR issue code about the element
// expression (may be empty).
func Errorf(status int, code, expression, format string, args ...any) *Error {
	issue := Issue{Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...)}
	if expression != "" {
		issue.Expression = []string{expression}
	}
	return &Error{Status: status, Issue: issue}
}

// Invalid is a 400 about one element of the resource.
func Invalid(expression, format string, args ...any) *Error {
	return Errorf(400, "invalid", expression, format, args...)
}

var unknownField = regexp.MustCompile(`json: unknown field "([^"]*)"`)

// Decode reads exactly one JSON value of resource type resourceType into v after checking it
// against FHIR R4 (ValidateR4): elements R4 does not define, values not in their R4 format and
// codes outside a required binding are refused; elements R4 defines that v has no field for
// are ignored. The error names the element: "Organization.foo", "Patient.meta.profile[0]".
func Decode(r io.Reader, resourceType string, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Invalid(resourceType, "the request body is empty; expected a %s resource", resourceType)
	}
	if err := CheckBounds(data, resourceType, ResourceBounds); err != nil {
		return err
	}
	// Parsed once for the checks (as the schema validator reads JSON), once into v.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var inst any
	if err := dec.Decode(&inst); err != nil {
		return syntaxError(resourceType, err)
	}
	if dec.More() {
		return Invalid(resourceType, "the body holds more than one JSON value")
	}
	object, ok := inst.(map[string]any)
	if !ok {
		return Errorf(400, "structure", resourceType, "the body is a JSON %s; expected a JSON object, a resource of type %s", jsonKind(inst), resourceType)
	}
	switch rt := object["resourceType"].(type) {
	case string:
		if rt != resourceType {
			return Invalid(resourceType+".resourceType", "resourceType is %q; expected %q", Clip(rt), resourceType)
		}
	case nil:
		return Invalid(resourceType+".resourceType", "resourceType is %q; expected %q", "", resourceType)
	default:
		return Errorf(400, "structure", resourceType+".resourceType", "element %q has the wrong JSON type (%s where string is expected)", "resourceType", jsonKind(rt))
	}
	// The R4 schema is the strictness: every R4 element is accepted, anything else refused
	// with its FHIRPath. The Go types then keep what rls uses and ignore the rest.
	if err := validateR4Instance(inst, resourceType); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return syntaxError(resourceType, err)
	}
	return nil
}

// jsonKind names the JSON type of a value parsed into any.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "number"
}

func syntaxError(resourceType string, err error) error {
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		return Errorf(400, "structure", resourceType+"."+m[1], "unknown element %q: rls does not support it on %s", m[1], resourceType)
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return Errorf(400, "structure", resourceType+"."+typeErr.Field, "element %q has the wrong JSON type (%s where %s is expected)", typeErr.Field, typeErr.Value, typeErr.Type)
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return Errorf(400, "structure", "", "malformed JSON at byte %d: %v", syn.Offset, err)
	}
	return Errorf(400, "structure", "", "malformed JSON: %v", err)
}
