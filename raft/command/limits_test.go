package command

import (
	"strings"
	"testing"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

func checkedRegistration() PatientRegistration {
	return PatientRegistration{
		Record: PatientRecord{
			System: "urn:oid:2.16.840.1.113883.3.1001", Value: "MRN6845050",
			Given: []string{"Mary", "S"}, Family: "Chen", BirthDate: "1960-01-16", Sex: "F",
			AddressLines: []string{"8669 Washington Blvd"}, City: "Richmond", State: "VA",
			PostalCode: "23216", Phones: []string{"2524280910"}, SSN: "797617646",
		},
		NewEUID: "E000000001",
	}
}

// Check names the field that fails in full, though it checks without names first.
func TestCheckNamesTheFailingField(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", model.MaxNameLength+1)
	for _, tc := range []struct {
		name  string
		spoil func(*PatientRegistration)
		field string
	}{
		{"given item", func(r *PatientRegistration) { r.Record.Given[1] = long }, "registrations[1].record.given[1]"},
		{"phone item", func(r *PatientRegistration) { r.Record.Phones = append(r.Record.Phones, "1\x00") }, "registrations[1].record.phones[1]"},
		{"family", func(r *PatientRegistration) { r.Record.Family = long }, "registrations[1].record.family"},
		{"birth date", func(r *PatientRegistration) { r.Record.BirthDate = "2999-01-01" }, "registrations[1].record.birth_date"},
		{"euid", func(r *PatientRegistration) { r.NewEUID = "" }, "registrations[1].new_euid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := PatientRegister{Registrations: []PatientRegistration{checkedRegistration(), checkedRegistration()}}
			if err := c.Check(now); err != nil {
				t.Fatalf("a valid batch fails: %v", err)
			}
			tc.spoil(&c.Registrations[1])
			err := c.Check(now)
			if field, ok := model.FieldOf(err); !ok || field != tc.field {
				t.Fatalf("batch error %v names %q, want %q", err, field, tc.field)
			}
			err = c.Registrations[1].Check("", now)
			if field, ok := model.FieldOf(err); !ok || field != strings.TrimPrefix(tc.field, "registrations[1].") {
				t.Fatalf("registration error %v names %q", err, field)
			}
		})
	}
}

// BenchmarkPatientRegistrationCheck is the check the FSM runs on every record it applies.
//
//	go test -run '^$' -bench PatientRegistrationCheck -benchmem ./raft/command/
func BenchmarkPatientRegistrationCheck(b *testing.B) {
	r := checkedRegistration()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		if err := r.Check("", now); err != nil {
			b.Fatal(err)
		}
	}
}
