package fhir

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

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
)

var (
	dateRE  = regexp.MustCompile(`^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$`)
	genders = []string{"male", "female", "other", "unknown"}
)

// RecordOf reads the matching fields out of a Patient. ownSystem picks the record's
// identifier: the identifier with that system becomes the record key (the caller decides
// which system the participant may use). Errors name the element at fault.
func RecordOf(p Patient, ownSystem func(systems []string) (string, error)) (command.PatientRecord, error) {
	var rec command.PatientRecord
	now := time.Now().UTC()
	if err := checkPatient(p, now); err != nil {
		return rec, err
	}
	var systems []string
	for i, id := range p.Identifier {
		if id.System == "" || id.Value == "" {
			return rec, Invalid(fmt.Sprintf("Patient.identifier[%d]", i), "every identifier needs a system and a value")
		}
		if id.System == EUIDSystem {
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
				return rec, Invalid("Patient.identifier", "two identifiers in system %s: a record has one", system)
			}
			rec.System, rec.Value = id.System, id.Value
		case SSNSystem:
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
		if !slices.Contains(genders, p.Gender) {
			return rec, Invalid("Patient.gender", "gender %q must be male, female, other or unknown", p.Gender)
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
			return rec, Invalid(fmt.Sprintf("Patient.telecom[%d].system", i), "telecom system %q is not a FHIR contact-point-system code", Clip(t.System))
		}
	}
	// The elements were checked one by one above; this is the check the FSM repeats.
	if err := rec.Check("", now); err != nil {
		return rec, LimitError("Patient", err)
	}
	return rec, nil
}

// checkPatient holds the elements of a Patient that reach the replicated state's keys and
// indexes to the limits of raft/model, naming the element at fault: identifiers, names,
// telecoms, addresses, and a birth date that must be a real calendar date in a plausible
// year. (CheckBounds has already refused control and bidirectional-override characters
// anywhere in the resource.)
func checkPatient(p Patient, now time.Time) error {
	check := func(err error) error {
		if err == nil {
			return nil
		}
		field, _ := model.FieldOf(err)
		return LimitError(field, err)
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
	return checkBirthDate("Patient.birthDate", p.BirthDate, now)
}

// checkBirthDate accepts a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD) that is a real
// calendar date (2024-02-30 is not), from model.MinBirthYear up to today (one day of slack
// for time zones ahead of UTC).
func checkBirthDate(elem, v string, now time.Time) error {
	if v == "" {
		return nil
	}
	if len(v) > model.MaxDateLength || !dateRE.MatchString(v) {
		return Invalid(elem, "%s %q must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)", elem, Clip(v))
	}
	layout := map[int]string{4: "2006", 7: "2006-01", 10: "2006-01-02"}[len(v)]
	t, err := time.Parse(layout, v)
	if err != nil {
		return Invalid(elem, "%s %s is not a calendar date", elem, v)
	}
	if t.Year() < model.MinBirthYear {
		return Invalid(elem, "%s %s is before %d: not a plausible birth date", elem, v, model.MinBirthYear)
	}
	if t.After(now.AddDate(0, 0, 1)) {
		return Invalid(elem, "%s %s is in the future", elem, v)
	}
	return nil
}

// LimitError is the 400 for a value beyond its limit (a model.FieldError), with the element
// as expression and a message that never repeats the value.
func LimitError(elem string, err error) error {
	if elem == "" {
		elem, _ = model.FieldOf(err)
	}
	code := "invalid"
	if errors.Is(err, model.ErrTooLong) {
		code = "too-long"
	}
	return Errorf(http.StatusBadRequest, code, elem, "%v", err)
}

// Clip shortens a value a message repeats, so that an error about a huge value is not huge.
func Clip(s string) string {
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
func preferredName(names []HumanName) *HumanName {
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
func preferredAddress(addrs []Address) *Address {
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
func patientFromRecord(r mpi.Record) Patient {
	p := Patient{ResourceType: "Patient", Identifier: []Identifier{{Use: "usual", System: r.System, Value: r.Value}}}
	if r.SSN != "" {
		p.Identifier = append(p.Identifier, Identifier{System: SSNSystem, Value: r.SSN})
	}
	if r.Family != "" || len(r.Given) > 0 {
		n := HumanName{Use: "official", Family: r.Family, Given: r.Given}
		if r.Suffix != "" {
			n.Suffix = []string{r.Suffix}
		}
		p.Name = []HumanName{n}
	}
	p.BirthDate = birthDate(r.BirthDate)
	p.Gender = Gender(r.Sex)
	if len(r.AddressLines) > 0 || r.City != "" || r.State != "" || r.PostalCode != "" {
		p.Address = []Address{{Use: "home", Line: r.AddressLines, City: r.City, State: r.State, PostalCode: r.PostalCode}}
	}
	for _, ph := range r.Phones {
		p.Telecom = append(p.Telecom, ContactPoint{System: "phone", Value: ph})
	}
	if r.Email != "" {
		p.Telecom = append(p.Telecom, ContactPoint{System: "email", Value: r.Email})
	}
	return p
}

// birthDate turns YYYYMMDD into YYYY-MM-DD and drops what is not a FHIR date.
func birthDate(s string) string {
	if len(s) == 8 {
		if _, err := strconv.Atoi(s); err == nil {
			s = s[:4] + "-" + s[4:6] + "-" + s[6:]
		}
	}
	if !dateRE.MatchString(s) {
		return ""
	}
	if _, err := time.Parse("2006-01-02", s); len(s) == 10 && err != nil {
		return ""
	}
	return s
}

// Gender reads a sex or gender as records and search parameters spell it (F, female, m…)
// into a FHIR administrative-gender code, or "".
func Gender(s string) string {
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

// StoredPatient renders a registered record as the Patient rls serves: the resource as it
// came (or rebuilt from the record), with rls's id and meta, and the EUID of its person as
// an identifier in the rls enterprise system.
func StoredPatient(meta model.PatientMeta, sr *mpi.StoredRecord) (Patient, error) {
	var p Patient
	if len(meta.Resource) > 0 {
		if err := json.Unmarshal(meta.Resource, &p); err != nil {
			return p, fmt.Errorf("decode stored Patient %s: %w", meta.ID, err)
		}
	} else {
		p = patientFromRecord(sr.Record)
	}
	p.ResourceType = "Patient"
	p.ID = meta.ID
	p.Meta = Stamped(p.Meta, strconv.FormatUint(meta.Version, 10), meta.Updated.UTC().Format(time.RFC3339Nano))
	p.Identifier = slices.DeleteFunc(p.Identifier, func(id Identifier) bool { return id.System == EUIDSystem })
	p.Identifier = append(p.Identifier, Identifier{Use: "secondary", System: EUIDSystem, Value: sr.EUID})
	return p, nil
}

// WithoutEUID returns the Patient without its EUID identifier, for a caller that may see
// the record but not the person it belongs to.
func WithoutEUID(p Patient) Patient {
	p.Identifier = slices.DeleteFunc(slices.Clone(p.Identifier), func(id Identifier) bool { return id.System == EUIDSystem })
	return p
}

// CanonicalPatient is the JSON kept for a registered Patient: what the participant sent,
// without the id, versionId, lastUpdated and EUID identifier that rls owns.
func CanonicalPatient(p Patient) ([]byte, error) {
	p.ID, p.Meta = "", SenderMeta(p.Meta)
	p.Identifier = slices.DeleteFunc(slices.Clone(p.Identifier), func(id Identifier) bool { return id.System == EUIDSystem })
	return json.Marshal(p)
}

// DecisionExtension reports how matching decided a registration.
func DecisionExtension(d mpi.Decision) Extension {
	score := d.Score
	ext := Extension{URL: MatchDecisionURL, Extension: []Extension{
		{URL: "outcome", ValueCode: string(d.Outcome)},
		{URL: "score", ValueDecimal: &score},
		{URL: "person", ValueReference: &Reference{Reference: "Person/" + d.EUID}},
	}}
	if d.Review != nil {
		ext.Extension = append(ext.Extension, Extension{URL: "review", ValueString: d.Review.Reason})
	}
	return ext
}

// PersonRecord is one source record of a person: its registry entry and its demographics.
type PersonRecord struct {
	Meta   model.PatientMeta
	Record mpi.Record
}

// PersonOf builds a Person: every record's identifier and a link to it, and the
// golden view of the demographics (for each field the value most records agree on, ties
// going to the most recently updated record).
func PersonOf(euid string, records []PersonRecord) Person {
	active := true
	p := Person{ResourceType: "Person", ID: euid, Active: &active,
		Identifier: []Identifier{{Use: "official", System: EUIDSystem, Value: euid}}}
	// Most recent first, so that ties in golden() go to it.
	slices.SortStableFunc(records, func(a, b PersonRecord) int { return b.Meta.Updated.Compare(a.Meta.Updated) })
	for _, r := range records {
		p.Identifier = append(p.Identifier, Identifier{Use: "usual", System: r.Record.System, Value: r.Record.Value})
		p.Link = append(p.Link, PersonLink{Target: Reference{Reference: "Patient/" + model.PatientID(string(r.Record.Key()))}, Assurance: "level3"})
	}
	pick := func(get func(mpi.Record) string) string {
		var values []string
		for _, r := range records {
			values = append(values, get(r.Record))
		}
		return golden(values)
	}
	given := pick(func(r mpi.Record) string { return strings.Join(r.Given, " ") })
	family := pick(func(r mpi.Record) string { return r.Family })
	if given != "" || family != "" {
		n := HumanName{Use: "official", Family: family}
		if given != "" {
			n.Given = strings.Fields(given)
		}
		p.Name = []HumanName{n}
	}
	p.BirthDate = birthDate(pick(func(r mpi.Record) string { return r.BirthDate }))
	p.Gender = Gender(pick(func(r mpi.Record) string { return r.Sex }))
	line := pick(func(r mpi.Record) string { return strings.Join(r.AddressLines, "\n") })
	city, st, zip := pick(func(r mpi.Record) string { return r.City }), pick(func(r mpi.Record) string { return r.State }), pick(func(r mpi.Record) string { return r.PostalCode })
	if line != "" || city != "" || st != "" || zip != "" {
		a := Address{Use: "home", City: city, State: st, PostalCode: zip}
		if line != "" {
			a.Line = strings.Split(line, "\n")
		}
		p.Address = []Address{a}
	}
	if ph := pick(func(r mpi.Record) string { return first(r.Phones) }); ph != "" {
		p.Telecom = append(p.Telecom, ContactPoint{System: "phone", Value: ph})
	}
	if em := pick(func(r mpi.Record) string { return r.Email }); em != "" {
		p.Telecom = append(p.Telecom, ContactPoint{System: "email", Value: em})
	}
	return p
}

// PersonExtensionURL is the extension on a golden Patient that references its Person (R4's
// Patient.link may reference only Patients and RelatedPersons).
const PersonExtensionURL = Base + "/StructureDefinition/person"

// GoldenPatient is a person as a Patient (what $match answers, and what GET
// /fhir/Patient/{euid} reads): the golden demographics of the Person, its id the EUID, every
// source record's identifier, a seealso link to each source record's Patient, and the
// person extension referencing the Person.
func GoldenPatient(person Person) Patient {
	p := Patient{ResourceType: "Patient", ID: person.ID, Identifier: person.Identifier, Active: person.Active,
		Name: person.Name, Telecom: person.Telecom, Gender: person.Gender, BirthDate: person.BirthDate, Address: person.Address}
	ext, _ := json.Marshal(Extension{URL: PersonExtensionURL, ValueReference: &Reference{Reference: "Person/" + person.ID}})
	p.Extension = []json.RawMessage{ext}
	for _, l := range person.Link {
		p.Link = append(p.Link, PatientLink{Other: l.Target, Type: "seealso"})
	}
	return p
}

// IsEUID tells an enterprise identifier (E + 32 hex digits) from a record's Patient id (32
// hex digits).
func IsEUID(id string) bool {
	return len(id) == 33 && id[0] == 'E'
}

// golden returns the non-empty value that occurs most often; ties go to the earliest.
func golden(values []string) string {
	best, bestN := "", 0
	for i, v := range values {
		if v == "" {
			continue
		}
		n := 0
		for _, w := range values[i:] {
			if w == v {
				n++
			}
		}
		if n > bestN {
			best, bestN = v, n
		}
	}
	return best
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
