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
	"github.com/rls-hie/rls/raft/pki"
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

// authenticate resolves the caller to an active participant: from a verified client
// certificate (its urn:rls:participant: URI SAN, else its common name), from the bearer
// token, or both, in which case they must name the same participant. A request a peer node
// forwarded carries the participant of the certificate the peer verified.
func (s *Server) authenticate(r *http.Request) (model.Participant, error) {
	if id, ok := hl7TrustedSender(r); ok {
		// An MLLP listener that trusts its network named the sender by MSH-4 (hl7.go).
		return s.participantByCert(r.Context(), id)
	}
	certID, hasCert, err := s.certParticipant(r)
	if err != nil {
		return model.Participant{}, err
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		if hasCert {
			return s.participantByCert(r.Context(), certID)
		}
		return model.Participant{}, unauthorized("missing bearer token: send Authorization: Bearer TOKEN, or present a client certificate")
	}
	hash := TokenHash(token)
	p, err := s.lookupParticipant(r.Context(), func(tx *state.Tx) (model.Participant, error) { return tx.ParticipantByTokenHash(hash) })
	if errors.Is(err, state.ErrNotFound) {
		return model.Participant{}, unauthorized("unknown, revoked or disabled credentials")
	}
	if err != nil {
		return model.Participant{}, err
	}
	if hasCert && p.ID != certID {
		// Two credentials naming two participants: refuse rather than pick one.
		return model.Participant{}, unauthorized("the bearer token and the client certificate name different participants")
	}
	if !p.Active {
		// 401, not 403: a disabled participant's credentials are not valid, as a revoked
		// token's are not; the answer says no more than that.
		return model.Participant{}, unauthorized("unknown, revoked or disabled credentials")
	}
	return p, nil
}

// identify returns the active participant this node's state says the request's credentials
// name, without waiting and without refusing anything: only to name a forwarded request in
// its audit entry when the leader, which authenticates it, never answers.
func (s *Server) identify(r *http.Request) string {
	if id, ok := hl7TrustedSender(r); ok {
		return id
	}
	if id, ok := clientCertParticipant(r); ok {
		return id
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if token = strings.TrimSpace(token); !ok || token == "" {
		return s.sessionIdentity(r)
	}
	var id string
	hash := TokenHash(token)
	_ = s.node.State().View(func(tx *state.Tx) error {
		if p, err := tx.ParticipantByTokenHash(hash); err == nil && p.Active {
			id = p.ID
		}
		return nil
	})
	return id
}

// certParticipant returns the participant id a request's client certificate names. A
// cluster node's certificate names none of its own (nodes call with the admin token), but
// on a request the node forwarded it vouches for the participant in
// headerForwardedParticipant. A certificate that is neither a node's nor names a
// participant is refused: the caller meant it as a credential.
func (s *Server) certParticipant(r *http.Request) (string, bool, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", false, nil
	}
	chain := r.TLS.VerifiedChains[0]
	if _, ok := pki.NodeID(chain[0]); ok {
		if _, trusted := pki.IsClusterNode(chain, s.opts.ClusterCA); trusted && r.Header.Get(headerForwarded) != "" {
			if id := r.Header.Get(headerForwardedParticipant); id != "" {
				return id, true, nil
			}
		}
		return "", false, nil
	}
	id, err := pki.ParticipantID(chain[0])
	if err != nil {
		return "", false, unauthorized("client certificate %q: %v", chain[0].Subject.CommonName, err)
	}
	return id, true, nil
}

// clientCertParticipant is the participant a request's own verified client certificate
// names (not a node's, and not one vouched for by a node), for forwarding.
func clientCertParticipant(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", false
	}
	id, err := pki.ParticipantID(r.TLS.VerifiedChains[0][0])
	return id, err == nil
}

func (s *Server) participantByCert(ctx context.Context, id string) (model.Participant, error) {
	p, err := s.lookupParticipant(ctx, func(tx *state.Tx) (model.Participant, error) { return tx.Participant(id) })
	if errors.Is(err, state.ErrNotFound) {
		return model.Participant{}, unauthorized("the client certificate names no known participant")
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

// lookupParticipant reads a participant; if it is not there it may have been created an
// instant ago, through another node, so it waits (briefly) until this node holds what the
// leader had committed when asked (fence.Sync), then looks again.
func (s *Server) lookupParticipant(ctx context.Context, get func(*state.Tx) (model.Participant, error)) (model.Participant, error) {
	read := func() (model.Participant, error) {
		var p model.Participant
		err := s.node.State().View(func(tx *state.Tx) error {
			var err error
			p, err = get(tx)
			return err
		})
		return p, err
	}
	p, err := read()
	if errors.Is(err, state.ErrNotFound) && s.syncWithLeader(ctx) {
		p, err = read()
	}
	return p, err
}

// syncWithLeader waits, for a second at most, until this node's readable state holds what
// the leader had committed when asked (fence.Sync), and reports whether it does: a
// participant added an instant ago through another node may not be in this node's state,
// nor even in its log, when its first request arrives.
func (s *Server) syncWithLeader(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return s.fence.Sync(ctx) == nil
}
