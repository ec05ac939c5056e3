package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTLSCluster runs three rls processes with certificates from `rls tls init`: the API
// over HTTPS requiring client certificates and Raft over mutual TLS. The nodes join over
// https; a participant written through a follower by a caller that presents only the
// admin's client certificate (the CLI's -ca-cert/-client-cert/-client-key) reaches every
// node with equal state hashes. Plain HTTP to a node gets no API answer, and a node
// holding certificates from another CA neither joins nor, added by an admin anyway,
// receives anything over Raft.
func TestTLSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	// Proxied: Raft's TLS runs through the byte-level fault proxies, as it would through NAT.
	c := NewCluster(t, Options{Nodes: 3, TLS: true, Proxied: true})
	leader := c.WaitLeader(20 * time.Second)
	follower := (leader + 1) % 3

	// Plain HTTP to a TLS node: Go's TLS server answers 400 without running the API.
	resp, err := http.Get("http://" + c.Nodes[follower].HTTPAddr + "/v1/health")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.Header.Get("X-Rls-Node") != "" {
			t.Fatalf("plain HTTP to a TLS node was served: %d", resp.StatusCode)
		}
	}

	// A write through a follower authenticated by client certificate alone: the follower
	// forwards it to the leader over https, vouching for the certificate's participant.
	dir := c.tlsDir()
	out, err := exec.Command(rlsBinary, "participant", "add", "-addr", c.Nodes[follower].URL(),
		"-ca-cert", filepath.Join(dir, "ca.pem"), "-client-cert", filepath.Join(dir, "participant-admin.pem"),
		"-client-key", filepath.Join(dir, "participant-admin-key.pem"),
		"-id", "hosp-tls", "-name", "TLS Hospital", "-kind", "hospital", "-identifier-system", "urn:oid:2.16.840.1.113883.3.9999").CombinedOutput()
	if err != nil {
		t.Fatalf("rls participant add with a client certificate via follower %s: %v\n%s", c.Nodes[follower].ID, err, out)
	}
	for i := range c.Nodes {
		c.WaitFor(10*time.Second, "the participant on "+c.Nodes[i].ID, func() bool {
			code, _, _, err := c.call(i, "GET", "/fhir/Organization/hosp-tls?consistency=stale", nil)
			return err == nil && code == http.StatusOK
		})
	}
	c.WaitConverged(15 * time.Second)

	// A node with certificates from another CA.
	other := filepath.Join(c.Dir, "other-ca")
	if out, err := exec.Command(rlsBinary, "tls", "init", "-dir", other, "-nodes", "x1,x2", "-hosts", "127.0.0.1", "-days", "1").CombinedOutput(); err != nil {
		t.Fatalf("rls tls init (other CA): %v\n%s", err, out)
	}
	// It cannot join: the cluster's API refuses its certificate in the handshake.
	x1 := c.outsider(t, "x1", other, c.Nodes[leader].URL())
	select {
	case <-x1.exited:
		if x1.cmd.ProcessState.ExitCode() == 0 {
			t.Fatalf("x1 (other CA) exited 0 after -join")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("x1 (other CA) still running 30s after -join; it should have been refused")
	}
	if log, _ := os.ReadFile(x1.log); !strings.Contains(string(log), "certificate") {
		t.Errorf("x1's refusal does not say it is about its certificate:\n%s", log)
	}

	// Added by an admin anyway, it still gets nothing: Raft refuses its certificate.
	x2 := c.outsider(t, "x2", other, "")
	code, body, _, err := c.call(leader, "POST", "/v1/cluster/join", map[string]string{
		"id": "x2", "raft_addr": x2.raftAddr, "http_addr": "http://" + x2.httpAddr})
	if err != nil || code != http.StatusOK {
		t.Fatalf("admin join of x2: %d %s %v", code, body, err)
	}
	code, body, _, err = c.call(follower, "POST", "/fhir/Organization", map[string]any{
		"resourceType": "Organization", "id": "hosp-after", "name": "After",
		"type":       []any{map[string]any{"coding": []any{map[string]any{"system": "https://rls-hie.github.io/fhir/CodeSystem/participant-kind", "code": "hospital"}}}},
		"identifier": []any{map[string]any{"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.840.1.113883.3.9998"}}})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("write after the outsider was added: %d %s %v", code, body, err)
	}
	c.WaitConverged(15 * time.Second)
	// Several heartbeat rounds have passed; x2 must still have nothing and know no leader.
	var h struct {
		Leader       string `json:"leader"`
		AppliedIndex uint64 `json:"applied_index"`
	}
	resp, err = http.Get("http://" + x2.httpAddr + "/v1/health")
	if err != nil {
		t.Fatalf("x2 health: %v", err)
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || h.AppliedIndex != 0 || h.Leader != "" {
		t.Fatalf("x2 (other CA) got Raft traffic: leader %q, applied index %d (%v)", h.Leader, h.AppliedIndex, err)
	}
	if log, _ := os.ReadFile(c.Nodes[leader].LogPath); !strings.Contains(string(log), "certificate") {
		t.Errorf("the leader's log does not show Raft refusing x2's certificate")
	}
}

// outsiderNode is an rls process outside the harness's cluster.
type outsiderNode struct {
	cmd                     *exec.Cmd
	exited                  chan struct{}
	log, httpAddr, raftAddr string
}

// outsider starts node id with the node certificate in certDir (Raft over TLS with that
// CA; the API plain HTTP unless it joins, when it serves and calls https with those
// certificates). It is killed when the test ends.
func (c *Cluster) outsider(t *testing.T, id, certDir, join string) *outsiderNode {
	t.Helper()
	ports := freePorts(t, 2)
	o := &outsiderNode{exited: make(chan struct{}), log: filepath.Join(c.Dir, id+".log"), httpAddr: ports[0], raftAddr: ports[1]}
	cfg := filepath.Join(c.Dir, id+".hcl")
	hcl := fmt.Sprintf("raft {\n  tls = true\n  tls_cert_file = %q\n  tls_key_file = %q\n  tls_ca_file = %q\n}\n",
		filepath.Join(certDir, id+".pem"), filepath.Join(certDir, id+"-key.pem"), filepath.Join(certDir, "ca.pem"))
	args := []string{"agent", "-config", cfg, "-node-id", id, "-data-dir", filepath.Join(c.Dir, id),
		"-http-addr", o.httpAddr, "-raft-addr", o.raftAddr, "-admin-token-file", c.tokenFile()}
	if join != "" {
		hcl += fmt.Sprintf("tls {\n  cert_file = %q\n  key_file = %q\n  ca_file = %q\n}\n",
			filepath.Join(certDir, id+".pem"), filepath.Join(certDir, id+"-key.pem"), filepath.Join(certDir, "ca.pem"))
		args = append(args, "-join", join)
	}
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(o.log)
	if err != nil {
		t.Fatal(err)
	}
	o.cmd = exec.Command(rlsBinary, args...)
	o.cmd.Stdout, o.cmd.Stderr = logFile, logFile
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := o.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	go func() {
		o.cmd.Wait()
		logFile.Close()
		close(o.exited)
	}()
	t.Cleanup(func() {
		o.cmd.Process.Kill()
		<-o.exited
	})
	if join == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.WaitFor(10*time.Second, id+" to answer", func() bool {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+o.httpAddr+"/v1/health", nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
	}
	return o
}
