package locator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/pki"
)

// hl7World is an in-process node with an MLLP listener that trusts loopback (as -dev does)
// and two hospital participants, hosp-a (sysA) and hosp-b (sysB).
type hl7World struct {
	*testAPI
	srv        *Server
	mllp       string
	tokA, tokB string
	// logs is everything the node and its MLLP listener logged, debug lines included.
	logs *syncBuffer
}

func newHL7World(t *testing.T, o HL7Options) *hl7World {
	t.Helper()
	w := &hl7World{logs: &syncBuffer{}}
	w.testAPI = newTestAPIWith(t, func(opts *Options) func(*Server) {
		opts.Logger = slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		return func(s *Server) { w.srv = s }
	})
	w.tokA, w.tokB = w.participants()
	o.TrustNetwork = true
	var srv *hl7.Server
	w.mllp, srv = startMLLP(t, w.srv, o)
	t.Cleanup(func() { srv.Close() })
	return w
}

// startMLLP serves s's HL7 handler on a loopback MLLP listener (messages up to 64 KiB).
func startMLLP(tb testing.TB, s *Server, o HL7Options) (string, *hl7.Server) {
	tb.Helper()
	l := testkit.Listen(tb)
	srv := &hl7.Server{Handler: s.HL7Handler(o), MaxMessageBytes: 64 << 10, Logger: s.logger}
	go srv.Serve(l)
	return l.Addr().String(), srv
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

// logsHoldNo fails the test if the node's logs hold any of the values: logs carry no
// names, identifiers or birth dates.
func (w *hl7World) logsHoldNo(t *testing.T, values ...string) {
	t.Helper()
	logs := w.logs.String()
	if !strings.Contains(logs, "hl7") {
		t.Fatal("the test's logger caught nothing of the HL7 interface")
	}
	for _, v := range values {
		if i := strings.Index(logs, v); i >= 0 {
			start := strings.LastIndexByte(logs[:i], '\n') + 1
			end := i + strings.IndexByte(logs[i:]+"\n", '\n')
			t.Errorf("the logs hold %q:\n%s", v, logs[start:end])
		}
	}
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
	// ITI-9 case 2: known, but no identifier in the domain asked for: AA, NF, no PID.
	rsp = exchange(t, c, "MSH|^~\\&|PIXC|hosp-a|RLS|HIE|20261101094000||QBP^Q23^QBP_Q21|Q-6|P|2.5\n"+
		"QPD|IHE PIX Query|tag-7|MRN-A2^^^hosp-a|^^^hosp-b\nRCP|I\n")
	if ackCode(rsp) != "AA" || rsp.Segment("QAK").Value(2, 1) != "NF" || rsp.Segment("PID") != nil {
		t.Fatalf("PIX query with nothing in the domain asked for: %s", rsp.String())
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
	w.logsHoldNo(t, "BRIEN", "MARGARET", "PEGGY", "MRN-A", "B-77", "19610704", "1961-07-04", "OAK STREET")
}

// TestHL7PIDFields: what an ITI-8 feed's PID carries reaches the stored record, read back
// through FHIR: an assigning authority given as &URI&URI, names by type (repetitions,
// further given names), mother's maiden name, birth date, sex, addresses, home and work
// phones and e-mail, the SSN.
func TestHL7PIDFields(t *testing.T) {
	w := newHL7World(t, HL7Options{})
	const sysC = "https://hosp-c.example/mrn"
	code, body, _ := w.do("POST", "/fhir/Organization", testAdminToken, org("hosp-c", sysC), nil)
	if code != 201 {
		t.Fatalf("participant hosp-c: %d %s", code, body)
	}
	tokC := tokenOf(t, body)
	c := w.dial(t)
	ack := exchange(t, c, "MSH|^~\\&|ADT|hosp-c|RLS|HIE|20261101093000||ADT^A01^ADT_A01|C-1|P|2.5||||||UNICODE UTF-8\n"+
		"EVN|A01\n"+
		"PID|1||C-1^^^&https://hosp-c.example/mrn&URI^MR~ACCT-9^^^ACCOUNTS||Zoë^Ana^Maria Luísa^JR^DR^^L~Silva^Ana^^^^^M|Costa|19790312|F|||"+
		"4 Rua Nova^Apt 2^Fall River^MA^02720^USA^H~PO Box 7^^Fall River^MA^02722^USA^M||^PRN^PH^^1^508^5550142~^NET^Internet^ana@example.org|^WPN^PH^^1^508^5550199|||||123-45-6789\n")
	if ackCode(ack) != "AA" {
		t.Fatalf("A01: %s", ack.String())
	}
	code, body, _ = w.do("GET", "/fhir/Patient/"+model.PatientID(sysC+"|C-1"), tokC, nil, nil)
	var p fhir.Patient
	if code != 200 || json.Unmarshal(body, &p) != nil {
		t.Fatalf("read: %d %s", code, body)
	}
	var ids []string
	for _, id := range p.Identifier {
		if id.System != fhir.EUIDSystem {
			ids = append(ids, id.System+"|"+id.Value)
		}
	}
	slices.Sort(ids)
	if want := []string{"http://hl7.org/fhir/sid/us-ssn|123-45-6789", sysC + "|C-1"}; !slices.Equal(ids, want) {
		t.Errorf("identifiers %v, want %v (the account number, in no known domain, left out)", ids, want)
	}
	if len(p.Name) != 2 || p.Name[0].Use != "official" || p.Name[0].Family != "Zoë" || !slices.Equal(p.Name[0].Given, []string{"Ana", "Maria", "Luísa"}) ||
		!slices.Equal(p.Name[0].Suffix, []string{"JR"}) || !slices.Equal(p.Name[0].Prefix, []string{"DR"}) || p.Name[1].Use != "maiden" || p.Name[1].Family != "Silva" {
		t.Errorf("names %+v", p.Name)
	}
	maiden := ""
	for _, raw := range p.Extension {
		var ext fhir.Extension
		if json.Unmarshal(raw, &ext) == nil && ext.URL == "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName" {
			maiden = ext.ValueString
		}
	}
	if maiden != "Costa" {
		t.Errorf("mother's maiden name %q: %s", maiden, body)
	}
	if p.BirthDate != "1979-03-12" || p.Gender != "female" {
		t.Errorf("birth date %q, gender %q", p.BirthDate, p.Gender)
	}
	if len(p.Address) != 2 || !slices.Equal(p.Address[0].Line, []string{"4 Rua Nova", "Apt 2"}) || p.Address[0].City != "Fall River" ||
		p.Address[0].PostalCode != "02720" || p.Address[0].Use != "home" || p.Address[1].Type != "postal" {
		t.Errorf("addresses %+v", p.Address)
	}
	var telecom []string
	for _, cp := range p.Telecom {
		telecom = append(telecom, cp.System+" "+cp.Use+" "+cp.Value)
	}
	if want := []string{"phone home +1 (508) 555-0142", "email home ana@example.org", "phone work +1 (508) 555-0199"}; !slices.Equal(telecom, want) {
		t.Errorf("telecom %q, want %q", telecom, want)
	}
}

// TestHL7MalformedMessages is check 2 of issue 16: every malformed message gets AE or AR
// with an ERR segment that locates the fault, and the node and the connection survive.
func TestHL7MalformedMessages(t *testing.T) {
	w := newHL7World(t, HL7Options{})
	c := w.dial(t)
	pid := func(fields string) string {
		return "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A04^ADT_A01|BAD-1|P|2.5\nPID|1||" + fields + "\n"
	}
	tests := []struct {
		name, msg string
		code      string // MSA-1
		err       string // ERR-2 and ERR-3
	}{
		{"no MSH", "PID|1||MRN-1^^^hosp-a||DOE^JANE||19800101|F\n", "AR", "MSH^1 100"},
		{"wrong field separator in MSH", "MSH^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A04|X|P|2.5\nPID|1\n", "AR", "MSH^1^2 102"},
		{"wrong field separator in a segment", "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A04|X|P|2.5\nPID!1!!MRN-1\n", "AE", " 100"},
		{"no identifier", pid("||DOE^JANE||19800101|F"), "AE", "PID^1^3 101"},
		{"identifier of another domain only", pid("MRN-1^^^hosp-b||DOE^JANE||19800101|F"), "AE", "PID^1^3 101"},
		{"bad date", pid("MRN-1^^^hosp-a||DOE^JANE||1980-01-01|F"), "AE", "PID^1^7 102"},
		{"date not on the calendar", pid("MRN-1^^^hosp-a||DOE^JANE||19800230|F"), "AE", "PID^1^7 102"},
		{"birth in the future", pid("MRN-1^^^hosp-a||DOE^JANE||29800101|F"), "AE", "PID^1^7 102"},
		{"unknown sex", pid("MRN-1^^^hosp-a||DOE^JANE||19800101|Q"), "AE", "PID^1^8 103"},
		{"name too long", pid("MRN-1^^^hosp-a||" + strings.Repeat("D", 150) + "^JANE||19800101|F"), "AE", "PID^1^5^1^1 104"},
		{"control character in a name", pid("MRN-1^^^hosp-a||DOE\\X07\\^JANE||19800101|F"), "AE", "PID^1^5"},
		{"bad escape", pid("MRN-1^^^hosp-a||DOE\\^JANE||19800101|F"), "AE", "PID^1^5^1^1^1 102"},
		{"no message type, and a segment with a wrong separator", "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000|||X|P|2.5\nPID!1!!MRN-1^^^hosp-a!!DOE^JANE\n", "AR", " 100"},
		{"garbage bytes", "\x00\x01\x02\xffgarbage\x7f", "AR", "MSH^1 100"},
		{"unsupported message type", "MSH|^~\\&|LAB|hosp-a|RLS|HIE|20261101093000||ORU^R01|X|P|2.5\n", "AR", "MSH^1^9^1^1 200"},
		{"unsupported event", "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A03|X|P|2.5\n", "AR", "MSH^1^9^1^2 201"},
		{"unsupported version", "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A04|X|P|3.0\n", "AR", "MSH^1^12 203"},
		{"no control id", "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A04||P|2.5\n", "AR", "MSH^1^10 101"},
		{"sender no participant", "MSH|^~\\&|ADT|nobody|RLS|HIE|20261101093000||ADT^A04|X|P|2.5\nPID|1||MRN-1^^^hosp-a\n", "AR", " 207"},
		{"PDQ without criteria", "MSH|^~\\&|PDQC|hosp-a|RLS|HIE|20261101094500||QBP^Q22^QBP_Q21|P-9|P|2.5\nQPD|IHE PDQ Query|t9|@PID.8^F\nRCP|I\n", "AE", "QPD^1^3 101"},
		{"PDQ unsupported field", "MSH|^~\\&|PDQC|hosp-a|RLS|HIE|20261101094500||QBP^Q22^QBP_Q21|P-8|P|2.5\nQPD|IHE PDQ Query|t8|@PID.19^123456789\nRCP|I\n", "AE", "QPD^1^3^1^1 103"},
		{"PDQ foreign continuation pointer", "MSH|^~\\&|PDQC|hosp-a|RLS|HIE|20261101094500||QBP^Q22^QBP_Q21|P-7|P|2.5\nQPD|IHE PDQ Query|t7|@PID.5.1.1^DOE~@PID.5.2^JANE\nRCP|I|5^RD\nDSC|20.0badc0ffee0|I\n", "AE", "DSC^1^1 102"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ack := exchange(t, c, tc.msg)
			if got := ackCode(ack); got != tc.code {
				t.Errorf("MSA-1 = %s, want %s\n%s", got, tc.code, ack.String())
			}
			if got := errLocation(ack); !strings.HasPrefix(got, tc.err) || (strings.HasPrefix(tc.err, " ") && got != tc.err) {
				t.Errorf("ERR = %q, want %q\n%s", got, tc.err, ack.String())
			}
			if e := ack.Segment("ERR"); e == nil || e.Value(8, 1) == "" {
				t.Errorf("ERR-8 gives no message:\n%s", ack.String())
			}
		})
	}
	// Oversized: refused, with the control id it could read; the stream stays in step.
	big := "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A04|HUGE-1|P|2.5\rNTE|1||" + strings.Repeat("x", 100<<10) + "\r"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := c.Exchange(ctx, []byte(big))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := hl7.Parse(raw)
	if err != nil || ackCode(ack) != "AR" || ack.Segment("MSA").Value(2, 1) != "HUGE-1" || ack.Segment("ERR") == nil {
		t.Fatalf("oversized message: %v\n%q", err, raw)
	}
	// Garbage outside any frame is dropped; the next frame is answered.
	if _, err := c.Raw().Write([]byte("\x00garbage between frames\r\n")); err != nil {
		t.Fatal(err)
	}
	// The connection is still usable, and the node still serves.
	if ack := exchange(t, c, a04HospA); ackCode(ack) != "AA" {
		t.Fatalf("a good message after the bad ones: %s", ack.String())
	}
	if code, body, _ := w.do("GET", "/v1/health", "", nil, nil); code != 200 {
		t.Fatalf("health after the bad messages: %d %s", code, body)
	}
	// Nothing of the refused registrations was stored.
	if code, _, _ := w.do("GET", "/fhir/Patient/"+model.PatientID(sysA+"|MRN-1"), w.tokA, nil, nil); code != 404 {
		t.Fatalf("a refused registration left a record: %d", code)
	}
	// Refusals are logged by where and what, never by the values they quote.
	w.logsHoldNo(t, "DOE", "JANE", "MRN-", "19800101", "BRIEN", "garbage")
}

// TestHL7AuditAndConsent is check 3 of issue 16: every message is audited with its
// participant (and, for queries, its purpose of use), like the equivalent FHIR call; a
// patient who opted out is never returned by a PIX or PDQ query (the answer is the one
// for a patient nobody knows), except a participant's own record to a PDQ query.
func TestHL7AuditAndConsent(t *testing.T) {
	w := newHL7World(t, HL7Options{Purpose: "TREAT"})
	c := w.dial(t)
	for _, msg := range []string{a04HospA, a04HospB} {
		if ack := exchange(t, c, msg); ackCode(ack) != "AA" {
			t.Fatalf("feed: %s", ack.String())
		}
	}
	pixB := "MSH|^~\\&|PIXC|hosp-b|RLS|HIE|20261101094000||QBP^Q23^QBP_Q21|QB-%d|P|2.5\nQPD|IHE PIX Query|tb|%s^^^hosp-b\nRCP|I\n"
	pdqB := "MSH|^~\\&|PDQC|hosp-b|RLS|HIE|20261101094500||QBP^Q22^QBP_Q21|PB-1|P|2.5\nQPD|IHE PDQ Query|tp|@PID.5.1.1^OBRIEN~@PID.7^19610704\nRCP|I\n"
	if rsp := exchange(t, c, fmt.Sprintf(pixB, 1, "B-77")); rsp.Segment("QAK").Value(2, 1) != "OK" {
		t.Fatalf("PIX before the opt-out: %s", rsp.String())
	}
	if ack := exchange(t, c, "MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A08^ADT_A01|BAD-2|P|2.5\nPID|1||MRN-A1^^^hosp-a||X^Y||19611340|F\n"); ackCode(ack) != "AE" {
		t.Fatalf("bad update: %s", ack.String())
	}

	entries := w.auditList(t, "participant=hosp-a").Entries
	entries = append(entries, w.auditList(t, "participant=hosp-b").Entries...)
	byAction := map[string][]model.AuditEntry{}
	for _, e := range entries {
		if strings.HasPrefix(e.Path, "/v1/hl7/") {
			byAction[e.Action] = append(byAction[e.Action], e)
		}
	}
	if got := byAction["patient-create"]; len(got) != 2 || got[0].Participant == got[1].Participant || len(got[0].EUIDs) != 1 || got[0].Status != 200 {
		t.Errorf("the two A04s audited as patient-create: %+v", got)
	}
	if got := byAction["patient-update"]; len(got) != 1 || got[0].Participant != "hosp-a" || got[0].Status != 400 {
		t.Errorf("the refused A08 audited as patient-update with its failure: %+v", got)
	}
	if got := byAction["patient-pix"]; len(got) != 1 || got[0].Participant != "hosp-b" || got[0].Purpose != "TREAT" || len(got[0].EUIDs) != 1 ||
		!strings.Contains(got[0].Query, "sourceIdentifier=") {
		t.Errorf("the PIX query audited as patient-pix with purpose and disclosures: %+v", got)
	}

	// The patient opts out (recorded by hospital A).
	w.consent(t, w.tokA, consentJSON("Patient/"+model.PatientID(sysA+"|MRN-A1"), true, nil, nil))
	hidden := exchange(t, c, fmt.Sprintf(pixB, 2, "B-77"))
	unknown := exchange(t, c, fmt.Sprintf(pixB, 3, "NOBODY"))
	if ackCode(hidden) != "AE" || errLocation(hidden) != errLocation(unknown) || hidden.Segment("QAK").Value(2, 1) != unknown.Segment("QAK").Value(2, 1) ||
		hidden.Segment("PID") != nil || hidden.Segment("ERR").Value(8, 1) != unknown.Segment("ERR").Value(8, 1) {
		t.Fatalf("PIX of an opted-out patient differs from an unknown one:\n%s\n%s", hidden.String(), unknown.String())
	}
	rsp := exchange(t, c, pdqB)
	var found []string
	for _, pid := range rsp.All("PID") {
		found = append(found, cxList(pid)...)
	}
	if !slices.Equal(found, []string{sysB + "|B-77"}) || rsp.Segment("QAK").Value(4, 1) != "1" {
		t.Fatalf("PDQ of an opted-out patient returned %v (only B's own record may come back)\n%s", found, rsp.String())
	}
	// With QPD-8 (cross-references in A's domain), nothing: the person is hidden.
	rsp = exchange(t, c, "MSH|^~\\&|PDQC|hosp-b|RLS|HIE|20261101094500||QBP^Q22^QBP_Q21|PB-2|P|2.5\nQPD|IHE PDQ Query|tq|@PID.5.1.1^OBRIEN~@PID.7^19610704|||||^^^hosp-a\nRCP|I\n")
	if rsp.Segment("PID") != nil {
		t.Fatalf("PDQ with QPD-8 returned a hidden person's identifiers:\n%s", rsp.String())
	}
	searches := 0
	for _, e := range w.auditList(t, "participant=hosp-b").Entries {
		if e.Action == "patient-search" && e.Path == "/v1/hl7/qbp/pdq" {
			searches++
			if e.Purpose != "TREAT" || !strings.Contains(e.Query, "family=OBRIEN") {
				t.Errorf("PDQ audited without its purpose or query: %+v", e)
			}
		}
	}
	if searches != 2 {
		t.Errorf("%d PDQ queries audited, want 2", searches)
	}
}

// TestHL7SenderByCertificate: over mllps with client certificates, the certificate names
// the participant and MSH-4 must agree; a listener that does not trust its network refuses
// a sender without one.
func TestHL7SenderByCertificate(t *testing.T) {
	w := &hl7World{}
	w.testAPI = newTestAPIWith(t, func(*Options) func(*Server) { return func(s *Server) { w.srv = s } })
	w.tokA, w.tokB = w.participants()
	ca, err := pki.NewCA("test CA", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFixture{t: t, ca: ca}
	node := f.issue(ca, pki.Leaf{CommonName: "n1", URIs: []*url.URL{pki.NodeURI("n1")}, Hosts: []string{"127.0.0.1"}, Server: true, Client: true})
	l := testkit.Listen(t)
	srv := &hl7.Server{Handler: w.srv.HL7Handler(HL7Options{}), TLSConfig: pki.ServerConfig(node, ca.Pool(), pki.ClientAuthRequest)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	dial := func(cert *tls.Certificate) *hl7.Client {
		cfg := pki.ClientConfig(ca.Pool(), cert)
		c, err := hl7.Dial(context.Background(), l.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	certA := f.issue(ca, participantLeaf("hosp-a"))
	a := dial(&certA)
	msg := func(facility, mrn string) string {
		return "MSH|^~\\&|ADT|" + facility + "|RLS|HIE|20261101093000||ADT^A04^ADT_A01|C-" + mrn + "|P|2.5\nPID|1||" + mrn + "^^^hosp-a||DOE^JANE||19800101|F\n"
	}
	if ack := exchange(t, a, msg("hosp-a", "T-1")); ackCode(ack) != "AA" {
		t.Fatalf("certificate and MSH-4 agree: %s", ack.String())
	}
	if ack := exchange(t, a, msg("STMARY^2.16.840.1.113883.3.7001^ISO", "T-2")); ackCode(ack) != "AR" {
		t.Fatalf("MSH-4 with A's OID but another namespace: %s", ack.String())
	}
	if ack := exchange(t, a, msg("^2.16.840.1.113883.3.7001^ISO", "T-3")); ackCode(ack) != "AA" {
		t.Fatalf("MSH-4 by universal id: %s", ack.String())
	}
	ack := exchange(t, a, msg("hosp-b", "T-4"))
	if ackCode(ack) != "AR" || errLocation(ack) != "MSH^1^4 207" {
		t.Fatalf("certificate of A, MSH-4 of B: %s", ack.String())
	}
	if code, _, _ := w.do("GET", "/fhir/Patient/"+model.PatientID(sysA+"|T-4"), w.tokA, nil, nil); code != 404 {
		t.Fatalf("the refused message registered a record: %d", code)
	}
	audited := false
	for _, e := range w.auditList(t, "participant=hosp-a").Entries {
		audited = audited || (e.Path == "/v1/hl7/adt/register" && e.Status == 403)
	}
	if !audited {
		t.Error("the refused message from a certified sender was not audited")
	}
	// No certificate, and the listener does not trust the network.
	anon := dial(nil)
	if ack := exchange(t, anon, msg("hosp-a", "T-5")); ackCode(ack) != "AR" || !strings.Contains(ack.Segment("ERR").Value(8, 1), "certificate") {
		t.Fatalf("sender without a certificate: %s", ack.String())
	}
}

// receiver is an MLLP endpoint that records what it is sent and acknowledges it; the first
// refuse messages are answered AR (a receiver that is down for a moment).
type receiver struct {
	mu     sync.Mutex
	got    []*hl7.Message
	refuse int
	addr   string
}

func newReceiver(t *testing.T, refuse int) *receiver {
	t.Helper()
	rc := &receiver{refuse: refuse}
	l := testkit.Listen(t)
	srv := &hl7.Server{Handler: hl7.HandlerFunc(func(ctx context.Context, r *hl7.Request) [][]byte {
		m, err := hl7.Parse(r.Message)
		if err != nil {
			return nil
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		code := hl7.AA
		if rc.refuse > 0 {
			rc.refuse--
			code = hl7.AR
		} else {
			rc.got = append(rc.got, m)
		}
		return [][]byte{hl7.Ack(m.Header(), hl7.Responder{Application: "PIXCONSUMER"}, code, "R1", time.Now(), "").Encode()}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	rc.addr = l.Addr().String()
	return rc
}

func (rc *receiver) messages() []*hl7.Message {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func endpointJSON(participant, address string, domains ...string) map[string]any {
	var ext []any
	for _, d := range domains {
		ext = append(ext, map[string]any{"url": fhir.PIXDomainURL, "valueUri": d})
	}
	e := map[string]any{"resourceType": "Endpoint", "status": "active",
		"connectionType":       map[string]any{"system": fhir.EndpointConnectionType, "code": fhir.ConnectionTypeMLLP},
		"managingOrganization": map[string]any{"reference": "Organization/" + participant},
		"payloadType":          []any{map[string]any{"text": "ITI-10"}}, "address": address}
	if ext != nil {
		e["extension"] = ext
	}
	return e
}

// TestHL7UpdateNotification is the in-process half of check 4 of issue 16: after a link,
// ADT^A31 reaches the participant's MLLP endpoint with the person's identifiers in its
// domains, after the endpoint refused it once (retried, not lost); each notification is
// audited; a person who opted out is not notified about.
func TestHL7UpdateNotification(t *testing.T) {
	w := newHL7World(t, HL7Options{})
	rc := newReceiver(t, 1)
	code, body, _ := w.do("POST", "/fhir/Endpoint", w.tokA, endpointJSON("hosp-a", "mllp://"+rc.addr, sysA, sysB), nil)
	if code != 201 {
		t.Fatalf("register endpoint: %d %s", code, body)
	}
	// B may not register an endpoint for A, nor read A's.
	if code, body, _ := w.do("POST", "/fhir/Endpoint", w.tokB, endpointJSON("hosp-a", "mllp://"+rc.addr), nil); code != 403 {
		t.Fatalf("endpoint for another participant: %d %s", code, body)
	}
	if code, body, _ := w.do("POST", "/fhir/Endpoint", w.tokA, endpointJSON("hosp-a", "http://"+rc.addr), nil); code != 400 || !strings.Contains(string(body), "Endpoint.address") {
		t.Fatalf("endpoint with an http address: %d %s", code, body)
	}
	// The admin may register one for any participant, but not for one that does not exist
	// (refused before the command, naming the element).
	if code, body, _ := w.do("POST", "/fhir/Endpoint", testAdminToken, endpointJSON("nobody", "mllp://"+rc.addr), nil); code != 422 ||
		!strings.Contains(string(body), "Endpoint.managingOrganization") {
		t.Fatalf("endpoint for a participant that does not exist: %d %s", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.srv.RunHL7Notifier(ctx, HL7NotifierOptions{Interval: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })

	c := w.dial(t)
	for _, msg := range []string{a04HospA, a04HospB} {
		if ack := exchange(t, c, msg); ackCode(ack) != "AA" {
			t.Fatalf("feed: %s", ack.String())
		}
	}
	testkit.WaitFor(t, 15*time.Second, "the A31 after the link", func() bool { return len(rc.messages()) >= 1 })
	a31 := rc.messages()[0]
	if h := a31.Header(); h.Type != "ADT" || h.Trigger != "A31" || h.Version != "2.5" {
		t.Fatalf("notification header: %s", a31.String())
	}
	if got := cxList(a31.Segment("PID")); !slices.Equal(got, []string{sysA + "|MRN-A1", sysB + "|B-77"}) {
		t.Fatalf("A31 PID-3 = %v", got)
	}
	if a31.Segment("PID").Field(5).Rep(2).Comp(7).String() != "S" {
		t.Errorf("A31 PID-5 is not the pseudo name: %s", a31.String())
	}
	notified := 0
	for _, e := range w.auditList(t, "participant=hosp-a").Entries {
		if e.Action == "pix-notify" {
			notified++
			if len(e.EUIDs) != 1 || len(e.Records) != 2 || e.Purpose != "TREAT" {
				t.Errorf("notification audit entry: %+v", e)
			}
		}
	}
	if notified != 1 {
		t.Errorf("%d notifications audited, want 1", notified)
	}
	// Once opted out, a new link of the person is not notified.
	w.consent(t, w.tokA, consentJSON("Patient/"+model.PatientID(sysA+"|MRN-A1"), true, nil, nil))
	code, body, _ = w.do("POST", "/fhir/Patient", w.tokB, patientJSON(sysB, "B-78", "Margaret", "O'Brien", "1961-07-04", "female", "62704", "(217) 555-0101"), nil)
	if code != 201 {
		t.Fatalf("second record at B: %d %s", code, body)
	}
	// A link of another person afterwards is notified: the queue went past the hidden one.
	for _, msg := range []string{
		"MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101093000||ADT^A04|A-9|P|2.5\nPID|1||MRN-A9^^^hosp-a||REED^THOMAS||19900120|M|||4 ELM ST^^DAYTON^OH^45402||^PRN^PH^^1^937^5550199\n",
		"MSH|^~\\&|ADT|hosp-b|RLS|HIE|20261101093000||ADT^A04|B-9|P|2.5\nPID|1||B-99^^^hosp-b||REED^THOMAS||19900120|M|||4 ELM ST^^DAYTON^OH^45402||^PRN^PH^^1^937^5550199\n",
	} {
		if ack := exchange(t, c, msg); ackCode(ack) != "AA" {
			t.Fatalf("feed: %s", ack.String())
		}
	}
	testkit.WaitFor(t, 15*time.Second, "the A31 of the second person", func() bool { return len(rc.messages()) >= 2 })
	msgs := rc.messages()
	if got := cxList(msgs[len(msgs)-1].Segment("PID")); !slices.Equal(got, []string{sysA + "|MRN-A9", sysB + "|B-99"}) {
		t.Fatalf("second A31 PID-3 = %v", got)
	}
	for _, m := range msgs {
		if slices.Contains(cxList(m.Segment("PID")), sysB+"|B-78") {
			t.Fatalf("a person who opted out was notified about: %s", m.String())
		}
	}
}

// TestHL7EnhancedModeAndContinuation: enhanced acknowledgement mode answers with a commit
// acknowledgement and, as MSH-16 asks, the application's; a PDQ query in increments of
// RCP-2 records is continued with the DSC pointer it was given.
func TestHL7EnhancedModeAndContinuation(t *testing.T) {
	w := newHL7World(t, HL7Options{})
	c := w.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	answers := func(msg string, n int) []*hl7.Message {
		t.Helper()
		if err := c.Send(ctx, []byte(strings.ReplaceAll(msg, "\n", "\r"))); err != nil {
			t.Fatal(err)
		}
		var out []*hl7.Message
		for range n {
			raw, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m, err := hl7.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}
	enhanced := strings.Replace(a04HospA, "|P|2.5\n", "|P|2.5|||AL|AL\n", 1)
	got := answers(enhanced, 2)
	if ackCode(got[0]) != "CA" || ackCode(got[1]) != "AA" {
		t.Fatalf("enhanced AL/AL: %s / %s", ackCode(got[0]), ackCode(got[1]))
	}
	// Accept acknowledgement only on error (ER), application acknowledgement always.
	got = answers(strings.Replace(a04HospB, "|P|2.3.1\n", "|P|2.3.1|||ER|AL\n", 1), 1)
	if ackCode(got[0]) != "AA" {
		t.Fatalf("enhanced ER/AL on success: %s", got[0].String())
	}
	bad := strings.Replace(strings.Replace(a04HospA, "19610704", "19611304", 1), "|P|2.5\n", "|P|2.5|||AL|NE\n", 1)
	got = answers(bad, 1)
	if ackCode(got[0]) != "CE" || errLocation(got[0]) != "PID^1^7 102" {
		t.Fatalf("enhanced AL/NE on error: %s", got[0].String())
	}
	// The connection is in step: the next exchange gets its own answer.
	if ack := exchange(t, c, "MSH|^~\\&|PDQC|hosp-a|RLS|HIE|20261101094500||QCN^J01^QCN_J01|X-1|P|2.5\nQID|tag|IHE PDQ Query\n"); ackCode(ack) != "AA" {
		t.Fatalf("cancel query: %s", ack.String())
	}

	query := "MSH|^~\\&|PDQC|hosp-a|RLS|HIE|20261101094500||QBP^Q22^QBP_Q21|P-%d|P|2.5\nQPD|IHE PDQ Query|inc|@PID.5.1.1^OBRIEN~@PID.7^19610704\nRCP|I|1^RD\n"
	first := exchange(t, c, fmt.Sprintf(query, 1))
	qak, dsc := first.Segment("QAK"), first.Segment("DSC")
	if len(first.All("PID")) != 1 || qak.Value(4, 1) != "2" || qak.Value(5, 1) != "1" || qak.Value(6, 1) != "1" || dsc == nil || dsc.Value(2, 1) != "I" {
		t.Fatalf("first increment: %s", first.String())
	}
	second := exchange(t, c, fmt.Sprintf(query, 2)+"DSC|"+dsc.Value(1, 1)+"|I\n")
	if len(second.All("PID")) != 1 || second.Segment("QAK").Value(6, 1) != "0" || second.Segment("DSC") != nil {
		t.Fatalf("second increment: %s", second.String())
	}
	if slices.Equal(cxList(first.Segment("PID")), cxList(second.Segment("PID"))) {
		t.Fatal("the second increment repeated the first")
	}
	// A pointer is bound to its query.
	other := strings.Replace(fmt.Sprintf(query, 3), "@PID.7^19610704", "@PID.7^19610705", 1) + "DSC|" + dsc.Value(1, 1) + "|I\n"
	if rsp := exchange(t, c, other); ackCode(rsp) != "AE" || errLocation(rsp) != "DSC^1^1 102" {
		t.Fatalf("pointer of another query: %s", rsp.String())
	}
}

// TestHL7RoutesAreNotOnTheAPI: the internal routes exist only for the MLLP handler; an
// HTTP client, even a participant with valid credentials and a well-formed message, is
// answered as for a route that does not exist, and its claim to come from MLLP is dropped.
func TestHL7RoutesAreNotOnTheAPI(t *testing.T) {
	w := newHL7World(t, HL7Options{})
	for _, h := range []map[string]string{nil, {headerHL7Origin: "mllp", headerForwardedHL7Sender: "hosp-a"}} {
		code, body, _ := w.do("POST", "/v1/hl7/adt/register", w.tokA, strings.ReplaceAll(a04HospA, "\n", "\r"), h)
		if code != 404 {
			t.Fatalf("HL7 over the API (%v): %d %s", h, code, body)
		}
	}
	if code, _, _ := w.do("GET", "/fhir/Patient/"+model.PatientID(sysA+"|MRN-A1"), w.tokA, nil, nil); code != 404 {
		t.Fatalf("the message sent over the API registered a record: %d", code)
	}
}
