package locator

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/raft/state"
)

// FuzzHL7Messages sends arbitrary messages to the HL7 handler of a live node (a listener
// that names senders by MSH-4, the two hospitals of the tests registered): every answer is
// an HL7 message with an acknowledgement code, and nothing the interface accepts fails in
// Apply. Each input may be a replicated write: run with a short -fuzzminimizetime, as
// .ci/fuzz does.
func FuzzHL7Messages(f *testing.F) {
	w := &hl7World{}
	w.testAPI = newTestAPIWith(f, func(*Options) func(*Server) { return func(s *Server) { w.srv = s } })
	w.tokA, w.tokB = w.participants()
	h := w.srv.HL7Handler(HL7Options{TrustNetwork: true})
	for _, seed := range []string{a04HospA, a04HospB,
		"MSH|^~\\&|ADT|hosp-a|RLS|HIE|20261101095500||ADT^A40^ADT_A39|A-3|P|2.5\nEVN|A40\nPID|1||MRN-A1^^^hosp-a^MR||O'BRIEN^MARGARET||19610704|F\nMRG|MRN-A2^^^hosp-a\n",
		"MSH|^~\\&|PIXC|hosp-a|RLS|HIE|20261101094000||QBP^Q23^QBP_Q21|Q-1|P|2.5\nQPD|IHE PIX Query|tag-1|MRN-A1^^^hosp-a|^^^&2.16.840.1.113883.3.7002&ISO\nRCP|I\n",
		"MSH|^~\\&|PDQC|hosp-b|RLS|HIE|20261101094500||QBP^Q22^QBP_Q21|P-1|P|2.5|||AL|ER\nQPD|IHE PDQ Query|t|@PID.5.1.1^OBRIEN~@PID.7^196107|||||^^^hosp-a\nRCP|I|1^RD\nDSC|1.abc|I\n",
		"MSH|^~\\&|ADT|hosp-b|RLS|HIE|20261101093000||ADT^A08|B-9|P|2.3.1||||||8859/1\nPID|1||B-9^^^&2.16.840.1.113883.3.7002&ISO||M\xfcller\\XE9\\^J||1961|U|||\\.br\\^^^^^^BA||^NET^Internet^x@y.z~^^^^1^217^5550101^99||||||123-45-6789||||||||||200101011230-0500|Y\n",
	} {
		f.Add([]byte(strings.ReplaceAll(seed, "\n", "\r")))
	}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	f.Fuzz(func(t *testing.T, msg []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		answers := h.ServeHL7(ctx, &hl7.Request{Message: msg, RemoteAddr: remote})
		head := hl7.PeekHeader(msg)
		if len(answers) == 0 && !(strings.EqualFold(head.AcceptAck, "NE") || strings.EqualFold(head.ApplicationAck, "NE") || head.AcceptAck == "SU" || head.AcceptAck == "ER" || head.ApplicationAck == "SU" || head.ApplicationAck == "ER") {
			t.Fatalf("no answer to %q", msg)
		}
		for _, a := range answers {
			m, err := hl7.Parse(a)
			if err != nil {
				t.Fatalf("answer does not parse: %v\n%q\nto %q", err, a, msg)
			}
			switch code := m.Segment("MSA").Value(1, 1); code {
			case hl7.AA, hl7.AE, hl7.AR, hl7.CA, hl7.CE, hl7.CR:
			default:
				t.Fatalf("MSA-1 %q in %q", code, a)
			}
		}
		var failed []state.FailedEntry
		if err := w.node.State().View(func(tx *state.Tx) (err error) { failed, err = tx.FailedEntries(); return err }); err != nil || len(failed) > 0 {
			t.Fatalf("entries failed in Apply: %+v %v (message %q)", failed, err, msg)
		}
	})
}
