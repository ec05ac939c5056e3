package model

import (
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// State read back from bbolt must come out the same on every node whatever its time zone:
// each node renders these times in answers, and a zone-dependent value is a divergence.
func TestStoredTimesDecodeInUTC(t *testing.T) {
	saved := time.Local
	time.Local = time.FixedZone("node-zone", -(3*3600 + 30*60))
	t.Cleanup(func() { time.Local = saved })

	at := time.Date(2026, 3, 9, 23, 30, 0, 0, time.UTC)
	type codec interface {
		msgp.Marshaler
		msgp.Unmarshaler
	}
	for name, c := range map[string]struct {
		sent, back codec
		times      func(codec) []time.Time
	}{
		"participant": {&Participant{ID: "p", Created: at, Updated: at, TokenIssued: at}, &Participant{},
			func(v codec) []time.Time {
				p := v.(*Participant)
				return []time.Time{p.Created, p.Updated, p.TokenIssued}
			}},
		"node": {&Node{ID: "n", Registered: at}, &Node{},
			func(v codec) []time.Time { return []time.Time{v.(*Node).Registered} }},
		"patient": {&PatientMeta{Key: "k", Created: at, Updated: at}, &PatientMeta{},
			func(v codec) []time.Time { p := v.(*PatientMeta); return []time.Time{p.Created, p.Updated} }},
		"link-event": {&LinkEvent{Seq: 1, Time: at}, &LinkEvent{},
			func(v codec) []time.Time { return []time.Time{v.(*LinkEvent).Time} }},
		"audit": {&AuditEntry{ID: "a", Recorded: at, Observed: at}, &AuditEntry{},
			func(v codec) []time.Time { a := v.(*AuditEntry); return []time.Time{a.Recorded, a.Observed} }},
		"consent": {&Consent{Created: at, Updated: at}, &Consent{},
			func(v codec) []time.Time { c := v.(*Consent); return []time.Time{c.Created, c.Updated} }},
		"hl7-endpoint": {&HL7Endpoint{ID: "e", Created: at, Updated: at}, &HL7Endpoint{},
			func(v codec) []time.Time { e := v.(*HL7Endpoint); return []time.Time{e.Created, e.Updated} }},
	} {
		data, err := c.sent.MarshalMsg(nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := c.back.UnmarshalMsg(data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, tm := range c.times(c.back) {
			if tm.Location() != time.UTC || !tm.Equal(at) {
				t.Errorf("%s time %d came back as %s, want %s", name, i, tm, at)
			}
		}
	}
}
