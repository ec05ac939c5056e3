package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rls-hie/rls/raft/pki"
)

// TestTLSInit checks what `rls tls init` writes: a CA, node certificates for server and
// client use with the node URI and the hosts, participant client certificates, keys
// readable by the owner only, and a refusal to overwrite any of it.
func TestTLSInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out, errOut bytes.Buffer
	args := []string{"rls", "tls", "init", "--dir", dir, "--nodes", "n1,n2", "--hosts", "127.0.0.1,rls.example", "--participants", "hosp-a", "--days", "2"}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	pool, err := pki.LoadPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	load := func(name string) *x509.Certificate {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	n1 := load("n1.pem")
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := n1.Verify(x509.VerifyOptions{Roots: pool, DNSName: "rls.example", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("n1.pem for usage %v: %v", usage, err)
		}
	}
	if id, ok := pki.NodeID(n1); !ok || id != "n1" || len(n1.IPAddresses) != 1 || n1.IPAddresses[0].String() != "127.0.0.1" {
		t.Fatalf("n1.pem: node %q %v, IPs %v", id, ok, n1.IPAddresses)
	}
	if d := n1.NotAfter.Sub(n1.NotBefore).Hours(); d < 47 || d > 49 {
		t.Fatalf("n1.pem valid %.0f hours, want 48", d)
	}
	hosp := load("participant-hosp-a.pem")
	if id, err := pki.ParticipantID(hosp); err != nil || id != "hosp-a" {
		t.Fatalf("participant certificate maps to %q, %v", id, err)
	}
	if _, err := hosp.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatalf("a participant certificate must not serve")
	}
	for _, key := range []string{"ca-key.pem", "n1-key.pem", "n2-key.pem", "participant-hosp-a-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, key))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v", key, err, st.Mode())
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	errOut.Reset()
	if code := run(args, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "refusing to overwrite") {
		t.Fatalf("second init: exit %d, %q", code, errOut.String())
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !bytes.Equal(before, after) {
		t.Fatal("the CA was overwritten")
	}
}

// TestTLSConfigSettings checks how the TLS settings combine: Raft TLS takes the API's
// files by default, and settings that cannot work are refused with the reason.
func TestTLSConfigSettings(t *testing.T) {
	dir := t.TempDir()
	base := []string{"-node-id", "a", "-data-dir", dir}
	cfg, err := parseAgentFlags(t, append(base, "-tls-cert-file", "n.pem", "-tls-key-file", "n-key.pem", "-tls-ca-file", "ca.pem",
		"-tls-client-auth", "require", "-raft-tls")...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Raft.TLSCertFile != "n.pem" || cfg.Raft.TLSKeyFile != "n-key.pem" || cfg.Raft.TLSCAFile != "ca.pem" || cfg.HTTPAdvertiseAddr != "https://127.0.0.1:8080" {
		t.Fatalf("raft TLS defaults: %+v, advertise %s", cfg.Raft, cfg.HTTPAdvertiseAddr)
	}
	for _, tc := range []struct {
		args  []string
		wants string
	}{
		{[]string{"-tls-client-auth", "maybe"}, "must be none, request or require"},
		{[]string{"-tls-client-auth", "require", "-tls-cert-file", "n.pem", "-tls-key-file", "k.pem"}, "needs tls.cert_file"},
		{[]string{"-raft-tls"}, "raft.tls needs"},
		{[]string{"-raft-tls-ca-file", "ca.pem"}, "raft.tls is off"},
	} {
		if _, err := parseAgentFlags(t, append(base, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.wants) {
			t.Errorf("%v: err = %v, want one mentioning %q", tc.args, err, tc.wants)
		}
	}
}
