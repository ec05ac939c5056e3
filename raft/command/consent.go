package command

//go:generate go run github.com/tinylib/msgp@v1.6.5 -file consent.go -o consent_gen.go -io=false -tests=false
//msgp:tag json
//msgp:timezone utc

import "github.com/rls-hie/rls/raft/model"

// Privacy commands. They live in this file (numbered from 18, after the audit log's 17) so
// that the privacy work stays apart from the rest of the log format; the numbers are as
// permanent as those in command.go.
const (
	// TypeConsentSet records or replaces a patient's consent directive.
	TypeConsentSet Type = 18
	// TypeParticipantRevokeToken removes a participant's token without issuing another:
	// the participant can no longer authenticate until an admin rotates a new one.
	TypeParticipantRevokeToken Type = 19
)

// privacyTypeName names the privacy commands for Type.String.
func privacyTypeName(t Type) (string, bool) {
	switch t.Base() {
	case TypeConsentSet:
		return "consent-set", true
	case TypeParticipantRevokeToken:
		return "participant-revoke-token", true
	}
	return "", false
}

// ConsentSet stores Consent (a new directive when no directive has its id). ExpectedVersion,
// when not zero, must equal the stored version (FHIR If-Match). The leader resolves the
// patient to record keys and stamps id and times, so Apply reads nothing but the state.
type ConsentSet struct {
	Consent         model.Consent `json:"consent"`
	ExpectedVersion uint64        `json:"expected_version,omitempty"`
	// Create refuses to replace an existing directive (POST), so two ids drawn alike can
	// never overwrite each other.
	Create bool `json:"create,omitempty"`
}

// ParticipantRevokeToken revokes participant ID's token.
type ParticipantRevokeToken struct {
	ID string `json:"id"`
}
