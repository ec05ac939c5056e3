package raft

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/search"
)

// seedDocuments registers a participant, two patients and n documents on a leader.
func seedDocuments(t *testing.T, n *Node, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := participant(1)
	if _, err := n.Apply(ctx, command.TypeParticipantAdd, command.Header{}, &command.ParticipantAdd{Participant: p}); err != nil {
		t.Fatal(err)
	}
	var regs []command.PatientRegistration
	for i, name := range []string{"Ada", "Grace"} {
		regs = append(regs, command.PatientRegistration{NewEUID: fmt.Sprintf("E%d", i), Record: command.PatientRecord{
			System: p.IdentifierSystem, Value: fmt.Sprintf("MRN%d", i), Given: []string{name}, Family: "Lovelace", BirthDate: fmt.Sprintf("19%d0-01-01", 5+i)}})
	}
	if _, err := n.Apply(ctx, command.TypePatientRegister, command.Header{}, &command.PatientRegister{Registrations: regs}); err != nil {
		t.Fatal(err)
	}
	var docs []command.DocumentRegistration
	for i := 0; i < count; i++ {
		d := search.Document{ID: fmt.Sprintf("d%03d", i), Status: search.StatusCurrent, Holder: p.ID,
			PatientRecord: fmt.Sprintf("%s|MRN%d", p.IdentifierSystem, i%2), Title: fmt.Sprintf("note %d", i),
			Type: search.Code{System: "http://loinc.org", Code: fmt.Sprintf("1150%d-3", i%3)}, Created: time.Date(2020+i%5, 1, 1+i%28, 0, 0, 0, 0, time.UTC)}
		b, _ := json.Marshal(d)
		docs = append(docs, command.DocumentRegistration{Document: b})
	}
	if _, err := n.Apply(ctx, command.TypeDocumentRegister, command.Header{}, &command.DocumentRegister{Documents: docs}); err != nil {
		t.Fatal(err)
	}
}

func searchAll(t *testing.T, n *Node) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.SyncLocal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitIndexed(ctx, n.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, q := range []search.Query{
		{PatientRecords: []string{participant(1).IdentifierSystem + "|MRN0"}, Limit: 1000},
		{PatientRecords: []string{participant(1).IdentifierSystem + "|MRN1"}, Types: []string{"http://loinc.org|11501-3"}, Limit: 1000},
		{Text: "note", Limit: 1000},
	} {
		res, err := n.Documents().Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(res.Total))
		for _, h := range res.Hits {
			out = append(out, h.ID)
		}
	}
	return out
}

// TestLostSearchIndexIsRebuiltFromTheState deletes a node's Bleve directory while it is
// down: on restart it rebuilds the index from the replicated state and answers as before,
// and as a node whose index survived.
func TestLostSearchIndexIsRebuiltFromTheState(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	leader := c.leader()
	seedDocuments(t, leader, 60)
	c.waitConverged()
	want := searchAll(t, leader)
	if len(want) < 60 {
		t.Fatalf("searches found too little: %v", want)
	}
	other := 1
	if c.nodes[1] == leader {
		other = 0
	}
	if got := searchAll(t, c.nodes[other]); !reflect.DeepEqual(got, want) {
		t.Fatalf("follower answers %v, leader %v", got, want)
	}
	c.stop(other)
	if err := os.RemoveAll(filepath.Join(c.cfgs[other].DataDir, "search")); err != nil {
		t.Fatal(err)
	}
	n := c.restart(other)
	if got := searchAll(t, n); !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuilt index answers %v, want %v", got, want)
	}
}

// TestSearchIndexCatchesUpAfterRestart stops a follower, registers more documents, and
// restarts it: its index catches up from the state's change log without a rebuild.
func TestSearchIndexCatchesUpAfterRestart(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	seedDocuments(t, leader, 10)
	c.waitConverged()
	other := 1
	if c.nodes[1] == leader {
		other = 2
	}
	c.stop(other)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := search.Document{ID: "late", Status: search.StatusCurrent, Holder: participant(1).ID, PatientRecord: participant(1).IdentifierSystem + "|MRN0", Title: "note late"}
	b, _ := json.Marshal(d)
	if _, err := leader.Apply(ctx, command.TypeDocumentRegister, command.Header{}, &command.DocumentRegister{Documents: []command.DocumentRegistration{{Document: b}}}); err != nil {
		t.Fatal(err)
	}
	n := c.restart(other)
	c.waitConverged()
	if got, want := searchAll(t, n), searchAll(t, leader); !reflect.DeepEqual(got, want) {
		t.Fatalf("restarted follower answers %v, leader %v", got, want)
	}
}
