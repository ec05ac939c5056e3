package fsm

import (
	"errors"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// TestHL7EndpointQueue: an endpoint starts after the history that exists when it is
// registered; link events are indexed while an endpoint is active; its cursor only moves
// forward; the index keeps only what an active endpoint has not passed.
func TestHL7EndpointQueue(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	reg := func(sys int, mrn, euid string) *hraft.Log {
		return w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{
			Record:  command.PatientRecord{System: testParticipant(sys).IdentifierSystem, Value: mrn, Given: []string{"Ada"}, Family: "Lovelace", BirthDate: "1815-12-10", Sex: "female"},
			NewEUID: euid,
		}}})
	}
	ep := model.HL7Endpoint{ID: "ep1", Participant: "p1", Status: model.EndpointActive, Address: "mllp://127.0.0.1:2575"}
	apply := func(logs ...*hraft.Log) []Response {
		var out []Response
		for _, r := range f.ApplyBatch(logs) {
			out = append(out, r.(Response))
		}
		f.commitOpen()
		return out
	}
	apply(w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(1)}),
		w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(2)}),
		reg(1, "A", "E1"))
	out := apply(w.entry(command.TypeHL7EndpointSet, &command.HL7EndpointSet{Endpoint: ep, Create: true}),
		w.entry(command.TypeHL7EndpointSet, &command.HL7EndpointSet{Endpoint: ep, Create: true}),
		w.entry(command.TypeHL7EndpointSet, &command.HL7EndpointSet{Endpoint: model.HL7Endpoint{ID: "ep2", Participant: "nobody", Status: "active", Address: "mllp://h:1"}, Create: true}))
	if out[0].Err != nil || !errors.Is(out[1].Err, ErrEndpointExists) || !errors.Is(out[2].Err, state.ErrNotFound) {
		t.Fatalf("endpoint set: %v / %v / %v", out[0].Err, out[1].Err, out[2].Err)
	}
	first := out[0].Value.(model.HL7Endpoint)
	if first.Cursor != 1 || first.Version != 1 {
		t.Fatalf("new endpoint: cursor %d version %d, want after the one existing event (1), version 1", first.Cursor, first.Version)
	}
	apply(reg(2, "B", "E2"), reg(1, "C", "E3"))
	events := func() []model.LinkEvent {
		var evs []model.LinkEvent
		err := f.store.View(func(tx *state.Tx) error {
			return tx.LinkEventsAfter(0, 100, func(ev model.LinkEvent) error { evs = append(evs, ev); return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	evs := events()
	if len(evs) != 2 || evs[0].Seq != 2 || evs[1].Seq != 3 || evs[0].Record != testParticipant(2).IdentifierSystem+"|B" {
		t.Fatalf("indexed events: %+v", evs)
	}
	out = apply(w.entry(command.TypeHL7EndpointCursor, &command.HL7EndpointCursor{ID: "ep1", Cursor: 2, Delivered: 1}),
		w.entry(command.TypeHL7EndpointCursor, &command.HL7EndpointCursor{ID: "ep1", Cursor: 1, Delivered: 5}), // a deposed leader's
		w.entry(command.TypeHL7EndpointCursor, &command.HL7EndpointCursor{ID: "ep1", Cursor: 99}),              // beyond the history
		w.entry(command.TypeHL7EndpointCursor, &command.HL7EndpointCursor{ID: "nope", Cursor: 3}))
	if got := out[2].Value.(model.HL7Endpoint); got.Cursor != 2 || got.Delivered != 1 {
		t.Fatalf("cursor after forward, stale and bogus moves: %d, delivered %d; want 2, 1", got.Cursor, got.Delivered)
	}
	if !errors.Is(out[3].Err, ErrUnknownEndpoint) {
		t.Fatalf("cursor of an unknown endpoint: %v", out[3].Err)
	}
	if evs := events(); len(evs) != 1 || evs[0].Seq != 3 {
		t.Fatalf("after the cursor passed event 2 the index holds %+v, want event 3 only", evs)
	}
	// Switched off: nothing more is indexed, and what was is dropped.
	off := ep
	off.Status = model.EndpointOff
	apply(w.entry(command.TypeHL7EndpointSet, &command.HL7EndpointSet{Endpoint: off}), reg(2, "D", "E4"))
	if evs := events(); len(evs) != 0 {
		t.Fatalf("with no active endpoint the index holds %+v", evs)
	}
	// On again: it starts after the history of its time off.
	out = apply(w.entry(command.TypeHL7EndpointSet, &command.HL7EndpointSet{Endpoint: ep, ExpectedVersion: 2}), reg(1, "E", "E5"))
	if got := out[0].Value.(model.HL7Endpoint); got.Cursor != 4 || got.Version != 3 || got.Delivered != 1 {
		t.Fatalf("re-activated endpoint: %+v", got)
	}
	if evs := events(); len(evs) != 1 || evs[0].Seq != 5 {
		t.Fatalf("after re-activation the index holds %+v, want event 5", evs)
	}
}
