package locator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLocateAudit measures GET /v1/locate throughput with the audit trail on and off,
// in one run: two single-node clusters side by side, measured in alternating rounds of
// fixed length by the same concurrent clients, so machine load affects both alike. It
// prints one JSON line with both rates and their ratio.
//
//	go test -run '^$' -bench LocateAudit ./locator/
func BenchmarkLocateAudit(b *testing.B) {
	const maxClients, rounds = 64, 3
	round := 1500 * time.Millisecond
	if testing.Short() {
		round = 300 * time.Millisecond
	}
	setup := func(auditOff bool) (*testAPI, string, string) {
		a := newTestAPIWith(b, func(o *Options) func(*Server) { o.auditOff = auditOff; return nil })
		tokA, _ := a.participants()
		code, body, _ := a.do("POST", "/fhir/Patient", tokA, patientJSON(sysA, "A-1", "Margaret", "Okonjo", "1958-02-14", "female", "62704", "2175550123"), nil)
		if code != 201 {
			b.Fatalf("register: %d %s", code, body)
		}
		return a, tokA, "/v1/locate?identifier=" + url.QueryEscape(sysA+"|A-1")
	}
	off, offTok, path := setup(true)
	on, onTok, _ := setup(false)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: maxClients, MaxConnsPerHost: maxClients}}

	measure := func(a *testAPI, tok string, clients int) float64 {
		var done atomic.Int64
		var failed atomic.Int64
		stop := time.Now().Add(round)
		var wg sync.WaitGroup
		start := time.Now()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					req, _ := http.NewRequest("GET", a.url+path, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set(HeaderPurposeOfUse, "TREAT")
					resp, err := client.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failed.Add(1)
						continue
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d locates failed", failed.Load())
		}
		return float64(done.Load()) / time.Since(start).Seconds()
	}
	// With few clients a locate's latency (its audit entry's commit included) bounds the
	// rate; with many, entries share commits and the rate shows what audit costs in work.
	type level struct {
		Clients        int    `json:"clients"`
		AuditOff       int    `json:"locates_per_s_audit_off"`
		AuditOn        int    `json:"locates_per_s_audit_on"`
		RatioOnOverOff string `json:"ratio_on_over_off"`
	}
	var levels []level
	for _, clients := range []int{16, maxClients} {
		measure(off, offTok, clients) // warm up connections and caches
		measure(on, onTok, clients)
		var sumOff, sumOn float64
		for r := 0; r < rounds; r++ {
			sumOff += measure(off, offTok, clients)
			sumOn += measure(on, onTok, clients)
		}
		rateOff, rateOn := sumOff/rounds, sumOn/rounds
		b.ReportMetric(rateOff, fmt.Sprintf("locates/s-audit-off-%dc", clients))
		b.ReportMetric(rateOn, fmt.Sprintf("locates/s-audit-on-%dc", clients))
		levels = append(levels, level{Clients: clients, AuditOff: int(rateOff), AuditOn: int(rateOn), RatioOnOverOff: fmt.Sprintf("%.2f", rateOn/rateOff)})
	}
	load, _ := os.ReadFile("/proc/loadavg")
	out, _ := json.Marshal(map[string]any{
		"benchmark":     "GET /v1/locate throughput, audit on vs off (single node, in process)",
		"rounds":        rounds,
		"round_seconds": round.Seconds(),
		"levels":        levels,
		"loadavg":       strings.TrimSpace(string(load)),
	})
	fmt.Println(string(out))
}
