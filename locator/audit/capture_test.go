package audit

import (
	"fmt"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

// FuzzBoundAuditEntry: whatever another node sends in an audit batch, the entry the leader
// records from it passes the FSM's check.
func FuzzBoundAuditEntry(f *testing.F) {
	f.Add("n1", "dr\x00house", "/v1/locate", "a=1", "locate", "x\u202e", "E1")
	f.Fuzz(func(t *testing.T, node, obo, path, query, action, reason, euid string) {
		e := model.AuditEntry{ID: "a1", Node: node, OnBehalfOf: obo, Path: path, Query: query, Action: action, BreakGlass: reason,
			Source: obo, RequestID: path, Participant: node, Purpose: reason, Method: action, Outcome: query, EUIDs: []string{euid, node}, Records: []string{path}}
		Bound(&e)
		if err := command.CheckAuditEntry("", &e); err != nil {
			t.Fatalf("bounded entry refused: %v", err)
		}
	})
}

// TestCaptureAndReport: an entry records what the request disclosed, sorted and once each,
// with the outcome; the report a leader sends back carries it whole, and the forwarding
// node's entry, completed from the report, names what the leader authenticated and judged.
func TestCaptureAndReport(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	leader := Begin(now, Request{Node: "n1", Source: "10.0.0.9:5000", RequestID: "r1", OnBehalfOf: "dr\x00house", Action: "locate",
		Method: "GET", Path: "/v1/locate", RawQuery: "family=doe"})
	leader.Disclose([]string{"E2", "E1", ""}, []string{"p1"})
	leader.Disclose([]string{"E1"}, []string{"p1", "bad id with spaces"})
	e := leader.Complete(Outcome{Participant: "hosp-a", Purpose: "TREAT", Status: 0})
	if e.Status != 200 || e.Participant != "hosp-a" || e.Purpose != "TREAT" || e.OnBehalfOf != "dr\uFFFDhouse" ||
		!e.Observed.Equal(now) || e.Observed.Location() != time.UTC || e.Query != "family=doe" {
		t.Fatalf("entry %+v", e)
	}
	if len(e.EUIDs) != 2 || e.EUIDs[0] != "E1" || e.EUIDs[1] != "E2" || len(e.Records) != 1 || e.Records[0] != "p1" {
		t.Fatalf("disclosed %v %v", e.EUIDs, e.Records)
	}
	rep, ok := DecodeReport(ReportOf(e).Encode())
	if !ok || rep.Participant != "hosp-a" || len(rep.EUIDs) != 2 {
		t.Fatalf("report %+v %v", rep, ok)
	}
	if _, ok := DecodeReport("not base64 JSON"); ok {
		t.Fatal("a malformed report decoded")
	}
	follower := Begin(now, Request{Node: "n2", Action: "locate", Method: "GET", Path: "/v1/locate"})
	follower.Adopt(rep)
	f := follower.Complete(Outcome{Tentative: "someone-else", Purpose: rep.Purpose, Status: 200})
	if f.Participant != "hosp-a" || f.Node != "n2" || len(f.EUIDs) != 2 {
		t.Fatalf("forwarding node's entry %+v", f)
	}
	refused := Begin(now, Request{Node: "n1", Action: "patient-match", Method: "POST", Path: "/fhir/Patient/$match"}).
		Complete(Outcome{Participant: "hosp-a", Body: []byte(`{"resourceType":"Parameters"}`), Status: 403, Failed: true, Code: "forbidden"})
	if refused.Outcome != "forbidden" || refused.Query != `{"resourceType":"Parameters"}` || refused.Status != 403 {
		t.Fatalf("refused $match entry %+v", refused)
	}
	var nothing *Capture
	nothing.Disclose([]string{"E1"}, nil) // a route that is not audited
}

// TestDiscloseListsEachIDOnce: an import batch discloses hundreds of ids over several calls,
// many more than once; the entry lists each once, whether the lists are short or long.
func TestDiscloseListsEachIDOnce(t *testing.T) {
	for _, n := range []int{3, shortList, 400} {
		c := Begin(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Request{Node: "n1", Action: "patient-register", Method: "POST", Path: "/v1/patients/batch"})
		want := map[string]bool{}
		for call := range 3 {
			var euids, records []string
			for i := range n {
				id := fmt.Sprintf("E%04d", (i*7+call*n/2)%(2*n)) // half of each call's ids were disclosed before
				euids, records = append(euids, id, id), append(records, "p"+id)
				want[id] = true
			}
			c.Disclose(euids, records)
		}
		e := c.Complete(Outcome{Participant: "hosp-a"})
		if len(e.EUIDs) != len(want) || len(e.Records) != len(want) {
			t.Fatalf("%d ids a call: the entry lists %d EUIDs and %d records, want %d each", n, len(e.EUIDs), len(e.Records), len(want))
		}
		for i, id := range e.EUIDs {
			if !want[id] || e.Records[i] != "p"+id || i > 0 && e.EUIDs[i-1] >= id {
				t.Fatalf("%d ids a call: EUID %d is %q (record %q)", n, i, id, e.Records[i])
			}
		}
	}
}
