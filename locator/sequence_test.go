package locator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/command"
)

// proposeAll runs one proposer per number, started in the order given, and returns the
// order in which they were let through.
func proposeAll(t *testing.T, s *batchSequencer, stream string, numbers []uint64, settled uint64) []uint64 {
	t.Helper()
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for _, n := range numbers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			proposed, err := s.await(context.Background(), BatchSequence{Stream: stream, Number: n, Settled: min(settled, n)})
			if err != nil {
				t.Errorf("batch %d: %v", n, err)
				return
			}
			mu.Lock()
			order = append(order, n)
			mu.Unlock()
			proposed()
		}()
		time.Sleep(5 * time.Millisecond) // arrive in the order given
	}
	wg.Wait()
	return order
}

func TestBatchSequencerProposesInStreamOrder(t *testing.T) {
	s := newBatchSequencer(slog.New(slog.DiscardHandler))
	if got := proposeAll(t, s, "a", []uint64{3, 1, 4, 0, 2}, 0); !slices.Equal(got, []uint64{0, 1, 2, 3, 4}) {
		t.Fatalf("stream a let through %v, want 0..4 in order", got)
	}
	// A batch sent again after it was proposed does not wait, nor move the stream back.
	if got := proposeAll(t, s, "a", []uint64{2, 6, 5}, 0); !slices.Equal(got, []uint64{2, 5, 6}) {
		t.Fatalf("resent 2 then 6, 5: %v, want [2 5 6]", got)
	}
	// Streams are independent.
	if got := proposeAll(t, s, "b", []uint64{1, 0}, 0); !slices.Equal(got, []uint64{0, 1}) {
		t.Fatalf("stream b: %v", got)
	}
}

// A leader meeting a stream in the middle (after a leader change) starts where the client
// says everything before was answered, instead of waiting for batches it never gets.
func TestBatchSequencerStartsAtSettled(t *testing.T) {
	s := newBatchSequencer(slog.New(slog.DiscardHandler))
	start := time.Now()
	if got := proposeAll(t, s, "c", []uint64{41, 40}, 40); !slices.Equal(got, []uint64{40, 41}) {
		t.Fatalf("got %v, want [40 41]", got)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("a stream picked up at its settled batch waited %v", waited)
	}
}

// A batch whose predecessor never comes goes ahead after the wait, and the stream moves on.
func TestBatchSequencerGivesUpWaiting(t *testing.T) {
	s := newBatchSequencer(slog.New(slog.DiscardHandler))
	s.wait = 50 * time.Millisecond
	if got := proposeAll(t, s, "d", []uint64{1, 2}, 0); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("got %v, want [1 2] once 0 was given up", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.await(ctx, BatchSequence{Stream: "d", Number: 9}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

// Batches of one import stream posted at once, the last first, enter the log in their
// numbers' order, and a malformed stream name is refused.
func TestBatchSequenceOrdersTheLog(t *testing.T) {
	a := newTestAPI(t)
	a.participants() // sysA must belong to a participant
	const batches = 4
	type answer struct {
		number int
		index  uint64
	}
	answers := make(chan answer, batches)
	var wg sync.WaitGroup
	for k := batches - 1; k >= 0; k-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := BatchRequest{
				Records:  []command.PatientRecord{{System: sysA, Value: fmt.Sprintf("SEQ-%d", k), Family: "Okafor", Given: []string{fmt.Sprintf("Ada%c", 'a'+k)}, BirthDate: "1980-02-0" + fmt.Sprint(k+1)}},
				Sequence: &BatchSequence{Stream: "test-stream", Number: uint64(k)},
			}
			code, body, _ := a.do("POST", "/v1/patients/batch", testAdminToken, req, nil)
			if code != 200 {
				t.Errorf("batch %d: %d %.300s", k, code, body)
				return
			}
			var resp BatchResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Errorf("batch %d: %v", k, err)
				return
			}
			answers <- answer{k, resp.Index}
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	close(answers)
	index := make([]uint64, batches)
	for a := range answers {
		index[a.number] = a.index
	}
	for k := 1; k < batches; k++ {
		if index[k] <= index[k-1] {
			t.Fatalf("log indexes by batch number %v: batch %d entered the log before batch %d", index, k, k-1)
		}
	}
	bad := BatchRequest{Records: []command.PatientRecord{{System: sysA, Value: "SEQ-X", Family: "Okafor"}}, Sequence: &BatchSequence{Stream: "no spaces", Number: 0}}
	if code, body, _ := a.do("POST", "/v1/patients/batch", testAdminToken, bad, nil); code != 400 || !strings.Contains(string(body), "sequence.stream") {
		t.Fatalf("bad stream name: %d %.300s", code, body)
	}
}

// A batch whose every record is refused proposes nothing, and must still let the next
// batch of its stream go at once, not after the wait for a batch that never comes.
func TestBatchSequenceRefusedBatchPassesTheTurn(t *testing.T) {
	a := newTestAPI(t)
	a.participants()
	refused := BatchRequest{
		Records:  []command.PatientRecord{{System: sysA, Value: "SEQ-R0", Family: "Okafor", Given: []string{"Ada"}, BirthDate: "2999-01-01"}},
		Sequence: &BatchSequence{Stream: "refused-first", Number: 0},
	}
	code, body, _ := a.do("POST", "/v1/patients/batch", testAdminToken, refused, nil)
	if code != 200 || !strings.Contains(string(body), `"status"`) {
		t.Fatalf("refused batch: %d %.300s", code, body)
	}
	start := time.Now()
	next := BatchRequest{
		Records: []command.PatientRecord{{System: sysA, Value: "SEQ-R1", Family: "Okafor", Given: []string{"Ada"}, BirthDate: "1980-02-01"}},
		// Settled 0: as if the client had not yet read the first answer.
		Sequence: &BatchSequence{Stream: "refused-first", Number: 1},
	}
	if code, body, _ := a.do("POST", "/v1/patients/batch", testAdminToken, next, nil); code != 200 {
		t.Fatalf("next batch: %d %.300s", code, body)
	}
	if waited := time.Since(start); waited > sequenceWait/3 {
		t.Fatalf("the batch after a wholly refused one waited %v", waited)
	}
}
