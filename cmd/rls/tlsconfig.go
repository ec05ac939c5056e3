package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/rls-hie/rls/raft/pki"
)

// tlsSetup is what the agent's TLS settings load into.
type tlsSetup struct {
	// api serves the HTTP API (nil: plain HTTP).
	api *tls.Config
	// peer is the client side of node-to-node HTTPS (join, forwarding to the leader, peer
	// status): it verifies the peer's API certificate and presents this node's.
	peer *tls.Config
	// raft carries Raft traffic (nil: plain TCP).
	raft *tls.Config
	// clusterCA recognises peer nodes' certificates, whose word the API takes for the
	// participant of a request they forward.
	clusterCA *x509.CertPool
}

// loadTLS reads the certificate files the config names. finish() has already checked
// that the settings fit together.
func (c *Config) loadTLS() (tlsSetup, error) {
	var s tlsSetup
	var apiCA *x509.CertPool
	if c.TLS.CAFile != "" {
		var err error
		if apiCA, err = pki.LoadPool(c.TLS.CAFile); err != nil {
			return s, fmt.Errorf("tls.ca_file: %w", err)
		}
	}
	var nodeCert *tls.Certificate
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return s, fmt.Errorf("load tls.cert_file %s: %w", c.TLS.CertFile, err)
		}
		nodeCert = &cert
		mode, _ := pki.ParseClientAuth(c.TLS.ClientAuth)
		var clientCAs *x509.CertPool
		if mode != pki.ClientAuthNone {
			// Peer nodes call the API with their Raft certificate too (forwarding,
			// joining), so a separate cluster CA must be trusted here as well.
			files := []string{c.TLS.CAFile}
			if c.Raft.TLS && c.Raft.TLSCAFile != c.TLS.CAFile {
				files = append(files, c.Raft.TLSCAFile)
			}
			var err error
			if clientCAs, err = pki.LoadPool(files...); err != nil {
				return s, fmt.Errorf("client CAs: %w", err)
			}
		}
		s.api = pki.ServerConfig(cert, clientCAs, mode)
	}
	s.clusterCA = apiCA
	if c.Raft.TLS {
		cert, err := tls.LoadX509KeyPair(c.Raft.TLSCertFile, c.Raft.TLSKeyFile)
		if err != nil {
			return s, fmt.Errorf("load raft.tls_cert_file %s: %w", c.Raft.TLSCertFile, err)
		}
		if err := checkNodeCert(cert); err != nil {
			return s, fmt.Errorf("raft.tls_cert_file %s: %w", c.Raft.TLSCertFile, err)
		}
		ca, err := pki.LoadPool(c.Raft.TLSCAFile)
		if err != nil {
			return s, fmt.Errorf("raft.tls_ca_file: %w", err)
		}
		s.raft = pki.NodeConfig(cert, ca)
		s.clusterCA = ca
		if nodeCert == nil {
			nodeCert = &cert
		}
	}
	s.peer = pki.ClientConfig(apiCA, nodeCert)
	return s, nil
}

// checkNodeCert refuses, at start, a Raft certificate that every peer would refuse: one
// without a node identity (for example a participant's client certificate).
func checkNodeCert(cert tls.Certificate) error {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("parse certificate: %w", err)
	}
	if _, ok := pki.NodeID(leaf); !ok {
		return fmt.Errorf("%w (it needs a URI SAN %sNODE_ID; `rls tls init` issues such certificates)", pki.ErrNotNode, pki.NodeURIPrefix)
	}
	return nil
}
