package main

import (
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
