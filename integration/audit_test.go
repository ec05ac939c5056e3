package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// auditEntry is the part of an audit entry this test checks.
type auditEntry struct {
	Seq       uint64   `json:"seq"`
	Node      string   `json:"node"`
	RequestID string   `json:"request_id"`
	Action    string   `json:"action"`
	Status    int      `json:"status"`
	EUIDs     []string `json:"euids"`
}

type auditVerification struct {
	OK       bool   `json:"ok"`
	Entries  uint64 `json:"entries"`
	HeadSeq  uint64 `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	Problem  string `json:"problem"`
}

// TestAuditCompleteWhenLeaderKilled: clients send a mix of successful and refused locates
// to the two followers (default reads, forwarded to the leader, and stale reads served
// locally), and the leader is SIGKILLed mid-run. Every authenticated request still has
// exactly one audit entry, written by the node the client called, with the status the
// client saw and the person it was told about (an unauthenticated one has none); the chain verifies, the same, on every node, the restarted one
// included. Then one follower's copy is rewritten with every later hash recomputed: it
// still verifies alone, and `rls audit verify -all` names it.
func TestAuditCompleteWhenLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes; skipped with -short")
	}
	c := NewCluster(t, Options{Nodes: 3})
	const system = "urn:oid:1.2.840.99.17"
	tok := c.addParticipant("hosp-audit", system)
	leader := c.WaitLeader(20 * time.Second)
	var followers []int
	for i := range c.Nodes {
		if i != leader {
			followers = append(followers, i)
		}
	}

	var mu sync.Mutex
	seen := map[string]int{} // request id → status the client saw
	euidOf := map[string]bool{}
	anonymous := map[string]bool{} // sent without a token
	var seq atomic.Int64
	send := func(node int, token, path string, body any, wantEUID bool) (int, []byte) {
		id := fmt.Sprintf("audit-int-%d", seq.Add(1))
		method := "GET"
		var r io.Reader
		if body != nil {
			method = "POST"
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, c.Nodes[node].URL()+path, r)
		req.Header.Set("X-Request-Id", id)
		req.Header.Set("Content-Type", "application/fhir+json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Errorf("request %s to %s: %v", id, c.Nodes[node].ID, err)
			return 0, nil
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mu.Lock()
		seen[id] = resp.StatusCode
		euidOf[id] = wantEUID && resp.StatusCode < 300
		anonymous[id] = token == ""
		mu.Unlock()
		return resp.StatusCode, data
	}

	patient := map[string]any{"resourceType": "Patient", "identifier": []any{map[string]any{"system": system, "value": "AU-1"}},
		"name": []any{map[string]any{"family": "Curie", "given": []string{"Marie"}}}, "birthDate": "1967-11-07"}
	if code, body := send(followers[0], tok, "/fhir/Patient", patient, true); code != 201 {
		t.Fatalf("register through a follower: %d %s", code, body)
	}
	ident := url.QueryEscape(system + "|AU-1")
	paths := []struct {
		path, token string
		euid        bool
	}{
		{"/v1/locate?identifier=" + ident, tok, true},
		{"/v1/locate?consistency=stale&identifier=" + ident, tok, true},
		{"/v1/locate?identifier=" + url.QueryEscape(system+"|nobody"), tok, false},
		{"/v1/locate?consistency=stale&identifier=" + ident, "", false},
	}
	const workersPerFollower, perWorker, killAfter = 3, 30, 50
	var sent atomic.Int64
	var killOnce sync.Once
	var wg sync.WaitGroup
	for _, f := range followers {
		for w := 0; w < workersPerFollower; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < perWorker; k++ {
					p := paths[(w+k)%len(paths)]
					send(f, p.token, p.path, nil, p.euid)
					if sent.Add(1) == killAfter {
						killOnce.Do(func() { c.Kill(leader) })
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	newLeader := c.WaitLeader(20*time.Second, leader)
	var list struct {
		Total   int          `json:"total"`
		Entries []auditEntry `json:"entries"`
	}
	if err := c.getJSON(newLeader, "/v1/audit?limit=10000", 20*time.Second, &list); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	var person string
	for _, e := range list.Entries {
		status, ours := seen[e.RequestID]
		if !ours {
			continue
		}
		count[e.RequestID]++
		if e.Status != status {
			t.Errorf("request %s: audited with status %d, the client saw %d", e.RequestID, e.Status, status)
		}
		if e.Node == c.Nodes[leader].ID {
			t.Errorf("request %s was sent to a follower but audited by the leader %s", e.RequestID, e.Node)
		}
		if euidOf[e.RequestID] {
			if len(e.EUIDs) != 1 || (person != "" && e.EUIDs[0] != person) {
				t.Errorf("request %s disclosed %v", e.RequestID, e.EUIDs)
			}
			if len(e.EUIDs) == 1 {
				person = e.EUIDs[0]
			}
		} else if len(e.EUIDs) != 0 {
			t.Errorf("request %s (status %d) audited as disclosing %v", e.RequestID, e.Status, e.EUIDs)
		}
	}
	statuses := map[int]int{}
	for id, status := range seen {
		statuses[status]++
		want := 1
		if status == http.StatusUnauthorized || anonymous[id] {
			// Nobody authenticated it: nothing is replicated for it. A request without a
			// token is refused with 401, or with 503 before authentication while no leader
			// can vouch for the token store (an election).
			want = 0
		}
		if count[id] != want {
			t.Errorf("request %s (status %d): %d audit entries, want %d", id, status, count[id], want)
		}
	}
	t.Logf("%d requests (statuses %v), leader %s killed after %d; %d audit entries in all", len(seen), statuses, c.Nodes[leader].ID, killAfter, list.Total)

	// Every node, the killed one restarted, holds the same intact chain.
	c.Restart(leader)
	var head auditVerification
	if err := c.getJSON(newLeader, "/v1/audit/verify?consistency=stale", 10*time.Second, &head); err != nil || !head.OK {
		t.Fatalf("verify on the new leader: %+v %v", head, err)
	}
	for i := range c.Nodes {
		c.WaitFor(20*time.Second, "node "+c.Nodes[i].ID+" to hold the verified audit chain", func() bool {
			var v auditVerification
			err := c.getJSON(i, "/v1/audit/verify?consistency=stale", 5*time.Second, &v)
			return err == nil && v.OK && v.HeadSeq >= head.HeadSeq
		})
	}
	verifyAll := func() (string, error) {
		out, err := exec.Command(rlsBinary, "audit", "verify", "-all", "-addr", c.Nodes[newLeader].URL(), "-token", adminToken).CombinedOutput()
		return string(out), err
	}
	if out, err := verifyAll(); err != nil {
		t.Fatalf("rls audit verify -all: %v\n%s", err, out)
	}

	// Someone with disk access to one follower erases a disclosure and recomputes every
	// later hash: that copy still verifies on its own, but no longer matches the others.
	// (The node is stopped, not killed: a kill leaves the last second or so of entries out
	// of the file, to be replayed from the log, and the forger's edit would miss them.)
	victim := followers[1]
	c.Terminate(victim)
	rewriteAuditChain(t, filepath.Join(c.Nodes[victim].Dir, "state.db"), 1) // the registration
	c.Start(victim)
	c.WaitFor(20*time.Second, "the altered node to answer", func() bool {
		var v auditVerification
		return c.getJSON(victim, "/v1/audit/verify?consistency=stale", 5*time.Second, &v) == nil && v.OK
	})
	out, err := verifyAll()
	if err == nil || !strings.Contains(out, c.Nodes[victim].ID+" holds another entry") {
		t.Fatalf("rls audit verify -all did not catch the rewritten copy on %s: %v\n%s", c.Nodes[victim].ID, err, out)
	}
}

// rewriteAuditChain removes the persons from audit entry seq of a stopped node's state file
// and recomputes the hash of that entry and every later one, and the head: the careful
// forger's edit.
func rewriteAuditChain(t *testing.T, path string, seq uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		prev := ""
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var e model.AuditEntry
			if _, err := e.UnmarshalMsg(v); err != nil {
				return err
			}
			if e.Seq < seq {
				prev = e.Hash
				continue
			}
			if e.Seq == seq {
				if len(e.EUIDs) == 0 {
					return fmt.Errorf("entry %d discloses nobody: nothing to erase", seq)
				}
				e.EUIDs, e.Records = nil, nil
			}
			e.PrevHash = prev
			if e.Hash, err = state.AuditHash(e); err != nil {
				return err
			}
			prev = e.Hash
			nv, err := e.MarshalMsg(nil)
			if err != nil {
				return err
			}
			if err := b.Put(bytes.Clone(k), nv); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("audit_meta")).Put([]byte("head_hash"), []byte(prev))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuditOfForwardedQueryPurpose: a read sent to a follower with its purpose of use in the
// query string (an HL7 v3 code) is forwarded to the leader, which takes the parameter out of
// the query before it checks the follower's signature; the request still has exactly one
// audit entry, written by the follower, with the purpose the leader's policy point accepted.
func TestAuditOfForwardedQueryPurpose(t *testing.T) {
	c := NewCluster(t, Options{Nodes: 3})
	leader, _, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Nodes[(leader+1)%3]
	const requestID = "forwarded-purpose-1"
	req, err := http.NewRequest("GET", follower.URL()+"/v1/locate?identifier="+url.QueryEscape("urn:oid:7.7|nobody")+"&purpose-of-use=PUBHLTH", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("X-Request-Id", requestID)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("locate of an unknown identifier through %s: %d", follower.ID, resp.StatusCode)
	}
	code, body, _, err := c.call(leader, "GET", "/v1/audit?limit=10000&consistency=strong", nil)
	if err != nil || code != 200 {
		t.Fatalf("audit list: %d %s %v", code, body, err)
	}
	var log struct {
		Entries []struct {
			auditEntry
			Purpose string `json:"purpose"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &log); err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, e := range log.Entries {
		if e.RequestID == requestID {
			mine = append(mine, fmt.Sprintf("%s %s %d %s", e.Node, e.Action, e.Status, e.Purpose))
		}
	}
	if want := follower.ID + " locate 404 PUBLICHEALTH"; len(mine) != 1 || mine[0] != want {
		t.Fatalf("audit entries of the forwarded request: %q, want [%q]", mine, want)
	}
}
