package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

func testSubscription(id, participant string) model.Subscription {
	return model.Subscription{ID: id, Participant: participant, Topic: model.TopicEncounter, Endpoint: "https://ehr.example/notify",
		Payload: model.PayloadIDOnly, Secret: "0123456789abcdef0123456789abcdef", Purpose: "TREAT", Status: model.SubscriptionActive}
}

// TestNotifyEventsAndCursors: no event is kept while no subscription is live; a
// registration then produces numbered encounter events; a cursor report never moves back,
// cannot pass the newest event, and prunes what every live subscription has passed; a
// subscription turned off and on again starts after the newest event.
func TestNotifyEventsAndCursors(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	p := testParticipant(1)
	reg := func(mrn string) *hraft.Log {
		return w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{
			Record: command.PatientRecord{System: p.IdentifierSystem, Value: mrn, Given: []string{"Ann"}, Family: "Lee" + mrn, BirthDate: "1970-01-0" + mrn[len(mrn)-1:]}, NewEUID: fmt.Sprintf("E%s-%d", mrn, w.index+1)}}})
	}
	cursor := func(id string, c, delivered uint64, status string) *hraft.Log {
		return w.entry(command.TypeSubscriptionCursor, &command.SubscriptionCursor{ID: id, Cursor: c, Delivered: delivered, Status: status})
	}
	off := testSubscription("s1", "p1")
	off.Status = model.SubscriptionOff
	logs := []*hraft.Log{
		w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p}),
		reg("m1"), // no subscription yet: no event
		w.entry(command.TypeSubscriptionSet, &command.SubscriptionSet{Subscription: testSubscription("s1", "p1"), Create: true}),
		w.entry(command.TypeSubscriptionSet, &command.SubscriptionSet{Subscription: testSubscription("s1", "p1"), Create: true}),     // taken
		w.entry(command.TypeSubscriptionSet, &command.SubscriptionSet{Subscription: testSubscription("s2", "nobody"), Create: true}), // no such participant
		w.entry(command.TypeSubscriptionSet, &command.SubscriptionSet{Subscription: testSubscription("s2", "p1"), Create: true}),
		reg("m2"), reg("m3"), reg("m1"), // events 1, 2, 3 (the last an update)
		cursor("s1", 2, 2, model.SubscriptionActive),
		cursor("s1", 1, 1, model.SubscriptionError),  // behind: changes nothing
		cursor("s1", 9, 9, model.SubscriptionActive), // ahead of the log: refused
		cursor("s2", 1, 0, model.SubscriptionError),
		w.entry(command.TypeSubscriptionSet, &command.SubscriptionSet{Subscription: off, ExpectedVersion: 1}),
		reg("m4"), // event 4
		w.entry(command.TypeSubscriptionSet, &command.SubscriptionSet{Subscription: testSubscription("s1", "p1")}),
	}
	out := f.ApplyBatch(logs)
	f.commitOpen()
	want := []error{nil, nil, nil, ErrSubscriptionExists, state.ErrNotFound, nil, nil, nil, nil, nil, nil, ErrCursorAhead, nil, nil, nil, nil}
	for i, wantErr := range want {
		got := out[i].(Response).Err
		if !errors.Is(got, wantErr) || (wantErr == nil && got != nil) {
			t.Fatalf("entry %d: %v, want %v", i+1, got, wantErr)
		}
	}
	err := f.store.View(func(tx *state.Tx) error {
		if head := tx.NotifyHead(); head != 4 {
			t.Errorf("newest event %d, want 4", head)
		}
		s1, _, _ := tx.Subscription("s1")
		s2, _, _ := tx.Subscription("s2")
		if s1.Status != model.SubscriptionActive || s1.Cursor != 4 || s1.Delivered != 2 || s1.Version != 3 {
			t.Errorf("s1 turned on again: %+v (want cursor 4 = the newest event, delivered 2)", s1)
		}
		if s2.Status != model.SubscriptionError || s2.Cursor != 1 {
			t.Errorf("s2: %+v", s2)
		}
		// s2 is at 1: events 2 to 4 are kept, 1 is pruned.
		events, err := tx.NotifyEventsAfter(0, 10)
		if err != nil {
			return err
		}
		var seqs []uint64
		for _, e := range events {
			seqs = append(seqs, e.Seq)
		}
		if len(seqs) != 3 || seqs[0] != 2 || seqs[2] != 4 {
			t.Errorf("kept events %v, want [2 3 4]", seqs)
		}
		if e := events[1]; e.Topic != model.TopicEncounter || e.Action != "updated" || e.Record != p.IdentifierSystem+"|m1" || e.Owner != "p1" || e.Index != 9 {
			t.Errorf("event 3: %+v", e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestProvidedDocumentsAreNotified: documents submitted together (MHD ITI-65) produce a
// document-available event each, as documents registered one by one do.
func TestProvidedDocumentsAreNotified(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	p := testParticipant(1)
	record := p.IdentifierSystem + "|m1"
	doc := func(id string) command.DocumentRegistration {
		data, err := json.Marshal(search.Document{ID: id, Status: search.StatusCurrent, PatientRecord: record, Holder: p.ID,
			URL: "https://docs.example/" + id})
		if err != nil {
			t.Fatal(err)
		}
		return command.DocumentRegistration{Document: data, Resource: []byte(`{"resourceType":"DocumentReference"}`)}
	}
	documents := testSubscription("s1", "p1")
	documents.Topic = model.TopicDocument
	out := f.ApplyBatch([]*hraft.Log{
		w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p}),
		w.entry(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{
			Record: command.PatientRecord{System: p.IdentifierSystem, Value: "m1", Given: []string{"Ann"}, Family: "Lee", BirthDate: "1970-01-01"}, NewEUID: "E1"}}}),
		w.entry(command.TypeSubscriptionSet, &command.SubscriptionSet{Subscription: documents, Create: true}),
		w.entry(command.TypeDocumentProvide, &command.DocumentProvide{
			List:      command.ListRegistration{ID: "set1", PatientRecord: record, Holder: p.ID, Resource: []byte(`{"resourceType":"List"}`)},
			Documents: []command.DocumentRegistration{doc("d1"), doc("d2")}}),
	})
	f.commitOpen()
	for i, r := range out {
		if err := r.(Response).Err; err != nil {
			t.Fatalf("entry %d: %v", i+1, err)
		}
	}
	err := f.store.View(func(tx *state.Tx) error {
		events, err := tx.NotifyEventsAfter(0, 10)
		if err != nil {
			return err
		}
		var docs []string
		for _, e := range events {
			if e.Topic == model.TopicDocument && e.Action == "registered" && e.Record == record && e.EUID == "E1" {
				docs = append(docs, e.Document)
			}
		}
		if len(docs) != 2 || docs[0] != "d1" || docs[1] != "d2" {
			t.Errorf("document events %v of %+v, want d1 and d2", docs, events)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
