package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is the rls binary built once for the whole package by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rls-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "rls")
	build := exec.Command("go", "build", "-o", binary, "../cmd/rls")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rls:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminToken = "rls_integration_admin_token"

// node is one rls process.
type node struct {
	id       string
	dir      string
	httpAddr string
	raftAddr string
	args     []string
	cmd      *exec.Cmd
	exited   chan struct{}
}

func (n *node) url() string { return "http://" + n.httpAddr }

// cluster is a set of rls processes on loopback, each with its own data dir and ports.
type cluster struct {
	t     *testing.T
	nodes []*node
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCluster starts n processes: the first bootstraps, the others join it.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	base := t.TempDir()
	tokenFile := filepath.Join(base, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t}
	t.Cleanup(c.stopAll)
	for i := 0; i < n; i++ {
		nd := &node{id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(base, fmt.Sprintf("n%d", i+1)), httpAddr: freePort(t), raftAddr: freePort(t)}
		nd.args = []string{"agent", "-node-id", nd.id, "-data-dir", nd.dir, "-http-addr", nd.httpAddr, "-raft-addr", nd.raftAddr,
			"-admin-token-file", tokenFile, "-log-level", "debug"}
		if i == 0 {
			nd.args = append(nd.args, "-bootstrap")
		} else {
			nd.args = append(nd.args, "-join", c.nodes[0].url())
		}
		c.nodes = append(c.nodes, nd)
		c.start(i)
		if i == 0 {
			c.waitFor(15*time.Second, "the first node to lead", func() bool {
				st, err := c.status(0)
				return err == nil && st.Leader == "n1"
			})
		}
	}
	c.waitFor(30*time.Second, fmt.Sprintf("%d voters with a leader", n), func() bool {
		st, err := c.status(0)
		if err != nil || st.Leader == "" || len(st.Members) != n {
			return false
		}
		for _, m := range st.Members {
			if m.Suffrage != "voter" || m.Error != "" {
				return false
			}
		}
		return true
	})
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	logFile, err := os.OpenFile(filepath.Join(filepath.Dir(nd.dir), nd.id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.cmd = exec.Command(binary, nd.args...)
	nd.cmd.Stdout, nd.cmd.Stderr = logFile, logFile
	if err := nd.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", nd.id, err)
	}
	nd.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		logFile.Close()
		close(done)
	}(nd.cmd, nd.exited)
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *cluster) kill(i int) {
	nd := c.nodes[i]
	if nd.cmd == nil {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.exited
	nd.cmd = nil
}

func (c *cluster) stopAll() {
	for i, nd := range c.nodes {
		if nd.cmd != nil {
			nd.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-nd.exited:
				nd.cmd = nil
			case <-time.After(10 * time.Second):
				c.kill(i)
			}
		}
	}
	if c.t.Failed() {
		for _, nd := range c.nodes {
			if b, err := os.ReadFile(filepath.Join(filepath.Dir(nd.dir), nd.id+".log")); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				c.t.Logf("last log lines of %s:\n%s", nd.id, strings.Join(lines[max(0, len(lines)-25):], "\n"))
			}
		}
	}
}

func (c *cluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

// call sends a request to node i and returns status, body and headers.
func (c *cluster) call(i int, method, path string, body any) (int, []byte, http.Header, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, nil, nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.nodes[i].url()+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header, err
}

type memberStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Suffrage     string `json:"suffrage"`
	AppliedIndex uint64 `json:"applied_index"`
	Error        string `json:"error"`
}

type clusterStatus struct {
	Leader  string         `json:"leader"`
	Term    uint64         `json:"term"`
	Members []memberStatus `json:"members"`
}

func (c *cluster) status(i int) (clusterStatus, error) {
	var st clusterStatus
	code, body, _, err := c.call(i, "GET", "/v1/cluster/status", nil)
	if err != nil {
		return st, err
	}
	if code != 200 {
		return st, fmt.Errorf("status %d: %s", code, body)
	}
	return st, json.Unmarshal(body, &st)
}

type stateHash struct {
	Index uint64 `json:"index"`
	Hash  string `json:"hash"`
}

func (c *cluster) stateHash(i int) (stateHash, error) {
	var h stateHash
	code, body, _, err := c.call(i, "GET", "/v1/cluster/state-hash", nil)
	if err != nil {
		return h, err
	}
	if code != 200 {
		return h, fmt.Errorf("state-hash %d: %s", code, body)
	}
	return h, json.Unmarshal(body, &h)
}

// organization is the FHIR Organization body for participant i.
func organization(id string) map[string]any {
	return map[string]any{
		"resourceType": "Organization",
		"id":           id,
		"name":         "Participant " + id,
		"type":         []any{map[string]any{"coding": []any{map[string]any{"system": "https://rls-hie.github.io/fhir/CodeSystem/participant-kind", "code": "hospital"}}}},
		"identifier":   []any{map[string]any{"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.840.1.113883.3." + strings.TrimPrefix(id, "p")}},
	}
}

// participantIDs lists the participants node i holds, read from its own state.
func (c *cluster) participantIDs(i int) (map[string]bool, error) {
	code, body, _, err := c.call(i, "GET", "/fhir/Organization?consistency=stale&_count=1000", nil)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("search %d: %s", code, body)
	}
	var b struct {
		Total int `json:"total"`
		Entry []struct {
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	if b.Total > len(b.Entry) {
		return nil, fmt.Errorf("node holds %d participants, more than one page", b.Total)
	}
	ids := map[string]bool{}
	for _, e := range b.Entry {
		ids[e.Resource.ID] = true
	}
	return ids, nil
}

func newRequest(method, url, token string) (*http.Request, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}
