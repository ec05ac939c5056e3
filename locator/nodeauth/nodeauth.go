// Package nodeauth is how one node of an rls cluster proves to another that it is a member:
// the node credential, an HMAC-SHA256 under the cluster key of the node's id, the time, the
// method, the request URI and the body's hash, sent in the X-Rls-Node-Credential header; or,
// over TLS, a node certificate of the cluster CA (raft/pki). Internal calls (audit batches,
// the fence, the cluster key) and every request a follower forwards to the leader carry one.
//
// The key is drawn by the first leader and replicated through the log, so exactly the
// cluster's nodes hold it, and admins, who can take snapshots; participants never do. The
// time bounds a replay to MaxSkew. Key rotation is not built.
//
// This package owns the credential's format and its checks only. It must never import
// locator, the audit code or the replicated state: the caller hands it the key its state
// holds.
package nodeauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/raft/pki"
)

// Header carries a node credential.
const Header = "X-Rls-Node-Credential"

// MaxSkew is how far a node credential's time may be from the verifier's clock.
const MaxSkew = time.Minute

// ErrBadCredential is returned for a node credential that does not verify.
var ErrBadCredential = errors.New("node credential does not verify")

// NewClusterKey draws the secret of a new cluster's node credential (256 bits).
func NewClusterKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("draw cluster key: %w", err)
	}
	return k, nil
}

func mac(key []byte, node string, at int64, method, uri string, body []byte) string {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "rls-node-credential\n%s\n%d\n%s\n%s\n%x", node, at, method, uri, sum)
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns the credential of node for a request: "node unix-millis hmac".
func Sign(key []byte, node string, now time.Time, method, uri string, body []byte) string {
	at := now.UnixMilli()
	return node + " " + strconv.FormatInt(at, 10) + " " + mac(key, node, at, method, uri, body)
}

// Verify checks a credential made by Sign and returns the node id it names.
func Verify(key []byte, credential string, now time.Time, method, uri string, body []byte) (string, error) {
	parts := strings.Fields(credential)
	if len(key) == 0 || len(parts) != 3 {
		return "", ErrBadCredential
	}
	at, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", ErrBadCredential
	}
	if d := now.Sub(time.UnixMilli(at)); d > MaxSkew || d < -MaxSkew {
		return "", fmt.Errorf("%w: its time is %s away from this node's clock", ErrBadCredential, d.Round(time.Second))
	}
	want := mac(key, parts[0], at, method, uri, body)
	if !hmac.Equal([]byte(want), []byte(parts[2])) {
		return "", ErrBadCredential
	}
	return parts[0], nil
}

// SignRequest signs req, whose body is body, as node: over its method and request URI, now.
func SignRequest(req *http.Request, key []byte, node string, body []byte) {
	req.Header.Set(Header, Sign(key, node, time.Now(), req.Method, req.URL.RequestURI(), body))
}

// Signed reports whether r carries a node credential (verified or not).
func Signed(r *http.Request) bool { return r.Header.Get(Header) != "" }

// VerifyRequest checks r's node credential against key, for the request URI r arrived with
// (uri) and its body, and returns the node id it names.
func VerifyRequest(r *http.Request, key []byte, uri string, body []byte) (string, error) {
	return Verify(key, r.Header.Get(Header), time.Now(), r.Method, uri, body)
}

// NodeCertificate reports whether r came over TLS with a node certificate of the cluster
// CA, and the node id it names.
func NodeCertificate(r *http.Request, clusterCA *x509.CertPool) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", false
	}
	return pki.IsClusterNode(r.TLS.VerifiedChains[0], clusterCA)
}
