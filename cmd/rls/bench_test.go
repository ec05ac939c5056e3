package main

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// TestBenchMediansPerClusterSize: the summary of repeated rounds takes, per cluster size,
// the median of the rounds' ratios (each against its own round's in-memory run) and says
// whether every round formed the in-memory run's persons.
func TestBenchMediansPerClusterSize(t *testing.T) {
	round := func(mem float64, one, three benchCluster) benchRound {
		return benchRound{InMemory: benchInMemory{RecordsPerSecond: mem}, Clusters: []benchCluster{one, three}}
	}
	rounds := []benchRound{
		round(1000, benchCluster{RecordsPerSecond: 500, Ratio: 0.5, SamePersons: true}, benchCluster{RecordsPerSecond: 200, Ratio: 0.2, SamePersons: true}),
		round(900, benchCluster{RecordsPerSecond: 300, Ratio: 0.333, SamePersons: true}, benchCluster{RecordsPerSecond: 270, Ratio: 0.3, SamePersons: false}),
		round(1200, benchCluster{RecordsPerSecond: 480, Ratio: 0.4, SamePersons: true}, benchCluster{RecordsPerSecond: 120, Ratio: 0.1, SamePersons: true}),
	}
	got := benchMedians([]int{1, 3}, rounds)
	if len(got) != 2 {
		t.Fatalf("%d summaries for 2 cluster sizes", len(got))
	}
	one, three := got[0], got[1]
	if one.Nodes != 1 || one.Rounds != 3 || one.Ratio != 0.4 || one.RecordsPerSecond != 480 || one.InMemoryRecordsPerSecond != 1000 || !one.SamePersons {
		t.Errorf("one node: %+v", one)
	}
	if !slices.Equal(one.Ratios, []float64{0.5, 0.333, 0.4}) {
		t.Errorf("one node's ratios %v are not the rounds' in order", one.Ratios)
	}
	if three.Ratio != 0.2 || three.RecordsPerSecond != 200 || three.SamePersons {
		t.Errorf("three nodes: %+v (a round that formed other persons must show)", three)
	}
	if even := benchMedians([]int{1}, rounds[:2]); even[0].Ratio != 0.417 {
		t.Errorf("median of two rounds %v, want their mean 0.417", even[0].Ratio)
	}
}

// TestBenchHistogramQuantiles checks the quantiles read from two scrapes of cumulative
// histogram buckets: only what was counted between them, only the series asked for, and
// interpolated within a bucket.
func TestBenchHistogramQuantiles(t *testing.T) {
	series := func(counts ...float64) map[float64]float64 {
		bounds := []float64{0.001, 0.002, 0.004, math.Inf(1)}
		m := map[float64]float64{}
		for i, c := range counts {
			m[bounds[i]] = c
		}
		return m
	}
	match := `rls_http_request_duration_seconds_bucket{method="POST",route="/fhir/Patient/$match"}`
	other := `rls_http_request_duration_seconds_bucket{method="GET",route="/v1/locate"}`
	before := benchHistograms{match: series(10, 10, 10, 10), other: series(0, 0, 0, 0)}
	// 100 more requests: 50 within 1 ms, 40 within 2 ms, 10 within 4 ms.
	after := benchHistograms{match: series(60, 100, 110, 110), other: series(500, 500, 500, 500)}
	q := after.since(before, "rls_http_request_duration_seconds_bucket", `route="/fhir/Patient/$match"`)
	if q == nil || q.Count != 100 {
		t.Fatalf("quantiles = %+v, want a count of 100", q)
	}
	if q.P50Ms != 1 || q.P99Ms != 3.8 {
		t.Fatalf("p50 %v ms, p99 %v ms; want 1 and 3.8", q.P50Ms, q.P99Ms)
	}
	if q := after.since(after, "rls_http_request_duration_seconds_bucket"); q != nil {
		t.Fatalf("nothing counted in between, got %+v", q)
	}
}

// TestMetricSamples: the samples of a text exposition, series with their labels, comments
// and unparsable lines skipped.
func TestMetricSamples(t *testing.T) {
	data := []byte(`# HELP rls_x Help text.
# TYPE rls_x histogram
rls_x_bucket{route="/v1/locate",le="0.001"} 3
rls_x_bucket{route="/v1/locate",le="+Inf"} 5
rls_x_sum 0.25
garbage line
`)
	var got []string
	for series, v := range metricSamples(data) {
		got = append(got, fmt.Sprintf("%s=%g", series, v))
	}
	want := []string{`rls_x_bucket{route="/v1/locate",le="0.001"}=3`, `rls_x_bucket{route="/v1/locate",le="+Inf"}=5`, "rls_x_sum=0.25"}
	if !slices.Equal(got, want) {
		t.Fatalf("samples %q, want %q", got, want)
	}
}

// TestValidMemoryLimit: what the bench hands the nodes as GOMEMLIMIT is a form the Go
// runtime accepts (a malformed one stops a node as it starts).
func TestValidMemoryLimit(t *testing.T) {
	for _, ok := range []string{"4GiB", "4500MiB", "1073741824", "512KiB", "2TiB", "100B"} {
		if !validMemoryLimit(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "4GB", "4 GiB", "GiB", "-1GiB", "4.5GiB", "4gib", "4GiBB", "4iB"} {
		if validMemoryLimit(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
