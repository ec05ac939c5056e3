package search

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
)

var (
	benchDocs = flag.Int("search.docs", 1_000_000,
		"documents the registry benchmark generates and indexes")
	benchPersons = flag.Int("search.persons", 1_000_000,
		"persons the benchmark's documents are spread over")
	benchBatch = flag.Int("search.batch", 5000,
		"documents per applied batch in the registry benchmark")
	benchQueries = flag.Int("search.queries", 2000,
		"samples per query kind in the registry benchmark")
	benchJSON = flag.String("search.json", "",
		"also write the registry benchmark's figures as JSON to this file")
)

// registryFigures is the JSON the registry benchmark prints (one line on
// standard output, prefixed "search-benchmark-json: ") and, with
// -search.json, writes to a file.
type registryFigures struct {
	Date         string  `json:"date"`
	CPU          int     `json:"cpus"`
	Documents    int     `json:"documents"`
	Persons      int     `json:"persons"`
	Batch        int     `json:"batch"`
	LoadBefore   string  `json:"loadavg_before"`
	LoadAfterIdx string  `json:"loadavg_after_indexing"`
	LoadAfter    string  `json:"loadavg_after"`
	OursRate     float64 `json:"index_docs_per_s"`
	PlainRate    float64 `json:"plain_bleve_docs_per_s"`
	Ratio        float64 `json:"index_ratio"`
	// SettleSeconds is how long the index merged in the background after
	// the bulk load before queries were measured; Segments, how many file
	// segments it then had.
	SettleSeconds float64                 `json:"settle_seconds"`
	Segments      uint64                  `json:"segments"`
	Queries       map[string]queryFigures `json:"queries"`
}

type queryFigures struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	Results float64 `json:"mean_results"`
}

// loadAverage is the first three fields of /proc/loadavg ("" elsewhere).
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	return strings.Join(f[:min(3, len(f))], " ")
}

// BenchmarkRegistry is issue 5's measure: it generates -search.docs
// documents over -search.persons persons, indexes them in batches through
// Index.Apply and, batch for batch in the same run, into a plain Bleve index
// with the same mapping given the already derived documents (so the ratio is
// what this layer costs: validation, derivation, the applied-index record),
// then measures query latencies on the result. Both indexes live in the same
// process and directory with Bleve's defaults and the same batches, and
// which goes first alternates batch by batch, so each side's background
// merging lands as often on the other's clock as on its own. Queries run
// one at a time after the plain index is closed, the generated documents
// are dropped, and the index has finished merging (the wait is reported).
// Each of its b.N runs (use -benchtime 1x) builds both indexes anew; its figures are the reported metrics and
// one JSON line on standard output ("search-benchmark-json: {...}").
//
//	go test -run '^$' -bench Registry -benchtime 1x -timeout 3h ./search/
func BenchmarkRegistry(b *testing.B) {
	for range b.N {
		runRegistryBenchmark(b)
	}
}

func runRegistryBenchmark(b *testing.B) {
	b.StopTimer()
	ctx := context.Background()
	figures := registryFigures{
		Date: time.Now().UTC().Format(time.RFC3339), CPU: runtime.GOMAXPROCS(0),
		Documents: *benchDocs, Persons: *benchPersons, Batch: *benchBatch,
		LoadBefore: loadAverage(), Queries: map[string]queryFigures{},
	}
	gen := newCorpusGen(1, *benchPersons, 200)
	started := time.Now()
	docs := make([]Document, *benchDocs)
	for i := range docs {
		docs[i] = gen.doc(i)
	}
	b.Logf("generated %d documents over %d persons in %s", len(docs), *benchPersons, time.Since(started).Round(time.Millisecond))

	dir := b.TempDir()
	ours, err := Open(filepath.Join(dir, "ours"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ours.Close()
	m, err := newMapping()
	if err != nil {
		b.Fatal(err)
	}
	plain, err := bleve.New(filepath.Join(dir, "plain"), m)
	if err != nil {
		b.Fatal(err)
	}
	plainOpen := true
	defer func() {
		if plainOpen {
			plain.Close()
		}
	}()

	// Alternate which side goes first so background merging of one index
	// does not always land on the other's clock.
	var oursTime, plainTime time.Duration
	changes := make([]Change, 0, *benchBatch)
	derived := make([]*indexedDocument, 0, *benchBatch)
	batchNo := 0
	for start := 0; start < len(docs); start += *benchBatch {
		part := docs[start:min(start+*benchBatch, len(docs))]
		changes, derived = changes[:0], derived[:0]
		for i := range part {
			changes = append(changes, Change{ID: part[i].ID, Document: &part[i]})
			derived = append(derived, toIndexed(&part[i]))
		}
		runOurs := func() {
			t0 := time.Now()
			if err := ours.Apply(changes, uint64(batchNo+1)); err != nil {
				b.Fatal(err)
			}
			oursTime += time.Since(t0)
		}
		runPlain := func() {
			t0 := time.Now()
			batch := plain.NewBatch()
			for i, x := range derived {
				if err := batch.Index(part[i].ID, x); err != nil {
					b.Fatal(err)
				}
			}
			if err := plain.Batch(batch); err != nil {
				b.Fatal(err)
			}
			plainTime += time.Since(t0)
		}
		if batchNo%20 == 19 {
			fmt.Fprintf(os.Stderr, "search benchmark: %d documents indexed, ours %s, plain %s\n",
				start+len(part), oursTime.Round(time.Millisecond), plainTime.Round(time.Millisecond))
		}
		if batchNo%2 == 0 {
			runOurs()
			runPlain()
		} else {
			runPlain()
			runOurs()
		}
		batchNo++
	}
	oursRate := float64(len(docs)) / oursTime.Seconds()
	plainRate := float64(len(docs)) / plainTime.Seconds()
	b.ReportMetric(oursRate, "ours_docs/s")
	b.ReportMetric(plainRate, "plain_docs/s")
	b.ReportMetric(oursRate/plainRate, "ratio")
	b.Logf("indexing %d documents in batches of %d: ours %.0f docs/s (%s), plain Bleve %.0f docs/s (%s), ratio %.2f",
		len(docs), *benchBatch, oursRate, oursTime.Round(time.Millisecond), plainRate, plainTime.Round(time.Millisecond), oursRate/plainRate)
	figures.OursRate, figures.PlainRate, figures.Ratio = oursRate, plainRate, oursRate/plainRate
	figures.LoadAfterIdx = loadAverage()
	// The plain index has served its purpose; closed, its background
	// merging no longer competes with the queries measured below.
	plainOpen = false
	if err := plain.Close(); err != nil {
		b.Fatal(err)
	}

	// Query latencies, one query at a time, on the index just built. The
	// generated documents are not part of what is measured: keep the little
	// the queries draw from and let the rest go, so the collector is not
	// marking a gigabyte of test data while queries run.
	persons := personsWithDocuments(docs)
	type drawn struct {
		person, typ string
		created     time.Time
	}
	drawFrom := make([]drawn, len(docs))
	for i := range docs {
		drawFrom[i] = drawn{docs[i].PersonEUID, docs[i].Type.Token(), docs[i].Created}
	}
	docs, changes, derived = nil, nil, nil
	runtime.GC()
	// Bulk loading leaves Bleve merging segments in the background for a
	// while; a registry in service is not bulk loaded, so measure once the
	// index has settled (bounded, and reported).
	settled, segments, steady := waitForSteadyIndex(ours.live, 10*time.Minute)
	figures.SettleSeconds, figures.Segments = settled.Seconds(), segments
	b.Logf("index settled in %s (steady %v), %d file segments", settled.Round(time.Second), steady, segments)
	rng := newCorpusGen(2, *benchPersons, 200).rng
	samples := *benchQueries
	measure := func(name string, run func(i int) (int, error)) {
		lat := make([]time.Duration, 0, samples)
		hits := 0
		for i := range samples {
			t0 := time.Now()
			n, err := run(i)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			hits += n
		}
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, name+"_p50_ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, name+"_p99_ms")
		b.Logf("%-30s p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%d samples, %.1f results each)",
			name, ms(p50), ms(p99), ms(lat[len(lat)-1]), samples, float64(hits)/float64(samples))
		figures.Queries[name] = queryFigures{Samples: samples, P50: ms(p50), P99: ms(p99), Max: ms(lat[len(lat)-1]),
			Results: float64(hits) / float64(samples)}
	}
	// A patient, one of their document types and a five-year window around
	// one of their documents: what a clinician's system asks.
	patientTypeDate := func(int) (int, error) {
		d := &drawFrom[rng.IntN(len(drawFrom))]
		from := d.created.AddDate(-rng.IntN(5), 0, 0)
		res, err := ours.Search(ctx, Query{
			PersonEUIDs: []string{d.person},
			Types:       []string{d.typ},
			Created: []DateParam{
				{Prefix: DateGe, Range: TimeRange{From: from}},
				{Prefix: DateLt, Range: TimeRange{From: from.AddDate(5, 0, 0)}},
			},
			Limit: 20,
		})
		if err != nil {
			return 0, err
		}
		return int(res.Total), nil
	}
	measure("patient_type_date", patientTypeDate)
	// The same queries with the dates as Bleve numeric ranges, for scale.
	ours.patientDateCap = 0
	measure("patient_type_date_bleve_ranges", patientTypeDate)
	ours.patientDateCap = defaultPatientDateCap
	measure("patient_records_all", func(int) (int, error) {
		keys, _ := gen.recordsOf(persons[rng.IntN(len(persons))])
		res, err := ours.Search(ctx, Query{PatientRecords: keys, Statuses: []Status{StatusCurrent}, Limit: 20})
		if err != nil {
			return 0, err
		}
		return int(res.Total), nil
	})
	// Free text: two words of the vocabulary's middle ranks (present in a
	// few hundred to a few thousand documents), and a phrase.
	measure("free_text", func(i int) (int, error) {
		mid := gen.vocabulary[20:400]
		text := mid[rng.IntN(len(mid))] + " " + mid[rng.IntN(len(mid))]
		if i%4 == 3 {
			text = `"` + text + `"`
		}
		res, err := ours.Search(ctx, Query{Text: text, Limit: 20})
		if err != nil {
			return 0, err
		}
		return int(res.Total), nil
	})
	measure("free_text_patient", func(int) (int, error) {
		p := persons[rng.IntN(len(persons))]
		res, err := ours.Search(ctx, Query{PersonEUIDs: []string{gen.euid(p)}, Text: gen.vocabulary[gen.wordZipf.Uint64()], Limit: 20})
		if err != nil {
			return 0, err
		}
		return int(res.Total), nil
	})
	measure("locate_person", func(int) (int, error) {
		p := persons[rng.IntN(len(persons))]
		hs, err := ours.Locate(ctx, LocateQuery{PersonEUIDs: []string{gen.euid(p)}})
		return len(hs), err
	})
	// The same, asking Bleve for the whole cap at once, as Locate did
	// before it asked for a small first page: for scale.
	ours.firstPage = defaultLocateStoredCap
	measure("locate_person_whole_cap", func(int) (int, error) {
		p := persons[rng.IntN(len(persons))]
		hs, err := ours.Locate(ctx, LocateQuery{PersonEUIDs: []string{gen.euid(p)}})
		return len(hs), err
	})
	ours.firstPage = defaultFirstPage
	measure("locate_records", func(int) (int, error) {
		keys, _ := gen.recordsOf(persons[rng.IntN(len(persons))])
		hs, err := ours.Locate(ctx, LocateQuery{PatientRecords: keys})
		return len(hs), err
	})
	measure("locate_chronic_person", func(int) (int, error) {
		hs, err := ours.Locate(ctx, LocateQuery{PersonEUIDs: []string{gen.euid(rng.IntN(gen.chronic))}})
		return len(hs), err
	})
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	b.Logf("heap in use after the run: %d MiB", mem.HeapInuse>>20)
	figures.LoadAfter = loadAverage()
	out, err := json.Marshal(figures)
	if err != nil {
		b.Fatal(err)
	}
	// Printed rather than logged: go test cuts a benchmark's log short.
	fmt.Printf("search-benchmark-json: %s\n", out)
	if *benchJSON != "" {
		if err := os.WriteFile(*benchJSON, append(out, '\n'), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// waitForSteadyIndex waits until Bleve's background merging and persisting
// have caught up with idx (scorch's index_bgthreads_active is false), at
// most limit, and says how long it took and how many file segments remain.
func waitForSteadyIndex(idx bleve.Index, limit time.Duration) (time.Duration, uint64, bool) {
	started := time.Now()
	for {
		stats, _ := idx.StatsMap()["index"].(map[string]any)
		active, known := stats["index_bgthreads_active"].(bool)
		segments, _ := stats["num_root_filesegments"].(uint64)
		if !known || !active || time.Since(started) >= limit {
			return time.Since(started), segments, known && !active
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// personsWithDocuments lists, once each, the persons that have a document.
func personsWithDocuments(docs []Document) []int {
	seen := map[int]bool{}
	var out []int
	for i := range docs {
		var p int
		if _, err := fmt.Sscanf(docs[i].PersonEUID, "E%d", &p); err == nil && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
