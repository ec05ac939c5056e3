package search

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
)

// BenchmarkRegistry is issue 5's measure: it generates -search.docs
// documents over -search.persons persons, indexes them in batches through
// Index.Apply and, batch for batch in the same run, into a plain Bleve index
// with the same mapping given the already derived documents (so the ratio is
// what this layer costs: validation, derivation, the applied-index record),
// then measures query latencies on the result. It runs once whatever b.N is;
// its figures are the reported metrics.
//
//	go test -run '^$' -bench Registry -benchtime 1x -timeout 2h ./search/
func BenchmarkRegistry(b *testing.B) {
	for range b.N {
		runRegistryBenchmark(b)
	}
}

func runRegistryBenchmark(b *testing.B) {
	b.StopTimer()
	ctx := context.Background()
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
	defer plain.Close()

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

	// Query latencies, one query at a time, on the index just built.
	persons := personsWithDocuments(docs)
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
	}
	// A patient, one of their document types and a five-year window around
	// one of their documents: what a clinician's system asks.
	patientTypeDate := func(int) (int, error) {
		d := &docs[rng.IntN(len(docs))]
		from := d.Created.AddDate(-rng.IntN(5), 0, 0)
		res, err := ours.Search(ctx, Query{
			PersonEUIDs: []string{d.PersonEUID},
			Types:       []string{d.Type.Token()},
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
