package fsm

import (
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
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
