// Package console is rls's web console for data stewards and operators: the page and its
// scripts and styles (embedded, so a node serves them offline, with no CDN), the session
// that signing in opens (a sealed, expiring cookie any node can check with the cluster's
// key), the CSRF token every change must carry, and the security headers of the pages.
//
// It owns no patient data and makes no access decision: the pages call the same API routes
// as any client, through the locator's one policy point, which authenticates the session
// with this package, checks roles and purposes, and audits every call. The package uses
// only the standard library; it must never import locator (its caller), raft or any of its
// subpackages, mpi or search, and nothing in it may log a token or a patient's data.
package console

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Defaults of Options.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultLifetime    = 12 * time.Hour
)

// Options configures the console of one node.
type Options struct {
	// IdleTimeout ends a session nobody used for that long; Lifetime ends any session that
	// long after sign-in, used or not.
	IdleTimeout time.Duration
	Lifetime    time.Duration
	// InsecureCookie leaves the Secure attribute off the session cookie, so that the
	// console works over plain HTTP: for -dev on loopback only.
	InsecureCookie bool
}

// WithDefaults fills the zero fields of o.
func (o Options) WithDefaults() Options {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.IdleTimeout > o.Lifetime {
		o.IdleTimeout = o.Lifetime
	}
	return o
}

// Ways of signing in (Session.Via).
const (
	ViaToken       = "token"
	ViaCertificate = "certificate"
)

// Session is what the cookie carries, sealed: who signed in, how, and until when.
type Session struct {
	// ID is random: it ties the CSRF token to this session.
	ID          string `json:"id"`
	Participant string `json:"p"`
	Via         string `json:"via"`
	// Binding ties a session opened with a token to that token (see TokenBinding): when
	// the participant's token is rotated or revoked, its sessions end on every node.
	Binding string `json:"b,omitempty"`
	// User is the name the person signing in gave, for the audit trail's on-behalf-of.
	User    string    `json:"u,omitempty"`
	Issued  time.Time `json:"iat"`
	Expires time.Time `json:"exp"` // idle expiry, renewed while the session is used
	Ends    time.Time `json:"end"` // absolute end
}

// Errors of Open; callers use errors.Is and answer 401 without saying which.
var (
	// ErrNoSession: the cookie is not a session this cluster sealed.
	ErrNoSession = errors.New("not a console session of this cluster")
	// ErrExpired: the session was idle too long or has reached its end.
	ErrExpired = errors.New("console session expired")
)

// Keys seal and open sessions and make CSRF tokens. They derive from the cluster key, so
// every node holds the same ones and a session opened on one node works on all.
type Keys struct {
	seal, csrf []byte
}

// NewKeys derives the console's keys from the cluster key (HKDF-SHA256, labels of their
// own, so that nothing sealed here can pass for a node credential or the other way round).
func NewKeys(clusterKey []byte) (Keys, error) {
	if len(clusterKey) < 16 {
		return Keys{}, errors.New("console keys: the cluster key is missing or too short")
	}
	seal, err := hkdf.Key(sha256.New, clusterKey, nil, "rls console session v1", 32)
	if err != nil {
		return Keys{}, fmt.Errorf("console keys: %w", err)
	}
	csrf, err := hkdf.Key(sha256.New, clusterKey, nil, "rls console csrf v1", 32)
	if err != nil {
		return Keys{}, fmt.Errorf("console keys: %w", err)
	}
	return Keys{seal: seal, csrf: csrf}, nil
}

// NewSession starts a session for participant, signed in via token or certificate.
func NewSession(participant, via, binding, user string, now time.Time, o Options) (Session, error) {
	o = o.WithDefaults()
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Session{}, fmt.Errorf("new session id: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	return Session{ID: base64.RawURLEncoding.EncodeToString(id[:]), Participant: participant, Via: via, Binding: binding,
		User: user, Issued: now, Expires: now.Add(o.IdleTimeout), Ends: now.Add(o.Lifetime)}, nil
}

// Renewed returns the session with its idle expiry moved to now+IdleTimeout (never past
// Ends), and whether that is worth a new cookie: once half the idle time has passed.
func (s Session) Renewed(now time.Time, o Options) (Session, bool) {
	o = o.WithDefaults()
	if s.Expires.Sub(now) > o.IdleTimeout/2 {
		return s, false
	}
	next := now.UTC().Truncate(time.Second).Add(o.IdleTimeout)
	if next.After(s.Ends) {
		next = s.Ends
	}
	if !next.After(s.Expires) {
		return s, false
	}
	s.Expires = next
	return s, true
}

// TokenBinding is what a token session keeps of the participant's stored token hash: a
// digest under a label of its own, never the stored hash itself.
func TokenBinding(tokenHash string) string {
	sum := sha256.Sum256([]byte("rls console token binding\x00" + tokenHash))
	return hex.EncodeToString(sum[:16])
}

// Seal encodes and authenticates a session as a cookie value: base64url(JSON) "."
// base64url(HMAC-SHA256). The content is not secret (ids and times), only unforgeable.
func (k Keys) Seal(s Session) (string, error) {
	payload, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("seal session: %w", err)
	}
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(k.mac(k.seal, body)), nil
}

// Open checks a cookie value and returns its session if it is this cluster's and has not
// expired at now.
func (k Keys) Open(value string, now time.Time) (Session, error) {
	body, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > maxCookieLength {
		return Session{}, ErrNoSession
	}
	got, err := strictBase64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, k.mac(k.seal, body)) {
		return Session{}, ErrNoSession
	}
	payload, err := strictBase64.DecodeString(body)
	if err != nil {
		return Session{}, ErrNoSession
	}
	var s Session
	if err := json.Unmarshal(payload, &s); err != nil || s.ID == "" || s.Participant == "" {
		return Session{}, ErrNoSession
	}
	if !now.Before(s.Expires) || !now.Before(s.Ends) {
		return Session{}, ErrExpired
	}
	return s, nil
}

// strictBase64 refuses the spare low bits of a final character set to anything but
// zero: otherwise four spellings of one MAC would all be accepted, and a cookie or token
// changed by a client would still open.
var strictBase64 = base64.RawURLEncoding.Strict()

// maxCookieLength bounds what Open reads: a session is a few hundred bytes.
const maxCookieLength = 2048

// CSRFToken is the token a session's changes must carry in HeaderCSRF: a MAC of the
// session's id, which a page of another origin can neither read nor compute.
func (k Keys) CSRFToken(s Session) string {
	return base64.RawURLEncoding.EncodeToString(k.mac(k.csrf, s.ID))
}

// CheckCSRF reports whether token is the session's CSRF token.
func (k Keys) CheckCSRF(s Session, token string) bool {
	got, err := strictBase64.DecodeString(token)
	return err == nil && hmac.Equal(got, k.mac(k.csrf, s.ID))
}

func (k Keys) mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// HeaderCSRF carries a session's CSRF token on every request that changes something.
const HeaderCSRF = "X-Rls-CSRF-Token"

// Cookie names. With the Secure attribute the cookie takes the __Host- prefix, which
// browsers accept only from a secure origin, for the whole host and no subdomain.
const (
	cookieName       = "rls-session"
	secureCookieName = "__Host-rls-session"
)

// CookieName is the session cookie's name for the given options.
func CookieName(o Options) string {
	if o.InsecureCookie {
		return cookieName
	}
	return secureCookieName
}

// Cookie is the session cookie for a sealed value: HttpOnly (scripts cannot read it),
// SameSite=Strict (no other site's page sends it), Secure outside dev, for the whole
// host, ending with the session's idle expiry.
func Cookie(value string, s Session, now time.Time, o Options) *http.Cookie {
	return &http.Cookie{Name: CookieName(o), Value: value, Path: "/", Expires: s.Expires, MaxAge: max(1, int(s.Expires.Sub(now).Seconds())),
		HttpOnly: true, Secure: !o.InsecureCookie, SameSite: http.SameSiteStrictMode}
}

// ClearCookie removes the session cookie from the browser.
func ClearCookie(o Options) *http.Cookie {
	return &http.Cookie{Name: CookieName(o), Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, Secure: !o.InsecureCookie, SameSite: http.SameSiteStrictMode}
}

// ContentSecurityPolicy is the policy of the console's pages: scripts, styles and
// connections from the node itself only, no inline script or style, no plugin, frame, form
// target or base elsewhere, and DOM sinks that take strings (innerHTML) refused outright.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// SecurityHeaders sets the headers every console page and asset carries.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}
