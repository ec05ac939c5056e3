package locator

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// Purpose-of-use and break-the-glass request headers (and the query parameter that may
// carry the purpose instead).
const (
	HeaderPurposeOfUse     = "X-Rls-Purpose-Of-Use"
	HeaderBreakGlassReason = "X-Rls-Break-Glass-Reason"
	ParamPurposeOfUse      = "purpose-of-use"
)

// maxClaimedPurpose bounds the purpose a refused request's audit entry keeps.
const maxClaimedPurpose = 64

// admit is the policy point's entry, run by serve for every authenticated call once the
// participant is known: the participant's rate limit, then, on routes that disclose patient
// data, the purpose of use and break-the-glass reason, which become the request's guard.
// Every later disclosure decision of the request goes through that guard.
func (s *Server) admit(r *http.Request, rt route, rq *request) error {
	// The admin is not limited: it runs bulk loads and the cluster itself.
	if !rq.principal.IsAdmin() {
		if ok, wait := s.privacy.limiter.Allow(rq.principal.ID); !ok {
			// Counted and logged by the edge (bounded), not audited: see finishAudit.
			s.edge.refuse(refusedParticipantRate, rq.addr, rt.pattern, rq.id)
			rq.refused = true
			e := fhir.Errorf(http.StatusTooManyRequests, "throttled", "", "participant %q exceeds its rate limit; retry later", rq.principal.ID)
			e.Header = map[string]string{"Retry-After": strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1))))}
			return e
		}
	}
	if obo := r.Header.Get(HeaderOnBehalfOf); obo != "" {
		// The user it names is audited: a bounded, printable name (the entry keeps it cut).
		if err := model.CheckText(HeaderOnBehalfOf, obo, model.MaxOnBehalfOfLength); err != nil {
			return fhir.LimitError(HeaderOnBehalfOf, err)
		}
	}
	if !rt.patientData {
		return nil
	}
	purpose := r.Header.Get(HeaderPurposeOfUse)
	if q := r.URL.Query(); q.Has(ParamPurposeOfUse) {
		// The handlers refuse parameters they do not know, so the policy point consumes its own.
		if purpose == "" {
			purpose = q.Get(ParamPurposeOfUse)
		}
		q.Del(ParamPurposeOfUse)
		r.URL.RawQuery = q.Encode()
	}
	reason := r.Header.Get(HeaderBreakGlassReason)
	a, err := policy.Authorize(rq.principal, purpose, reason)
	if err != nil {
		// The audit entry of a refusal keeps what was claimed, bounded, so that refused
		// break-the-glass attempts are reviewed with the others.
		reason = strings.TrimSpace(reason)
		rq.purpose = strings.ToUpper(purpose[:min(len(purpose), maxClaimedPurpose)])
		rq.breakGlass = reason[:min(len(reason), policy.MaxReasonLength)]
	}
	switch {
	case errors.Is(err, policy.ErrPurposeNotAllowed):
		return fhir.Errorf(http.StatusForbidden, "forbidden", HeaderPurposeOfUse, "%v", err)
	case err != nil:
		return fhir.Invalid(HeaderPurposeOfUse, "%v: send %s (TREAT, ETREAT, PAYMENT, OPERATIONS, PUBLICHEALTH or REQUEST), and %s only with ETREAT", err, HeaderPurposeOfUse, HeaderBreakGlassReason)
	}
	rq.purpose, rq.breakGlass = string(a.Purpose), a.BreakGlass
	rq.guard = &guard{access: a, cache: map[string]policy.Decision{}}
	return nil
}

// guard applies policy.Decide to what one request is about to disclose. Handlers ask it
// about every patient (person or record) before putting them in an answer, and answer a
// denied patient exactly as an unknown one. A nil guard (a route not marked patientData)
// denies everything, so a handler wired to the wrong route fails closed.
type guard struct {
	access policy.Access
	// cache holds decisions by EUID for the request (a search meets a person many times).
	cache map[string]policy.Decision
	// brokeGlass lists the persons disclosed only because of break-the-glass.
	brokeGlass []string
	denied     int
}

// person decides for a person: the directives of all its current records apply.
func (g *guard) person(tx *state.Tx, euid string) (policy.Decision, error) {
	if g == nil {
		return policy.Decision{Reason: "no policy context"}, nil
	}
	if d, ok := g.cache[euid]; ok {
		return d, nil
	}
	records, err := personRecords(tx, euid)
	if err != nil {
		return policy.Decision{}, fmt.Errorf("records of person %s: %w", euid, err)
	}
	directives, err := tx.ConsentsOfRecords(records)
	if err != nil {
		return policy.Decision{}, fmt.Errorf("consent of person %s: %w", euid, err)
	}
	d := policy.Decide(g.access, directives, false)
	g.note(euid, d)
	g.cache[euid] = d
	return d, nil
}

func (g *guard) note(euid string, d policy.Decision) {
	if !d.Disclose {
		g.denied++
	}
	if d.BrokeGlass && !slices.Contains(g.brokeGlass, euid) {
		g.brokeGlass = append(g.brokeGlass, euid)
	}
}

// record decides for one source record: its owner always sees it (the owner holds it; that
// discloses nothing), anyone else as for the record's person.
func (g *guard) record(tx *state.Tx, key string) (policy.Decision, error) {
	if g == nil {
		return policy.Decision{Reason: "no policy context"}, nil
	}
	if owner, err := recordOwner(tx, key); err != nil {
		return policy.Decision{}, err
	} else if owner != "" && owner == g.access.Participant {
		return policy.Decide(g.access, nil, true), nil
	}
	return g.recordPerson(tx, key)
}

// recordPerson decides for a record as for its person, owner or not: for what others
// registered about the record (documents held elsewhere), which the owner does not hold.
func (g *guard) recordPerson(tx *state.Tx, key string) (policy.Decision, error) {
	if g == nil {
		return policy.Decision{Reason: "no policy context"}, nil
	}
	sr, err := tx.MPI().Record(mpi.RecordKey(key))
	if err != nil {
		return policy.Decision{}, fmt.Errorf("record %s: %w", key, err)
	}
	if sr == nil {
		// Unknown: nothing to disclose, and answering "unknown" is what the caller gets anyway.
		return policy.Decision{Disclose: true, Reason: policy.ReasonNoDirective}, nil
	}
	return g.person(tx, sr.EUID)
}

func recordOwner(tx *state.Tx, key string) (string, error) {
	meta, ok, err := tx.PatientMeta(key)
	if err != nil {
		return "", fmt.Errorf("record %s: %w", key, err)
	}
	if ok && meta.Owner != "" {
		return meta.Owner, nil
	}
	sys, _ := mpi.RecordKey(key).Split()
	owner, _ := tx.ParticipantIDBySystem(sys)
	return owner, nil
}

// patientHits keeps the PDQm hits the caller may see.
func (g *guard) patientHits(tx *state.Tx, hits []state.PatientHit) ([]state.PatientHit, error) {
	out := hits[:0:0]
	for _, h := range hits {
		d, err := g.record(tx, string(h.Key))
		if err != nil {
			return nil, err
		}
		if d.Disclose {
			out = append(out, h)
		}
	}
	return out, nil
}

// deniedScope stands in for a document search's patients when all of them are denied: it
// matches nothing, exactly as an unknown patient does.
const deniedScope = "unknown|denied"

// documentScope narrows a document search's patients (records and persons) to those the
// caller may see, and returns the security labels to withhold.
func (g *guard) documentScope(tx *state.Tx, records, euids []string) ([]string, []string, []string, error) {
	var keptRecords, keptEUIDs, withhold []string
	add := func(d policy.Decision) {
		for _, l := range d.WithholdLabels {
			if !slices.Contains(withhold, l) {
				withhold = append(withhold, l)
			}
		}
	}
	for _, e := range euids {
		d, err := g.person(tx, e)
		if err != nil {
			return nil, nil, nil, err
		}
		if d.Disclose {
			keptEUIDs = append(keptEUIDs, e)
			add(d)
		}
	}
	for _, k := range records {
		// Documents about a record may be held by anyone: the person's directives decide,
		// even for the record's owner (who reads its own documents by id).
		d, err := g.recordPerson(tx, k)
		if err != nil {
			return nil, nil, nil, err
		}
		if d.Disclose {
			keptRecords = append(keptRecords, k)
			add(d)
		}
	}
	if len(keptRecords)+len(keptEUIDs) == 0 && len(records)+len(euids) > 0 {
		keptRecords = []string{deniedScope}
	}
	slices.Sort(withhold)
	return keptRecords, keptEUIDs, withhold, nil
}

// document decides for one registered document: its holder sees it; anyone else if the
// patient may be disclosed and the document carries no withheld label.
func (g *guard) document(tx *state.Tx, d search.Document) (bool, error) {
	if g != nil && d.Holder == g.access.Participant {
		return true, nil
	}
	// As in a search: the person's directives decide, even for the record's owner, who
	// does not hold a document another participant registered.
	dec, err := g.recordPerson(tx, d.PatientRecord)
	if err != nil || !dec.Disclose {
		return false, err
	}
	var labels []string
	for _, c := range d.SecurityLabels {
		labels = append(labels, c.Token(), c.Code)
	}
	return !dec.Withheld(labels), nil
}

// logOutcome records what the policy point decided for a request, by ids only (never
// names, birth dates or addresses, nor the break-the-glass reason, which may hold them).
func (s *Server) logOutcome(rq *request, route string, status int) {
	g := rq.guard
	if g == nil {
		return
	}
	if len(g.brokeGlass) > 0 {
		s.logger.Warn("break-the-glass disclosure", "participant", rq.principal.ID, "purpose", rq.purpose,
			"persons", g.brokeGlass, "route", route, "status", status, "request_id", rq.id)
	}
	if g.denied > 0 {
		s.logger.Info("consent withheld patients", "participant", rq.principal.ID, "purpose", rq.purpose,
			"denied", g.denied, "route", route, "request_id", rq.id)
	}
}

// patientNotFound and personNotFound are the answers for a Patient or Person that does not
// exist, and equally for one the caller may not see.
func patientNotFound(id string) error {
	return fhir.Errorf(http.StatusNotFound, "not-found", "", "Patient/%s is not registered", id)
}

func personNotFound(euid string) error {
	return fhir.Errorf(http.StatusNotFound, "not-found", "", "Person/%s does not exist", euid)
}
