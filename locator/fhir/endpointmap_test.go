package fhir

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

func mllpEndpoint(edit func(*EndpointResource)) EndpointResource {
	e := EndpointResource{ResourceType: "Endpoint", Status: "active",
		ConnectionType: Coding{System: EndpointConnectionType, Code: ConnectionTypeMLLP},
		PayloadType:    []CodeableConcept{{Text: "ITI-10"}},
		Address:        "mllp://pix.hosp-a.example:2576",
		Extension: []URIExtension{{URL: PIXDomainURL, ValueURI: "urn:oid:1.2.3"}, {URL: PIXDomainURL, ValueURI: "urn:oid:4.5.6"},
			{URL: PIXDomainURL, ValueURI: "urn:oid:1.2.3"}},
	}
	if edit != nil {
		edit(&e)
	}
	return e
}

// TestHL7EndpointOf: an Endpoint becomes an MLLP endpoint of its managing organization (or
// the owner given), its domains once each; what is wrong is named by its element, and a
// stored endpoint renders back to the same values.
func TestHL7EndpointOf(t *testing.T) {
	m, err := HL7EndpointOf(mllpEndpoint(nil), "hosp-a")
	if err != nil {
		t.Fatal(err)
	}
	if m.Participant != "hosp-a" || m.ID != "" || m.Status != "active" || !slices.Equal(m.Domains, []string{"urn:oid:1.2.3", "urn:oid:4.5.6"}) {
		t.Fatalf("read %+v", m)
	}
	m, err = HL7EndpointOf(mllpEndpoint(func(e *EndpointResource) { e.ManagingOrganization = &Reference{Reference: "Organization/hosp-b"} }), "admin")
	if err != nil || m.Participant != "hosp-b" {
		t.Fatalf("managingOrganization decides the participant: %+v %v", m, err)
	}

	for _, tc := range []struct {
		name   string
		edit   func(*EndpointResource)
		status int
		elem   string
	}{
		{"REST connection", func(e *EndpointResource) { e.ConnectionType.Code = "hl7-fhir-rest" }, 400, "Endpoint.connectionType"},
		{"no payload type", func(e *EndpointResource) { e.PayloadType = nil }, 400, "Endpoint.payloadType"},
		{"organization by URL", func(e *EndpointResource) {
			e.ManagingOrganization = &Reference{Reference: "https://elsewhere.example/Organization/x"}
		}, 400, "Endpoint.managingOrganization"},
		{"unknown extension", func(e *EndpointResource) {
			e.Extension = append(e.Extension, URIExtension{URL: "https://example.org/x", ValueURI: "y"})
		}, 400, "Endpoint.extension[3]"},
		{"HTTP address", func(e *EndpointResource) { e.Address = "http://pix.hosp-a.example:2576" }, 400, "Endpoint.address"},
		{"address without a port", func(e *EndpointResource) { e.Address = "mllp://pix.hosp-a.example" }, 400, "Endpoint.address"},
		{"status", func(e *EndpointResource) { e.Status = "entered-in-error" }, 400, "Endpoint.status"},
		{"domain not a URI", func(e *EndpointResource) { e.Extension = []URIExtension{{URL: PIXDomainURL, ValueURI: "not a uri"}} }, 400, "Endpoint.extension[0].valueUri"},
		{"name too long", func(e *EndpointResource) { e.Name = strings.Repeat("n", model.MaxDisplayLength+1) }, 400, "Endpoint.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := HL7EndpointOf(mllpEndpoint(tc.edit), "hosp-a")
			var fe *Error
			if !errors.As(err, &fe) || fe.Status != tc.status || !slices.Equal(fe.Issue.Expression, []string{tc.elem}) {
				t.Fatalf("got %v, want %d at %s", err, tc.status, tc.elem)
			}
		})
	}

	stored := model.HL7Endpoint{ID: "ep1", Participant: "hosp-a", Status: "suspended", Name: "PIX consumer", Address: "mllps://pix.hosp-a.example:2576",
		Domains: []string{"urn:oid:1.2.3"}, Version: 3, Updated: time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC)}
	r := EndpointOf(stored)
	if r.ID != "ep1" || r.Meta.VersionID != "3" || r.ManagingOrganization.Reference != "Organization/hosp-a" || !slices.Equal(r.PayloadMimeType, []string{HL7V2MediaType}) {
		t.Fatalf("rendered %+v", r)
	}
	back, err := HL7EndpointOf(r, "someone-else")
	if err != nil {
		t.Fatal(err)
	}
	back.ID, back.Version, back.Updated = stored.ID, stored.Version, stored.Updated
	if back.Participant != stored.Participant || back.Status != stored.Status || back.Name != stored.Name || back.Address != stored.Address ||
		!slices.Equal(back.Domains, stored.Domains) {
		t.Fatalf("round trip: %+v, want %+v", back, stored)
	}
}
