package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tinylib/msgp/msgp"
)

func TestTypeNumbersNeverChange(t *testing.T) {
	// These numbers are in every log ever written; changing one corrupts old logs. A new
	// command type gets the next free number and a line here (the test fails until it has
	// one), and no line is ever changed or removed.
	pinned := []struct {
		typ  Type
		num  uint8
		name string
	}{
		{TypeBootstrapAdmin, 1, "bootstrap-admin"},
		{TypeNodeRegister, 2, "node-register"},
		{TypeNodeDeregister, 3, "node-deregister"},
		{TypeParticipantAdd, 4, "participant-add"},
		{TypeParticipantUpdate, 5, "participant-update"},
		{TypeParticipantSetActive, 6, "participant-set-active"},
		{TypeParticipantRotateToken, 7, "participant-rotate-token"},
		{TypeBarrier, 8 | 0x80, "barrier"},
		{TypePatientRegister, 9, "patient-register"},
		{TypeMatchConfigSet, 10, "match-config-set"},
		{TypeDocumentRegister, 11, "document-register"},
		{TypeRecordLink, 12, "record-link"},
		{TypeRecordUnlink, 13, "record-unlink"},
		{TypePersonMerge, 14, "person-merge"},
		{TypePersonUnmerge, 15, "person-unmerge"},
		{TypeReviewResolve, 16, "review-resolve"},
		{TypeAuditAppend, 17, "audit-append"},
		{TypeConsentSet, 18, "consent-set"},
		{TypeParticipantRevokeToken, 19, "participant-revoke-token"},
		{TypeMPIRematch, 20, "mpi-rematch"},
		{TypeHL7EndpointSet, 21, "hl7-endpoint-set"},
		{TypeHL7EndpointCursor, 22, "hl7-endpoint-cursor"},
		{TypeDocumentProvide, 23, "document-provide"},
		{TypeSubscriptionSet, 24, "subscription-set"},
		{TypeSubscriptionCursor, 25, "subscription-cursor"},
	}
	if FlagIgnoreUnknown != 0x80 {
		t.Fatalf("FlagIgnoreUnknown = %#x, want 0x80", uint8(FlagIgnoreUnknown))
	}
	byBase := map[Type]string{}
	for _, p := range pinned {
		if uint8(p.typ) != p.num {
			t.Errorf("%s = %d, want %d", p.name, uint8(p.typ), p.num)
		}
		if p.typ.String() != p.name {
			t.Errorf("type %d is named %q, want %q", p.num, p.typ, p.name)
		}
		if want := p.typ == TypeBarrier; p.typ.IgnoreIfUnknown() != want {
			t.Errorf("%s: IgnoreIfUnknown = %v, want %v (only the barrier may be skipped)", p.name, !want, want)
		}
		if other, dup := byBase[p.typ.Base()]; dup {
			t.Errorf("%s and %s share number %d", other, p.name, uint8(p.typ.Base()))
		}
		byBase[p.typ.Base()] = p.name
	}
	for _, n := range knownTypes() {
		if _, ok := byBase[n]; !ok {
			t.Errorf("type %d (%s) is not pinned here: add it", uint8(n), n)
		}
	}
}

// knownTypes lists the base numbers this package names, found by asking Type.String for
// each of them (an unknown number is named "type-N").
func knownTypes() []Type {
	var known []Type
	for n := Type(0); n < FlagIgnoreUnknown; n++ {
		if n.String() != fmt.Sprintf("type-%d", uint8(n)) {
			known = append(known, n)
		}
	}
	return known
}

// sample is one command of a type, every payload field set, with the decoder the FSM would
// use for it.
type sample struct {
	typ     Type
	payload Payload
	decode  func(Entry) (Header, any, error)
}

func sampleOf[P any, PP interface {
	*P
	Payload
	msgp.Unmarshaler
}](typ Type) sample {
	p := PP(new(P))
	fill(reflect.ValueOf(p).Elem(), new(int))
	return sample{typ: typ, payload: p, decode: func(e Entry) (Header, any, error) {
		h, out, err := DecodeBody[P, PP](e)
		return h, PP(&out), err
	}}
}

// fill sets every field reachable from v to a non-zero value, each different (seq counts),
// so that a field the encoder drops or the decoder mixes up shows in the comparison.
func fill(v reflect.Value, seq *int) {
	*seq++
	n := *seq
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("value-%d", n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(n) + 0.25)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), seq)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, seq)
		fill(e, seq)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), seq)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 5, 1, 10, 0, n, n*1000, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), seq)
			}
		}
	default:
		panic(fmt.Sprintf("fill: no sample value for %s", v.Type()))
	}
}

// everyCommand is one sample of every command type.
func everyCommand() []sample {
	return []sample{
		sampleOf[BootstrapAdmin](TypeBootstrapAdmin),
		sampleOf[NodeRegister](TypeNodeRegister),
		sampleOf[NodeDeregister](TypeNodeDeregister),
		sampleOf[ParticipantAdd](TypeParticipantAdd),
		sampleOf[ParticipantUpdate](TypeParticipantUpdate),
		sampleOf[ParticipantSetActive](TypeParticipantSetActive),
		sampleOf[ParticipantRotateToken](TypeParticipantRotateToken),
		sampleOf[Barrier](TypeBarrier),
		sampleOf[PatientRegister](TypePatientRegister),
		sampleOf[MatchConfigSet](TypeMatchConfigSet),
		sampleOf[DocumentRegister](TypeDocumentRegister),
		sampleOf[RecordLink](TypeRecordLink),
		sampleOf[RecordUnlink](TypeRecordUnlink),
		sampleOf[PersonMerge](TypePersonMerge),
		sampleOf[PersonUnmerge](TypePersonUnmerge),
		sampleOf[ReviewResolve](TypeReviewResolve),
		sampleOf[AuditAppend](TypeAuditAppend),
		sampleOf[ConsentSet](TypeConsentSet),
		sampleOf[ParticipantRevokeToken](TypeParticipantRevokeToken),
		sampleOf[MPIRematch](TypeMPIRematch),
		sampleOf[HL7EndpointSet](TypeHL7EndpointSet),
		sampleOf[HL7EndpointCursor](TypeHL7EndpointCursor),
		sampleOf[DocumentProvide](TypeDocumentProvide),
		sampleOf[SubscriptionSet](TypeSubscriptionSet),
		sampleOf[SubscriptionCursor](TypeSubscriptionCursor),
	}
}

// TestEveryCommandRoundTrips encodes one command of every type, every payload field set,
// and decodes it back: the type, the header and the payload come back equal.
func TestEveryCommandRoundTrips(t *testing.T) {
	h := Header{Time: time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC), Actor: "admin", RequestID: "req-1"}
	covered := map[Type]bool{}
	for _, s := range everyCommand() {
		t.Run(s.typ.String(), func(t *testing.T) {
			covered[s.typ.Base()] = true
			if _, empty := s.payload.(*Barrier); !empty && reflect.ValueOf(s.payload).Elem().IsZero() {
				t.Fatal("the sample payload is empty")
			}
			data, err := Encode(s.typ, h, s.payload)
			if err != nil {
				t.Fatal(err)
			}
			if data[0] != byte(s.typ) || data[1] != FormatMsgpack {
				t.Fatalf("prefix = %#x %#x, want %#x %#x", data[0], data[1], byte(s.typ), FormatMsgpack)
			}
			e, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			gotH, got, err := s.decode(e)
			if err != nil {
				t.Fatal(err)
			}
			if e.Type != s.typ {
				t.Errorf("type %s came back as %s", s.typ, e.Type)
			}
			if diff := cmp.Diff(h, gotH); diff != "" {
				t.Errorf("header (-sent +decoded):\n%s", diff)
			}
			if diff := cmp.Diff(s.payload, got); diff != "" {
				t.Errorf("payload (-sent +decoded):\n%s", diff)
			}
		})
	}
	for _, n := range knownTypes() {
		if !covered[n] {
			t.Errorf("type %d (%s) has no sample in everyCommand: add one", uint8(n), n)
		}
	}
}

// Every node must decode an entry to the same values whatever its time zone: a time that came
// back in the node's local zone prints differently in answers and in anything Apply derives from
// it. The generated code is told to decode in UTC (//msgp:timezone utc); this holds it there.
func TestDecodedTimesAreUTCWhateverTheNodesZone(t *testing.T) {
	saved := time.Local
	time.Local = time.FixedZone("node-zone", 5*3600+30*60)
	t.Cleanup(func() { time.Local = saved })

	h := Header{Time: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), Actor: "admin"}
	for _, s := range everyCommand() {
		t.Run(s.typ.String(), func(t *testing.T) {
			data, err := Encode(s.typ, h, s.payload)
			if err != nil {
				t.Fatal(err)
			}
			e, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			gotH, got, err := s.decode(e)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []any{gotH, got} {
				walkTimes(reflect.ValueOf(v), func(path string, tm time.Time) {
					if tm.Location() != time.UTC {
						t.Errorf("%s decoded in zone %q, want UTC", path, tm.Location())
					}
				}, fmt.Sprintf("%T", v))
			}
			sent, _ := json.Marshal(s.payload)
			back, _ := json.Marshal(got)
			if string(sent) != string(back) {
				t.Errorf("payload JSON changed on the way through:\n sent %s\n back %s", sent, back)
			}
		})
	}
}

// walkTimes calls visit for every non-zero time.Time reachable from v.
func walkTimes(v reflect.Value, visit func(string, time.Time), path string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkTimes(v.Elem(), visit, path)
		}
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			if !tm.IsZero() {
				visit(path, tm)
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				walkTimes(v.Field(i), visit, path+"."+v.Type().Field(i).Name)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkTimes(v.Index(i), visit, fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walkTimes(iter.Value(), visit, fmt.Sprintf("%s[%v]", path, iter.Key()))
		}
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
