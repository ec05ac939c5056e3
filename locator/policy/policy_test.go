package policy

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

func TestParsePurpose(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Purpose
		err  error
	}{
		{"TREAT", Treat, nil}, {"treat", Treat, nil}, {" ETREAT ", EmergencyTx, nil},
		{"HPAYMT", Payment, nil}, {"PAYMENT", Payment, nil}, {"HOPERAT", Operations, nil},
		{"PUBHLTH", PublicHealth, nil}, {"PATRQT", Request, nil}, {"REQUEST", Request, nil},
		{V3PurposeOfUseSystem + "|TREAT", Treat, nil}, {"|HPAYMT", Payment, nil},
		{"", "", ErrPurposeMissing}, {"RESEARCH", "", ErrPurposeUnknown}, {"http://other|TREAT", "", ErrPurposeUnknown},
	} {
		got, err := ParsePurpose(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParsePurpose(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestCanonicalPurposesSortsAndDeduplicates(t *testing.T) {
	got, err := CanonicalPurposes([]string{"PUBHLTH", "treat", "TREAT", "HPAYMT"})
	if err != nil || !slices.Equal(got, []string{"TREAT", "PAYMENT", "PUBLICHEALTH"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := CanonicalPurposes([]string{"TREAT", "MARKETING"}); !errors.Is(err, ErrPurposeUnknown) {
		t.Fatalf("unknown purpose accepted: %v", err)
	}
}

func TestAuthorize(t *testing.T) {
	clinic := model.Participant{ID: "clinic", Role: model.RoleParticipant}
	er := model.Participant{ID: "er", Role: model.RoleParticipant, Purposes: []string{"TREAT", "ETREAT"}}
	admin := model.Participant{ID: "admin", Role: model.RoleAdmin}
	steward := model.Participant{ID: "stewards", Role: model.RoleSteward}
	for _, tc := range []struct {
		name        string
		p           model.Participant
		purpose, bg string
		err         error
	}{
		{"default purpose", clinic, "TREAT", "", nil},
		{"missing", clinic, "", "", ErrPurposeMissing},
		{"not granted by default", clinic, "PAYMENT", "", ErrPurposeNotAllowed},
		{"ETREAT needs a grant", clinic, "ETREAT", "unconscious", ErrPurposeNotAllowed},
		{"granted ETREAT with reason", er, "ETREAT", "unconscious in ED", nil},
		{"reason without ETREAT", er, "TREAT", "why not", ErrBreakGlass},
		{"blank reason", er, "ETREAT", "   ", ErrBreakGlass},
		{"admin has every purpose", admin, "HOPERAT", "", nil},
		{"steward: operations by default", steward, "OPERATIONS", "", nil},
		{"steward: not treatment by default", steward, "TREAT", "", ErrPurposeNotAllowed},
	} {
		a, err := Authorize(tc.p, tc.purpose, tc.bg)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
		}
		if err == nil && a.Participant != tc.p.ID {
			t.Errorf("%s: access for %q", tc.name, a.Participant)
		}
	}
}

func TestDecide(t *testing.T) {
	optOut := model.Consent{ID: "c1", Status: model.ConsentActive, OptOut: true}
	revoked := model.Consent{ID: "c2", Status: model.ConsentInactive, OptOut: true}
	denyB := model.Consent{ID: "c3", Status: model.ConsentActive, DenyParticipants: []string{"b"}}
	part2 := model.Consent{ID: "c4", Status: model.ConsentActive, WithholdLabels: []string{"http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH"}}
	treatB := Access{Participant: "b", Purpose: Treat}
	btgB := Access{Participant: "b", Purpose: EmergencyTx, BreakGlass: "unconscious"}
	btgC := Access{Participant: "c", Purpose: EmergencyTx, BreakGlass: "unconscious"}
	etreatNoReason := Access{Participant: "c", Purpose: EmergencyTx}
	for _, tc := range []struct {
		name       string
		a          Access
		directives []model.Consent
		own        bool
		disclose   bool
		btg        bool
		withheld   int
	}{
		{"no directive", treatB, nil, false, true, false, 0},
		{"opted out", treatB, []model.Consent{optOut}, false, false, false, 0},
		{"revoked opt-out", treatB, []model.Consent{revoked}, false, true, false, 0},
		{"break the glass", btgC, []model.Consent{optOut}, false, true, true, 0},
		{"ETREAT without reason does not override", etreatNoReason, []model.Consent{optOut}, false, false, false, 0},
		{"denied participant", treatB, []model.Consent{denyB}, false, false, false, 0},
		{"denied participant cannot break the glass", btgB, []model.Consent{denyB, optOut}, false, false, false, 0},
		{"other participants unaffected by a denial", btgC, []model.Consent{denyB}, false, true, false, 0},
		{"withheld labels", treatB, []model.Consent{part2}, false, true, false, 1},
		{"break the glass keeps labels withheld", btgC, []model.Consent{optOut, part2}, false, true, true, 1},
		{"own record", treatB, []model.Consent{optOut, denyB}, true, true, false, 0},
	} {
		d := Decide(tc.a, tc.directives, tc.own)
		if d.Disclose != tc.disclose || d.BrokeGlass != tc.btg || len(d.WithholdLabels) != tc.withheld {
			t.Errorf("%s: %+v", tc.name, d)
		}
	}
	d := Decide(treatB, []model.Consent{part2}, false)
	if !d.Withheld([]string{"ETH"}) && !d.Withheld([]string{"http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH"}) {
		t.Fatal("a document labelled ETH is not withheld")
	}
	if d.Withheld([]string{"http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N"}) {
		t.Fatal("a normal document is withheld")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLimiter(2, 3, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("over the burst: ok %v wait %v", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another participant is limited by a's requests")
	}
	now = now.Add(wait)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refused after waiting Retry-After")
	}
	if ok, _ := NewLimiter(0, 0, nil).Allow("a"); !ok {
		t.Fatal("a zero rate must not limit")
	}
}

// FuzzAuthorize feeds arbitrary purpose-of-use and break-the-glass headers to the policy
// point: it never panics, refuses with one of its errors, and grants only a purpose the
// participant holds, with a reason no longer than MaxReasonLength.
//
// Run it longer with: go test -run '^$' -fuzz FuzzAuthorize -fuzztime 5m ./locator/policy/
func FuzzAuthorize(f *testing.F) {
	f.Add("TREAT", "")
	f.Add("http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT", "unconscious")
	f.Add("etreat", "\x00\u202e")
	f.Add("|", " ")
	p := model.Participant{ID: "p", Role: model.RoleParticipant, Purposes: []string{"TREAT", "ETREAT"}}
	f.Fuzz(func(t *testing.T, purpose, reason string) {
		a, err := Authorize(p, purpose, reason)
		if err != nil {
			if !errors.Is(err, ErrPurposeMissing) && !errors.Is(err, ErrPurposeUnknown) && !errors.Is(err, ErrPurposeNotAllowed) && !errors.Is(err, ErrBreakGlass) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if a.Purpose != Treat && a.Purpose != EmergencyTx {
			t.Fatalf("granted %s", a.Purpose)
		}
		if len(a.BreakGlass) > MaxReasonLength || (a.BreakGlass != "" && a.Purpose != EmergencyTx) {
			t.Fatalf("break-the-glass %q with %s", a.BreakGlass, a.Purpose)
		}
	})
}
