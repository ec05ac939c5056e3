package model

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file hl7.go -o hl7_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// HL7 endpoint statuses (FHIR Endpoint.status, the subset rls records).
const (
	EndpointActive    = "active"
	EndpointSuspended = "suspended"
	EndpointOff       = "off"
)

// HL7Endpoint is an MLLP endpoint a participant registered to receive PIX update
// notifications (IHE ITI-10, ADT^A31) when the cross-references of a person change. The
// leader delivers them in the order of the link history, and the cursor says how far it
// got: a new leader resumes after it.
type HL7Endpoint struct {
	ID          string `json:"id"`
	Participant string `json:"participant"`
	Name        string `json:"name,omitempty"`
	// Status is active, suspended or off; only an active endpoint is notified.
	Status string `json:"status"`
	// Address is mllp://host:port, or mllps://host:port for MLLP over TLS.
	Address string `json:"address"`
	// Domains are the identifier systems (assigning authorities) whose identifiers the
	// endpoint wants in PID-3; empty means every domain.
	Domains []string  `json:"domains,omitempty"`
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Cursor is the last link event (LinkEvent.Seq) the endpoint was notified of, or found
	// not to concern it.
	Cursor uint64 `json:"cursor"`
	// Delivered counts notifications the endpoint accepted; Rejected those it answered
	// with an application error (AE), which are not sent again.
	Delivered uint64 `json:"delivered"`
	Rejected  uint64 `json:"rejected"`
}

// Active reports whether the endpoint is notified.
func (e HL7Endpoint) Active() bool { return e.Status == EndpointActive }

// Validate checks an endpoint's own fields, bounded.
func (e HL7Endpoint) Validate() error {
	if err := CheckID("id", e.ID); err != nil {
		return err
	}
	if err := CheckID("participant", e.Participant); err != nil {
		return err
	}
	if err := CheckText("name", e.Name, MaxDisplayLength); err != nil {
		return err
	}
	switch e.Status {
	case EndpointActive, EndpointSuspended, EndpointOff:
	default:
		return &FieldError{Field: "status", Reason: "must be active, suspended or off"}
	}
	if _, _, err := MLLPAddress(e.Address); err != nil {
		return err
	}
	if err := CheckCount("domains", len(e.Domains), MaxListLength); err != nil {
		return err
	}
	for i, d := range e.Domains {
		if err := ValidateSystemURI(fmt.Sprintf("domains[%d]", i), d); err != nil {
			return err
		}
	}
	return nil
}

// MLLPAddress reads an endpoint address, mllp://host:port or mllps://host:port, into the
// host:port to dial and whether to use TLS.
func MLLPAddress(s string) (hostPort string, useTLS bool, err error) {
	if err := CheckText("address", s, MaxURLLength); err != nil {
		return "", false, err
	}
	u, perr := url.Parse(s)
	if perr != nil || (u.Scheme != "mllp" && u.Scheme != "mllps") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, &FieldError{Field: "address", Reason: "must be mllp://host:port or mllps://host:port"}
	}
	host, port, serr := net.SplitHostPort(u.Host)
	if n, perr := strconv.Atoi(port); serr != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return "", false, &FieldError{Field: "address", Reason: "must name a host and a port (mllp://host:port)"}
	}
	return u.Host, u.Scheme == "mllps", nil
}
