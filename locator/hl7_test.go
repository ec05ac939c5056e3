package locator

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/raft/model"
)

// hl7World is an in-process node with an MLLP listener that trusts loopback (as -dev does)
// and two hospital participants, hosp-a (sysA) and hosp-b (sysB).
type hl7World struct {
	*testAPI
	srv        *Server
	mllp       string
	tokA, tokB string
}

func newHL7World(t *testing.T, o HL7Options) *hl7World {
	t.Helper()
	w := &hl7World{}
	w.testAPI = newTestAPIWith(t, func(*Options) func(*Server) { return func(s *Server) { w.srv = s } })
	w.tokA, w.tokB = w.participants()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.TrustNetwork = true
	srv := &hl7.Server{Handler: w.srv.HL7Handler(o), MaxMessageBytes: 64 << 10}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	w.mllp = l.Addr().String()
	return w
}

// dial opens an MLLP connection for the length of the test.
func (w *hl7World) dial(t *testing.T) *hl7.Client {
	t.Helper()
	c, err := hl7.Dial(context.Background(), w.mllp, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends one message (segments separated by \n in the test's text) and parses
// the answer.
func exchange(t *testing.T, c *hl7.Client, msg string) *hl7.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := c.Exchange(ctx, []byte(strings.ReplaceAll(msg, "\n", "\r")))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	m, err := hl7.Parse(raw)
	if err != nil {
		t.Fatalf("answer does not parse: %v\n%q", err, raw)
	}
	return m
}

func ackCode(m *hl7.Message) string { return m.Segment("MSA").Value(1, 1) }

func errLocation(m *hl7.Message) string {
	e := m.Segment("ERR")
	if e == nil {
		return ""
	}
	var parts []string
	for _, c := range e.Field(2).Rep(1) {
		parts = append(parts, c.String())
	}
	return strings.Join(parts, "^") + " " + e.Value(3, 1)
}

// cxList renders PID-3 as "value|system" strings, sorted.
func cxList(seg *hl7.Segment) []string {
	var out []string
	for _, cx := range seg.Field(3) {
		sys := cx.Comp(4).Sub(2)
		if cx.Comp(4).Sub(3) == "ISO" {
			sys = "urn:oid:" + sys
		}
		out = append(out, sys+"|"+cx.Comp(1).String())
	}
	slices.Sort(out)
	return out
}

const (
	a04HospA = "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A04^ADT_A01|A-1|P|2.5\n" +
		"EVN|A04|20261101093000\n" +
		"PID|1||MRN-A1^^^hosp-a^MR||O'BRIEN^MARGARET^ANN^^^^L||19610704|F|||12 OAK STREET^^SPRINGFIELD^IL^62704^USA^H||^PRN^PH^^1^217^5550101\n" +
		"PV1|1|O\n"
	// The same person at hospital B, sent in v2.3.1 with the assigning authority as an OID.
	a04HospB = "MSH|^~\\&|REG|hosp-b|RLS|HIE|20261101093500||ADT^A04|B-1|P|2.3.1\n" +
		"EVN|A04\n" +
		"PID|1||B-77^^^&2.16.840.1.113883.3.7002&ISO||OBRIEN^PEGGY||19610704|F|||12 Oak St^^Springfield^IL^62704||(217)555-0101\n"
)

// TestHL7FeedQueriesAndMerge is check 1 of issue 16: two participants feed ADT^A04 for
// one person; a PIX query (QBP^Q23) of one identifier returns the other; a PDQ query
// (QBP^Q22) by family name and birth date finds both records; an A40 merges a second
// record of A into the person; FHIR PIXm and /v1/locate agree with the PIX answer.
func TestHL7FeedQueriesAndMerge(t *testing.T) {
	w := newHL7World(t, HL7Options{})
	c := w.dial(t)
	for _, msg := range []string{a04HospA, a04HospB} {
		if ack := exchange(t, c, msg); ackCode(ack) != "AA" {
			t.Fatalf("ADT^A04: %s\n%s", ackCode(ack), ack.String())
		}
	}
	// Committed before the ACK: the FHIR API sees both records on one person at once.
	code, body, _ := w.do("GET", "/fhir/Patient/$ihe-pix?sourceIdentifier="+url.QueryEscape(sysA+"|MRN-A1"), w.tokA, nil, nil)
	if code != 200 || !strings.Contains(string(body), "B-77") {
		t.Fatalf("PIXm after the feed: %d %s", code, body)
	}
	code, body, _ = w.do("GET", "/fhir/Patient/"+model.PatientID(sysB+"|B-77"), w.tokB, nil, nil)
	var stored fhir.Patient
	if code != 200 || json.Unmarshal(body, &stored) != nil || stored.BirthDate != "1961-07-04" || stored.Gender != "female" ||
		len(stored.Telecom) != 1 || stored.Telecom[0].Value != "(217)555-0101" || stored.Address[0].PostalCode != "62704" {
		t.Fatalf("the v2.3.1 record as FHIR: %d %s", code, body)
	}

	// ITI-9: A's identifier gives B's (and the EUID), in PID-3 with the pseudo name.
	rsp := exchange(t, c, "MSH|^~\\&|PIXC|hosp-a|RLS|HIE|20261101094000||QBP^Q23^QBP_Q21|Q-1|P|2.5\n"+
		"QPD|IHE PIX Query|tag-1|MRN-A1^^^hosp-a\nRCP|I\n")
	if h := rsp.Header(); h.Type != "RSP" || h.Trigger != "K23" || ackCode(rsp) != "AA" || rsp.Segment("QAK").Value(2, 1) != "OK" || rsp.Segment("QAK").Value(1, 1) != "tag-1" {
		t.Fatalf("PIX query: %s", rsp.String())
	}
	pix := cxList(rsp.Segment("PID"))
	if !slices.Contains(pix, sysB+"|B-77") || len(pix) != 2 {
		t.Fatalf("PIX query identifiers: %v", pix)
	}
	if pid := rsp.Segment("PID"); pid.Field(5).Rep(2).Comp(7).String() != "S" || !pid.Field(5).Rep(1).Empty() {
		t.Errorf("PID-5 of a PIX answer must be the pseudo name: %v", pid.Field(5))
	}
	// QPD-4 restricts the domains; an unknown domain is AE at QPD-4.
	rsp = exchange(t, c, "MSH|^~\\&|PIXC|hosp-a|RLS|HIE|20261101094000||QBP^Q23^QBP_Q21|Q-2|P|2.5\n"+
		"QPD|IHE PIX Query|tag-2|MRN-A1^^^hosp-a|^^^&2.16.840.1.113883.3.7002&ISO\nRCP|I\n")
	if got := cxList(rsp.Segment("PID")); !slices.Equal(got, []string{sysB + "|B-77"}) {
		t.Fatalf("PIX query restricted to B: %v", got)
	}
	rsp = exchange(t, c, "MSH|^~\\&|PIXC|hosp-a|RLS|HIE|20261101094000||QBP^Q23^QBP_Q21|Q-3|P|2.5\n"+
		"QPD|IHE PIX Query|tag-3|MRN-A1^^^hosp-a|^^^&9.9.9&ISO\nRCP|I\n")
	if ackCode(rsp) != "AE" || rsp.Segment("QAK").Value(2, 1) != "AE" || errLocation(rsp) != "QPD^1^4^1^4 204" {
		t.Fatalf("PIX query for an unknown domain: %s", rsp.String())
	}
	rsp = exchange(t, c, "MSH|^~\\&|PIXC|hosp-a|RLS|HIE|20261101094000||QBP^Q23^QBP_Q21|Q-4|P|2.5\n"+
		"QPD|IHE PIX Query|tag-4|NOBODY^^^hosp-a\nRCP|I\n")
	if ackCode(rsp) != "AE" || errLocation(rsp) != "QPD^1^3^1^1 204" {
		t.Fatalf("PIX query for an unknown identifier: %s", rsp.String())
	}

	// ITI-21: family name and birth date find both records.
	rsp = exchange(t, c, "MSH|^~\\&|PDQC|hosp-a|RLS|HIE|20261101094500||QBP^Q22^QBP_Q21|P-1|P|2.5\n"+
		"QPD|IHE PDQ Query|tag-5|@PID.5.1.1^OBRIEN~@PID.7^19610704\nRCP|I|10^RD\n")
	if h := rsp.Header(); h.Trigger != "K22" || ackCode(rsp) != "AA" || rsp.Segment("QAK").Value(4, 1) != "2" {
		t.Fatalf("PDQ query: %s", rsp.String())
	}
	var found []string
	for _, pid := range rsp.All("PID") {
		found = append(found, cxList(pid)...)
		if pid.Value(7, 1) != "19610704" || pid.Value(8, 1) != "F" {
			t.Errorf("PDQ PID demographics: %v", pid)
		}
	}
	slices.Sort(found)
	if !slices.Equal(found, []string{sysA + "|MRN-A1", sysB + "|B-77"}) {
		t.Fatalf("PDQ found %v", found)
	}

	// ITI-8 merge: a second record of A for the same patient (a duplicate MRN, other
	// demographics) is merged into MRN-A1 by A40.
	if ack := exchange(t, c, "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101095000||ADT^A04^ADT_A01|A-2|P|2.5\n"+
		"PID|1||MRN-A2^^^hosp-a^MR||OBRIEN^M||19610407|F\n"); ackCode(ack) != "AA" {
		t.Fatalf("second record: %s", ack.String())
	}
	code, body, _ = w.do("GET", "/fhir/Patient/$ihe-pix?sourceIdentifier="+url.QueryEscape(sysA+"|MRN-A2"), w.tokA, nil, nil)
	if code != 200 || strings.Contains(string(body), "MRN-A1") {
		t.Fatalf("setup: MRN-A2 must be a person of its own: %d %s", code, body)
	}
	ack := exchange(t, c, "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101095500||ADT^A40^ADT_A39|A-3|P|2.5\n"+
		"EVN|A40\nPID|1||MRN-A1^^^hosp-a^MR||O'BRIEN^MARGARET^ANN^^^^L||19610704|F\nMRG|MRN-A2^^^hosp-a\n")
	if ackCode(ack) != "AA" {
		t.Fatalf("A40: %s", ack.String())
	}
	rsp = exchange(t, c, "MSH|^~\\&|PIXC|hosp-a|RLS|HIE|20261101096000||QBP^Q23^QBP_Q21|Q-5|P|2.5\n"+
		"QPD|IHE PIX Query|tag-6|MRN-A2^^^hosp-a\nRCP|I\n")
	viaHL7 := cxList(rsp.Segment("PID"))
	// PIXm and locate say the same.
	code, body, _ = w.do("GET", "/fhir/Patient/$ihe-pix?sourceIdentifier="+url.QueryEscape(sysA+"|MRN-A2"), w.tokA, nil, nil)
	var params fhir.Parameters
	if code != 200 || json.Unmarshal(body, &params) != nil {
		t.Fatalf("PIXm after merge: %d %s", code, body)
	}
	var viaPIXm []string
	for _, p := range params.Parameter {
		if p.ValueIdentifier != nil {
			viaPIXm = append(viaPIXm, p.ValueIdentifier.System+"|"+p.ValueIdentifier.Value)
		}
	}
	slices.Sort(viaPIXm)
	code, body, _ = w.do("GET", "/v1/locate?identifier="+url.QueryEscape(sysA+"|MRN-A2"), w.tokA, nil, nil)
	var loc LocateResult
	if code != 200 || json.Unmarshal(body, &loc) != nil {
		t.Fatalf("locate after merge: %d %s", code, body)
	}
	viaLocate := []string{fhir.EUIDSystem + "|" + loc.EUID}
	for _, l := range loc.Locations {
		for _, id := range l.Identifiers {
			if id.System+"|"+id.Value != sysA+"|MRN-A2" {
				viaLocate = append(viaLocate, id.System+"|"+id.Value)
			}
		}
	}
	slices.Sort(viaLocate)
	want := []string{sysA + "|MRN-A1", sysB + "|B-77", fhir.EUIDSystem + "|" + loc.EUID}
	slices.Sort(want)
	if !slices.Equal(viaHL7, want) || !slices.Equal(viaPIXm, want) || !slices.Equal(viaLocate, want) {
		t.Fatalf("after A40 the interfaces disagree:\nHL7 PIX %v\nPIXm    %v\nlocate  %v\nwant    %v", viaHL7, viaPIXm, viaLocate, want)
	}
}
