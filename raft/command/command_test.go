package command

import (
	"errors"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	h := Header{Time: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), Actor: "admin", RequestID: "r1"}
	in := ParticipantAdd{Participant: model.Participant{ID: "a", Name: "A", Kind: model.KindLab, Role: model.RoleParticipant}}
	data, err := Encode(TypeParticipantAdd, h, &in)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != byte(TypeParticipantAdd) || data[1] != FormatMsgpack {
		t.Fatalf("prefix = %x %x", data[0], data[1])
	}
	e, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	gotH, out, err := DecodeBody[ParticipantAdd](e)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != TypeParticipantAdd || !gotH.Time.Equal(h.Time) || gotH.Actor != "admin" || out.Participant.ID != "a" {
		t.Fatalf("round trip gave %+v / %+v / %+v", e, gotH, out)
	}
}

func TestTypeNumbersNeverChange(t *testing.T) {
	// These numbers are in every log ever written; changing one corrupts old logs.
	want := map[Type]uint8{
		TypeBootstrapAdmin: 1, TypeNodeRegister: 2, TypeNodeDeregister: 3, TypeParticipantAdd: 4,
		TypeParticipantUpdate: 5, TypeParticipantSetActive: 6, TypeParticipantRotateToken: 7, TypeBarrier: 0x88,
	}
	for typ, n := range want {
		if uint8(typ) != n {
			t.Errorf("%s = %d, want %d", typ, uint8(typ), n)
		}
	}
	if !TypeBarrier.IgnoreIfUnknown() || TypeParticipantAdd.IgnoreIfUnknown() {
		t.Error("ignore flags wrong")
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":         nil,
		"short":         {4},
		"bad format":    {4, 9, 0x80, 0x80},
		"no body":       {4, 1},
		"truncated":     {4, 1, 0x81},
		"header only":   {4, 1, 0x80},
		"trailing data": {4, 1, 0x80, 0x80, 0x01},
	} {
		e, err := Decode(data)
		if err == nil {
			_, _, err = DecodeBody[ParticipantAdd](e)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Encode(TypeParticipantAdd, Header{Actor: "x"}, &ParticipantAdd{})
	f.Add(good)
	f.Add([]byte{1, 1, 0x80, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not marked malformed: %v", err)
			}
			return
		}
		if _, _, err := DecodeBody[ParticipantAdd](e); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("body error not marked malformed: %v", err)
		}
	})
}
