package nodeauth

import (
	"errors"
	"testing"
	"time"
)

func TestNodeCredential(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	cred := Sign(key, "n2", now, "POST", "/v1/internal/audit", []byte("batch"))
	if node, err := Verify(key, cred, now.Add(time.Second), "POST", "/v1/internal/audit", []byte("batch")); err != nil || node != "n2" {
		t.Fatalf("valid credential: %q %v", node, err)
	}
	bad := []struct {
		name              string
		key               []byte
		at                time.Time
		method, uri, cred string
		body              string
	}{
		{"another key", []byte("another key of 32 bytes, exactly"), now, "POST", "/v1/internal/audit", cred, "batch"},
		{"no key", nil, now, "POST", "/v1/internal/audit", cred, "batch"},
		{"another body", key, now, "POST", "/v1/internal/audit", cred, "forged"},
		{"another path", key, now, "POST", "/v1/locate", cred, "batch"},
		{"replayed later", key, now.Add(2 * MaxSkew), "POST", "/v1/internal/audit", cred, "batch"},
		{"garbage", key, now, "POST", "/v1/internal/audit", "n2 x y", "batch"},
	}
	for _, c := range bad {
		if _, err := Verify(c.key, c.cred, c.at, c.method, c.uri, []byte(c.body)); !errors.Is(err, ErrBadCredential) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// FuzzVerifyNodeCredential feeds arbitrary X-Rls-Node-Credential values to Verify: it
// never panics and accepts nothing but a credential Sign made with the key, for that
// request, within the allowed skew.
//
// Run it longer with: go test -run '^$' -fuzz FuzzVerifyNodeCredential -fuzztime 5m ./locator/nodeauth/
func FuzzVerifyNodeCredential(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	good := Sign(key, "n2", now, "GET", "/v1/cluster/fence", nil)
	f.Add(good)
	f.Add("n2 1 deadbeef")
	f.Add("")
	f.Add("a b c d")
	f.Add("n2 99999999999999999999 x")
	f.Fuzz(func(t *testing.T, cred string) {
		node, err := Verify(key, cred, now, "GET", "/v1/cluster/fence", nil)
		if err == nil && cred != good {
			// Only the exact credential Sign made may verify (its MAC covers node and time).
			if Sign(key, node, now, "GET", "/v1/cluster/fence", nil) != cred {
				t.Fatalf("forged credential %q verified as %q", cred, node)
			}
		}
	})
}
