package locator

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
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
		if ok, wait := s.limiter.Allow(rq.principal.ID); !ok {
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
	rq.guard = policy.NewGuard(a)
	return nil
}

// answerGuard is the guard a write route's answer passes its persons through. A write
// (registering a Patient) is not a query and needs no purpose of use, but its answer names
// the person the record joined, so it is decided as a query without break-the-glass
// would be; a route that has a guard uses its own.
func (rq *request) answerGuard() *policy.Guard {
	if rq.guard == nil {
		rq.guard = policy.NewGuard(policy.Access{Participant: rq.principal.ID})
	}
	return rq.guard
}

// guardState is the replicated state as the request guard (policy.Guard) reads it: the
// handler's read transaction.
type guardState struct{ tx *state.Tx }

func (s guardState) PersonRecords(euid string) ([]string, error) { return personRecords(s.tx, euid) }

func (s guardState) ConsentsOfRecords(records []string) ([]model.Consent, error) {
	return s.tx.ConsentsOfRecords(records)
}

func (s guardState) RecordPerson(key string) (string, bool, error) {
	sr, err := s.tx.MPI().Record(mpi.RecordKey(key))
	if err != nil || sr == nil {
		return "", false, err
	}
	return sr.EUID, true, nil
}

func (s guardState) RecordOwner(key string) (string, error) { return recordOwner(s.tx, key) }

// recordOwner is the participant that holds a record: the one that registered it, or, for
// a record registered from a flat file, the owner of its identifier system.
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

// visibleHits keeps the PDQm hits the caller may see.
func visibleHits(g *policy.Guard, tx *state.Tx, hits []state.PatientHit) ([]state.PatientHit, error) {
	out := hits[:0:0]
	for _, h := range hits {
		d, err := g.Record(guardState{tx}, string(h.Key))
		if err != nil {
			return nil, err
		}
		if d.Disclose {
			out = append(out, h)
		}
	}
	return out, nil
}

// logOutcome records what the policy point decided for a request, by ids only (never
// names, birth dates or addresses, nor the break-the-glass reason, which may hold them).
func (s *Server) logOutcome(rq *request, route string, status int) {
	g := rq.guard
	if g == nil {
		return
	}
	if persons := g.BrokeGlass(); len(persons) > 0 {
		s.logger.Warn("break-the-glass disclosure", "participant", rq.principal.ID, "purpose", rq.purpose,
			"persons", persons, "route", route, "status", status, "request_id", rq.id)
	}
	if n := g.Denied(); n > 0 {
		s.logger.Info("consent withheld patients", "participant", rq.principal.ID, "purpose", rq.purpose,
			"denied", n, "route", route, "request_id", rq.id)
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
