package fsm

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// TestDocumentProvideIsAllOrNothing: a submission (MHD ITI-65) one of whose documents Apply
// refuses writes nothing, neither its other documents nor its list; a valid one writes all.
func TestDocumentProvideIsAllOrNothing(t *testing.T) {
	f := newFSM(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	apply := stampedApplier(t, f, at)
	p := testParticipant(1)
	if r := apply(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: p}); r.Err != nil {
		t.Fatal(r.Err)
	}
	rec := command.PatientRecord{System: p.IdentifierSystem, Value: "MRN-1", Family: "Okonjo", Given: []string{"Ada"}, BirthDate: "1958-02-14"}
	if r := apply(command.TypePatientRegister, &command.PatientRegister{Registrations: []command.PatientRegistration{{Record: rec, NewEUID: "E1"}}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	record := p.IdentifierSystem + "|MRN-1"
	doc := func(id, patient string) command.DocumentRegistration {
		data, _ := json.Marshal(search.Document{ID: id, Status: search.StatusCurrent, PatientRecord: patient, Holder: p.ID,
			URL: "https://docs.example/" + id, Created: at.Add(-time.Hour)})
		return command.DocumentRegistration{Document: data, Resource: []byte(`{"resourceType":"DocumentReference"}`)}
	}
	list := command.ListRegistration{ID: "s1", PatientRecord: record, Holder: p.ID, Resource: []byte(`{"resourceType":"List"}`)}
	before, _ := f.store.Hash()
	r := apply(command.TypeDocumentProvide, &command.DocumentProvide{List: list, Documents: []command.DocumentRegistration{doc("d1", record), doc("d2", p.IdentifierSystem+"|MRN-404")}})
	if !errors.Is(r.Err, ErrInvalidSubmission) && !errors.Is(r.Err, ErrUnknownSubject) {
		t.Fatalf("a submission with a document about an unknown patient: err = %v", r.Err)
	}
	if after, _ := f.store.Hash(); after.Hash != before.Hash {
		t.Fatal("a refused submission changed the state")
	}
	r = apply(command.TypeDocumentProvide, &command.DocumentProvide{List: list, Documents: []command.DocumentRegistration{doc("d1", record), doc("d2", record)}})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	out := r.Value.(DocumentsProvided)
	if len(out.Documents) != 2 || out.List.Version != 1 {
		t.Fatalf("provided %+v", out)
	}
	err := f.store.View(func(tx *state.Tx) error {
		for _, id := range []string{"d1", "d2"} {
			if _, ok, err := tx.Document(id); err != nil || !ok {
				t.Errorf("document %s not stored (%v)", id, err)
			}
		}
		lists, err := tx.ListsOfRecords([]string{record})
		if err != nil || len(lists) != 1 || lists[0].ID != "s1" {
			t.Errorf("lists of the patient: %+v, %v", lists, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.FailedEntries() != 0 {
		t.Fatalf("%d failed entries", f.FailedEntries())
	}
}
