package console

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testKeys(t *testing.T, secret string) Keys {
	t.Helper()
	k, err := NewKeys([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSessionSealAndOpen: a sealed session opens with the same keys until it expires,
// and not with other keys, nor once any byte of it changed.
func TestSessionSealAndOpen(t *testing.T) {
	k := testKeys(t, "cluster-key-0123456789abcdef-0001")
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	o := Options{IdleTimeout: 10 * time.Minute, Lifetime: time.Hour}
	s, err := NewSession("stewards", ViaToken, TokenBinding("abc"), "Dana", now, o)
	if err != nil {
		t.Fatal(err)
	}
	v, err := k.Seal(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Open(v, now.Add(time.Minute))
	if err != nil || got.Participant != "stewards" || got.User != "Dana" || got.Binding != TokenBinding("abc") {
		t.Fatalf("open: %+v %v", got, err)
	}
	if _, err := k.Open(v, now.Add(10*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("open after the idle timeout: %v", err)
	}
	if _, err := testKeys(t, "cluster-key-0123456789abcdef-0002").Open(v, now); !errors.Is(err, ErrNoSession) {
		t.Fatalf("open with other keys: %v", err)
	}
	for i := range len(v) {
		b := []byte(v)
		b[i] ^= 0x01
		if _, err := k.Open(string(b), now); err == nil {
			t.Fatalf("a session with byte %d changed opened", i)
		}
	}
	if _, err := NewKeys(nil); err == nil {
		t.Fatal("keys from no cluster key")
	}
}

// TestSessionRenewal: the idle expiry moves forward once half of it has passed, never
// past the session's end.
func TestSessionRenewal(t *testing.T) {
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	o := Options{IdleTimeout: 10 * time.Minute, Lifetime: 25 * time.Minute}
	s, _ := NewSession("p", ViaCertificate, "", "", now, o)
	if _, renew := s.Renewed(now.Add(2*time.Minute), o); renew {
		t.Fatal("renewed before half the idle time passed")
	}
	s2, renew := s.Renewed(now.Add(6*time.Minute), o)
	if !renew || !s2.Expires.Equal(now.Add(16*time.Minute)) {
		t.Fatalf("renewal: %v %v", s2.Expires, renew)
	}
	s3, renew := s2.Renewed(now.Add(20*time.Minute), o)
	if !renew || !s3.Expires.Equal(s.Ends) {
		t.Fatalf("renewal near the end: %v, want %v", s3.Expires, s.Ends)
	}
	if _, renew := s3.Renewed(now.Add(24*time.Minute), o); renew {
		t.Fatal("renewed past the end")
	}
}

// TestCSRFToken: the token is the session's own; another session's does not pass.
func TestCSRFToken(t *testing.T) {
	k := testKeys(t, "cluster-key-0123456789abcdef-0001")
	now := time.Now()
	a, _ := NewSession("p", ViaToken, "b", "", now, Options{})
	b, _ := NewSession("p", ViaToken, "b", "", now, Options{})
	if !k.CheckCSRF(a, k.CSRFToken(a)) || k.CheckCSRF(a, k.CSRFToken(b)) || k.CheckCSRF(a, "") || k.CheckCSRF(a, "!!") {
		t.Fatal("CSRF token check")
	}
}

// TestCookieAttributes: HttpOnly and SameSite=Strict always; Secure with the __Host-
// prefix unless dev asked for an insecure cookie.
func TestCookieAttributes(t *testing.T) {
	now := time.Now()
	s, _ := NewSession("p", ViaToken, "b", "", now, Options{})
	for _, insecure := range []bool{false, true} {
		o := Options{InsecureCookie: insecure}.WithDefaults()
		c := Cookie("v", s, now, o)
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure == insecure || c.Path != "/" || c.Domain != "" {
			t.Fatalf("insecure=%v: %+v", insecure, c)
		}
		if strings.HasPrefix(c.Name, "__Host-") == insecure {
			t.Fatalf("insecure=%v: cookie name %q", insecure, c.Name)
		}
		if err := c.Valid(); err != nil {
			t.Fatalf("insecure=%v: %v", insecure, err)
		}
		if cl := ClearCookie(o); cl.MaxAge >= 0 || cl.Name != c.Name {
			t.Fatalf("clear: %+v", cl)
		}
	}
}

// TestAssetsCarrySecurityHeaders: every embedded file is served with the CSP and a type.
func TestAssetsCarrySecurityHeaders(t *testing.T) {
	a, err := NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(a.Names(), "") {
		w := httptest.NewRecorder()
		if !a.Serve(w, httptest.NewRequest("GET", "/ui/"+name, nil), name) {
			t.Fatalf("%q not served", name)
		}
		h := w.Result().Header
		if w.Code != 200 || w.Body.Len() == 0 || h.Get("Content-Security-Policy") != ContentSecurityPolicy || h.Get("Content-Type") == "" || h.Get("ETag") == "" {
			t.Errorf("%q: %d, headers %v", name, w.Code, h)
		}
	}
	if a.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/ui/missing.js", nil), "missing.js") {
		t.Error("a missing file was served")
	}
}
