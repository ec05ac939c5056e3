package locator

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/console"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// The web console (locator/console) is served at /ui/. Its pages call the API routes
// below it like any client; what this file adds is the session: signing in with a token or
// a client certificate opens one (a sealed cookie), and serve then accepts that cookie as
// the request's credentials, with a CSRF token on every change and browsers' cross-origin
// requests refused.

// consoleSessionRequest is the body of POST /ui/session.
type consoleSessionRequest struct {
	// User is the name of the person signing in, for the audit trail (the console sends
	// it as X-Rls-On-Behalf-Of). Optional.
	User string `json:"user,omitempty"`
}

// ConsoleSession is the answer of POST and GET /ui/session: who is signed in, the CSRF
// token the page sends with every change, and the purpose of use its queries declare.
type ConsoleSession struct {
	Participant string    `json:"participant"`
	Name        string    `json:"name"`
	Role        string    `json:"role"`
	Via         string    `json:"via"`
	User        string    `json:"user,omitempty"`
	CSRFToken   string    `json:"csrf_token"`
	Purposes    []string  `json:"purposes"`
	Expires     time.Time `json:"expires"`
	Ends        time.Time `json:"ends"`
}

// consoleAsset is GET /ui/{path...}: the console's page, scripts and styles.
func (s *Server) consoleAsset(w http.ResponseWriter, r *http.Request, rq *request) error {
	if s.consoleAssets == nil || !s.consoleAssets.Serve(w, r, r.PathValue("path")) {
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "no such console file")
	}
	return nil
}

// consoleRoot is GET /ui: the console lives under /ui/.
func consoleRoot(w http.ResponseWriter, r *http.Request, rq *request) error {
	http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	return nil
}

// consoleSignIn is POST /ui/session: the caller, authenticated by its token or client
// certificate and holding the steward role (or admin), gets a session cookie.
func (s *Server) consoleSignIn(w http.ResponseWriter, r *http.Request, rq *request) error {
	if r.TLS == nil && !s.opts.Console.InsecureCookie {
		return fhir.Errorf(http.StatusBadRequest, "security", "", "the console needs HTTPS outside -dev: its session cookie is Secure")
	}
	var req consoleSessionRequest
	if len(rq.body) > 0 {
		if err := decodeJSON(rq.body, &req); err != nil {
			return err
		}
	}
	req.User = strings.TrimSpace(req.User)
	if err := model.CheckText("user", req.User, model.MaxOnBehalfOfLength); err != nil {
		return fhir.LimitError("user", err)
	}
	keys, err := s.consoleKeys(r)
	if err != nil {
		return err
	}
	via, binding := console.ViaCertificate, ""
	if _, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		via, binding = console.ViaToken, console.TokenBinding(rq.principal.TokenHash)
	}
	now := time.Now()
	sess, err := console.NewSession(rq.principal.ID, via, binding, req.User, now, s.opts.Console)
	if err != nil {
		return err
	}
	if err := s.setSessionCookie(w, keys, sess, now); err != nil {
		return err
	}
	s.logger.Info("console sign-in", "participant", rq.principal.ID, "via", via, "request_id", rq.id)
	return writeJSON(w, http.StatusCreated, consoleSessionView(rq.principal, sess, keys))
}

// consoleSessionInfo is GET /ui/session: the session the cookie names (the page asks at
// load whether it is signed in).
func (s *Server) consoleSessionInfo(w http.ResponseWriter, r *http.Request, rq *request) error {
	if rq.session == nil {
		return unauthorized("no console session: sign in")
	}
	keys, err := s.consoleKeys(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, consoleSessionView(rq.principal, *rq.session, keys))
}

// consoleSignOut is DELETE /ui/session: the browser forgets the cookie. A copy of the
// cookie kept elsewhere stays valid until it expires (idle timeout); rotating the
// participant's token ends every session opened with it, on every node, at once.
func (s *Server) consoleSignOut(w http.ResponseWriter, r *http.Request, rq *request) error {
	http.SetCookie(w, console.ClearCookie(s.opts.Console))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func consoleSessionView(p model.Participant, sess console.Session, keys console.Keys) ConsoleSession {
	var purposes []string
	for _, pu := range policy.Allowed(p) {
		purposes = append(purposes, string(pu))
	}
	return ConsoleSession{Participant: p.ID, Name: p.Name, Role: string(p.Role), Via: sess.Via, User: sess.User,
		CSRFToken: keys.CSRFToken(sess), Purposes: purposes, Expires: sess.Expires, Ends: sess.Ends}
}

// consoleKeys derives the session keys from the cluster key.
func (s *Server) consoleKeys(r *http.Request) (console.Keys, error) {
	key, err := s.clusterKey(r.Context())
	if err != nil {
		return console.Keys{}, fmt.Errorf("console session keys: %w", err)
	}
	return console.NewKeys(key)
}

func (s *Server) setSessionCookie(w http.ResponseWriter, keys console.Keys, sess console.Session, now time.Time) error {
	value, err := keys.Seal(sess)
	if err != nil {
		return err
	}
	http.SetCookie(w, console.Cookie(value, sess, now, s.opts.Console))
	w.Header().Set("Cache-Control", "no-store")
	return nil
}

// sessionCookie returns the console session cookie a request carries, if any.
func (s *Server) sessionCookie(r *http.Request) string {
	c, err := r.Cookie(console.CookieName(s.opts.Console))
	if err != nil {
		return ""
	}
	return c.Value
}

// browserOrigin refuses a browser's cross-origin request that would change something:
// Go's CrossOriginProtection, which reads the Sec-Fetch-Site and Origin headers browsers
// send (other clients send neither and pass). No page of another site may act with the
// console's session, nor with any credential a browser holds for this node (a client
// certificate); the API serves no CORS, so no legitimate caller is cross-origin. The
// session's CSRF token is the second lock.
func (s *Server) browserOrigin(r *http.Request) error {
	if err := s.crossOrigin.Check(r); err != nil {
		return fhir.Errorf(http.StatusForbidden, "forbidden", "", "cross-origin request refused: %v", err)
	}
	return nil
}

// authenticateRequest is authenticate, or, for a request that carries the console's
// session cookie and no bearer token, the session: sealed by this cluster, not expired,
// its participant active with the steward role, the same token still in force (or, for a
// session opened with a certificate, that certificate on this request), and on a change
// the session's CSRF token. The session's idle expiry is renewed as it is used.
func (s *Server) authenticateRequest(w http.ResponseWriter, r *http.Request, rt route, rq *request) (model.Participant, error) {
	cookie := s.sessionCookie(r)
	signIn := rt.method == http.MethodPost && rt.pattern == "/ui/session"
	if cookie == "" || r.Header.Get("Authorization") != "" || signIn {
		// Signing in takes the token or certificate, whatever cookie a past session left.
		return s.authenticate(r)
	}
	key := s.localClusterKey()
	if key == nil {
		return model.Participant{}, unauthorized("no console session: sign in")
	}
	keys, err := console.NewKeys(key)
	if err != nil {
		return model.Participant{}, err
	}
	now := time.Now()
	sess, err := keys.Open(cookie, now)
	if err != nil {
		return model.Participant{}, unauthorized("the console session has expired or is not valid: sign in again")
	}
	p, err := s.lookupParticipant(r.Context(), func(tx *state.Tx) (model.Participant, error) { return tx.Participant(sess.Participant) })
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return model.Participant{}, err
	}
	if err != nil || !p.Active || !p.IsSteward() {
		return model.Participant{}, unauthorized("the console session is no longer valid: sign in again")
	}
	switch sess.Via {
	case console.ViaToken:
		if p.TokenHash == "" || console.TokenBinding(p.TokenHash) != sess.Binding {
			// The token it was opened with was rotated or revoked.
			return model.Participant{}, unauthorized("the console session is no longer valid: sign in again")
		}
	case console.ViaCertificate:
		certID, hasCert, err := s.certParticipant(r)
		if err != nil {
			return model.Participant{}, err
		}
		if !hasCert || certID != p.ID {
			return model.Participant{}, unauthorized("the console session was opened with a client certificate this request does not present")
		}
	default:
		return model.Participant{}, unauthorized("the console session is not valid: sign in again")
	}
	if !safeMethod(r.Method) && !keys.CheckCSRF(sess, r.Header.Get(console.HeaderCSRF)) {
		return model.Participant{}, fhir.Errorf(http.StatusForbidden, "forbidden", console.HeaderCSRF,
			"a change made with the console session must carry the session's CSRF token in %s", console.HeaderCSRF)
	}
	// Answers to a browser session hold patient data: never kept in its cache, never
	// read as anything but what they say they are.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if next, renew := sess.Renewed(now, s.opts.Console); renew {
		if err := s.setSessionCookie(w, keys, next, now); err != nil {
			return model.Participant{}, err
		}
		sess = next
	}
	rq.session = &sess
	return p, nil
}

// sessionIdentity is the participant a request's console session names, if the session is
// this cluster's and unexpired; for identify only (it checks nothing else).
func (s *Server) sessionIdentity(r *http.Request) string {
	cookie, key := s.sessionCookie(r), s.localClusterKey()
	if cookie == "" || key == nil {
		return ""
	}
	keys, err := console.NewKeys(key)
	if err != nil {
		return ""
	}
	sess, err := keys.Open(cookie, time.Now())
	if err != nil {
		return ""
	}
	return sess.Participant
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
