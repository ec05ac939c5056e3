package fsm

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/mpi/dataset"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

// BenchmarkApplyBatch measures applying batches of 32 participant adds to a state that
// already holds 20,000 participants (each batch one bbolt transaction and fsync).
//
//	go test -run '^$' -bench ApplyBatch ./raft/fsm/
func BenchmarkApplyBatch(b *testing.B) {
	const batch = 32
	f := newFSMB(b)
	index := uint64(0)
	mk := func(i int) *hraft.Log {
		index++
		p := testParticipant(i)
		data, err := command.Encode(command.TypeParticipantAdd, command.Header{Time: time.Unix(int64(i), 0).UTC()}, &command.ParticipantAdd{Participant: p})
		if err != nil {
			b.Fatal(err)
		}
		return &hraft.Log{Index: index, Term: 1, Type: hraft.LogCommand, Data: data}
	}
	next := 0
	fill := func(n int) []*hraft.Log {
		logs := make([]*hraft.Log, n)
		for i := range logs {
			logs[i] = mk(next)
			next++
		}
		return logs
	}
	for i := 0; i < 20000/500; i++ {
		f.ApplyBatch(fill(500))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		logs := fill(batch)
		b.StartTimer()
		f.ApplyBatch(logs)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkRegisterThroughFSM registers a whole population file through the FSM (log
// entries of 500 records, as `rls import patients` sends them, each applied and committed
// by the FSM into bbolt), with no Raft or HTTP around it: the ceiling of the replicated
// import on one node. RLS_BENCH_FILE names another CSV file. With RLS_BENCH_PROPOSED=1 the
// entries are made as a leader proposes them: stamped with the input limits (which the FSM
// then checks) and carrying each record's prepared form (which the FSM decodes and
// verifies); the preparing is done before the clock starts. RLS_BENCH_PROPOSED=self
// prepares them as the leader does for its own FSM, which then takes the forms it
// remembered instead of decoding and verifying them. heap-B/record is the live heap the
// state holds afterwards (in-memory indexes and bbolt's own), per record of the file.
//
//	go test -run '^$' -bench RegisterThroughFSM -benchtime 1x ./raft/fsm/
func BenchmarkRegisterThroughFSM(b *testing.B) {
	mode := os.Getenv("RLS_BENCH_PROPOSED")
	proposed := mode == "1" || mode == "self"
	proposedTime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	path := os.Getenv("RLS_BENCH_FILE")
	if path == "" {
		path = testkit.Testdata(b, "synthetic", "population-20k.csv")
	}
	file, err := dataset.Load(path, dataset.CSV)
	if err != nil {
		b.Fatal(err)
	}
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		f := newFSMB(b)
		index := uint64(0)
		entry := func(typ command.Type, payload command.Payload) *hraft.Log {
			index++
			h := command.Header{Time: time.Unix(int64(index), 0).UTC()}
			if proposed {
				// Birth dates are checked against the entry's time.
				h.Time = proposedTime.Add(time.Duration(index) * time.Second)
				h.Limits = model.LimitsVersion
				if mode == "self" {
					f.PrepareProposal(typ, payload)
				} else {
					PrepareProposal(typ, payload)
				}
			}
			data, err := command.Encode(typ, h, payload)
			if err != nil {
				b.Fatal(err)
			}
			return &hraft.Log{Index: index, Term: 1, Type: hraft.LogCommand, Data: data}
		}
		var systems []string
		for _, row := range file.Rows {
			if !slices.Contains(systems, row.Record.System) {
				systems = append(systems, row.Record.System)
				p := testParticipant(100 + len(systems))
				p.IdentifierSystem = row.Record.System
				f.ApplyBatch([]*hraft.Log{entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p})})
			}
		}
		runtime.GC()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var logs []*hraft.Log
		for i := 0; i < len(file.Rows); i += 500 {
			var regs []command.PatientRegistration
			for j := i; j < min(i+500, len(file.Rows)); j++ {
				rec := commandRecord(file.Rows[j].Record)
				if proposed && rec.Check("", proposedTime) != nil {
					continue // the API refuses it (a birth date in the future): no leader proposes it
				}
				regs = append(regs, command.PatientRegistration{Record: rec, NewEUID: fmt.Sprintf("E%09d", j+1)})
			}
			logs = append(logs, entry(command.TypePatientRegister, &command.PatientRegister{Registrations: regs}))
		}
		b.StartTimer()
		start := time.Now()
		cpuStart, cpuOK := testkit.ProcessCPU()
		tenth, next := len(logs)/10, 1
		last := start
		for i, l := range logs {
			for _, res := range f.ApplyBatch([]*hraft.Log{l}) {
				for _, o := range res.(Response).Value.([]Registered) {
					if o.Err != nil {
						b.Fatal(o.Err)
					}
				}
			}
			if tenth > 0 && i+1 == next*tenth {
				now := time.Now()
				b.Logf("tenth %d: %.0f records/s", next, float64(tenth*500)/now.Sub(last).Seconds())
				last, next = now, next+1
			}
		}
		f.commitOpen()
		b.ReportMetric(float64(len(file.Rows))/time.Since(start).Seconds(), "records/s")
		if cpuEnd, ok := testkit.ProcessCPU(); ok && cpuOK {
			b.ReportMetric(float64(len(file.Rows))/(cpuEnd-cpuStart).Seconds(), "records/cpu-s")
		}
		// The heap the state holds once everything is in the file: the in-memory indexes
		// (match index and patient search) and what bbolt keeps on the Go heap.
		b.StopTimer()
		for n, _ := f.store.Unflushed(); n > 0; n, _ = f.store.Unflushed() {
			time.Sleep(10 * time.Millisecond)
		}
		logs = nil
		runtime.GC()
		runtime.GC() // and what sync.Pools held through the first
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(len(file.Rows)), "heap-B/record")
		b.StartTimer()
	}
}
