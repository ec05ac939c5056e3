package integration

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/locator/hl7"
)

// The HL7 v2 interface on a cluster of real processes: messages sent to a follower's
// MLLP listener (forwarded to the leader with the sender the follower named by MSH-4), and
// a PIX update notification pending when the leader is killed.

const (
	hl7SysA = "urn:oid:2.16.840.1.113883.3.8001"
	hl7SysB = "urn:oid:2.16.840.1.113883.3.8002"
)

// pixConsumer is an MLLP endpoint in the test process: it acknowledges A31s with AA, or
// with AR while refusing (an endpoint that is down for a while), and records both.
type pixConsumer struct {
	mu       sync.Mutex
	refusing bool
	accepted []*hl7.Message
	refused  []*hl7.Message
	addr     string
}

func newPIXConsumer(t *testing.T) *pixConsumer {
	t.Helper()
	pc := &pixConsumer{}
	l := testkit.Listen(t)
	srv := &hl7.Server{Handler: hl7.HandlerFunc(func(ctx context.Context, r *hl7.Request) [][]byte {
		m, err := hl7.Parse(r.Message)
		if err != nil {
			return nil
		}
		pc.mu.Lock()
		defer pc.mu.Unlock()
		code := hl7.AA
		if pc.refusing {
			code = hl7.AR
			pc.refused = append(pc.refused, m)
		} else {
			pc.accepted = append(pc.accepted, m)
		}
		return [][]byte{hl7.Ack(m.Header(), hl7.Responder{Application: "CONSUMER"}, code, "C1", time.Now(), "").Encode()}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	pc.addr = l.Addr().String()
	return pc
}

func (pc *pixConsumer) setRefusing(v bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.refusing = v
}

// has reports whether a message naming every given identifier (value^^^&OID&ISO) was
// accepted (or, with refused, refused).
func (pc *pixConsumer) has(refused bool, ids ...string) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	list := pc.accepted
	if refused {
		list = pc.refused
	}
	for _, m := range list {
		var got []string
		for _, cx := range m.Segment("PID").Field(3) {
			got = append(got, "urn:oid:"+cx.Comp(4).Sub(2)+"|"+cx.Comp(1).String())
		}
		all := true
		for _, id := range ids {
			all = all && slices.Contains(got, id)
		}
		if all && m.Header().Trigger == "A31" {
			return true
		}
	}
	return false
}

// feedHL7 sends messages to node i's MLLP listener and requires AA for each.
func (c *Cluster) feedHL7(i int, msgs ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := hl7.Dial(ctx, c.Nodes[i].HL7Addr, nil)
	if err != nil {
		c.t.Fatalf("MLLP to %s: %v", c.Nodes[i].ID, err)
	}
	defer cl.Close()
	for _, msg := range msgs {
		raw, err := cl.Exchange(ctx, []byte(strings.ReplaceAll(msg, "\n", "\r")))
		if err != nil {
			c.t.Fatalf("MLLP exchange with %s: %v", c.Nodes[i].ID, err)
		}
		ack, err := hl7.Parse(raw)
		if err != nil || ack.Segment("MSA").Value(1, 1) != hl7.AA {
			c.t.Fatalf("%s answered %q (%v)", c.Nodes[i].ID, raw, err)
		}
	}
}

func a04(facility, control, id, name, birth, sex, street, city, zip, phone string) string {
	return "MSH|^~\\&|ADT|" + facility + "|RLS|HIE|20261101093000||ADT^A04^ADT_A01|" + control + "|P|2.5\n" +
		"EVN|A04\nPID|1||" + id + "^^^" + facility + "^MR||" + name + "||" + birth + "|" + sex + "|||" + street + "^^" + city + "^IL^" + zip + "||" + phone + "\n"
}

// TestHL7NotificationSurvivesLeaderKill is check 4 of issue 16 on a cluster: ADT^A04
// from two participants through a follower link one person, and the A31 reaches the
// participant's endpoint; a second link's A31 is still pending (the endpoint answers AR)
// when the leader is SIGKILLed, and the new leader delivers it from the replicated cursor.
func TestHL7NotificationSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	c := NewCluster(t, Options{HL7: true})
	leader := c.WaitLeader(30 * time.Second)
	follower := (leader + 1) % len(c.Nodes)
	c.addParticipant("hosp-a", hl7SysA)
	c.addParticipant("hosp-b", hl7SysB)
	pc := newPIXConsumer(t)
	endpoint := map[string]any{"resourceType": "Endpoint", "status": "active",
		"connectionType":       map[string]any{"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7v2-mllp"},
		"managingOrganization": map[string]any{"reference": "Organization/hosp-a"},
		"payloadType":          []any{map[string]any{"text": "ITI-10"}}, "address": "mllp://" + pc.addr,
		"extension": []any{map[string]any{"url": "https://rls-hie.github.io/fhir/StructureDefinition/pix-domain", "valueUri": hl7SysA},
			map[string]any{"url": "https://rls-hie.github.io/fhir/StructureDefinition/pix-domain", "valueUri": hl7SysB}}}
	if code, body, _, err := c.call(follower, "POST", "/fhir/Endpoint", endpoint); err != nil || code != 201 {
		t.Fatalf("register endpoint: %d %s %v", code, body, err)
	}

	c.feedHL7(follower,
		a04("hosp-a", "A1", "MRN-1", "OBRIEN^MARGARET", "19610704", "F", "12 OAK ST", "SPRINGFIELD", "62704", "(217)555-0101"),
		a04("hosp-b", "B1", "B-1", "O'BRIEN^PEGGY", "19610704", "F", "12 Oak Street", "Springfield", "62704", "217.555.0101"))
	c.WaitFor(30*time.Second, "the A31 of the first link", func() bool { return pc.has(false, hl7SysA+"|MRN-1", hl7SysB+"|B-1") })

	// The endpoint goes down (AR); a second person is linked; its A31 is pending.
	pc.setRefusing(true)
	c.feedHL7(follower,
		a04("hosp-a", "A2", "MRN-2", "REED^THOMAS", "19900120", "M", "4 ELM ST", "DAYTON", "45402", "(937)555-0199"),
		a04("hosp-b", "B2", "B-2", "REED^TOM", "19900120", "M", "4 Elm Street", "Dayton", "45402", "937-555-0199"))
	c.WaitFor(30*time.Second, "the leader to try the pending A31", func() bool { return pc.has(true, hl7SysA+"|MRN-2", hl7SysB+"|B-2") })
	c.Kill(leader)
	c.WaitLeader(30*time.Second, leader)
	pc.setRefusing(false)
	c.WaitFor(60*time.Second, "the new leader to deliver the pending A31", func() bool { return pc.has(false, hl7SysA+"|MRN-2", hl7SysB+"|B-2") })
	c.CheckNoCrash()
}
