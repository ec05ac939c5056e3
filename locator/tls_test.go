package locator

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/pki"
	"github.com/rls-hie/rls/raft/rafttest"
)

// tlsFixture is one node whose API is served over TLS twice: requiring client
// certificates and merely requesting them; certificates live ten minutes.
type tlsFixture struct {
	t                *testing.T
	ca, otherCA      *pki.CA
	require, request string // base URLs
}

func (f *tlsFixture) issue(ca *pki.CA, l pki.Leaf) tls.Certificate {
	f.t.Helper()
	if l.NotBefore.IsZero() {
		l.NotBefore, l.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(10*time.Minute)
	}
	is, err := ca.Issue(l)
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := is.TLSCertificate()
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func participantLeaf(id string) pki.Leaf {
	return pki.Leaf{CommonName: id, URIs: []*url.URL{pki.ParticipantURI(id)}, Client: true}
}

// client trusts the cluster CA and presents cert (if any) whatever CAs the server asks
// for, so that the server's verification is what a test exercises.
func (f *tlsFixture) client(cert *tls.Certificate) *http.Client {
	cfg := pki.ClientConfig(f.ca.Pool(), nil)
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	now := time.Now()
	f := &tlsFixture{t: t}
	var err error
	if f.ca, err = pki.NewCA("test cluster CA", now.Add(-time.Hour), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f.otherCA, err = pki.NewCA("other CA", now.Add(-time.Hour), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	require := httptest.NewUnstartedServer(nil)
	request := httptest.NewUnstartedServer(nil)
	node := rafttest.Start(t, rafttest.Options{HTTPAddr: "https://" + require.Listener.Addr().String(), AdminTokenHash: TokenHash(testAdminToken)})
	h := New(Options{Node: node.Node, TempDir: t.TempDir(), ClusterCA: f.ca.Pool()}).Handler()
	serverCert := f.issue(f.ca, pki.Leaf{CommonName: "n1", URIs: []*url.URL{pki.NodeURI("n1")}, Hosts: []string{"127.0.0.1"}, Server: true, Client: true})
	for _, s := range []struct {
		srv  *httptest.Server
		mode pki.ClientAuth
		url  *string
	}{{require, pki.ClientAuthRequire, &f.require}, {request, pki.ClientAuthRequest, &f.request}} {
		s.srv.Config.Handler = h
		s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected here
		s.srv.TLS = pki.ServerConfig(serverCert, f.ca.Pool(), s.mode)
		s.srv.StartTLS()
		*s.url = s.srv.URL
	}
	t.Cleanup(func() {
		require.Close()
		request.Close()
	})
	return f
}

// call sends a request; code 0 means no HTTP answer (the TLS handshake failed).
func (f *tlsFixture) call(c *http.Client, base, method, path, token string, body any, header map[string]string) (int, string) {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		r = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, base+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestTLSAPI is the API's mutual-TLS matrix. Plain HTTP is not served; with client
// certificates required, a caller without one, with one from another CA, or with an
// expired one fails the handshake; a verified certificate maps to its participant (URI
// SAN, else CN) and is refused as tokens are when that participant is unknown (401) or
// disabled (401, as a revoked token); a token alongside must name the same participant (else 401); a node's
// certificate names no participant of its own, and only a node may vouch for the
// participant of a forwarded request.
func TestTLSAPI(t *testing.T) {
	f := newTLSFixture(t)
	admin := f.client(nil)
	for _, p := range []struct{ id, sys string }{{"hosp-a", sysA}, {"hosp-cn", sysB}, {"hosp-d", "urn:oid:2.16.840.1.113883.3.7003"}} {
		if code, body := f.call(admin, f.request, "POST", "/fhir/Organization", testAdminToken, org(p.id, p.sys), nil); code != 201 {
			t.Fatalf("add %s: %d %s", p.id, code, body)
		}
	}
	code, body := f.call(admin, f.request, "POST", "/fhir/Organization/hosp-a/$rotate-token", testAdminToken, nil, nil)
	if code != 200 {
		t.Fatalf("rotate hosp-a's token: %d %s", code, body)
	}
	tokA := tokenOf(t, []byte(body))
	if code, body := f.call(admin, f.request, "POST", "/fhir/Organization/hosp-d/$disable", testAdminToken, nil, nil); code != 200 {
		t.Fatalf("disable hosp-d: %d %s", code, body)
	}

	cert := func(ca *pki.CA, l pki.Leaf) *tls.Certificate { c := f.issue(ca, l); return &c }
	hospA := cert(f.ca, participantLeaf("hosp-a"))
	adminCert := cert(f.ca, participantLeaf("admin"))
	expired := participantLeaf("hosp-a")
	expired.NotBefore, expired.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	node2 := cert(f.ca, pki.Leaf{CommonName: "n2", URIs: []*url.URL{pki.NodeURI("n2")}, Client: true, Server: true})
	otherNode := cert(f.otherCA, pki.Leaf{CommonName: "n2", URIs: []*url.URL{pki.NodeURI("n2")}, Client: true, Server: true})

	// An admin-only route: 200 says the caller is the admin, 403 names who it is.
	const adminPath = "/v1/cluster/self"
	forwardedAs := func(id string) map[string]string {
		return map[string]string{headerForwarded: "n2", headerForwardedParticipant: id}
	}
	cases := []struct {
		name   string
		base   string
		cert   *tls.Certificate
		token  string
		header map[string]string
		path   string
		code   int    // 0: the handshake must fail
		says   string // in the answer
	}{
		{"require: no certificate", f.require, nil, testAdminToken, nil, adminPath, 0, ""},
		{"require: other CA", f.require, cert(f.otherCA, participantLeaf("admin")), "", nil, adminPath, 0, ""},
		{"require: expired", f.require, cert(f.ca, expired), "", nil, adminPath, 0, ""},
		{"require: admin by URI SAN", f.require, adminCert, "", nil, adminPath, 200, `"id"`},
		{"require: participant by URI SAN", f.require, hospA, "", nil, adminPath, 403, `participant \"hosp-a\"`},
		{"require: participant reads", f.require, hospA, "", nil, "/fhir/Organization/hosp-a", 200, `"hosp-a"`},
		{"require: participant by CN", f.require, cert(f.ca, pki.Leaf{CommonName: "hosp-cn", Client: true}), "", nil, adminPath, 403, `participant \"hosp-cn\"`},
		{"require: URI SAN wins over CN", f.require, cert(f.ca, pki.Leaf{CommonName: "admin", URIs: []*url.URL{pki.ParticipantURI("hosp-a")}, Client: true}), "", nil, adminPath, 403, `participant \"hosp-a\"`},
		{"require: unknown participant", f.require, cert(f.ca, participantLeaf("ghost")), "", nil, adminPath, 401, "no known participant"},
		{"require: disabled participant", f.require, cert(f.ca, participantLeaf("hosp-d")), "", nil, "/fhir/Organization/hosp-a", 401, "disabled credentials"},
		{"require: no identity in the certificate", f.require, cert(f.ca, pki.Leaf{Client: true}), "", nil, "/fhir/Organization/hosp-a", 401, "names no participant"},
		{"require: certificate and its own token", f.require, hospA, tokA, nil, "/fhir/Organization/hosp-a", 200, `"hosp-a"`},
		{"require: certificate and another's token", f.require, hospA, testAdminToken, nil, adminPath, 401, "different participants"},
		{"require: node certificate alone", f.require, node2, "", nil, adminPath, 401, "missing bearer token"},
		{"require: node certificate and admin token", f.require, node2, testAdminToken, nil, adminPath, 200, `"id"`},
		{"require: node vouches for a forwarded participant", f.require, node2, "", forwardedAs("hosp-a"), adminPath, 403, `participant \"hosp-a\"`},
		{"require: participant forges the forwarding headers", f.require, hospA, "", forwardedAs("admin"), adminPath, 403, `participant \"hosp-a\"`},
		{"require: other CA's node", f.require, otherNode, "", forwardedAs("admin"), adminPath, 0, ""},
		{"request: token without certificate", f.request, nil, testAdminToken, nil, adminPath, 200, `"id"`},
		{"request: nothing", f.request, nil, "", nil, adminPath, 401, "missing bearer token"},
		{"request: other CA", f.request, cert(f.otherCA, participantLeaf("admin")), testAdminToken, nil, adminPath, 0, ""},
		{"request: expired", f.request, cert(f.ca, expired), testAdminToken, nil, adminPath, 0, ""},
		{"request: certificate", f.request, adminCert, "", nil, adminPath, 200, `"id"`},
		{"request: certificate and another's token", f.request, adminCert, tokA, nil, adminPath, 401, "different participants"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.call(f.client(tc.cert), tc.base, "GET", tc.path, tc.token, nil, tc.header)
			if code != tc.code {
				t.Fatalf("got %d, want %d: %s", code, tc.code, body)
			}
			if tc.code == 0 && !strings.Contains(body, "tls") {
				t.Fatalf("not a TLS refusal: %s", body)
			}
			if !strings.Contains(body, tc.says) {
				t.Fatalf("answer does not say %q: %s", tc.says, body)
			}
		})
	}

	t.Run("plain HTTP", func(t *testing.T) {
		for _, base := range []string{f.require, f.request} {
			resp, err := http.Get(strings.Replace(base, "https://", "http://", 1) + "/v1/health")
			if err != nil {
				continue // refused outright: fine
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.Header.Get(HeaderNode) != "" {
				t.Fatalf("plain HTTP to %s was served by the API: %d", base, resp.StatusCode)
			}
		}
	})
}
