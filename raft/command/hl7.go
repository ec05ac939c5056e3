package command

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file hl7.go -o hl7_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import "github.com/rls-hie/rls/raft/model"

// HL7 v2 commands, numbered from 21 (after the index maintenance commands); the numbers are
// as permanent as those in command.go.
const (
	// TypeHL7EndpointSet registers or changes an MLLP endpoint that receives PIX update
	// notifications (ITI-10).
	TypeHL7EndpointSet Type = 21
	// TypeHL7EndpointCursor records how far the leader has notified an endpoint, so that
	// a new leader resumes there.
	TypeHL7EndpointCursor Type = 22
)

// hl7TypeName names the HL7 commands for Type.String.
func hl7TypeName(t Type) (string, bool) {
	switch t.Base() {
	case TypeHL7EndpointSet:
		return "hl7-endpoint-set", true
	case TypeHL7EndpointCursor:
		return "hl7-endpoint-cursor", true
	}
	return "", false
}

// HL7EndpointSet stores Endpoint. Create refuses to replace an existing endpoint (POST);
// otherwise the endpoint must exist and, when ExpectedVersion is not zero, be at that
// version (FHIR If-Match). Its cursor and counts are the state's, never the command's.
type HL7EndpointSet struct {
	Endpoint        model.HL7Endpoint `json:"endpoint"`
	ExpectedVersion uint64            `json:"expected_version,omitempty"`
	Create          bool              `json:"create,omitempty"`
}

// Check holds the endpoint to the limits.
func (c *HL7EndpointSet) Check() error { return c.Endpoint.Validate() }

// HL7EndpointCursor moves endpoint ID's cursor forward to Cursor (never back: a deposed
// leader's late command changes nothing) and adds the notifications delivered and
// rejected since the last one.
type HL7EndpointCursor struct {
	ID        string `json:"id"`
	Cursor    uint64 `json:"cursor"`
	Delivered uint64 `json:"delivered,omitempty"`
	Rejected  uint64 `json:"rejected,omitempty"`
}

// Check holds the command to the limits.
func (c *HL7EndpointCursor) Check() error { return model.CheckID("id", c.ID) }
