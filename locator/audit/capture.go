package audit

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// Exactly one audit entry per request, written by the node that received the request from
// the client (the entry node):
//
//   - a request served where it arrived (a stale read on a follower, anything on the
//     leader) is recorded there;
//   - a request a follower forwards to the leader carries the follower's node credential;
//     the leader then records nothing and returns a Report of the participant it
//     authenticated and what it disclosed, which the follower records with the outcome the
//     client sees — also when the leader never answered (killed mid-request: the entry
//     says 502/503 and discloses nothing, which is what reached the client);
//   - a forwarded request whose credential does not verify is recorded by both nodes:
//     twice is an annoyance, never recording it would be a hole.
//
// The answer is held back until the entry is durably committed through Raft; if it cannot
// be, the client gets 503 and none of the data. Entries carry a random ID and the FSM
// appends an ID once, so a batch that is retried (a leader died after committing it,
// before answering) is not recorded twice.

// Request is what an entry records of the request itself, as it arrived. Begin bounds every
// field: the entry is copied to every node.
type Request struct {
	Node       string // the node that received it
	Source     string // the caller's address
	RequestID  string
	OnBehalfOf string // the user of the participant's system (X-Rls-On-Behalf-Of)
	Action     string // the route's audited action (see Actions)
	Method     string
	Path       string
	RawQuery   string
	// QueryInBody: the query is the request body, not RawQuery (a search by POST; $match's
	// is always its body).
	QueryInBody bool
}

// Capture is the audit entry of one request in the making: begun when the request arrives,
// told what the request disclosed as its handler runs, completed with the outcome. A nil
// *Capture (a route that is not audited) ignores what it is told.
type Capture struct {
	entry   model.AuditEntry
	euids   []string
	records []string
	// euidSet and recordSet index the lists once they are long (see addOnce).
	euidSet, recordSet map[string]struct{}
	// reported: the leader reported on a request this node forwarded (Adopt).
	reported bool
	// outcome is the issue code the leader reported.
	outcome string
	// queryFromBody: the query is the request body ($match, a search by POST).
	queryFromBody bool
	// BeforeStream: the entry is recorded before the answer is written (a streamed answer,
	// too large to hold back), so recording it releases nothing.
	BeforeStream bool
}

// Begin starts the entry of a request observed at now.
func Begin(now time.Time, r Request) *Capture {
	return &Capture{
		entry: model.AuditEntry{
			Observed:   now.UTC(),
			Node:       r.Node,
			Source:     model.BoundText(r.Source, model.MaxSourceLength),
			RequestID:  r.RequestID,
			OnBehalfOf: model.BoundText(r.OnBehalfOf, model.MaxOnBehalfOfLength),
			Action:     r.Action,
			Method:     model.BoundText(r.Method, model.MaxActionLength),
			Path:       model.BoundText(r.Path, model.MaxAuditPathLength),
			Query:      model.BoundFreeText(r.RawQuery, model.MaxAuditQueryLength),
		},
		queryFromBody: r.Action == "patient-match" || r.QueryInBody,
	}
}

// Disclose notes persons (EUIDs) and source records (Patient ids) the request disclosed or
// changed. Handlers call it with what they put in the answer.
func (c *Capture) Disclose(euids []string, records []string) {
	if c == nil {
		return
	}
	for _, e := range euids {
		c.euids = addOnce(c.euids, &c.euidSet, e)
	}
	for _, r := range records {
		c.records = addOnce(c.records, &c.recordSet, r)
	}
}

// shortList is how long a list of disclosed ids is searched before it gets a set.
const shortList = 16

// addOnce appends id to list unless it is empty or already there, keeping the order of
// first disclosure (the entry lists them so). A list longer than shortList is indexed in
// *set: an import batch discloses a thousand ids, and scanning the list for each was a
// tenth of the batch handler's CPU.
func addOnce(list []string, set *map[string]struct{}, id string) []string {
	if id == "" {
		return list
	}
	if *set == nil && len(list) < shortList {
		if slices.Contains(list, id) {
			return list
		}
		return append(list, id)
	}
	if *set == nil {
		*set = make(map[string]struct{}, 2*len(list))
		for _, have := range list {
			(*set)[have] = struct{}{}
		}
	}
	if _, ok := (*set)[id]; ok {
		return list
	}
	(*set)[id] = struct{}{}
	return append(list, id)
}

// Outcome is what became of a request, as its entry records it.
type Outcome struct {
	// Participant is whom this node authenticated; Tentative whom its state says the
	// credentials name, for a request it forwarded and the leader never answered.
	Participant, Tentative string
	// Purpose and BreakGlass are what the policy point judged (normalised, HPAYMT →
	// PAYMENT), here or, for a forwarded request, at the leader (Adopt).
	Purpose, BreakGlass string
	// Body is the request body ($match's query is its body, a Parameters resource).
	Body []byte
	// Status is the HTTP status the client gets (0: 200).
	Status int
	// Failed: the request was answered with an error whose issue code is Code.
	Failed bool
	Code   string
}

// Complete returns the finished entry, every field bounded.
func (c *Capture) Complete(o Outcome) model.AuditEntry {
	e := c.entry
	e.Purpose = model.BoundText(o.Purpose, model.MaxPurposeLength)
	e.BreakGlass = model.BoundFreeText(o.BreakGlass, model.MaxBreakGlassLength)
	if c.queryFromBody {
		e.Query = model.BoundFreeText(string(o.Body), model.MaxAuditQueryLength)
	}
	if !c.reported {
		e.Participant = o.Participant
		if e.Participant == "" {
			e.Participant = o.Tentative
		}
	}
	e.EUIDs, e.Records = boundIDs(c.euids), boundIDs(c.records)
	e.Status = o.Status
	if e.Status == 0 {
		e.Status = http.StatusOK
	}
	switch {
	case o.Failed:
		e.Outcome = o.Code
	case c.reported:
		e.Outcome = model.BoundText(c.outcome, model.MaxOutcomeLength)
	}
	return e
}

// Report is what the leader tells the node that forwarded a request about it, so that
// that node writes the one entry: whom it authenticated, the outcome code of a refusal,
// the purpose and break-the-glass reason it judged, and what it disclosed.
type Report struct {
	Participant string   `json:"participant,omitempty"`
	Outcome     string   `json:"outcome,omitempty"`
	Purpose     string   `json:"purpose,omitempty"`
	BreakGlass  string   `json:"break_glass,omitempty"`
	EUIDs       []string `json:"euids,omitempty"`
	Records     []string `json:"records,omitempty"`
}

// ReportOf is the report of a completed entry.
func ReportOf(e model.AuditEntry) Report {
	return Report{Participant: e.Participant, Outcome: e.Outcome, Purpose: e.Purpose, BreakGlass: e.BreakGlass, EUIDs: e.EUIDs, Records: e.Records}
}

// Encode is the report as a header value (base64 of its JSON).
func (r Report) Encode() string {
	b, _ := json.Marshal(r)
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeReport reads a header value Encode made; ok is false for anything else.
func DecodeReport(v string) (r Report, ok bool) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || json.Unmarshal(b, &r) != nil {
		return Report{}, false
	}
	return r, true
}

// Adopt takes what the leader reported about a request this node forwarded.
func (c *Capture) Adopt(r Report) {
	c.reported = true
	c.entry.Participant = model.BoundText(r.Participant, model.MaxIDLength)
	c.outcome = r.Outcome
	c.Disclose(r.EUIDs, r.Records)
}

// Bound holds every field of an entry to the audit limits the FSM checks
// (command.CheckAuditEntry), cutting and cleaning what is beyond them: one bad entry must
// never make the FSM refuse a whole batch of others. Entries this node builds are bounded
// as they are made; this is for entries another node sends (a node of an older release).
func Bound(e *model.AuditEntry) {
	for _, f := range []struct {
		v   *string
		max int
	}{
		{&e.Node, model.MaxIDLength}, {&e.Source, model.MaxSourceLength}, {&e.RequestID, model.MaxRequestIDLength},
		{&e.Participant, model.MaxIDLength}, {&e.OnBehalfOf, model.MaxOnBehalfOfLength}, {&e.Purpose, model.MaxPurposeLength},
		{&e.Action, model.MaxActionLength}, {&e.Method, model.MaxActionLength}, {&e.Path, model.MaxAuditPathLength},
		{&e.Outcome, model.MaxOutcomeLength},
	} {
		*f.v = model.BoundText(*f.v, f.max)
	}
	e.BreakGlass = model.BoundFreeText(e.BreakGlass, model.MaxBreakGlassLength)
	e.Query = model.BoundFreeText(e.Query, model.MaxAuditQueryLength)
	e.EUIDs, e.Records = boundIDs(e.EUIDs), boundIDs(e.Records)
}

// boundIDs sorts the ids an entry names, keeping only well-formed ones, at most
// model.MaxAuditListLength of them.
func boundIDs(ids []string) []string {
	out := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return model.CheckID("id", id) != nil })
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return out[:min(len(out), model.MaxAuditListLength)]
}
