package locator

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/audit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// AuditEvent is the FHIR R4 AuditEvent resource, as rls renders an audit entry.
type AuditEvent struct {
	ResourceType string                 `json:"resourceType"`
	ID           string                 `json:"id"`
	Type         fhir.Coding            `json:"type"`
	Subtype      []fhir.Coding          `json:"subtype,omitempty"`
	Action       string                 `json:"action,omitempty"`
	Recorded     string                 `json:"recorded"`
	Outcome      string                 `json:"outcome"`
	OutcomeDesc  string                 `json:"outcomeDesc,omitempty"`
	PurposeOfUse []fhir.CodeableConcept `json:"purposeOfEvent,omitempty"`
	Agent        []AuditEventAgent      `json:"agent"`
	Source       AuditEventSource       `json:"source"`
	Entity       []AuditEventEntity     `json:"entity,omitempty"`
	Extension    []fhir.Extension       `json:"extension,omitempty"`
}

// AuditEventAgent is one actor of an AuditEvent.
type AuditEventAgent struct {
	Type      *fhir.CodeableConcept  `json:"type,omitempty"`
	Who       fhir.Reference         `json:"who"`
	Requestor bool                   `json:"requestor"`
	Network   *AuditEventNetwork     `json:"network,omitempty"`
	Purpose   []fhir.CodeableConcept `json:"purposeOfUse,omitempty"`
}

// AuditEventNetwork is where an agent called from.
type AuditEventNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

// AuditEventSource is the node that audited the event.
type AuditEventSource struct {
	Site     string         `json:"site,omitempty"`
	Observer fhir.Reference `json:"observer"`
}

// AuditEventEntity is a patient or the query an event concerned.
type AuditEventEntity struct {
	What  *fhir.Reference `json:"what,omitempty"`
	Type  *fhir.Coding    `json:"type,omitempty"`
	Role  *fhir.Coding    `json:"role,omitempty"`
	Query string          `json:"query,omitempty"`
}

// Code systems of AuditEvent.
const (
	auditEventTypeSystem   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	restfulInteraction     = "http://hl7.org/fhir/restful-interaction"
	auditEntityTypeSystem  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	objectRoleSystem       = "http://terminology.hl7.org/CodeSystem/object-role"
	purposeOfUseSystem     = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	rlsAuditActionSystem   = "https://rls.example/fhir/CodeSystem/audit-action"
	breakGlassExtensionURL = "https://rls.example/fhir/StructureDefinition/break-the-glass-reason"
	auditChainExtensionURL = "https://rls.example/fhir/StructureDefinition/audit-chain"
)

// toAuditEvent renders an audit entry. Its id is the entry's sequence number.
func toAuditEvent(e model.AuditEntry) AuditEvent {
	act := audit.Actions[e.Action]
	ev := AuditEvent{
		ResourceType: "AuditEvent",
		ID:           strconv.FormatUint(e.Seq, 10),
		Type:         fhir.Coding{System: auditEventTypeSystem, Code: "rest", Display: "RESTful Operation"},
		Subtype: []fhir.Coding{
			{System: restfulInteraction, Code: act.Subtype},
			{System: rlsAuditActionSystem, Code: e.Action},
		},
		Action:   act.Code,
		Recorded: e.Recorded.UTC().Format(time.RFC3339Nano),
		Outcome:  auditOutcome(e.Status),
		Source:   AuditEventSource{Site: e.Node, Observer: fhir.Reference{Reference: "Device/" + e.Node, Display: "rls node " + e.Node}},
	}
	if !e.Success() {
		ev.OutcomeDesc = strings.TrimSpace(fmt.Sprintf("HTTP %d %s", e.Status, e.Outcome))
	}
	var purpose []fhir.CodeableConcept
	if e.Purpose != "" {
		purpose = []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: purposeOfUseSystem, Code: e.Purpose}}}}
		ev.PurposeOfUse = purpose
	}
	who := fhir.Reference{Display: "unauthenticated"}
	if e.Participant != "" {
		who = fhir.Reference{Reference: "Organization/" + e.Participant}
	}
	ev.Agent = append(ev.Agent, AuditEventAgent{Who: who, Requestor: e.OnBehalfOf == "", Purpose: purpose,
		Network: &AuditEventNetwork{Address: e.Source, Type: "2"}})
	if e.OnBehalfOf != "" {
		ev.Agent = append(ev.Agent, AuditEventAgent{Who: fhir.Reference{Identifier: &fhir.Identifier{Value: e.OnBehalfOf}, Display: e.OnBehalfOf}, Requestor: true, Purpose: purpose})
	}
	for _, euid := range e.EUIDs {
		ev.Entity = append(ev.Entity, AuditEventEntity{What: &fhir.Reference{Reference: "Person/" + euid},
			Type: &fhir.Coding{System: auditEntityTypeSystem, Code: "1", Display: "Person"},
			Role: &fhir.Coding{System: objectRoleSystem, Code: "1", Display: "Patient"}})
	}
	for _, id := range e.Records {
		ev.Entity = append(ev.Entity, AuditEventEntity{What: &fhir.Reference{Reference: "Patient/" + id},
			Type: &fhir.Coding{System: auditEntityTypeSystem, Code: "1", Display: "Person"},
			Role: &fhir.Coding{System: objectRoleSystem, Code: "1", Display: "Patient"}})
	}
	if e.Query != "" {
		ev.Entity = append(ev.Entity, AuditEventEntity{Query: base64.StdEncoding.EncodeToString([]byte(e.Query)),
			Type: &fhir.Coding{System: auditEntityTypeSystem, Code: "2", Display: "System Object"},
			Role: &fhir.Coding{System: objectRoleSystem, Code: "24", Display: "Query"}})
	}
	if e.BreakGlass != "" {
		ev.Extension = append(ev.Extension, fhir.Extension{URL: breakGlassExtensionURL, ValueString: e.BreakGlass})
	}
	ev.Extension = append(ev.Extension, fhir.Extension{URL: auditChainExtensionURL, Extension: []fhir.Extension{
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

// searchAuditEvents is GET /fhir/AuditEvent for privacy officers (admin role): by patient
// (Person/EUID, an EUID, or Patient/id), agent (Organization/id or id), date (recorded, with
// eq/ge/gt/le/lt prefixes; repeatable), _count and _offset.
func (s *Server) searchAuditEvents(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	aq, err := auditQuery(q, "patient", "agent", "date")
	if err != nil {
		return err
	}
	count, offset, err := pageParams(q, 50, 1, 1000)
	if err != nil {
		return err
	}
	aq.Offset, aq.Limit = offset, count
	var entries []model.AuditEntry
	var total int
	err = s.node.State().View(func(tx *state.Tx) error {
		entries, total, err = tx.SearchAudit(aq)
		return err
	})
	if err != nil {
		return err
	}
	var out []fhir.BundleEntry
	for _, e := range entries {
		out = append(out, fhir.BundleEntry{FullURL: "AuditEvent/" + strconv.FormatUint(e.Seq, 10), Resource: toAuditEvent(e), Search: &fhir.SearchInfo{Mode: "match"}})
	}
	return writeFHIR(w, http.StatusOK, searchset(r, out, total, offset, count))
}

// auditQuery reads the filters shared by the FHIR and native audit searches.
func auditQuery(q url.Values, patientParam, agentParam, dateParam string) (state.AuditQuery, error) {
	var aq state.AuditQuery
	for name := range q {
		switch name {
		case patientParam, agentParam, dateParam, "_count", "_offset", "consistency", "limit", "offset", "btg", "since", "until", "_format":
		default:
			return aq, fhir.Errorf(http.StatusBadRequest, "not-supported", name, "audit search parameter %q is not supported", name)
		}
	}
	if p := q.Get(patientParam); p != "" {
		switch {
		case strings.HasPrefix(p, "Patient/"):
			aq.Record = strings.TrimPrefix(p, "Patient/")
		default:
			aq.EUID = strings.TrimPrefix(p, "Person/")
		}
	}
	aq.Participant = strings.TrimPrefix(q.Get(agentParam), "Organization/")
	for _, v := range q[dateParam] {
		if err := addDateBound(&aq, v); err != nil {
			return aq, fhir.Invalid(dateParam, "%v", err)
		}
	}
	return aq, nil
}

// addDateBound narrows [From, To) by one FHIR date parameter: an optional prefix (eq, ge,
// gt, le, lt) and a date (YYYY, YYYY-MM, YYYY-MM-DD) or an RFC 3339 instant.
func addDateBound(aq *state.AuditQuery, v string) error {
	prefix := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	var start, end time.Time
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		start, end = t, t.Add(time.Nanosecond)
	} else {
		layouts := []struct {
			layout string
			next   func(time.Time) time.Time
		}{
			{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
			{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
			{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		}
		ok := false
		for _, l := range layouts {
			if t, err := time.Parse(l.layout, v); err == nil {
				start, end, ok = t, l.next(t), true
				break
			}
		}
		if !ok {
			return fmt.Errorf("date %q must be YYYY, YYYY-MM, YYYY-MM-DD or an RFC 3339 instant", v)
		}
	}
	lower := func(t time.Time) {
		if aq.From.IsZero() || t.After(aq.From) {
			aq.From = t
		}
	}
	upper := func(t time.Time) {
		if aq.To.IsZero() || t.Before(aq.To) {
			aq.To = t
		}
	}
	switch prefix {
	case "eq":
		lower(start)
		upper(end)
	case "ge":
		lower(start)
	case "gt":
		lower(end)
	case "le":
		upper(end)
	case "lt":
		upper(start)
	default:
		return fmt.Errorf("date prefix %q must be eq, ge, gt, le or lt", prefix)
	}
	return nil
}

// AuditList is the answer of GET /v1/audit.
type AuditList struct {
	Total   int                `json:"total"`
	Entries []model.AuditEntry `json:"entries"`
}

// listAudit is GET /v1/audit (rls audit list / disclosures / btg): euid, participant,
// patient (a Patient id), since and until (dates or instants), btg=true (break-the-glass
// only), offset and limit.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	q2 := url.Values{}
	for k, v := range q {
		switch k {
		case "euid":
			q2["patient"] = v
		case "participant":
			q2["agent"] = v
		case "patient":
			for _, id := range v {
				q2.Add("patient", "Patient/"+id)
			}
		default:
			q2[k] = v
		}
	}
	aq, err := auditQuery(q2, "patient", "agent", "")
	if err != nil {
		return err
	}
	if v := q.Get("since"); v != "" {
		if err := addDateBound(&aq, "ge"+v); err != nil {
			return fhir.Invalid("since", "%v", err)
		}
	}
	if v := q.Get("until"); v != "" {
		if err := addDateBound(&aq, "le"+v); err != nil {
			return fhir.Invalid("until", "%v", err)
		}
	}
	aq.BreakGlass = q.Get("btg") == "true"
	if aq.Limit, err = intParam(q, "limit", 100, 1, 10000); err != nil {
		return err
	}
	if aq.Offset, err = intParam(q, "offset", 0, 0, 1<<31); err != nil {
		return err
	}
	var out AuditList
	err = s.node.State().View(func(tx *state.Tx) error {
		out.Entries, out.Total, err = tx.SearchAudit(aq)
		return err
	})
	if err != nil {
		return err
	}
	if out.Entries == nil {
		out.Entries = []model.AuditEntry{}
	}
	return writeJSON(w, http.StatusOK, out)
}

// verifyAudit is GET /v1/audit/verify: walks the chain on this node's state.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request, rq *request) error {
	v, err := s.node.State().VerifyAudit()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func auditEventCapability(param func(name, typ, doc string) map[string]any, interactions func(codes ...string) []any) map[string]any {
	return map[string]any{
		"type": "AuditEvent",
		"documentation": "One per request that touched patient data (success or failure), hash-chained and replicated. " +
			"Admin role only (privacy officers).",
		"interaction": interactions("search-type"),
		"searchParam": []any{
			param("patient", "reference", "Person/EUID (or a bare EUID) or Patient/id: events that disclosed that patient"),
			param("agent", "reference", "Organization/id: events of that participant"),
			param("date", "date", "recorded; prefixes eq, ge, gt, le, lt; repeatable"),
			param("_count", "number", "page size, 1 to 1000 (default 50)"),
			param("_offset", "number", "paging offset"),
		},
	}
}
