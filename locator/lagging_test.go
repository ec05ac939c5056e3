package locator

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/rafttest"
	"github.com/rls-hie/rls/raft/state"
)

// TestNewParticipantAuthenticatesAtALaggingFollower: a participant added through the leader
// (acknowledged once the leader and one other node hold it) sends its first request that a
// follower answers itself (a stale read here; an HL7 v2 message's sender is resolved the
// same way) to a follower that has not received the entry yet. The follower does not know
// that anything it lacks is committed, so looking again once it holds what it knows of is
// not enough: it asks the leader for its commit index, waits until it holds that, and
// authenticates the participant (before, it answered 401).
func TestNewParticipantAuthenticatesAtALaggingFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes")
	}
	serve := func(node *rafttest.Node, srv *httptest.Server) {
		srv.Config.Handler = New(Options{Node: node.Node, TempDir: t.TempDir(), AddressRateLimit: -1, AuthFailureRate: -1, ForwardTimeout: 5 * time.Second}).Handler()
		srv.Start()
		t.Cleanup(srv.Close)
	}
	leaderAPI, secondAPI, laggingAPI := httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil)
	leader := rafttest.Start(t, rafttest.Options{ID: "n1", HTTPAddr: "http://" + leaderAPI.Listener.Addr().String(), AdminTokenHash: TokenHash(testAdminToken)})
	serve(leader, leaderAPI)
	second := rafttest.Start(t, rafttest.Options{ID: "n2", HTTPAddr: "http://" + secondAPI.Listener.Addr().String(), Join: true})
	rafttest.Join(t, leader, second)
	serve(second, secondAPI)
	lagging := rafttest.Start(t, rafttest.Options{ID: "n3", HTTPAddr: "http://" + laggingAPI.Listener.Addr().String(), Join: true})
	// The leader reaches n3's Raft listener only through a proxy the test can hold.
	proxy := newHoldingProxy(t, lagging.RaftAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := leader.Join(ctx, model.Node{ID: "n3", RaftAddr: proxy.addr, HTTPAddr: lagging.HTTPAddr}); err != nil {
		t.Fatal(err)
	}
	if err := lagging.WaitApplied(ctx, leader.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	serve(lagging, laggingAPI)
	at := func(base, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/fhir/Patient?family=Nobody&given=Some&consistency=stale", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(HeaderPurposeOfUse, "TREAT")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	// n3 serves under a fresh lease from the leader.
	testkit.WaitFor(t, 10*time.Second, "n3 to serve", func() bool { code, _ := at(laggingAPI.URL, testAdminToken); return code == http.StatusOK })

	proxy.hold()
	admin := &testAPI{t: t, url: leaderAPI.URL, node: leader.Node}
	code, body, _ := admin.do("POST", "/fhir/Organization", testAdminToken, org("hosp-new", sysA), nil)
	if code != http.StatusCreated {
		t.Fatalf("add participant: %d %s", code, body)
	}
	token := tokenOf(t, body)
	if err := lagging.SyncLocal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lagging.State().View(func(tx *state.Tx) error { _, err := tx.Participant("hosp-new"); return err }); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("n3 holds the new participant although the proxy held its traffic (%v)", err)
	}
	time.AfterFunc(50*time.Millisecond, proxy.release)
	start := time.Now()
	code, answer := at(laggingAPI.URL, token)
	if code != http.StatusOK {
		t.Fatalf("the new participant's first request at the lagging follower: %d, want 200: %.300s", code, answer)
	}
	t.Logf("answered after %v, once the follower held the participant", time.Since(start).Round(time.Millisecond))
}

// holdingProxy forwards TCP connections to a target, and holds every byte while held.
type holdingProxy struct {
	addr string
	mu   sync.Mutex
	cond *sync.Cond
	held bool
}

func newHoldingProxy(t *testing.T, target string) *holdingProxy {
	ln := testkit.Listen(t)
	p := &holdingProxy{addr: ln.Addr().String()}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(p.release)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(d, c)
			go p.pipe(c, d)
		}
	}()
	return p
}

func (p *holdingProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.held {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *holdingProxy) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

func (p *holdingProxy) release() {
	p.mu.Lock()
	p.held = false
	p.cond.Broadcast()
	p.mu.Unlock()
}
