package mpi

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// fillEveryField sets every field reachable from v (strings, integers, slices of one or
// two elements, nested structs) to a value of its own, so that a codec that forgets a
// field loses something a comparison sees.
func fillEveryField(v reflect.Value, next *int) {
	switch v.Kind() {
	case reflect.String:
		*next++
		v.SetString(fmt.Sprintf("v%d-é", *next))
	case reflect.Int, reflect.Int64:
		*next++
		v.SetInt(int64(*next) * 37)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1+*next%2, 1+*next%2)
		for i := 0; i < s.Len(); i++ {
			fillEveryField(s.Index(i), next)
		}
		v.Set(s)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fillEveryField(v.Field(i), next)
			}
		}
	default:
		panic(fmt.Sprintf("fillEveryField: %s needs a case (and the binary codec a field)", v.Type()))
	}
}

type binaryValue interface {
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
}

func roundTrip[T any, P interface {
	*T
	binaryValue
}](t *testing.T, in *T) {
	t.Helper()
	data, err := P(in).AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !IsBinary(data) {
		t.Fatalf("%T: encoding does not start with the format byte", in)
	}
	var out T
	if err := P(&out).UnmarshalBinary(data); err != nil {
		t.Fatalf("%T: %v", in, err)
	}
	if !reflect.DeepEqual(*in, out) {
		t.Fatalf("%T changed in a round trip:\n in %+v\nout %+v", in, *in, out)
	}
	// Every truncation is an error, never a panic or a silently shorter value.
	for n := 1; n < len(data); n++ {
		if err := P(&out).UnmarshalBinary(data[:n]); !errors.Is(err, ErrBadEncoding) {
			t.Fatalf("%T cut to %d of %d bytes: err = %v", in, n, len(data), err)
		}
	}
	if err := P(&out).UnmarshalBinary(append(data, 0)); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("%T with a byte left over: err = %v", in, err)
	}
}

// TestBinaryRoundTripCoversEveryField round-trips values with every field set, and values
// with nil and empty lists, through the binary forms.
func TestBinaryRoundTripCoversEveryField(t *testing.T) {
	next := 0
	var sr StoredRecord
	fillEveryField(reflect.ValueOf(&sr).Elem(), &next)
	roundTrip(t, &sr)
	var p Person
	fillEveryField(reflect.ValueOf(&p).Elem(), &next)
	roundTrip(t, &p)
	var pr Prepared
	fillEveryField(reflect.ValueOf(&pr).Elem(), &next)
	roundTrip(t, &pr)

	roundTrip(t, &StoredRecord{})
	roundTrip(t, &StoredRecord{Record: Record{Given: []string{}, Phones: []string{""}}, Norm: Normalized{Addresses: []AddressLine{}, BirthYear: -3}, Blocks: []Block{}})
	roundTrip(t, &Person{Records: []RecordKey{}})

	real := Record{System: "urn:oid:1.2", Value: "MRN1", Given: []string{"José", "Maria"}, Family: "Castro-García",
		BirthDate: "1980-02-03", Sex: "F", AddressLines: []string{"12 Oak St Apt 3"}, City: "Salem", State: "OR",
		PostalCode: "97301-1234", Phones: []string{"(503) 555-0101"}, Email: "jm@example.org", SSN: "123-45-6789"}
	prep := Prepare(real)
	roundTrip(t, &prep)
	roundTrip(t, &StoredRecord{Key: real.Key(), EUID: "E1", Record: real, Norm: prep.Norm, Blocks: prep.Blocks})
}

func TestBinaryRefusesOtherFormats(t *testing.T) {
	var sr StoredRecord
	for _, data := range [][]byte{nil, {}, []byte(`{"key":"a|b"}`), {0x02, 0}} {
		if err := sr.UnmarshalBinary(data); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%q: err = %v", data, err)
		}
	}
	// A list length beyond the bytes present is refused before anything is allocated.
	if err := sr.UnmarshalBinary([]byte{binaryFormat, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("huge list length: err = %v", err)
	}
}

// TestStoredRecordKeyReadsTheKeyAlone: the key of a stored record is read without the
// rest, and a value of another format or whose key runs past its end is refused.
func TestStoredRecordKeyReadsTheKeyAlone(t *testing.T) {
	prep := Prepare(Record{System: "s", Value: "v", Given: []string{"Ann"}, Family: "Lee", BirthDate: "1980-02-03"})
	data, _ := (&StoredRecord{Key: "urn:oid:1.2|MRN7", EUID: "E1", Norm: prep.Norm, Blocks: prep.Blocks}).AppendBinary(nil)
	if key, err := StoredRecordKey(data); err != nil || key != "urn:oid:1.2|MRN7" {
		t.Fatalf("key %q, err %v", key, err)
	}
	for _, bad := range [][]byte{nil, []byte(`{"key":"a|b"}`), {binaryFormat}, {binaryFormat, 5, 'a', 'b'}, data[:10]} {
		if key, err := StoredRecordKey(bad); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%q: key %q, err %v", bad, key, err)
		}
	}
}

func FuzzStoredRecordBinary(f *testing.F) {
	prep := Prepare(Record{System: "s", Value: "v", Given: []string{"Ann"}, Family: "Lee", BirthDate: "1980-02-03"})
	data, _ := (&StoredRecord{Key: "s|v", EUID: "E1", Norm: prep.Norm, Blocks: prep.Blocks}).AppendBinary(nil)
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		var sr StoredRecord
		if err := sr.UnmarshalBinary(data); err != nil {
			return
		}
		if key, err := StoredRecordKey(data); err != nil || key != sr.Key {
			t.Fatalf("the key read alone is %q (%v), decoded whole %q", key, err, sr.Key)
		}
		again, _ := sr.AppendBinary(nil)
		var back StoredRecord
		if err := back.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(sr, back) {
			t.Fatalf("a decoded record does not survive a second round trip: %v", err)
		}
	})
}

// TestPreparedVerify: a prepared record passes against its own record and fails against
// any other, under other normalisation rules, or with blocking keys out of order, repeated
// or of no known pass.
func TestPreparedVerify(t *testing.T) {
	gen := newPersonGenerator(3)
	for i := range 300 {
		rec := gen.person(i)
		p := Prepare(rec)
		if err := p.Verify(rec); err != nil {
			t.Fatalf("record %d: its own prepared form refused: %v", i, err)
		}
		other := rec
		other.Given = []string{"Zebulon"}
		if err := p.Verify(other); !errors.Is(err, ErrPreparedMismatch) {
			t.Fatalf("record %d: prepared form accepted for another given name: %v", i, err)
		}
	}
	rec := Record{System: "s", Value: "v", Given: []string{"Ann"}, Family: "Lee", BirthDate: "1980-02-03",
		AddressLines: []string{"12 Oak St"}, PostalCode: "97301", Phones: []string{"5035550100"}}
	tamper := map[string]func(p *Prepared){
		"rules version": func(p *Prepared) { p.Norm.Version++ },
		"phonetic code": func(p *Prepared) { p.Norm.FamilyCode = "XX" },
		"birth year":    func(p *Prepared) { p.Norm.BirthYear++ },
		"unknown pass":  func(p *Prepared) { p.Blocks[0].Key = "zz:" + p.Blocks[0].Key },
		"empty key":     func(p *Prepared) { p.Blocks[0].Key = passOf(p.Blocks[0].Key) + ":" },
		"repeated key":  func(p *Prepared) { p.Blocks[1] = p.Blocks[0] },
		"unsorted keys": func(p *Prepared) { p.Blocks[0], p.Blocks[1] = p.Blocks[1], p.Blocks[0] },
	}
	for name, change := range tamper {
		p := Prepare(rec)
		if len(p.Blocks) < 2 {
			t.Fatalf("the test record has %d blocking keys", len(p.Blocks))
		}
		change(&p)
		if err := p.Verify(rec); !errors.Is(err, ErrPreparedMismatch) {
			t.Errorf("%s: tampered prepared form accepted: %v", name, err)
		}
	}
}

// TestMemRecordKeepsEveryField puts records with every field set, and with nil and empty
// lists, into a MemStore: Record gives them back whole, RecordsBatch gives the part scoring
// reads.
func TestMemRecordKeepsEveryField(t *testing.T) {
	next := 0
	var full StoredRecord
	fillEveryField(reflect.ValueOf(&full).Elem(), &next)
	real := Record{System: "urn:oid:1.2", Value: "MRN1", Given: []string{"José", "Maria"}, Family: "Castro-García",
		BirthDate: "1980-02-03", Sex: "F", AddressLines: []string{"12 Oak St Apt 3"}, City: "Salem", State: "OR",
		PostalCode: "97301-1234", Phones: []string{"(503) 555-0101"}, SSN: "123-45-6789"}
	prep := Prepare(real)
	for _, in := range []*StoredRecord{
		&full,
		{Key: "s|empty"},
		{Key: "s|lists", Record: Record{Given: []string{}, Phones: []string{""}}, Norm: Normalized{Addresses: []AddressLine{}, BirthYear: -3}, Blocks: []Block{}},
		{Key: real.Key(), EUID: "E1", Record: real, Norm: prep.Norm, Blocks: prep.Blocks},
	} {
		mem := NewMemStore()
		if err := mem.PutRecord(in); err != nil {
			t.Fatal(err)
		}
		got, err := mem.Record(in.Key)
		if err != nil || !reflect.DeepEqual(got, in) {
			t.Fatalf("Record(%s) = %+v, %v; want %+v", in.Key, got, err, in)
		}
		if !mem.HeldAt(in.Key, 0) || mem.HeldAt("s|absent", 0) {
			t.Fatalf("HeldAt(%s) does not find it, or finds what is absent", in.Key)
		}
		if at, known := mem.RecordAt(in.Key, 0); !known || !reflect.DeepEqual(at, in) {
			t.Fatalf("RecordAt(%s) = %+v, %v; want %+v", in.Key, at, known, in)
		}
		var arena RecordArena
		for range 2 { // the second time into memory the arena gave out before
			batch, err := mem.RecordsBatch([]RecordKey{in.Key, "s|absent"}, nil, &arena)
			want := &StoredRecord{Key: in.Key, EUID: in.EUID, Norm: in.Norm}
			if err != nil || len(batch) != 2 || !reflect.DeepEqual(batch[0], want) || batch[1] != nil {
				t.Fatalf("RecordsBatch(%s) = %+v, %v; want %+v and nil", in.Key, batch, err, want)
			}
			arena.Reset()
		}
		if own, ok := mem.StoredKey(in.Key); !ok || own != in.Key {
			t.Fatalf("StoredKey(%s) = %s %v", in.Key, own, ok)
		}
		if own, norm, ok := mem.Normalized(in.Key); !ok || own != in.Key || !reflect.DeepEqual(*norm, in.Norm) {
			t.Fatalf("Normalized(%s) = %s %+v %v", in.Key, own, norm, ok)
		}
	}
	// A store without the records' blocking keys gives the rest of them.
	lean := NewMemStore(WithoutRecordBlocks())
	whole := &StoredRecord{Key: real.Key(), EUID: "E1", Record: real, Norm: prep.Norm, Blocks: prep.Blocks}
	_ = lean.PutRecord(whole)
	want := *whole
	want.Blocks = nil
	if got, err := lean.Record(whole.Key); err != nil || !reflect.DeepEqual(got, &want) {
		t.Fatalf("Record without blocks = %+v, %v; want %+v", got, err, &want)
	}
	// Writing a record back from a read leaves it unchanged.
	mem := NewMemStore()
	in := &StoredRecord{Key: real.Key(), EUID: "E1", Record: real, Norm: prep.Norm, Blocks: prep.Blocks}
	_ = mem.PutRecord(in)
	got, _ := mem.Record(in.Key)
	_ = mem.PutRecord(got)
	if again, _ := mem.Record(in.Key); !reflect.DeepEqual(again, in) {
		t.Fatalf("a record written back from a read changed: %+v", again)
	}
}
