// Package pki owns rls's certificates: making a cluster CA and the certificates it signs
// (nodes and participants), telling from a verified certificate whose it is, and the TLS
// settings every rls listener and client shares. It uses only the Go standard library, so
// an operator needs no openssl to set up a test cluster.
//
// Identities live in URI SANs: urn:rls:node:ID for a cluster node, urn:rls:participant:ID
// for a participant's client certificate. A node certificate never stands for a
// participant, and only a node certificate may speak Raft, so a participant holding a
// certificate from the same CA cannot join the cluster or write to its log.
//
// This package must never import raft/, locator/ or cmd/; they import it.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// URI prefixes of the identities rls certificates carry.
const (
	NodeURIPrefix        = "urn:rls:node:"
	ParticipantURIPrefix = "urn:rls:participant:"
)

// Errors of certificate identity.
var (
	// ErrNoIdentity: the certificate names no participant (no participant URI SAN and an
	// empty common name), or it is a node certificate where a participant is wanted.
	ErrNoIdentity = errors.New("certificate names no participant")
	// ErrNotNode: the certificate is not a cluster node's (no urn:rls:node: URI SAN).
	ErrNotNode = errors.New("certificate is not a cluster node certificate")
)

// NodeURI is the URI SAN of node id's certificate.
func NodeURI(id string) *url.URL { return urn(NodeURIPrefix + id) }

// ParticipantURI is the URI SAN of participant id's client certificate.
func ParticipantURI(id string) *url.URL { return urn(ParticipantURIPrefix + id) }

// urn builds an opaque urn: URL, which String() renders back unchanged (ids are letters,
// digits, '-' and '.', so nothing needs escaping).
func urn(s string) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: strings.TrimPrefix(s, "urn:")}
}

// NodeID returns the node id a certificate carries in its urn:rls:node: URI SAN.
func NodeID(cert *x509.Certificate) (string, bool) {
	for _, u := range cert.URIs {
		if id, ok := strings.CutPrefix(u.String(), NodeURIPrefix); ok && id != "" {
			return id, true
		}
	}
	return "", false
}

// ParticipantID maps a verified client certificate to a participant id: the
// urn:rls:participant: URI SAN if it has one (preferred: a SAN is meant for machine
// identity), else the subject common name (as CommonWell and OpenCR deployments issue
// them). A node certificate maps to no participant, whatever its common name says.
func ParticipantID(cert *x509.Certificate) (string, error) {
	if _, ok := NodeID(cert); ok {
		return "", fmt.Errorf("%w: it is a node certificate", ErrNoIdentity)
	}
	for _, u := range cert.URIs {
		if id, ok := strings.CutPrefix(u.String(), ParticipantURIPrefix); ok && id != "" {
			return id, nil
		}
	}
	if cn := strings.TrimSpace(cert.Subject.CommonName); cn != "" {
		return cn, nil
	}
	return "", ErrNoIdentity
}

// CA is a certificate authority: its certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA valid from notBefore to notAfter.
func NewCA(commonName string, notBefore, notAfter time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"rls"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaf certificates only; a stolen leaf key cannot mint more.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName string
	URIs       []*url.URL
	// Hosts are DNS names or IP addresses the certificate is valid for as a server.
	Hosts               []string
	NotBefore, NotAfter time.Time
	// Server and Client choose the extended key usages; a node certificate has both
	// (it serves the API and Raft, and dials its peers).
	Server, Client bool
}

// Issued is a certificate with its key, in PEM.
type Issued struct {
	CertPEM, KeyPEM []byte
	Cert            *x509.Certificate
}

// TLSCertificate returns the pair for a tls.Config.
func (i Issued) TLSCertificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(i.CertPEM, i.KeyPEM)
	if err != nil {
		return c, fmt.Errorf("load issued certificate: %w", err)
	}
	return c, nil
}

// Issue signs a new leaf certificate with a new P-256 key.
func (ca *CA) Issue(l Leaf) (Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, fmt.Errorf("generate key for %s: %w", l.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return Issued{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: []string{"rls"}},
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		URIs:         l.URIs,
	}
	if l.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if l.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Issued{}, fmt.Errorf("sign certificate for %s: %w", l.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Issued{}, fmt.Errorf("parse certificate for %s: %w", l.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Issued{}, fmt.Errorf("encode key for %s: %w", l.CommonName, err)
	}
	return Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Cert:    cert,
	}, nil
}

// IssueNode issues node id's certificate: server and client use, the node URI SAN, and
// hosts (plus the node id as a DNS name) as server names.
func (ca *CA) IssueNode(id string, hosts []string, notBefore, notAfter time.Time) (Issued, error) {
	return ca.Issue(Leaf{CommonName: id, URIs: []*url.URL{NodeURI(id)}, Hosts: append([]string{id}, hosts...),
		NotBefore: notBefore, NotAfter: notAfter, Server: true, Client: true})
}

// IssueParticipant issues participant id's client certificate (URI SAN and CN both name it).
func (ca *CA) IssueParticipant(id string, notBefore, notAfter time.Time) (Issued, error) {
	return ca.Issue(Leaf{CommonName: id, URIs: []*url.URL{ParticipantURI(id)},
		NotBefore: notBefore, NotAfter: notAfter, Client: true})
}

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM returns the CA key in PEM (PKCS#8).
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return s, nil
}

// LoadPool reads PEM bundles of CA certificates into one pool.
func LoadPool(files ...string) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !p.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
		}
	}
	return p, nil
}

// baseConfig holds the protocol settings every rls TLS endpoint shares: TLS 1.2 at least
// (1.3 is negotiated whenever both ends have it, and its suites are fixed by Go), and for
// 1.2 only forward-secret AEAD suites.
func baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// ClientAuth is how the API treats client certificates.
type ClientAuth string

// Client-auth modes of the API.
const (
	// ClientAuthNone asks for no client certificate; callers use bearer tokens.
	ClientAuthNone ClientAuth = "none"
	// ClientAuthRequest verifies a client certificate if one is presented and maps it to
	// a participant; callers without one use bearer tokens.
	ClientAuthRequest ClientAuth = "request"
	// ClientAuthRequire refuses the handshake of a caller without a verified certificate.
	ClientAuthRequire ClientAuth = "require"
)

// ParseClientAuth checks a client_auth setting ("" means none).
func ParseClientAuth(s string) (ClientAuth, error) {
	switch ClientAuth(s) {
	case "", ClientAuthNone:
		return ClientAuthNone, nil
	case ClientAuthRequest, ClientAuthRequire:
		return ClientAuth(s), nil
	}
	return "", fmt.Errorf("client_auth %q must be none, request or require", s)
}

// ServerConfig is the API's TLS configuration: cert serves, clientCAs (nil with
// ClientAuthNone) verifies client certificates.
func ServerConfig(cert tls.Certificate, clientCAs *x509.CertPool, mode ClientAuth) *tls.Config {
	c := baseConfig()
	c.Certificates = []tls.Certificate{cert}
	c.ClientCAs = clientCAs
	switch mode {
	case ClientAuthRequest:
		c.ClientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		c.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		c.ClientAuth = tls.NoClientCert
	}
	return c
}

// ClientConfig is an HTTPS client's configuration: roots verifies the server (nil: the
// system roots), cert (if any) is presented as the client certificate.
func ClientConfig(roots *x509.CertPool, cert *tls.Certificate) *tls.Config {
	c := baseConfig()
	c.RootCAs = roots
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// NodeConfig is the Raft transport's TLS configuration, used both to accept and to dial:
// each end presents cert and requires the other end's certificate to chain to the cluster
// CA (ca) and to be a node certificate. The host name is not checked: peers are dialled
// at the Raft addresses in the configuration or at peer_dial_addresses (NAT, proxies),
// which need not be names in the certificate; membership of the cluster is what the
// chain and the node URI prove.
func NodeConfig(cert tls.Certificate, ca *x509.CertPool) *tls.Config {
	c := baseConfig()
	c.Certificates = []tls.Certificate{cert}
	c.ClientCAs = ca
	c.ClientAuth = tls.RequireAndVerifyClientCert
	// The dialling side skips Go's built-in check (it would also demand the host name)
	// and runs the same chain check as the accepting side in VerifyConnection.
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyNode(cs, ca)
	}
	return c
}

// verifyNode checks that the peer presented a certificate that chains to ca, is valid now
// and carries a node identity.
func verifyNode(cs tls.ConnectionState, ca *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("raft peer presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("raft peer certificate %q: %w", leaf.Subject.CommonName, err)
	}
	if _, ok := NodeID(leaf); !ok {
		return fmt.Errorf("raft peer certificate %q: %w", leaf.Subject.CommonName, ErrNotNode)
	}
	return nil
}

// IsClusterNode reports whether cert, already verified by a TLS handshake against some
// pool, chains to the cluster CA ca and carries a node identity; it returns the node id.
// The API uses it to trust what a peer node vouches for (the participant of a forwarded
// request), which a participant certificate from the same CA must not be able to do.
func IsClusterNode(chain []*x509.Certificate, ca *x509.CertPool) (string, bool) {
	if len(chain) == 0 || ca == nil {
		return "", false
	}
	if verifyNode(tls.ConnectionState{PeerCertificates: chain}, ca) != nil {
		return "", false
	}
	return NodeID(chain[0])
}

// IsHandshakeRefusal reports whether err is a TLS handshake that one side refused over a
// certificate (untrusted, expired, wrong name, missing). Nothing was sent, and retrying
// cannot help until an operator fixes the certificates.
func IsHandshakeRefusal(err error) bool {
	// The peer's refusal arrives as an alert, which crypto/tls reports as a net.OpError
	// with Op "remote error".
	var alert *net.OpError
	var verify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	return (errors.As(err, &alert) && alert.Op == "remote error") || errors.As(err, &verify) ||
		errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &host)
}
