package integration

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// opKind is what a recorded client operation did.
type opKind uint8

const (
	// opAdd registers a new participant (POST /fhir/Organization): the grow-only set.
	opAdd opKind = iota
	// opPut sets a participant's endpoint (PUT /fhir/Organization/{id}): a register write.
	opPut
	// opGet reads a participant's endpoint with consistency=strong: a register read.
	opGet
	// opRegister registers a patient record certain to join its person (POST
	// /fhir/Patient): an add to the grow-only set of that person's identifiers.
	opRegister
	// opPix reads a person's identifiers with a strong PIXm query: a set read.
	opPix
	// opDocument registers a DocumentReference (POST /fhir/DocumentReference).
	opDocument
)

func (k opKind) String() string {
	return [...]string{"add", "put", "get", "register", "pix", "document"}[k]
}

// isRead reports whether operations of this kind only read: they carry no Raft index and
// count as no write.
func (k opKind) isRead() bool { return k == opGet || k == opPix }

// MarshalText names the kind in saved histories.
func (k opKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// outcome is what the client knows about a write after its call returned.
type outcome uint8

const (
	// acked: the node answered 2xx; the write must be in the state for ever.
	acked outcome = iota
	// notApplied: the write certainly changed nothing (no connection was made, a 503 marked
	// X-Rls-Not-Applied, or a 4xx refusal); it must never appear.
	notApplied
	// unknown: a timeout, a cut connection or a 5xx without that mark; it may or may not
	// have happened, and a later read decides.
	unknown
)

func (o outcome) String() string {
	return [...]string{"acked", "not-applied", "unknown"}[o]
}

// MarshalText names the outcome in saved histories.
func (o outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Op is one client operation, timed on the history's monotonic clock.
type Op struct {
	Client  int
	Kind    opKind
	Key     string // participant id; person (P<n>) of a register or pix; patient of a document
	Value   string // endpoint written or read back; identifier registered; identifiers a pix read returned; document master identifier
	Note    string // pix: the source identifier asked about; register: matching's outcome
	Call    int64  // ns since the history started, before the request was sent
	Return  int64  // ns since the history started, after the answer (or error) came back
	Outcome outcome
	Target  string // node the client asked
	Node    string // X-Rls-Node of the answer: the node that served it
	Index   uint64 // X-Rls-Raft-Index of an acknowledged write
	Status  int
	Err     string
}

// History records client operations from every client against one monotonic clock.
type History struct {
	start time.Time

	mu  sync.Mutex
	ops []Op
	// failedReads counts reads that got no answer to check (errors, timeouts).
	failedReads int
}

func newHistory() *History { return &History{start: time.Now()} }

// Now is the history clock: nanoseconds since it started, monotonic.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// At converts a history timestamp to wall time (for reports).
func (h *History) At(ts int64) time.Time { return h.start.Add(time.Duration(ts)) }

func (h *History) add(op Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

func (h *History) readFailed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failedReads++
}

// Ops returns a copy of the recorded operations.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Summary counts operations by kind and outcome.
func (h *History) Summary() string {
	counts := map[string]int{}
	for _, op := range h.Ops() {
		counts[op.Kind.String()+" "+op.Outcome.String()]++
	}
	var parts []string
	for k, v := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(parts, ", ") + fmt.Sprintf(", failed reads %d", h.failedReads)
}

// AckedWrites counts acknowledged adds and puts.
func (h *History) AckedWrites() int {
	n := 0
	for _, op := range h.Ops() {
		if !op.Kind.isRead() && op.Outcome == acked {
			n++
		}
	}
	return n
}

// registerInput is a put (Value written) or a get of one participant's endpoint.
type registerInput struct {
	Put   bool
	Key   string
	Value string
}

// registerModel is a per-key register: a participant's endpoint. Puts set it, strong gets
// must return the value of the last put linearized before them.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(registerInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return initialEndpoint },
	Step: func(state, input, output any) (bool, any) {
		in := input.(registerInput)
		if in.Put {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(registerInput)
		if in.Put {
			return fmt.Sprintf("put(%s, %s)", in.Key, shortValue(in.Value))
		}
		return fmt.Sprintf("get(%s) -> %s", in.Key, shortValue(output.(string)))
	},
	DescribeState: func(state any) string { return shortValue(state.(string)) },
}

func shortValue(v string) string {
	return strings.TrimPrefix(v, "https://")
}

// registerHistory turns the recorded puts and gets into porcupine operations, the way
// etcd's robustness tests prepare theirs: failed reads and not-applied puts are left out
// (they had no effect); a put of unknown outcome whose value no read returned is left out
// too (had it happened unobserved, dropping it changes no read's answer); one that a read
// returned is kept as having returned when the earliest such read returned, since it took
// effect before that read did.
func registerHistory(ops []Op) []porcupine.Operation {
	observed := map[string]int64{} // key+value -> earliest return of a get that saw it
	for _, op := range ops {
		if op.Kind == opGet {
			kv := op.Key + "\x00" + op.Value
			if r, ok := observed[kv]; !ok || op.Return < r {
				observed[kv] = op.Return
			}
		}
	}
	var out []porcupine.Operation
	for _, op := range ops {
		switch {
		case op.Kind == opGet:
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: registerInput{Key: op.Key}, Output: op.Value,
				Call: op.Call, Return: op.Return, Metadata: op.Node})
		case op.Kind == opPut && op.Outcome == acked:
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: registerInput{Put: true, Key: op.Key, Value: op.Value},
				Output: "", Call: op.Call, Return: op.Return, Metadata: op.Node})
		case op.Kind == opPut && op.Outcome == unknown:
			r, ok := observed[op.Key+"\x00"+op.Value]
			if !ok {
				continue
			}
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: registerInput{Put: true, Key: op.Key, Value: op.Value},
				Output: "", Call: op.Call, Return: max(r, op.Call), Metadata: "outcome unknown"})
		}
	}
	return out
}

// CheckLinearizable checks the history with porcupine within timeout, model by model:
// the register history (endpoint puts and strong gets; its visualisation in
// porcupine.html) and, when the workload registered patients, the grow-only sets of
// identifiers per person (porcupine-pix.html). It saves the history to history.jsonl. All
// of it is kept when the test fails; a porcupine timeout (Unknown) counts as a failure.
func (c *Cluster) CheckLinearizable(h *History, timeout time.Duration) {
	c.t.Helper()
	if err := h.save(filepath.Join(c.Dir, "history.jsonl")); err != nil {
		c.t.Logf("save history: %v", err)
	}
	all := h.Ops()
	c.checkModel("register", registerModel, registerHistory(all), timeout, "porcupine.html",
		func(op porcupine.Operation) string { return "key " + op.Input.(registerInput).Key })
	if pix := pixHistory(all); len(pix) > 0 {
		c.checkModel("patient identifier set", pixModel, pix, timeout, "porcupine-pix.html",
			func(op porcupine.Operation) string { return "person " + op.Input.(pixInput).Person })
	}
}

// CheckAckedUnique fails the test if two different acknowledged writes report the same Raft
// index: two leaders would then have acknowledged different entries at one position of the
// log.
func (c *Cluster) CheckAckedUnique(h *History) {
	c.t.Helper()
	byIndex := map[uint64]Op{}
	for _, op := range h.Ops() {
		if op.Kind.isRead() || op.Outcome != acked {
			continue
		}
		if op.Index == 0 {
			c.t.Errorf("acknowledged %s %s by %s carries no raft index", op.Kind, op.Key, op.Node)
			continue
		}
		if prev, ok := byIndex[op.Index]; ok {
			c.t.Errorf("index %d acknowledged twice: %s %s=%s by %s and %s %s=%s by %s", op.Index,
				prev.Kind, prev.Key, prev.Value, prev.Node, op.Kind, op.Key, op.Value, op.Node)
			continue
		}
		byIndex[op.Index] = op
	}
}

// CheckAdds reads every live node's participants and fails the test for each acknowledged
// add a node lacks and each not-applied add a node holds.
func (c *Cluster) CheckAdds(h *History) {
	c.t.Helper()
	var ackedIDs, refused []string
	for _, op := range h.Ops() {
		if op.Kind != opAdd {
			continue
		}
		switch op.Outcome {
		case acked:
			ackedIDs = append(ackedIDs, op.Key)
		case notApplied:
			refused = append(refused, op.Key)
		}
	}
	for _, i := range c.Live() {
		ids, err := c.ParticipantIDs(i)
		if err != nil {
			c.t.Errorf("read participants of %s: %v", c.Nodes[i].ID, err)
			continue
		}
		var lost, ghosts []string
		for _, id := range ackedIDs {
			if !ids[id] {
				lost = append(lost, id)
			}
		}
		for _, id := range refused {
			if ids[id] {
				ghosts = append(ghosts, id)
			}
		}
		if len(lost) > 0 {
			c.t.Errorf("%s lost %d of %d acknowledged adds, e.g. %v", c.Nodes[i].ID, len(lost), len(ackedIDs), lost[:min(5, len(lost))])
		}
		if len(ghosts) > 0 {
			c.t.Errorf("%s holds %d adds that were answered as not applied, e.g. %v", c.Nodes[i].ID, len(ghosts), ghosts[:min(5, len(ghosts))])
		}
	}
}

// percentile returns the p-th percentile (0..100) of ds, or 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

// save writes the recorded operations to path, one JSON object a line.
func (h *History) save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, op := range h.Ops() {
		if err := enc.Encode(op); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
