package fhir

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// AuditEvent is the FHIR R4 AuditEvent resource, as rls renders an audit entry.
type AuditEvent struct {
	ResourceType string             `json:"resourceType"`
	ID           string             `json:"id"`
	Type         Coding             `json:"type"`
	Subtype      []Coding           `json:"subtype,omitempty"`
	Action       string             `json:"action,omitempty"`
	Recorded     string             `json:"recorded"`
	Outcome      string             `json:"outcome"`
	OutcomeDesc  string             `json:"outcomeDesc,omitempty"`
	PurposeOfUse []CodeableConcept  `json:"purposeOfEvent,omitempty"`
	Agent        []AuditEventAgent  `json:"agent"`
	Source       AuditEventSource   `json:"source"`
	Entity       []AuditEventEntity `json:"entity,omitempty"`
	Extension    []Extension        `json:"extension,omitempty"`
}

// AuditEventAgent is one actor of an AuditEvent.
type AuditEventAgent struct {
	Type      *CodeableConcept   `json:"type,omitempty"`
	Who       Reference          `json:"who"`
	Requestor bool               `json:"requestor"`
	Network   *AuditEventNetwork `json:"network,omitempty"`
	Purpose   []CodeableConcept  `json:"purposeOfUse,omitempty"`
}

// AuditEventNetwork is where an agent called from.
type AuditEventNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

// AuditEventSource is the node that audited the event.
type AuditEventSource struct {
	Site     string    `json:"site,omitempty"`
	Observer Reference `json:"observer"`
}

// AuditEventEntity is a patient or the query an event concerned.
type AuditEventEntity struct {
	What  *Reference `json:"what,omitempty"`
	Type  *Coding    `json:"type,omitempty"`
	Role  *Coding    `json:"role,omitempty"`
	Query string     `json:"query,omitempty"`
}

// Code systems of AuditEvent.
const (
	auditEventTypeSystem   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	restfulInteraction     = "http://hl7.org/fhir/restful-interaction"
	auditEntityTypeSystem  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	objectRoleSystem       = "http://terminology.hl7.org/CodeSystem/object-role"
	purposeOfUseSystem     = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	rlsAuditActionSystem   = Base + "/CodeSystem/audit-action"
	breakGlassExtensionURL = Base + "/StructureDefinition/break-the-glass-reason"
	auditChainExtensionURL = Base + "/StructureDefinition/audit-chain"
)

// AuditEventOf renders an audit entry; subtype and code are its action's FHIR restful
// interaction and action code (see locator/audit, Actions). Its id is the entry's sequence
// number.
func AuditEventOf(e model.AuditEntry, subtype, code string) AuditEvent {
	ev := AuditEvent{
		ResourceType: "AuditEvent",
		ID:           strconv.FormatUint(e.Seq, 10),
		Type:         Coding{System: auditEventTypeSystem, Code: "rest", Display: "RESTful Operation"},
		Subtype: []Coding{
			{System: restfulInteraction, Code: subtype},
			{System: rlsAuditActionSystem, Code: e.Action},
		},
		Action:   code,
		Recorded: e.Recorded.UTC().Format(time.RFC3339Nano),
		Outcome:  auditOutcome(e.Status),
		Source:   AuditEventSource{Site: e.Node, Observer: Reference{Reference: "Device/" + e.Node, Display: "rls node " + e.Node}},
	}
	if !e.Success() {
		ev.OutcomeDesc = strings.TrimSpace(fmt.Sprintf("HTTP %d %s", e.Status, e.Outcome))
	}
	var purpose []CodeableConcept
	if e.Purpose != "" {
		purpose = []CodeableConcept{{Coding: []Coding{{System: purposeOfUseSystem, Code: e.Purpose}}}}
		ev.PurposeOfUse = purpose
	}
	who := Reference{Display: "unauthenticated"}
	if e.Participant != "" {
		who = Reference{Reference: "Organization/" + e.Participant}
	}
	ev.Agent = append(ev.Agent, AuditEventAgent{Who: who, Requestor: e.OnBehalfOf == "", Purpose: purpose,
		Network: &AuditEventNetwork{Address: e.Source, Type: "2"}})
	if e.OnBehalfOf != "" {
		ev.Agent = append(ev.Agent, AuditEventAgent{Who: Reference{Identifier: &Identifier{Value: e.OnBehalfOf}, Display: e.OnBehalfOf}, Requestor: true, Purpose: purpose})
	}
	for _, euid := range e.EUIDs {
		ev.Entity = append(ev.Entity, AuditEventEntity{What: &Reference{Reference: "Person/" + euid},
			Type: &Coding{System: auditEntityTypeSystem, Code: "1", Display: "Person"},
			Role: &Coding{System: objectRoleSystem, Code: "1", Display: "Patient"}})
	}
	for _, id := range e.Records {
		ev.Entity = append(ev.Entity, AuditEventEntity{What: &Reference{Reference: "Patient/" + id},
			Type: &Coding{System: auditEntityTypeSystem, Code: "1", Display: "Person"},
			Role: &Coding{System: objectRoleSystem, Code: "1", Display: "Patient"}})
	}
	if e.Query != "" {
		ev.Entity = append(ev.Entity, AuditEventEntity{Query: base64.StdEncoding.EncodeToString([]byte(e.Query)),
			Type: &Coding{System: auditEntityTypeSystem, Code: "2", Display: "System Object"},
			Role: &Coding{System: objectRoleSystem, Code: "24", Display: "Query"}})
	}
	if e.BreakGlass != "" {
		ev.Extension = append(ev.Extension, Extension{URL: breakGlassExtensionURL, ValueString: e.BreakGlass})
	}
	ev.Extension = append(ev.Extension, Extension{URL: auditChainExtensionURL, Extension: []Extension{
		{URL: "request", ValueString: e.RequestID}, {URL: "observed", ValueString: e.Observed.UTC().Format(time.RFC3339Nano)},
		{URL: "status", ValueString: strconv.Itoa(e.Status)}, {URL: "hash", ValueString: e.Hash},
	}})
	return ev
}

// auditOutcome maps an HTTP status to AuditEvent.outcome: 0 success, 4 minor failure (the
// caller's error), 8 serious failure (the server's).
func auditOutcome(status int) string {
	switch {
	case status > 0 && status < 400:
		return "0"
	case status < 500:
		return "4"
	}
	return "8"
}
