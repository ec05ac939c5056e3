package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The patient workload: registrations and strong PIXm reads, checked as a grow-only set of
// identifiers per person.
//
// Every workload person has demographics of its own (drawn so that no two persons come
// near each other's match scores) and is registered once in each of pixSystems
// participants' systems, under a fresh identifier each time. A registration is therefore
// certain to end in that person: the first one that takes effect founds the person (a
// fresh identifier, demographics no one else has), every later one carries exactly the
// same demographics as a record of another system already there and links to it. So the
// set of identifiers a PIXm query of any of the person's records returns (the record
// itself and every targetIdentifier except the EUID) grows by exactly the registrations
// that took effect, whatever their order, and a strong read must return the set as of
// one instant between its call and its return.

const (
	// pixSystemBase keeps the patient workload's assigning authorities apart from the
	// register keys' (keySystemBase+k) and the added participants' (1000 upwards).
	pixSystemBase = 9_000_000
	// pixSystems is how many participants register each person, so also the size of each
	// person's final set.
	pixSystems = 6
	// pixWindow is how many of the latest persons reads choose from: the one being
	// registered and the one before, so that reads run while their set still grows (with
	// a wider window most reads found a complete set).
	pixWindow = 2
	// euidSystem is the system of the enterprise identifier in PIXm answers: not a record.
	euidSystem = "https://rls-hie.github.io/fhir/sid/euid"
)

func pixSystem(k int) string { return fmt.Sprintf("urn:oid:2.16.840.1.113883.3.%d", pixSystemBase+k+1) }

// pixState hands out (person, system) slots to the clients and remembers which
// identifiers were acknowledged, the only ones reads ask about.
type pixState struct {
	mu    sync.Mutex
	next  int
	acked map[int][]string // person -> acknowledged identifiers (system|value)
}

// createPixParticipants registers the participants whose systems the persons' records use.
func (w *Workload) createPixParticipants(leader int) {
	c := w.c
	c.t.Helper()
	for k := 0; k < pixSystems; k++ {
		id := fmt.Sprintf("pix%d", k+1)
		code, body, _, err := c.call(leader, "POST", "/fhir/Organization", organizationBody(id, pixSystemBase+k+1, ""))
		if err != nil || code != 201 {
			c.t.Fatalf("create PIX participant %s: %d %s %v", id, code, body, err)
		}
	}
	w.pix = &pixState{acked: map[int][]string{}}
}

// syllables build family and given names: two persons' names share a prefix only by
// chance, so string comparators score different persons far apart.
var syllables = []string{"ba", "ko", "ri", "mu", "te", "sa", "lo", "ne", "vi", "du", "ga", "po", "zu", "he", "ja", "fi", "ro", "ki", "mo", "wa"}

// personDemographics is the Patient (without identifier) of workload person n, the same
// on every registration of that person. salt separates the populations of different
// uses (PIXm persons, document patients).
func personDemographics(n int, salt uint64) map[string]any {
	rng := rand.New(rand.NewPCG(uint64(n)+1, salt))
	word := func(k int) string {
		var b strings.Builder
		for range k {
			b.WriteString(syllables[rng.IntN(len(syllables))])
		}
		s := b.String()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	gender := []string{"female", "male"}[rng.IntN(2)]
	return map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": word(4), "given": []string{word(3)}}},
		"birthDate":    fmt.Sprintf("%d-%02d-%02d", 1930+rng.IntN(80), 1+rng.IntN(12), 1+rng.IntN(28)),
		"gender":       gender,
		"telecom":      []any{map[string]any{"system": "phone", "value": fmt.Sprintf("555%07d", rng.IntN(10_000_000))}},
		"address": []any{map[string]any{"line": []string{fmt.Sprintf("%d %s St", 1+rng.IntN(9999), word(2))},
			"city": word(3), "postalCode": fmt.Sprintf("%05d", rng.IntN(100_000))}},
	}
}

// patientBody is person n's Patient carrying one identifier.
func patientBody(n int, salt uint64, system, value string) map[string]any {
	p := personDemographics(n, salt)
	p["identifier"] = []any{map[string]any{"system": system, "value": value}}
	return p
}

const pixSalt = 0x5049584d // "PIXM"

// register sends the registration of the next free (person, system) slot.
func (w *Workload) register(client, target int) {
	w.pix.mu.Lock()
	slot := w.pix.next
	w.pix.next++
	w.pix.mu.Unlock()
	person, k := slot/pixSystems, slot%pixSystems
	system, value := pixSystem(k), fmt.Sprintf("MRN-%d-%d", person, k)
	op := w.Write(client, target, opRegister, fmt.Sprintf("P%d", person), system+"|"+value, "POST", "/fhir/Patient",
		patientBody(person, pixSalt, system, value))
	if op.Outcome == acked {
		w.pix.mu.Lock()
		w.pix.acked[person] = append(w.pix.acked[person], system+"|"+value)
		w.pix.mu.Unlock()
	}
}

// pixRead reads, with a strong PIXm query, the identifiers of one of the latest persons
// through an identifier whose registration was acknowledged before the read began. It
// returns false when no such person exists yet.
func (w *Workload) pixRead(client, target int, rng *rand.Rand) bool {
	w.pix.mu.Lock()
	hi := (w.pix.next - 1) / pixSystems
	var persons []int
	for p := max(0, hi-pixWindow+1); p <= hi; p++ {
		if len(w.pix.acked[p]) > 0 {
			persons = append(persons, p)
		}
	}
	if len(persons) == 0 {
		w.pix.mu.Unlock()
		return false
	}
	person := persons[rng.IntN(len(persons))]
	source := w.pix.acked[person][rng.IntN(len(w.pix.acked[person]))]
	w.pix.mu.Unlock()
	w.pixGet(client, target, person, source, w.opts.Timeout)
	return true
}

// pixGet sends one strong PIXm query for person's source identifier and records it if it
// was answered. A 404 (the source identifier unknown) is an answer too: the empty set,
// which no acknowledged registration allows.
func (w *Workload) pixGet(client, target, person int, source string, timeout time.Duration) (Op, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	op := Op{Client: client, Kind: opPix, Key: fmt.Sprintf("P%d", person), Note: source, Target: w.c.Nodes[target].ID}
	op.Call = w.History.Now()
	resp, err := w.c.Do(ctx, target, "GET", "/fhir/Patient/$ihe-pix?consistency=strong&sourceIdentifier="+url.QueryEscape(source), nil)
	op.Return = w.History.Now()
	op.Status = resp.Status
	switch {
	case err != nil || (resp.Status != 200 && resp.Status != 404):
		w.History.readFailed()
		if err != nil {
			op.Err = err.Error()
		}
		return op, false
	case resp.Status == 404 && !strings.Contains(string(resp.Body), "sourceIdentifier"):
		// A 404 of something else (a route) would say nothing about the person.
		w.c.t.Errorf("PIXm read of %s: %d %s", source, resp.Status, resp.Body)
		return op, false
	case resp.Status == 200:
		ids, derr := pixIdentifiers(resp.Body)
		if derr != nil {
			w.c.t.Errorf("PIXm read of %s: %v", source, derr)
			return op, false
		}
		op.Value = joinSet(append(ids, source))
	}
	op.Node = resp.Header.Get("X-Rls-Node")
	w.History.add(op)
	return op, true
}

// pixIdentifiers lists the record identifiers (system|value) of a PIXm answer, the EUID
// left out.
func pixIdentifiers(body []byte) ([]string, error) {
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name            string `json:"name"`
			ValueIdentifier *struct {
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"valueIdentifier"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, fmt.Errorf("not a PIXm Parameters answer (%v): %.200s", err, body)
	}
	var out []string
	for _, prm := range p.Parameter {
		if prm.Name == "targetIdentifier" && prm.ValueIdentifier != nil && prm.ValueIdentifier.System != euidSystem {
			out = append(out, prm.ValueIdentifier.System+"|"+prm.ValueIdentifier.Value)
		}
	}
	return out, nil
}

// joinSet is the canonical form of a set of identifiers: sorted, deduplicated, one a line.
func joinSet(ids []string) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return strings.Join(slices.Compact(ids), "\n")
}

func splitSet(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// finalPixReads reads every person with an acknowledged registration once more through
// the leader, so each person's history ends with what the cluster settled on.
func (w *Workload) finalPixReads() {
	w.pix.mu.Lock()
	sources := map[int]string{}
	for p, ids := range w.pix.acked {
		sources[p] = ids[0]
	}
	w.pix.mu.Unlock()
	for p, source := range sources {
		w.finalRead(fmt.Sprintf("person %d (%s)", p, source), func(leader int) bool {
			_, ok := w.pixGet(w.opts.Clients+5, leader, p, source, 10*time.Second)
			return ok
		})
	}
}

// pixInput is a registration (Add, ID registered) or a strong PIXm read of a person.
type pixInput struct {
	Add    bool
	Person string
	ID     string // the identifier registered, or the source identifier read through
}

// pixModel is a grow-only set per person: a registration adds its identifier, a strong
// read must return the set as it is at the read's linearization point. So a read returns
// every identifier whose registration completed before it began, none whose registration
// had not yet begun, and no fewer than any read that completed before it began.
var pixModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byPerson := map[string][]porcupine.Operation{}
		for _, op := range history {
			p := op.Input.(pixInput).Person
			byPerson[p] = append(byPerson[p], op)
		}
		persons := make([]string, 0, len(byPerson))
		for p := range byPerson {
			persons = append(persons, p)
		}
		sort.Strings(persons)
		out := make([][]porcupine.Operation, 0, len(persons))
		for _, p := range persons {
			out = append(out, byPerson[p])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(pixInput)
		if in.Add {
			return true, joinSet(append(splitSet(state.(string)), in.ID))
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(pixInput)
		if in.Add {
			return fmt.Sprintf("register(%s, %s)", in.Person, shortID(in.ID))
		}
		var ids []string
		for _, id := range splitSet(output.(string)) {
			ids = append(ids, shortID(id))
		}
		return fmt.Sprintf("pix(%s via %s) -> {%s}", in.Person, shortID(in.ID), strings.Join(ids, " "))
	},
	DescribeState: func(state any) string {
		var ids []string
		for _, id := range splitSet(state.(string)) {
			ids = append(ids, shortID(id))
		}
		return "{" + strings.Join(ids, " ") + "}"
	},
}

// shortID drops the system of a workload identifier (its value names person and system).
func shortID(id string) string {
	_, v, _ := strings.Cut(id, "|")
	return v
}

// pixHistory turns the recorded registrations and PIXm reads into porcupine operations,
// prepared as registerHistory prepares puts: failed reads and not-applied registrations
// are left out (a read that then returns such an identifier has no add to explain it and
// fails the check); a registration of unknown outcome no read returned is left out (had
// it taken effect unobserved, no read's answer depends on it; the final reads come after
// every write settled); one a read returned is kept as having returned when the earliest
// such read returned, since it took effect before that read did.
func pixHistory(ops []Op) []porcupine.Operation {
	observed := map[string]int64{} // identifier -> earliest return of a read that returned it
	for _, op := range ops {
		if op.Kind != opPix {
			continue
		}
		for _, id := range splitSet(op.Value) {
			if r, ok := observed[id]; !ok || op.Return < r {
				observed[id] = op.Return
			}
		}
	}
	var out []porcupine.Operation
	for _, op := range ops {
		switch {
		case op.Kind == opPix:
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: pixInput{Person: op.Key, ID: op.Note}, Output: op.Value,
				Call: op.Call, Return: op.Return, Metadata: op.Node})
		case op.Kind == opRegister && op.Outcome == acked:
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: pixInput{Add: true, Person: op.Key, ID: op.Value}, Output: "",
				Call: op.Call, Return: op.Return, Metadata: op.Node})
		case op.Kind == opRegister && op.Outcome == unknown:
			r, ok := observed[op.Value]
			if !ok {
				continue
			}
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: pixInput{Add: true, Person: op.Key, ID: op.Value}, Output: "",
				Call: op.Call, Return: max(r, op.Call), Metadata: "outcome unknown"})
		}
	}
	return out
}

// checkModel runs porcupine on ops with model within timeout, writes the visualisation to
// file in the cluster's directory (kept when the test fails) and fails the test unless
// porcupine answers Ok (its timeout, Unknown, counts as a failure). name says what the
// history is for messages; key names a partition's key for the report of the failing ones.
func (c *Cluster) checkModel(name string, model porcupine.Model, ops []porcupine.Operation, timeout time.Duration, file string, key func(porcupine.Operation) string) {
	c.t.Helper()
	model.DescribeOperationMetadata = func(info any) string {
		if s, ok := info.(string); ok {
			return s
		}
		return ""
	}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	path := filepath.Join(c.Dir, file)
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		c.t.Logf("write porcupine visualisation: %v", err)
	}
	c.t.Logf("porcupine: %s over %d %s operations in %s", res, len(ops), name, time.Since(start).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		c.t.Errorf("the %s history is not linearizable; see %s", name, path)
		for _, part := range model.Partition(ops) {
			if porcupine.CheckOperations(model, part) {
				continue
			}
			c.t.Errorf("%s %s: no linearization of its %d operations; its history is in %s", name, key(part[0]), len(part), filepath.Join(c.Dir, "history.jsonl"))
		}
	default:
		c.t.Errorf("porcupine could not decide whether the %s history is linearizable within %s (counted as a failure); see %s", name, timeout, path)
	}
}
