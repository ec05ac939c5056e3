package locator

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/raft/rafttest"
)

// TestDecisionSourceNeverWaitsForTheState: a follower's state machine asks for the
// leader's decisions while it holds a read transaction of its state file, so the source
// must not read the state on the way. A million-person import stopped a three-node cluster
// for good when it did: the file outgrew its memory map, the flush that had to map more
// waited for the state machine's transaction, and the state machine, asking, opened a
// second one behind the waiting flush. Here the lookup of the leader (the part that reads
// the state) is held back as that flush would hold it: Decided must still answer at once,
// match by itself meanwhile, start one lookup only, and take the leader's decisions once
// the lookup has found where to ask.
func TestDecisionSourceNeverWaitsForTheState(t *testing.T) {
	if testing.Short() {
		t.Skip("two nodes")
	}
	leaderAPI, followerAPI := httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil)
	leader := rafttest.Start(t, rafttest.Options{ID: "n1", HTTPAddr: "http://" + leaderAPI.Listener.Addr().String(), AdminTokenHash: TokenHash(testAdminToken)})
	leaderAPI.Config.Handler = New(Options{Node: leader.Node, TempDir: t.TempDir(), AddressRateLimit: -1, AuthFailureRate: -1}).Handler()
	leaderAPI.Start()
	t.Cleanup(leaderAPI.Close)
	follower := rafttest.Start(t, rafttest.Options{ID: "n2", HTTPAddr: "http://" + followerAPI.Listener.Addr().String(), Join: true})
	rafttest.Join(t, leader, follower)
	followerServer := New(Options{Node: follower.Node, TempDir: t.TempDir(), AddressRateLimit: -1, AuthFailureRate: -1})
	followerAPI.Config.Handler = followerServer.Handler()
	followerAPI.Start()
	t.Cleanup(followerAPI.Close)

	// A registration through the leader: an entry whose decisions the leader holds.
	admin := &testAPI{t: t, url: leaderAPI.URL, node: leader.Node}
	code, body, _ := admin.do("POST", "/fhir/Organization", testAdminToken, org("hosp-a", sysA), nil)
	if code != 201 {
		t.Fatalf("add participant: %d %s", code, body)
	}
	before := leader.AppliedIndex()
	code, body, _ = admin.do("POST", "/fhir/Patient", tokenOf(t, body), patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	// The leader's own record of the entry: its index (the entries around it are the
	// participant's and the audit's).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, term, err := leader.State().Applied()
	if err != nil {
		t.Fatal(err)
	}
	var registration uint64
	testkit.WaitFor(t, 5*time.Second, "the leader to hold the registration's decisions", func() bool {
		for index := before + 1; index <= before+10 && registration == 0; index++ {
			short, stop := context.WithTimeout(ctx, 10*time.Millisecond)
			_, ok, _ := leader.DecidedJSON(short, index, term)
			stop()
			if ok {
				registration = index
			}
		}
		return registration != 0
	})
	after := registration + 1
	if err := follower.WaitApplied(ctx, registration); err != nil {
		t.Fatal(err)
	}

	src := newDecisionSource(followerServer)
	release := make(chan struct{})
	var lookups atomic.Int32
	src.lookup = func() (*decidedTarget, error) {
		lookups.Add(1)
		<-release
		return src.lookupLeader()
	}
	for range 3 {
		answered := make(chan bool, 1)
		go func() { _, ok := src.Decided(registration, term); answered <- ok }()
		select {
		case ok := <-answered:
			if ok {
				t.Fatal("Decided gave decisions before it knew where to ask")
			}
		case <-time.After(2 * time.Second):
			close(release)
			t.Fatal("Decided waited for the lookup of the leader, which reads the state")
		}
	}
	testkit.WaitFor(t, 5*time.Second, "a lookup to start", func() bool { return lookups.Load() > 0 })
	time.Sleep(50 * time.Millisecond)
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d lookups started while one was held back, want 1", n)
	}
	close(release)
	testkit.WaitFor(t, 5*time.Second, "the lookup to find the leader", func() bool { return src.target.Load() != nil })

	// Now it asks: exactly the registration entry has decisions, the others are not held.
	taken := 0
	for index := before + 1; index <= after; index++ {
		e, ok := src.Decided(index, term)
		if !ok {
			continue
		}
		taken++
		if index != registration || e.Index != index || len(e.Decisions) != 1 || e.Decisions[0].EUID == "" {
			t.Errorf("decisions of entry %d: %+v", index, e)
		}
	}
	if taken != 1 {
		t.Errorf("took the leader's decisions for %d entries of %d..%d, want the registration's (%d) alone", taken, before+1, after, registration)
	}
	if src.pausedUntil.Load() != 0 {
		t.Error("a follower that asked successfully paused")
	}

	// An entry the leader has not applied (it waits for it a while): the follower matches
	// that one itself, but neither pauses nor forgets where to ask.
	if _, err := src.ask(src.target.Load(), after+1000, term); !errors.Is(err, errLeaderBehind) {
		t.Fatalf("asking for an entry the leader has not applied: %v, want errLeaderBehind", err)
	}
	if _, ok := src.Decided(after+1000, term); ok {
		t.Fatal("decisions for an entry nobody applied")
	}
	if src.pausedUntil.Load() != 0 || src.target.Load() == nil {
		t.Error("a leader that had not applied one entry made the follower stop asking")
	}
}
