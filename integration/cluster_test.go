package integration

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLeaderKillLosesNoAcknowledgedWrite runs three real rls processes on loopback. Writers
// add participants through a follower while the leader is killed with SIGKILL; a new
// leader must appear within 10 s, writes go on, the killed node is restarted, and then
// every acknowledged write must be on every node, with equal state hashes at one index.
func TestLeaderKillLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	leader := c.WaitLeader(10 * time.Second)
	via := (leader + 1) % 3 // a follower, which forwards writes to the leader

	var mu sync.Mutex
	acked := map[string]bool{}
	unknown := 0
	write := func(id string) {
		code, body, _, err := c.call(via, "POST", "/fhir/Organization", organization(id))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && code == 201:
			acked[id] = true
		case err == nil && (code == 502 || code == 503 || code == 504):
			unknown++ // refused, or outcome unknown, during the election: not acknowledged
		default:
			t.Errorf("write %s: %d %s %v", id, code, body, err)
		}
	}
	for i := 0; i < 40; i++ {
		write(fmt.Sprintf("p%d", i))
	}

	// Keep four writers busy through the follower while the leader dies.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	next := 1000
	var nextMu sync.Mutex
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				nextMu.Lock()
				id := fmt.Sprintf("p%d", next)
				next++
				nextMu.Unlock()
				write(id)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	c.Kill(leader)
	var newLeader string
	c.WaitFor(10*time.Second, "a new leader", func() bool {
		s, err := c.Self(via)
		if err != nil || s.LeaderID == "" || s.LeaderID == c.Nodes[leader].ID {
			return false
		}
		newLeader = s.LeaderID
		return true
	})
	elected := time.Since(killed)
	t.Logf("new leader %s %s after SIGKILL of %s", newLeader, elected.Round(time.Millisecond), c.Nodes[leader].ID)
	// The writers must get writes through the new leader.
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	c.WaitFor(10*time.Second, "writes acknowledged by the new leader", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= before+50
	})
	close(stop)
	wg.Wait()
	for i := 0; i < 20; i++ {
		write(fmt.Sprintf("p%d", 5000+i))
	}

	c.Start(leader)
	hash := c.WaitConverged(30 * time.Second)
	t.Logf("%d acknowledged writes, %d refused or unknown; all nodes at index %d, hash %s", len(acked), unknown, hash.Index, hash.Hash[:16])

	for i := range c.Nodes {
		ids, err := c.ParticipantIDs(i)
		if err != nil {
			t.Fatalf("read participants of %s: %v", c.Nodes[i].ID, err)
		}
		missing := 0
		for id := range acked {
			if !ids[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s lacks %d of %d acknowledged writes", c.Nodes[i].ID, missing, len(acked))
		}
	}
	// The restarted node caught up from its own log and the leader's, without replacing
	// its state with a snapshot.
	if restores, err := c.Metric(leader, "rls_fsm_restores_total"); err != nil || restores != 0 {
		t.Errorf("restarted node reports %v restores (%v), want 0", restores, err)
	}
}

// TestBadRequestsChangeNothing sends malformed, unknown-field, oversized and conflicting
// requests through a follower and checks each gets a clear 4xx and no state change.
func TestBadRequestsChangeNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	via := (c.WaitLeader(10*time.Second) + 1) % 3
	if code, body, _, err := c.call(via, "POST", "/fhir/Organization", organization("p1")); err != nil || code != 201 {
		t.Fatalf("first add: %d %s %v", code, body, err)
	}
	before := c.WaitConverged(10 * time.Second)

	dupSystem := organization("p2")
	dupSystem["identifier"] = organization("p1")["identifier"]
	unknownField := organization("p3")
	unknownField["colour"] = "blue"
	badID := organization("p4")
	badID["id"] = "has spaces"
	cases := []struct {
		name, method, path string
		body               any
		status             int
		mentions           string
	}{
		{"duplicate id", "POST", "/fhir/Organization", organization("p1"), 409, "already exists"},
		{"identifier system taken", "POST", "/fhir/Organization", dupSystem, 409, "identifier system"},
		{"unknown field", "POST", "/fhir/Organization", unknownField, 400, "Organization.colour"},
		{"invalid id", "POST", "/fhir/Organization", badID, 400, "Organization.id"},
		{"malformed JSON", "POST", "/fhir/Organization", []byte(`{"resourceType": "Organization",`), 400, "malformed"},
		{"wrong resource", "POST", "/fhir/Organization", map[string]any{"resourceType": "Patient"}, 400, "resourceType"},
		{"oversized body", "POST", "/fhir/Organization", map[string]any{"resourceType": "Organization", "name": strings.Repeat("x", 2<<20)}, 413, "larger than"},
		{"join with an existing node id", "POST", "/v1/cluster/join", map[string]any{"id": "n2", "raft_addr": "127.0.0.1:1", "http_addr": "http://127.0.0.1:2"}, 409, "already a member"},
		{"join with a bad address", "POST", "/v1/cluster/join", map[string]any{"id": "n9", "raft_addr": "nowhere", "http_addr": "http://127.0.0.1:2"}, 400, "raft_addr"},
		{"remove an unknown node", "DELETE", "/v1/cluster/members/n9", nil, 404, "not a member"},
		{"bad consistency", "GET", "/fhir/Organization?consistency=eventual", nil, 400, "consistency"},
	}
	for _, tc := range cases {
		code, body, _, err := c.call(via, tc.method, tc.path, tc.body)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if code != tc.status || !strings.Contains(string(body), tc.mentions) || !strings.Contains(string(body), "OperationOutcome") {
			t.Errorf("%s: got %d %s; want %d with an OperationOutcome mentioning %q", tc.name, code, body, tc.status, tc.mentions)
		}
	}
	after := c.WaitConverged(10 * time.Second)
	if after.Hash != before.Hash {
		t.Fatalf("refused requests changed the state: %s -> %s", before.Hash, after.Hash)
	}

	// Authentication and roles.
	req := func(token string) int {
		r, _ := newRequest("GET", c.Nodes[via].URL()+"/v1/cluster/status", token)
		resp, err := httpClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := req(""); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code := req("rls_wrong"); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	code, body, _, _ := c.call(via, "POST", "/fhir/Organization", organization("p7"))
	if code != 201 {
		t.Fatalf("add p7: %d %s", code, body)
	}
	token := regexp.MustCompile(`"valueString":\s*"(rls_[^"]+)"`).FindSubmatch(body)
	if token == nil {
		t.Fatalf("no token in %s", body)
	}
	// The follower learns of the new token within a heartbeat or two.
	c.WaitFor(5*time.Second, "the follower to know the new token", func() bool { return req(string(token[1])) != 401 })
	if code := req(string(token[1])); code != 403 {
		t.Errorf("participant token on an admin endpoint: %d, want 403", code)
	}
}

// organization is the FHIR Organization of participant "pN", with assigning authority N.
func organization(id string) map[string]any {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "p"))
	if err != nil {
		panic(fmt.Sprintf("participant id %q is not pN", id))
	}
	return organizationBody(id, n, "")
}
