package locator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

var (
	fhirDate    = regexp.MustCompile(`^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$`)
	fhirGenders = []string{"male", "female", "other", "unknown"}
)

// patientRecord reads the matching fields out of a Patient. ownSystem picks the record's
// identifier: the identifier with that system becomes the record key (the caller decides
// which system the participant may use). Errors name the element at fault.
func patientRecord(p fhir.Patient, ownSystem func(systems []string) (string, error)) (command.PatientRecord, error) {
	var rec command.PatientRecord
	now := time.Now().UTC()
	if err := checkPatient(p, now); err != nil {
		return rec, err
	}
	var systems []string
	for i, id := range p.Identifier {
		if id.System == "" || id.Value == "" {
			return rec, fhir.Invalid(fmt.Sprintf("Patient.identifier[%d]", i), "every identifier needs a system and a value")
		}
		if id.System == fhir.EUIDSystem {
			continue // rls's own identifier, echoed back by a client; the link is rls's to decide
		}
		systems = append(systems, id.System)
	}
	system, err := ownSystem(systems)
	if err != nil {
		return rec, err
	}
	for _, id := range p.Identifier {
		switch id.System {
		case system:
			if rec.Value != "" && rec.Value != id.Value {
				return rec, fhir.Invalid("Patient.identifier", "two identifiers in system %s: a record has one", system)
			}
			rec.System, rec.Value = id.System, id.Value
		case fhir.SSNSystem:
			rec.SSN = id.Value
		}
	}
	if name := preferredName(p.Name); name != nil {
		rec.Given = slices.Clone(name.Given)
		rec.Family = name.Family
		if len(name.Suffix) > 0 {
			rec.Suffix = name.Suffix[0]
		}
	}
	rec.BirthDate = p.BirthDate
	if p.Gender != "" {
		if !slices.Contains(fhirGenders, p.Gender) {
			return rec, fhir.Invalid("Patient.gender", "gender %q must be male, female, other or unknown", p.Gender)
		}
		rec.Sex = p.Gender
	}
	if a := preferredAddress(p.Address); a != nil {
		rec.AddressLines, rec.City, rec.State, rec.PostalCode = slices.Clone(a.Line), a.City, a.State, a.PostalCode
	}
	for i, t := range p.Telecom {
		switch t.System {
		case "phone", "sms":
			rec.Phones = append(rec.Phones, t.Value)
		case "email":
			if rec.Email == "" {
				rec.Email = t.Value
			}
		case "", "fax", "pager", "url", "other":
		default:
			return rec, fhir.Invalid(fmt.Sprintf("Patient.telecom[%d].system", i), "telecom system %q is not a FHIR contact-point-system code", clip(t.System))
		}
	}
	// The elements were checked one by one above; this is the check the FSM repeats.
	if err := rec.Check("", now); err != nil {
		return rec, limitError("Patient", err)
	}
	return rec, nil
}

// checkPatient holds the elements of a Patient that reach the replicated state's keys and
// indexes to the limits of raft/model, naming the element at fault: identifiers, names,
// telecoms, addresses, and a birth date that must be a real calendar date in a plausible
// year. (CheckBounds has already refused control and bidirectional-override characters
// anywhere in the resource.)
func checkPatient(p fhir.Patient, now time.Time) error {
	check := func(err error) error {
		if err == nil {
			return nil
		}
		field, _ := model.FieldOf(err)
		return limitError(field, err)
	}
	lists := []struct {
		name string
		n    int
	}{{"identifier", len(p.Identifier)}, {"name", len(p.Name)}, {"telecom", len(p.Telecom)}, {"address", len(p.Address)}}
	for _, l := range lists {
		if err := check(model.CheckCount("Patient."+l.name, l.n, model.MaxListLength)); err != nil {
			return err
		}
	}
	for i, id := range p.Identifier {
		elem := fmt.Sprintf("Patient.identifier[%d]", i)
		if err := check(model.CheckSystem(elem+".system", id.System)); err != nil {
			return err
		}
		if err := check(model.CheckText(elem+".value", id.Value, model.MaxIdentifierValueLength)); err != nil {
			return err
		}
	}
	for i, n := range p.Name {
		elem := fmt.Sprintf("Patient.name[%d]", i)
		if err := check(model.CheckText(elem+".family", n.Family, model.MaxNameLength)); err != nil {
			return err
		}
		if err := check(model.CheckText(elem+".text", n.Text, model.MaxDisplayLength)); err != nil {
			return err
		}
		for _, part := range []struct {
			name   string
			values []string
		}{{"given", n.Given}, {"prefix", n.Prefix}, {"suffix", n.Suffix}} {
			if err := check(model.CheckCount(elem+"."+part.name, len(part.values), model.MaxNamePartCount)); err != nil {
				return err
			}
			for j, v := range part.values {
				if err := check(model.CheckText(fmt.Sprintf("%s.%s[%d]", elem, part.name, j), v, model.MaxNameLength)); err != nil {
					return err
				}
			}
		}
	}
	for i, t := range p.Telecom {
		if err := check(model.CheckText(fmt.Sprintf("Patient.telecom[%d].value", i), t.Value, model.MaxTelecomLength)); err != nil {
			return err
		}
	}
	for i, a := range p.Address {
		elem := fmt.Sprintf("Patient.address[%d]", i)
		if err := check(model.CheckCount(elem+".line", len(a.Line), model.MaxAddressLineCount)); err != nil {
			return err
		}
		for j, l := range a.Line {
			if err := check(model.CheckText(fmt.Sprintf("%s.line[%d]", elem, j), l, model.MaxAddressLineLength)); err != nil {
				return err
			}
		}
		for _, part := range []struct {
			name, value string
			max         int
		}{{"city", a.City, model.MaxCityLength}, {"district", a.District, model.MaxCityLength}, {"state", a.State, model.MaxStateLength},
			{"postalCode", a.PostalCode, model.MaxPostalCodeLength}, {"country", a.Country, model.MaxCountryLength}, {"text", a.Text, model.MaxDisplayLength}} {
			if err := check(model.CheckText(elem+"."+part.name, part.value, part.max)); err != nil {
				return err
			}
		}
	}
	return checkFHIRBirthDate("Patient.birthDate", p.BirthDate, now)
}

// checkFHIRBirthDate accepts a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD) that is a real
// calendar date (2024-02-30 is not), from model.MinBirthYear up to today (one day of slack
// for time zones ahead of UTC).
func checkFHIRBirthDate(elem, v string, now time.Time) error {
	if v == "" {
		return nil
	}
	if len(v) > model.MaxDateLength || !fhirDate.MatchString(v) {
		return fhir.Invalid(elem, "%s %q must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)", elem, clip(v))
	}
	layout := map[int]string{4: "2006", 7: "2006-01", 10: "2006-01-02"}[len(v)]
	t, err := time.Parse(layout, v)
	if err != nil {
		return fhir.Invalid(elem, "%s %s is not a calendar date", elem, v)
	}
	if t.Year() < model.MinBirthYear {
		return fhir.Invalid(elem, "%s %s is before %d: not a plausible birth date", elem, v, model.MinBirthYear)
	}
	if t.After(now.AddDate(0, 0, 1)) {
		return fhir.Invalid(elem, "%s %s is in the future", elem, v)
	}
	return nil
}

// limitError is the 400 for a value beyond its limit (a model.FieldError), with the element
// as expression and a message that never repeats the value.
func limitError(elem string, err error) error {
	if elem == "" {
		elem, _ = model.FieldOf(err)
	}
	code := "invalid"
	if errors.Is(err, model.ErrTooLong) {
		code = "too-long"
	}
	return fhir.Errorf(http.StatusBadRequest, code, elem, "%v", err)
}

// clip shortens a value a message repeats, so that an error about a huge value is not huge.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

// preferredName picks the name matching compares: the official one, else the usual one,
// else the first that is not old or maiden.
func preferredName(names []fhir.HumanName) *fhir.HumanName {
	for _, use := range []string{"official", "usual", ""} {
		for i := range names {
			if names[i].Use == use {
				return &names[i]
			}
		}
	}
	for i := range names {
		if names[i].Use != "old" && names[i].Use != "maiden" {
			return &names[i]
		}
	}
	return nil
}

// preferredAddress picks the home address, else the first that is not old.
func preferredAddress(addrs []fhir.Address) *fhir.Address {
	for i := range addrs {
		if addrs[i].Use == "home" {
			return &addrs[i]
		}
	}
	for i := range addrs {
		if addrs[i].Use != "old" {
			return &addrs[i]
		}
	}
	return nil
}

// patientFromRecord rebuilds a Patient for a record that was registered from a flat file
// (no resource was sent): every field the record has.
func patientFromRecord(r mpi.Record) fhir.Patient {
	p := fhir.Patient{ResourceType: "Patient", Identifier: []fhir.Identifier{{Use: "usual", System: r.System, Value: r.Value}}}
	if r.SSN != "" {
		p.Identifier = append(p.Identifier, fhir.Identifier{System: fhir.SSNSystem, Value: r.SSN})
	}
	if r.Family != "" || len(r.Given) > 0 {
		n := fhir.HumanName{Use: "official", Family: r.Family, Given: r.Given}
		if r.Suffix != "" {
			n.Suffix = []string{r.Suffix}
		}
		p.Name = []fhir.HumanName{n}
	}
	p.BirthDate = fhirBirthDate(r.BirthDate)
	p.Gender = fhirGender(r.Sex)
	if len(r.AddressLines) > 0 || r.City != "" || r.State != "" || r.PostalCode != "" {
		p.Address = []fhir.Address{{Use: "home", Line: r.AddressLines, City: r.City, State: r.State, PostalCode: r.PostalCode}}
	}
	for _, ph := range r.Phones {
		p.Telecom = append(p.Telecom, fhir.ContactPoint{System: "phone", Value: ph})
	}
	if r.Email != "" {
		p.Telecom = append(p.Telecom, fhir.ContactPoint{System: "email", Value: r.Email})
	}
	return p
}

// fhirBirthDate turns YYYYMMDD into YYYY-MM-DD and drops what is not a FHIR date.
func fhirBirthDate(s string) string {
	if len(s) == 8 {
		if _, err := strconv.Atoi(s); err == nil {
			s = s[:4] + "-" + s[4:6] + "-" + s[6:]
		}
	}
	if !fhirDate.MatchString(s) {
		return ""
	}
	if _, err := time.Parse("2006-01-02", s); len(s) == 10 && err != nil {
		return ""
	}
	return s
}

func fhirGender(s string) string {
	switch strings.ToLower(s) {
	case "f", "female":
		return "female"
	case "m", "male":
		return "male"
	case "o", "other":
		return "other"
	case "u", "unknown":
		return "unknown"
	}
	return ""
}

// storedPatient renders a registered record as the Patient rls serves: the resource as it
// came (or rebuilt from the record), with rls's id and meta, and the EUID of its person as
// an identifier in the rls enterprise system.
func storedPatient(meta model.PatientMeta, sr *mpi.StoredRecord) (fhir.Patient, error) {
	var p fhir.Patient
	if len(meta.Resource) > 0 {
		if err := json.Unmarshal(meta.Resource, &p); err != nil {
			return p, fmt.Errorf("decode stored Patient %s: %w", meta.ID, err)
		}
	} else {
		p = patientFromRecord(sr.Record)
	}
	p.ResourceType = "Patient"
	p.ID = meta.ID
	p.Meta = &fhir.Meta{VersionID: strconv.FormatUint(meta.Version, 10), LastUpdated: meta.Updated.UTC().Format(time.RFC3339Nano)}
	p.Identifier = slices.DeleteFunc(p.Identifier, func(id fhir.Identifier) bool { return id.System == fhir.EUIDSystem })
	p.Identifier = append(p.Identifier, fhir.Identifier{Use: "secondary", System: fhir.EUIDSystem, Value: sr.EUID})
	return p, nil
}

// canonicalResource is the JSON kept for a registered Patient: what the participant sent,
// without the id, meta and EUID identifier that rls owns.
func canonicalResource(p fhir.Patient) ([]byte, error) {
	p.ID, p.Meta = "", nil
	p.Identifier = slices.DeleteFunc(slices.Clone(p.Identifier), func(id fhir.Identifier) bool { return id.System == fhir.EUIDSystem })
	return json.Marshal(p)
}
