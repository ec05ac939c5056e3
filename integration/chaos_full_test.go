package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestChaosSlowAndFlakyLinks is scenario 5: every Raft link first gets 75 ms ± 50 ms of
// latency in each direction, then instead drops half of its connections (every 500 ms each
// connection, open or new, is reset with probability 1/2), and then the faults are removed.
// Pass rule: the history is linearizable and nothing acknowledged is lost; writes are
// visibly slowed while the latency is on (the proxies really are on the Raft path); and
// within 10 s of the faults' removal the write p99 over a 2 s window is back to normal:
// at most 3× the p99 measured before the faults plus 50 ms.
func TestChaosSlowAndFlakyLinks(t *testing.T) {
	requireFull(t)
	c := NewCluster(t, Options{Nodes: 3, Proxied: true})
	w := NewWorkload(c, WorkloadOptions{Clients: 8, Mix: Mix{Add: 4, Put: 4, Get: 2}})
	w.Start()
	phase := func(d time.Duration) (from, to int64) {
		from = w.History.Now()
		time.Sleep(d) // the phase's length: faults stay on while the clients run
		return from, w.History.Now()
	}
	time.Sleep(time.Second)
	baseFrom, baseTo := phase(6 * time.Second)

	for _, l := range c.Links() {
		c.Slow(l, 75*time.Millisecond, 50*time.Millisecond)
	}
	slowFrom, slowTo := phase(8 * time.Second)
	c.ClearToxics()

	// A connection that survives its draw would live for ever (raft pools them), so the
	// draw is repeated: every 500 ms each open connection of each link is reset with
	// probability 1/2, and so is each new one.
	dropFrom := w.History.Now()
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, l := range c.Links() {
			c.DropConnections(l, 0.5, 0)
		}
	}
	dropTo := w.History.Now()
	c.Heal()
	healed := w.History.Now()
	_, afterTo := phase(12 * time.Second)
	w.Stop()
	c.WaitConverged(30 * time.Second)
	w.FinalReads()
	w.Check()

	base := w.WriteLatencies(baseFrom, baseTo)
	slow := w.WriteLatencies(slowFrom, slowTo)
	drop := w.WriteLatencies(dropFrom, dropTo)
	normal := 3*percentile(base, 99) + 50*time.Millisecond
	t.Logf("write latency p50/p99: before %s/%s (%d writes), latency %s/%s (%d), dropped connections %s/%s (%d); normal means p99 <= %s",
		percentile(base, 50), percentile(base, 99), len(base), percentile(slow, 50), percentile(slow, 99), len(slow),
		percentile(drop, 50), percentile(drop, 99), len(drop), normal)
	if len(base) < 50 {
		t.Fatalf("only %d writes before the faults; cannot tell what normal is", len(base))
	}
	if percentile(slow, 50) < 50*time.Millisecond {
		t.Errorf("with 75±50 ms on every link the median write took %s: the latency is not on the Raft path", percentile(slow, 50))
	}
	const window = 2 * time.Second
	recovered := time.Duration(-1)
	for start := healed; start+int64(window) <= afterTo; start += int64(500 * time.Millisecond) {
		ds := w.WriteLatencies(start, start+int64(window))
		if len(ds) >= 20 && percentile(ds, 99) <= normal {
			recovered = time.Duration(start - healed)
			t.Logf("write p99 back to normal (%s over %d writes) in the window starting %s after the faults were removed", percentile(ds, 99), len(ds), recovered)
			break
		}
	}
	if recovered < 0 || recovered+window > 10*time.Second {
		t.Errorf("write p99 not back to normal (<= %s) within 10 s of removing the faults (first normal window starts %s after)", normal, recovered)
	}
	c.CheckNoCrash()
}

// snapshotIndexes lists the indexes of the Raft snapshots in node i's data dir.
func (c *Cluster) snapshotIndexes(i int) []uint64 {
	metas, _ := filepath.Glob(filepath.Join(c.Nodes[i].Dir, "snapshots", "*", "meta.json"))
	var out []uint64
	for _, path := range metas {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // being written or removed right now
		}
		var m struct{ Index uint64 }
		if json.Unmarshal(b, &m) == nil {
			out = append(out, m.Index)
		}
	}
	slices.Sort(out)
	return out
}

// TestChaosSnapshotInstall is scenario 6: with a small snapshot threshold and few trailing
// logs, a follower is killed, the others write well past what their logs keep, and the
// follower is restarted. Pass rule: it catches up through a snapshot install (its restore
// counter is 1 or 2: at least one install, and no install loop, also after more writes)
// and ends with the same state hash as the others; the leader never restores. Documents
// are registered throughout, so the install replaces a state holding documents and the
// follower must rebuild its Bleve index from it: its index must then answer every
// document search (per patient: all documents, by type, by date, the count, locate) with
// consistency=stale exactly as the leader's does with consistency=strong, the leader's
// holding every acknowledged document and no refused one; and on disk, once it is shut
// down, its index records no entry beyond its state's and holds exactly the documents the
// state had by that entry.
func TestChaosSnapshotInstall(t *testing.T) {
	requireFull(t)
	const trailing = 64
	c := NewCluster(t, Options{Nodes: 3, SnapshotThreshold: 128, TrailingLogs: trailing, SnapshotInterval: 200 * time.Millisecond})
	w := NewWorkload(c, WorkloadOptions{Clients: 8, Mix: Mix{Add: 3, Put: 3, Get: 1, Doc: 2}})
	w.Run(2 * time.Second)
	c.WaitConverged(30 * time.Second)

	leader := c.WaitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	st, err := c.Self(follower)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(follower)
	t.Logf("killed follower %s at log index %d", c.Nodes[follower].ID, st.LastLogIndex)

	// Write until every live node has compacted its log past what the follower holds.
	need := st.LastLogIndex + 2*trailing + 1
	w.Start()
	c.WaitFor(2*time.Minute, fmt.Sprintf("snapshots past index %d on the live nodes", need), func() bool {
		for _, i := range c.Live() {
			idx := c.snapshotIndexes(i)
			if len(idx) == 0 || idx[len(idx)-1] < need {
				return false
			}
		}
		return true
	})
	w.Stop()
	c.Start(follower)
	hash := c.WaitConverged(60 * time.Second)
	restores, err := c.Metric(follower, "rls_fsm_restores_total")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s caught up to index %d with %v snapshot restores", c.Nodes[follower].ID, hash.Index, restores)
	if restores < 1 || restores > 2 {
		t.Errorf("%s restored %v snapshots to catch up, want 1 or 2", c.Nodes[follower].ID, restores)
	}

	// More writes must reach it through the log alone: no install loop.
	w.Run(3 * time.Second)
	c.WaitConverged(30 * time.Second)
	if again, err := c.Metric(follower, "rls_fsm_restores_total"); err != nil || again > 2 || again != restores {
		t.Errorf("after more writes %s reports %v restores (%v), had %v: an install loop", c.Nodes[follower].ID, again, err, restores)
	}
	for _, i := range c.Live() {
		if i == follower {
			continue
		}
		if r, err := c.Metric(i, "rls_fsm_restores_total"); err != nil || r != 0 {
			t.Errorf("%s, which never fell behind, reports %v restores (%v)", c.Nodes[i].ID, r, err)
		}
	}
	w.FinalReads()
	w.Check()
	c.CheckDocumentsAgree(w, 30*time.Second)

	// What the follower's index holds on disk, read once it has shut down cleanly.
	c.Terminate(follower)
	disk, err := inspectDataDir(c.Nodes[follower].Dir)
	if err != nil {
		t.Fatalf("%s after shutdown: %v", c.Nodes[follower].ID, err)
	}
	docs, err := inspectDocuments(c.Nodes[follower].Dir)
	if err != nil {
		t.Fatalf("%s after shutdown: %v", c.Nodes[follower].ID, err)
	}
	sd, err := inspectSearchIndex(c.Nodes[follower].Dir)
	if err != nil {
		t.Fatalf("%s after shutdown: read its search index: %v", c.Nodes[follower].ID, err)
	}
	if sd.Unusable != "" {
		t.Errorf("%s left an unusable search index after a clean shutdown: %s", c.Nodes[follower].ID, sd.Unusable)
	}
	for _, p := range checkSearchDisk(sd, docs, disk.AppliedIndex) {
		t.Errorf("%s on disk: %s", c.Nodes[follower].ID, p)
	}
	t.Logf("%s on disk: state at %d with %d documents, search index %s at %d with %d", c.Nodes[follower].ID,
		disk.AppliedIndex, len(docs), sd.Generation, sd.Applied, len(sd.IDs))
	c.CheckNoCrash()
}

// TestChaosCrashLoop is scenario 7: one node, SIGKILLed in the middle of writes again and
// again. Pass rule, after every kill: the state file passes bbolt's consistency check
// (opened read-only while the node is down), its applied index is not ahead of the Raft
// log and names an entry of the same term there, every acknowledged write is in the Raft
// log on disk (a single node fsyncs before it acknowledges), the node starts again and
// leads, with its readable and applied indexes not ahead of its commit index; at the end,
// every acknowledged add is present, no refused one is, and the history is linearizable.
//
// The search index, after every kill: read on disk with Bleve, it either records no entry
// beyond the state's and holds exactly the documents the state had by that entry, or it
// is unusable (a crash mid-rebuild) and the node must rebuild it by itself; either way,
// once the node leads again, a strong search of each patient's documents (which waits for
// the index to reach the state) returns exactly the documents the state holds: those in
// the state file at the kill, plus those the restart replayed from the log (read back by
// id, which does not use the index). No acknowledged document may be missing.
func TestChaosCrashLoop(t *testing.T) {
	p := requireFull(t)
	// The eight clients share one address, and a single node acknowledges a write as soon
	// as its log entry is on disk: lift the per-address limit (500 requests a second), which
	// is not what this scenario tests.
	c := NewCluster(t, Options{Nodes: 1, ExtraHCL: "privacy {\n  address_rate_limit = -1\n}\n"})
	w := NewWorkload(c, WorkloadOptions{Clients: 8, Mix: Mix{Add: 4, Put: 4, Get: 2, Doc: 3, Reg: 1, Pix: 1}, Keys: 8})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	absent := map[string]bool{} // documents of unknown outcome a restart showed were never applied
	unusable, lagging := 0, 0
	for crash := 1; crash <= p.crashes; crash++ {
		w.Start()
		time.Sleep(between(rng, 100*time.Millisecond, 1500*time.Millisecond)) // kill at a random point of the writes
		c.Kill(0)
		w.Stop()
		var maxAcked uint64
		for _, op := range w.History.Ops() {
			if op.Outcome == acked && !op.Kind.isRead() {
				maxAcked = max(maxAcked, op.Index)
			}
		}
		disk, err := inspectDataDir(c.Nodes[0].Dir)
		if err != nil {
			t.Fatalf("crash %d: %v", crash, err)
		}
		if disk.AppliedIndex > disk.LastLogIndex {
			t.Errorf("crash %d: state applied index %d is ahead of the Raft log (last index %d)", crash, disk.AppliedIndex, disk.LastLogIndex)
		}
		if disk.AppliedIndex > 0 && disk.AppliedIndex >= disk.FirstLogIndex && disk.LogTermAtApplied != disk.AppliedTerm {
			t.Errorf("crash %d: state applied entry %d of term %d, the log has term %d there", crash, disk.AppliedIndex, disk.AppliedTerm, disk.LogTermAtApplied)
		}
		if maxAcked > disk.LastLogIndex {
			t.Errorf("crash %d: write acknowledged at index %d but the Raft log on disk ends at %d", crash, maxAcked, disk.LastLogIndex)
		}
		docs, err := inspectDocuments(c.Nodes[0].Dir)
		if err != nil {
			t.Fatalf("crash %d: %v", crash, err)
		}
		sd, err := inspectSearchIndex(c.Nodes[0].Dir)
		if err != nil {
			t.Fatalf("crash %d: read the search index: %v", crash, err)
		}
		if sd.Unusable != "" {
			unusable++
			t.Logf("crash %d: the search index on disk is unusable (%s); the node must rebuild it", crash, sd.Unusable)
		}
		if sd.Unusable == "" && len(sd.IDs) < len(docs) {
			lagging++ // the kill came between a commit and its indexing: the restart catches up
		}
		for _, problem := range checkSearchDisk(sd, docs, disk.AppliedIndex) {
			t.Errorf("crash %d: %s", crash, problem)
		}
		c.Start(0)
		c.WaitFor(30*time.Second, fmt.Sprintf("crash %d: the node to lead again", crash), func() bool {
			s, err := c.Self(0)
			return err == nil && s.LeaderReady
		})
		s, err := c.Self(0)
		if err != nil {
			t.Fatal(err)
		}
		if s.ReadableIndex > s.CommitIndex || s.AppliedIndex > s.CommitIndex {
			t.Errorf("crash %d: after restart readable %d / applied %d ahead of commit %d", crash, s.ReadableIndex, s.AppliedIndex, s.CommitIndex)
		}
		c.checkDocumentsAfterRestart(w, crash, docs, absent)
		c.CheckNoCrash()
		if t.Failed() {
			break
		}
		if crash%10 == 0 {
			t.Logf("crash %d: state at %d, log %d..%d, max acknowledged %d; %s", crash, disk.AppliedIndex, disk.FirstLogIndex, disk.LastLogIndex, maxAcked, w.History.Summary())
		}
	}
	t.Logf("after %d kills the search index on disk was behind the state %d times (caught up on restart) and unusable %d times (rebuilt)", p.crashes, lagging, unusable)
	w.FinalReads()
	w.Check()
}

// checkDocumentsAfterRestart is scenario 7's search rule after a restart of the single
// node (0), the workload stopped: for each document patient a strong search returns
// exactly the documents the state holds. Those are the ones in the state file at the kill
// (onDisk) and those of the registrations not in it that the restart replayed from the
// log, which a read by id (served from the state, not the index) finds; a registration
// found absent after a restart never appears later (its request died with the node), so
// absent remembers them across crashes. Every acknowledged document must be there, no
// refused one; and stale searches, asked after the strong ones, answer alike.
func (c *Cluster) checkDocumentsAfterRestart(w *Workload, crash int, onDisk map[string]diskDocument, absent map[string]bool) {
	c.t.Helper()
	want := map[string]map[string]bool{}
	for _, p := range w.docs.patients {
		want[p] = map[string]bool{}
	}
	inState := map[string]bool{}
	for _, d := range onDisk {
		inState[d.Master] = true
		if want[d.Patient] == nil {
			c.t.Errorf("crash %d: document %s on disk is about %s, not a document patient", crash, d.Master, d.Patient)
			continue
		}
		want[d.Patient][d.Master] = true
	}
	for _, op := range w.History.Ops() {
		if op.Kind != opDocument || inState[op.Value] {
			continue
		}
		if op.Outcome == notApplied || absent[op.Value] {
			if op.Outcome == acked {
				c.t.Errorf("crash %d: acknowledged document %s is gone", crash, op.Value)
			}
			continue
		}
		code, body, _, err := c.call(0, "GET", "/fhir/DocumentReference/"+documentID(op.Value)+"?consistency=strong", nil)
		switch {
		case err == nil && code == 200:
			want[op.Key][op.Value] = true
			inState[op.Value] = true
		case err == nil && code == 404:
			absent[op.Value] = true
			if op.Outcome == acked {
				c.t.Errorf("crash %d: acknowledged document %s (index %d) is not in the state after the restart", crash, op.Value, op.Index)
			}
		default:
			c.t.Fatalf("crash %d: read document %s by id: %d %s %v", crash, op.Value, code, body, err)
		}
	}
	for _, op := range w.History.Ops() {
		if op.Kind == opDocument && op.Outcome == notApplied && inState[op.Value] {
			c.t.Errorf("crash %d: document %s, answered as not applied, is in the state", crash, op.Value)
		}
	}
	// Every 10th restart all the searches of scenario 6, the others only the full list of
	// each patient's documents: the full set of each restart would add ~40 s to the run.
	queries := docQueries(w.docs.patients)
	if crash%10 != 0 {
		queries = nil
		for _, p := range w.docs.patients {
			queries = append(queries, allDocsQuery(p))
		}
	}
	strong, err := c.docAnswers(0, queries, "strong")
	if err != nil {
		c.t.Fatalf("crash %d: document searches after the restart: %v", crash, err)
	}
	// The strong searches waited for the index to reach the state; with no writes since,
	// stale ones (which never wait) must now answer the same.
	if stale, err := c.docAnswers(0, queries, "stale"); err != nil || !equalAnswers(stale, strong) {
		c.t.Errorf("crash %d: once the index caught up, stale document searches answer otherwise than strong ones (%v)", crash, err)
		c.reportAnswerDiff(0, stale, strong)
	}
	for _, p := range w.docs.patients {
		got := mastersOf(strong[allDocsQuery(p)])
		var missing, extra []string
		for m := range want[p] {
			if !got[m] {
				missing = append(missing, m)
			}
		}
		for m := range got {
			if !want[p][m] {
				extra = append(extra, m)
			}
		}
		if len(missing)+len(extra) > 0 {
			c.t.Errorf("crash %d: after the restart the index finds %d documents of %s, the state holds %d: missing %v, extra %v",
				crash, len(got), p, len(want[p]), missing[:min(5, len(missing))], extra[:min(5, len(extra))])
		}
	}
}

// TestChaosMembershipChange is scenario 8: under the scenario-2 workload a fourth node joins
// as a voter, then a follower is removed, then the leader itself. Pass rule: each change
// completes and its request is answered (not left to time out), every remaining node
// reports the same configuration (the same voters), no acknowledged write is lost, and the
// history is linearizable.
func TestChaosMembershipChange(t *testing.T) {
	p := requireFull(t)
	c := NewCluster(t, Options{Nodes: 3, Spares: 1})
	w := NewWorkload(c, WorkloadOptions{Clients: p.clients})
	w.Start()
	time.Sleep(3 * time.Second)

	c.AddNode(3)
	c.WaitVoters(60*time.Second, 0, 1, 2, 3)
	t.Logf("%s joined as a voter", c.Nodes[3].ID)
	time.Sleep(3 * time.Second)

	members := []int{0, 1, 2, 3}
	remove := func(victim int, what string) {
		t.Helper()
		via := members[0]
		if via == victim {
			via = members[1]
		}
		asked := time.Now()
		code, body, _, err := c.call(via, "DELETE", "/v1/cluster/members/"+c.Nodes[victim].ID, nil)
		took := time.Since(asked).Round(time.Millisecond)
		t.Logf("remove %s (%s) through %s: %d in %s", c.Nodes[victim].ID, what, c.Nodes[via].ID, code, took)
		// The change may race an election (a 503 then says so), but the request must be
		// answered, not left to time out in the forwarding node.
		if err != nil || code == 502 || code == 504 || (code != 200 && code != 503) {
			t.Errorf("removing %s (%s) through %s: %d %s %v after %s", c.Nodes[victim].ID, what, c.Nodes[via].ID, code, body, err, took)
		}
		members = slices.DeleteFunc(members, func(i int) bool { return i == victim })
		c.WaitVoters(60*time.Second, members...)
		c.Terminate(victim)
		time.Sleep(3 * time.Second)
	}
	leader := c.WaitLeader(20 * time.Second)
	follower := members[0]
	for _, i := range members {
		if i != leader && i != 3 {
			follower = i
			break
		}
	}
	remove(follower, "a follower")
	remove(c.WaitLeader(20*time.Second), "the leader")
	w.Stop()
	c.WaitConverged(30 * time.Second)
	w.FinalReads()
	w.Check()

	want := map[string]bool{}
	for _, i := range members {
		want[c.Nodes[i].ID] = true
	}
	for _, i := range members {
		st, err := c.status(i)
		if err != nil {
			t.Fatalf("status of %s: %v", c.Nodes[i].ID, err)
		}
		got := map[string]bool{}
		for _, m := range st.Members {
			if m.Suffrage != "voter" {
				t.Errorf("%s reports %s as %s", c.Nodes[i].ID, m.ID, m.Suffrage)
			}
			got[m.ID] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s has configuration %v, want %v", c.Nodes[i].ID, got, want)
		}
	}
	c.CheckNoCrash()
}
