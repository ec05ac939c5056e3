package locator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rls-hie/rls/locator/hl7"
)

// benchPerson is the i-th generated person: distinct names, birth dates, addresses and
// phones, so that each registration is matched against an index that grows as it would.
type benchPerson struct {
	given, family, birth, sex, street, city, zip, phone string
}

var (
	benchGiven  = []string{"Margaret", "Thomas", "Aisha", "Wei", "Olga", "Pedro", "Fatima", "Jonas", "Ines", "Kwame", "Lena", "Ravi", "Sofia", "Yusuf", "Hana", "Mateo"}
	benchFamily = []string{"OBrien", "Reed", "Okafor", "Chen", "Ivanova", "Garcia", "Haddad", "Berg", "Costa", "Mensah", "Novak", "Patel", "Rossi", "Demir", "Sato", "Lopez", "Keller", "Dubois", "Silva", "Nakamura"}
	benchCities = []string{"Springfield", "Dayton", "Peoria", "Joliet", "Naperville", "Aurora", "Rockford", "Elgin"}
)

func benchPersonOf(i int) benchPerson {
	g, f := benchGiven[i%len(benchGiven)], benchFamily[(i/len(benchGiven))%len(benchFamily)]
	n := i / (len(benchGiven) * len(benchFamily))
	d := time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (i*7919)%30000)
	return benchPerson{
		given: g, family: fmt.Sprintf("%s%c", f, 'a'+rune(n%26)), birth: d.Format("20060102"),
		sex: []string{"F", "M"}[i%2], street: fmt.Sprintf("%d Oak Street", 1+i%997), city: benchCities[i%len(benchCities)],
		zip: fmt.Sprintf("6%04d", i%10000), phone: fmt.Sprintf("(217) %03d-%04d", 200+i%800, i%10000),
	}
}

func (p benchPerson) a04(facility, mrn string, control int) []byte {
	return []byte(fmt.Sprintf("MSH|^~\\&|ADT|%s|RLS|HIE|20261101093000||ADT^A04^ADT_A01|C%d|P|2.5\rEVN|A04\r"+
		"PID|1||%s^^^%s^MR||%s^%s^^^^^L||%s|%s|||%s^^%s^IL^%s^USA^H||%s^PRN^PH\r",
		facility, control, mrn, facility, p.family, p.given, p.birth, p.sex, p.street, p.city, p.zip, p.phone))
}

func (p benchPerson) patient(system, mrn string) []byte {
	b, _ := json.Marshal(map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": system, "value": mrn}},
		"name":       []any{map[string]any{"use": "official", "family": p.family, "given": []string{p.given}}},
		"birthDate":  p.birth[:4] + "-" + p.birth[4:6] + "-" + p.birth[6:],
		"gender":     map[string]string{"F": "female", "M": "male"}[p.sex],
		"address":    []any{map[string]any{"use": "home", "line": []string{p.street}, "city": p.city, "state": "IL", "postalCode": p.zip, "country": "USA"}},
		"telecom":    []any{map[string]any{"system": "phone", "value": p.phone, "use": "home"}}})
	return b
}

// BenchmarkHL7FeedVsFHIR measures ITI-8 registrations (ADT^A04 over several MLLP
// connections, each answered only once committed and audited) against the same
// registrations through POST /fhir/Patient on as many HTTP connections, on one node, in
// alternating rounds (the index grows alike for both). b.N records go each way: every
// person is registered by two participants, hosp-a and hosp-b, so half the registrations
// link a record to a person already there; at the end a PIX query checks that they did.
//
//	go test -run '^$' -bench HL7FeedVsFHIR -benchtime 8000x ./locator/
func BenchmarkHL7FeedVsFHIR(b *testing.B) {
	const (
		conns  = 8
		rounds = 8
	)
	w := &hl7World{}
	w.testAPI = newTestAPIWith(b, func(o *Options) func(*Server) {
		o.MaxBodyBytes = 1 << 20
		return func(s *Server) { w.srv = s }
	})
	tokA, tokB := w.participants()
	mllp, srv := startMLLP(b, w.srv, HL7Options{TrustNetwork: true})
	defer srv.Close()

	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	clients := make([]*hl7.Client, conns)
	for i := range clients {
		c, err := hl7.Dial(context.Background(), mllp, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	per := max(2, b.N/rounds/2*2) // even: both records of a person in one round
	var next, lastHL7 atomic.Int64
	run := func(send func(worker, i int) error) float64 {
		start := time.Now()
		end := next.Load() + int64(per)
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for k := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= end {
						return
					}
					if err := send(k, int(i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		next.Store(end)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		return float64(per) / time.Since(start).Seconds()
	}
	viaHL7 := func(k, i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		lastHL7.Store(int64(i))
		facility := []string{"hosp-a", "hosp-b"}[i%2]
		raw, err := clients[k].Exchange(ctx, benchPersonOf(i/2).a04(facility, fmt.Sprintf("H-%d", i/2), i))
		if err != nil {
			return err
		}
		if !bytes.Contains(raw, []byte("MSA|AA|")) {
			return fmt.Errorf("A04 %d: %q", i, raw)
		}
		return nil
	}
	viaFHIR := func(_, i int) error {
		system, token := []string{sysA, sysB}[i%2], []string{tokA, tokB}[i%2]
		req, _ := http.NewRequest("POST", w.url+"/fhir/Patient", bytes.NewReader(benchPersonOf(i/2).patient(system, fmt.Sprintf("F-%d", i/2))))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 201 {
			return fmt.Errorf("POST /fhir/Patient %d: %d %s", i, resp.StatusCode, body)
		}
		return nil
	}
	b.ResetTimer()
	var hl7Rates, fhirRates, ratios []float64
	for r := range rounds {
		var h, f float64
		if r%2 == 0 {
			h, f = run(viaHL7), run(viaFHIR)
		} else {
			f, h = run(viaFHIR), run(viaHL7)
		}
		hl7Rates, fhirRates, ratios = append(hl7Rates, h), append(fhirRates, f), append(ratios, h/f)
	}
	b.StopTimer()
	// The last person fed over MLLP is one person at both hospitals.
	person := int(lastHL7.Load()) / 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := clients[0].Exchange(ctx, []byte(fmt.Sprintf("MSH|^~\\&|PIXC|hosp-a|RLS|HIE|20261101094000||QBP^Q23^QBP_Q21|Q1|P|2.5\r"+
		"QPD|IHE PIX Query|q1|H-%d^^^hosp-a|^^^hosp-b\rRCP|I\r", person)))
	if err != nil {
		b.Fatal(err)
	}
	rsp, err := hl7.Parse(raw)
	if err != nil || rsp.Segment("PID") == nil || rsp.Segment("PID").Value(3, 1) != fmt.Sprintf("H-%d", person) {
		b.Fatalf("PIX query of the last person fed: its two registrations did not link (%v): %q", err, raw)
	}
	b.ReportMetric(median(hl7Rates), "hl7-records/s")
	b.ReportMetric(median(fhirRates), "fhir-records/s")
	b.ReportMetric(median(ratios), "hl7/fhir")
	b.Logf("%d records each way in %d rounds over %d connections: ADT^A04 %.0f/s, FHIR %.0f/s, median per-round ratio %.2f (rounds: %.2f)",
		per*rounds, rounds, conns, median(hl7Rates), median(fhirRates), median(ratios), ratios)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
