package locator

import (
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
		act := audit.Actions[e.Action]
		out = append(out, fhir.BundleEntry{FullURL: "AuditEvent/" + strconv.FormatUint(e.Seq, 10), Resource: fhir.AuditEventOf(e, act.Subtype, act.Code), Search: &fhir.SearchInfo{Mode: "match"}})
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
