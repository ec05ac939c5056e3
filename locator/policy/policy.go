// Package policy is rls's access policy: the purposes of use a participant may query patient
// data for, the decision whether a patient may be disclosed to a caller given the patient's
// consent directives (opt-out, denied participants, withheld security labels) and
// break-the-glass (Decide), per-participant rate limits, and the request Guard that applies
// Decide to every patient one request is about to disclose.
//
// It is pure: no HTTP, no storage, no clock of its own (the rate limiter takes one; the
// guard reads the replicated state through the State its caller implements over the
// request's read transaction). The locator package is its one caller and makes every access
// decision through it, so the rules live in one place a privacy officer can read. It must
// never import locator, raft (except the plain values of raft/model) or HTTP code. The
// fence that makes a change of these rules hold on every node at once is its neighbour,
// locator/fence.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rls-hie/rls/raft/model"
)

// Purpose is a purpose of use, in rls's canonical codes.
type Purpose string

// The purposes of use rls knows. The names follow the HIE's wording; the HL7 v3
// PurposeOfUse codes (HPAYMT, HOPERAT, PUBHLTH, PATRQT, and TREAT/ETREAT themselves) are
// accepted as synonyms.
const (
	Treat        Purpose = "TREAT"
	EmergencyTx  Purpose = "ETREAT"
	Payment      Purpose = "PAYMENT"
	Operations   Purpose = "OPERATIONS"
	PublicHealth Purpose = "PUBLICHEALTH"
	// Request is the patient's own request (HIPAA right of access).
	Request Purpose = "REQUEST"
)

// V3PurposeOfUseSystem is the HL7 v3 code system purposes may be qualified with.
const V3PurposeOfUseSystem = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

// All lists every purpose, in the order help texts show them.
var all = []Purpose{Treat, EmergencyTx, Payment, Operations, PublicHealth, Request}

// All returns every purpose.
func All() []Purpose { return slices.Clone(all) }

var synonyms = map[string]Purpose{
	"TREAT": Treat, "ETREAT": EmergencyTx, "PAYMENT": Payment, "HPAYMT": Payment,
	"OPERATIONS": Operations, "HOPERAT": Operations, "PUBLICHEALTH": PublicHealth, "PUBHLTH": PublicHealth,
	"REQUEST": Request, "PATRQT": Request,
}

// Errors of purpose handling; callers use errors.Is.
var (
	// ErrPurposeMissing: a query of patient data named no purpose of use.
	ErrPurposeMissing = errors.New("purpose of use is required")
	// ErrPurposeUnknown: the purpose is not one rls knows.
	ErrPurposeUnknown = errors.New("unknown purpose of use")
	// ErrPurposeNotAllowed: the participant is not allowed that purpose.
	ErrPurposeNotAllowed = errors.New("purpose of use not allowed for this participant")
	// ErrBreakGlass: a break-the-glass reason came without purpose ETREAT, or is unusable.
	ErrBreakGlass = errors.New("invalid break-the-glass request")
)

// ParsePurpose reads a purpose: a code (case-insensitive), optionally qualified by the v3
// PurposeOfUse system as "system|code".
func ParsePurpose(s string) (Purpose, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ErrPurposeMissing
	}
	if sys, code, ok := strings.Cut(s, "|"); ok {
		if sys != V3PurposeOfUseSystem && sys != "" {
			return "", fmt.Errorf("%w: system %q (use %s or a bare code)", ErrPurposeUnknown, sys, V3PurposeOfUseSystem)
		}
		s = code
	}
	p, ok := synonyms[strings.ToUpper(s)]
	if !ok {
		return "", fmt.Errorf("%w: %q (one of TREAT, ETREAT, PAYMENT, OPERATIONS, PUBLICHEALTH, REQUEST or the v3 codes HPAYMT, HOPERAT, PUBHLTH, PATRQT)", ErrPurposeUnknown, s)
	}
	return p, nil
}

// CanonicalPurposes parses a list of purposes into canonical codes, sorted in All order
// and without repeats: the form model.Participant.Purposes stores.
func CanonicalPurposes(codes []string) ([]string, error) {
	var got []Purpose
	for _, c := range codes {
		p, err := ParsePurpose(c)
		if err != nil {
			return nil, err
		}
		got = append(got, p)
	}
	var out []string
	for _, p := range all {
		if slices.Contains(got, p) {
			out = append(out, string(p))
		}
	}
	return out, nil
}

// DefaultPurposes are the purposes of a participant for which the admin set none: an admin
// may use every purpose (it answers patients' own requests and audits); a data steward
// health care operations (keeping the index correct is an operation of the exchange, not
// treatment); any other participant only treatment, the purpose an HIE's participation
// agreement always covers. Emergency treatment with break-the-glass, payment, operations
// and public health must be granted explicitly.
func DefaultPurposes(role model.Role) []Purpose {
	switch role {
	case model.RoleAdmin:
		return All()
	case model.RoleSteward:
		return []Purpose{Operations}
	}
	return []Purpose{Treat}
}

// Allowed returns the purposes participant p may query patient data for.
func Allowed(p model.Participant) []Purpose {
	if len(p.Purposes) == 0 {
		return DefaultPurposes(p.Role)
	}
	out := make([]Purpose, 0, len(p.Purposes))
	for _, c := range p.Purposes {
		out = append(out, Purpose(c))
	}
	return out
}

// MaxReasonLength caps a break-the-glass reason (it is logged and audited, not free text
// storage).
const MaxReasonLength = 500

// Access is who asks, and why: what a disclosure decision depends on besides consent.
type Access struct {
	Participant string
	Purpose     Purpose
	// BreakGlass is the reason given with purpose ETREAT; empty for no break-the-glass.
	BreakGlass string
}

// Authorize checks a query's purpose and break-the-glass reason against what participant
// p is allowed, and returns the Access to decide disclosures with.
func Authorize(p model.Participant, purpose, breakGlass string) (Access, error) {
	pu, err := ParsePurpose(purpose)
	if err != nil {
		return Access{}, err
	}
	if !slices.Contains(Allowed(p), pu) {
		return Access{}, fmt.Errorf("%w: %s", ErrPurposeNotAllowed, pu)
	}
	reason := strings.TrimSpace(breakGlass)
	if breakGlass != "" {
		switch {
		case pu != EmergencyTx:
			return Access{}, fmt.Errorf("%w: a break-the-glass reason needs purpose of use ETREAT, not %s", ErrBreakGlass, pu)
		case reason == "":
			return Access{}, fmt.Errorf("%w: the reason is blank", ErrBreakGlass)
		case len(reason) > MaxReasonLength:
			return Access{}, fmt.Errorf("%w: the reason is longer than %d characters", ErrBreakGlass, MaxReasonLength)
		}
	}
	return Access{Participant: p.ID, Purpose: pu, BreakGlass: reason}, nil
}

// Decision is whether one patient may be disclosed to a caller.
type Decision struct {
	Disclose bool
	// BrokeGlass: disclosed only because of break-the-glass (audit and review it).
	BrokeGlass bool
	// WithholdLabels are the security labels whose documents must not be disclosed.
	WithholdLabels []string
	// Reason says why, for logs and audit (never shown to the caller, whose answer for a
	// denied patient is the one for an unknown patient).
	Reason string
}

// Decision reasons.
const (
	ReasonNoDirective     = "no-directive"
	ReasonPermitted       = "permitted"
	ReasonOwnRecord       = "own-record"
	ReasonOptedOut        = "opted-out"
	ReasonParticipantDeny = "participant-denied"
	ReasonBreakGlass      = "break-the-glass"
)

// Decide is the one disclosure rule. Given the active and inactive directives of every
// record of the person (records move between persons, so the caller gathers them at query
// time) it decides for one caller:
//
//   - a participant the patient named in a denial sees nothing, break-the-glass or not: the
//     patient chose, specifically and knowingly, to keep that organisation out, and an
//     emergency elsewhere is unaffected by it;
//   - an opted-out patient is disclosed to no one, except under break-the-glass (purpose
//     ETREAT with a reason), for that request only;
//   - documents carrying a withheld security label are never disclosed through rls, even
//     under break-the-glass: the locator still points at the holder, who applies its own
//     emergency rules (42 CFR 2.51) to the record itself.
//
// ownRecord is true when the caller asks about its own record (it registered it): a
// participant always sees what it holds itself, which discloses nothing.
func Decide(a Access, directives []model.Consent, ownRecord bool) Decision {
	if ownRecord {
		return Decision{Disclose: true, Reason: ReasonOwnRecord}
	}
	d := Decision{Disclose: true, Reason: ReasonNoDirective}
	optedOut := false
	for _, c := range directives {
		if !c.Active() {
			continue
		}
		d.Reason = ReasonPermitted
		if slices.Contains(c.DenyParticipants, a.Participant) {
			return Decision{Reason: ReasonParticipantDeny}
		}
		optedOut = optedOut || c.OptOut
		for _, l := range c.WithholdLabels {
			if !slices.Contains(d.WithholdLabels, l) {
				d.WithholdLabels = append(d.WithholdLabels, l)
			}
		}
	}
	if optedOut {
		if a.Purpose != EmergencyTx || a.BreakGlass == "" {
			return Decision{Reason: ReasonOptedOut}
		}
		d.BrokeGlass, d.Reason = true, ReasonBreakGlass
	}
	slices.Sort(d.WithholdLabels)
	return d
}

// Withheld reports whether a document with the given security labels (as "system|code"
// tokens and bare codes) carries one of the withheld labels.
func (d Decision) Withheld(labels []string) bool {
	for _, w := range d.WithholdLabels {
		if slices.Contains(labels, w) {
			return true
		}
	}
	return false
}
