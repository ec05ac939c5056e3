package locator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// tokenPrefix makes rls tokens recognisable to secret scanners and to people.
const tokenPrefix = "rls_"

// NewToken returns a new bearer token: 256 random bits, base64url, with the rls_ prefix.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// TokenHash is the form in which a token is stored: hex SHA-256. Tokens carry 256 random
// bits, so a fast hash suffices (a slow password hash protects low-entropy secrets).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func unauthorized(format string, args ...any) *fhir.Error {
	e := fhir.Errorf(http.StatusUnauthorized, "login", "", format, args...)
	e.Header = map[string]string{"WWW-Authenticate": `Bearer realm="rls"`}
	return e
}

// authenticate resolves the bearer token to an active participant.
func (s *Server) authenticate(r *http.Request) (model.Participant, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return model.Participant{}, unauthorized("missing bearer token: send Authorization: Bearer TOKEN")
	}
	hash := TokenHash(token)
	p, err := s.participantByToken(hash)
	if errors.Is(err, state.ErrNotFound) {
		// The token may have been issued an instant ago: wait (briefly) until this node
		// holds everything it knows to be committed, then look again.
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		if s.node.CatchUp(ctx) == nil {
			p, err = s.participantByToken(hash)
		}
		cancel()
	}
	if errors.Is(err, state.ErrNotFound) {
		return model.Participant{}, unauthorized("unknown, revoked or disabled credentials")
	}
	if err != nil {
		return model.Participant{}, err
	}
	if !p.Active {
		// 401, not 403: a disabled participant's credentials are not valid, as a revoked
		// token's are not; the answer says no more than that.
		return model.Participant{}, unauthorized("unknown, revoked or disabled credentials")
	}
	return p, nil
}

func (s *Server) participantByToken(hash string) (model.Participant, error) {
	var p model.Participant
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		p, err = tx.ParticipantByTokenHash(hash)
		return err
	})
	return p, err
}
