package fsm

import (
	"errors"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// TestConsentSetAndRevokeToken feeds the privacy commands through ApplyBatch: a directive
// is created once, updated only at the expected version, refiled under its records, and a
// revoked token is gone from the token index.
func TestConsentSetAndRevokeToken(t *testing.T) {
	f := newFSM(t)
	w := &logWriter{t: t}
	optOut := model.Consent{ID: "c1", Status: model.ConsentActive, Records: []string{"urn:a|1", "urn:a|2"}, OptOut: true}
	moved := optOut
	moved.Records, moved.Status = []string{"urn:a|3"}, model.ConsentInactive
	logs := []*hraft.Log{
		w.entry(command.TypeParticipantAdd, &command.ParticipantAdd{Participant: testParticipant(1)}),
		w.entry(command.TypeConsentSet, &command.ConsentSet{Consent: optOut, Create: true}),
		w.entry(command.TypeConsentSet, &command.ConsentSet{Consent: optOut, Create: true}),                                                  // id taken
		w.entry(command.TypeConsentSet, &command.ConsentSet{Consent: moved, ExpectedVersion: 7}),                                             // stale version
		w.entry(command.TypeConsentSet, &command.ConsentSet{Consent: model.Consent{ID: "nope", Status: "active", Records: []string{"x|1"}}}), // unknown
		w.entry(command.TypeConsentSet, &command.ConsentSet{Consent: moved, ExpectedVersion: 1}),
		w.entry(command.TypeParticipantRevokeToken, &command.ParticipantRevokeToken{ID: "p1"}),
	}
	out := f.ApplyBatch(logs)
	f.commitOpen()
	errOf := func(i int) error { return out[i].(Response).Err }
	for i, want := range []error{nil, nil, ErrConsentExists, ErrVersionConflict, state.ErrNotFound, nil, nil} {
		if got := errOf(i); !errors.Is(got, want) || (want == nil && got != nil) {
			t.Fatalf("entry %d: %v, want %v", i, got, want)
		}
	}
	if c := out[5].(Response).Value.(model.Consent); c.Version != 2 || !c.Created.Equal(time.Unix(2, 0)) || !c.Updated.Equal(time.Unix(6, 0)) {
		t.Fatalf("updated directive: %+v", c)
	}
	err := f.store.View(func(tx *state.Tx) error {
		for rec, want := range map[string]int{"urn:a|1": 0, "urn:a|2": 0, "urn:a|3": 1} {
			cs, err := tx.ConsentsOfRecords([]string{rec})
			if err != nil {
				return err
			}
			if len(cs) != want {
				t.Errorf("record %s has %d directives, want %d", rec, len(cs), want)
			}
		}
		if _, err := tx.ParticipantByTokenHash(testParticipant(1).TokenHash); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("revoked token still resolves: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
