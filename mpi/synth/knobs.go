package synth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
)

// Knobs set the structure of a population and the rates of its errors.
// DefaultKnobs reproduces the per-record rates measured on the shared
// population-20k file (README.md says how) and adds what that file lacks
// at scale: US name frequencies, nested geography, households, time.
// Rates are per record unless a comment says per person. Load a partial
// JSON object over the defaults with LoadKnobs; ScaleErrors makes a
// population easier or harder as a whole.
type Knobs struct {
	// RecordsPerPerson weighs 1, 2, 3… records per person (45/35/15/5).
	RecordsPerPerson []float64 `json:"records_per_person"`
	// HouseholdShare is the share of persons registered with at least one
	// other member of their household (same address, family name, often
	// phone). Twins and juniors come on top.
	HouseholdShare float64 `json:"household_share"`
	// TwinShare is the share of persons who are the second of a twin pair
	// (labelled P<N>t beside their co-twin P<N>): same birth date and
	// family name, usually the same home.
	TwinShare float64 `json:"twin_share"`
	// TwinLookalike is the share of twin pairs named alike (Mary/Amy,
	// Jason/Justin); another as many share an initial.
	TwinLookalike float64 `json:"twin_lookalike"`
	// JuniorShare is the share of persons who carry their father's given
	// and family name (labelled P<N>j beside the father P<N>), born 18–45
	// years later; JuniorSuffix the share of a junior's records that say
	// "Jr" (a father's say "Sr" a third as often).
	JuniorShare  float64 `json:"junior_share"`
	JuniorSuffix float64 `json:"junior_suffix"`

	// NameConcentration is the share of names drawn from steep Zipf
	// distributions over the most common names instead of the US ones:
	// 0 (default) is the US (Smith 0.8% of persons), 0.85 resembles
	// population-20k (Smith about 7%, Mary 13% of women), where same-name
	// strangers are many times more common.
	NameConcentration float64 `json:"name_concentration"`

	// HomeState is the postal code of the exchange's state (data/states.txt);
	// empty picks one from the seed. NeighbourShare of persons live in
	// neighbouring states.
	HomeState      string  `json:"home_state"`
	NeighbourShare float64 `json:"neighbour_share"`
	// The region holds persons/Coverage residents (at least MinResidents),
	// spread over Zipf-sized towns whose ZIP codes hold ResidentsPerZIP on
	// average (log-normal), so the number of towns and ZIPs grows with the
	// population while persons per ZIP stay realistic.
	Coverage        float64 `json:"coverage"`
	MinResidents    float64 `json:"min_residents"`
	ResidentsPerZIP float64 `json:"residents_per_zip"`
	// Facilities is the number of facilities sending records; 0 means
	// 6 + persons/25,000. Each has its own MRN format.
	Facilities int `json:"facilities"`
	// DuplicateMRN is the share of records registered a second time at a
	// facility that already has the person, under a new MRN.
	DuplicateMRN float64 `json:"duplicate_mrn"`

	// Life events over the ten years (2016–2025) the records span: moves
	// per household (a new address; from the same ZIP to a neighbouring
	// state), phone number changes per person, marriages per unmarried
	// woman aged 18–45 (new family name, usually a move), the share of
	// marriages giving a hyphenated name.
	MovesPerDecade        float64 `json:"moves_per_decade"`
	PhoneChangesPerDecade float64 `json:"phone_changes_per_decade"`
	MarriagesPerDecade    float64 `json:"marriages_per_decade"`
	Hyphenate             float64 `json:"hyphenate"`

	// Which persons have a value (per person) and how often their records
	// show it (per record).
	SSNPerson    float64 `json:"ssn_person"`
	SSNShown     float64 `json:"ssn_shown"`
	EmailPerson  float64 `json:"email_person"`
	EmailShown   float64 `json:"email_shown"`
	MiddlePerson float64 `json:"middle_person"`
	MiddleShown  float64 `json:"middle_shown"`
	// MiddleInitial is the share of shown middle names cut to the initial.
	MiddleInitial float64 `json:"middle_initial"`
	PhoneMissing  float64 `json:"phone_missing"`
	// NicknamePerson is the share of persons whose name has nicknames who
	// go by one; NicknameUse the share of their records that say so;
	// NicknameUnknown the share of those nicknames the matcher's table
	// (mpi/nicknames.txt) lacks.
	NicknamePerson  float64 `json:"nickname_person"`
	NicknameUse     float64 `json:"nickname_use"`
	NicknameUnknown float64 `json:"nickname_unknown"`

	// Per-record errors of data entry. A typo is one insertion, deletion,
	// keyboard-adjacent substitution, transposition, OCR or phonetic
	// confusion; SecondTypo of them get another.
	GivenTypo       float64 `json:"given_typo"`
	FamilyTypo      float64 `json:"family_typo"`
	SecondTypo      float64 `json:"second_typo"`
	GivenFamilySwap float64 `json:"given_family_swap"`
	GivenInitial    float64 `json:"given_initial"`
	// UpperCase is the share of name and city fields typed in capitals.
	UpperCase float64 `json:"upper_case"`
	// Birth dates: a day off by one or one digit wrong, day and month
	// swapped (a share of the dates whose day is 12 or less), a year off by
	// one or ten, a 1 January placeholder.
	BirthDayTypo      float64 `json:"birth_day_typo"`
	BirthDayMonthSwap float64 `json:"birth_day_month_swap"`
	BirthYearTypo     float64 `json:"birth_year_typo"`
	BirthPlaceholder  float64 `json:"birth_placeholder"`
	SexUnknown        float64 `json:"sex_unknown"`
	SexWrong          float64 `json:"sex_wrong"`
	// Addresses: the street type abbreviated (Street → St), a typo in the
	// street name or house number, no address at all, ZIP+4.
	StreetAbbrev   float64 `json:"street_abbrev"`
	AddressTypo    float64 `json:"address_typo"`
	AddressMissing float64 `json:"address_missing"`
	ZIPPlus4       float64 `json:"zip_plus4"`
	ZIPTypo        float64 `json:"zip_typo"`
	// Phones: "(555) 123-4567" rather than digits, other punctuation, typos.
	PhoneParens float64 `json:"phone_parens"`
	PhoneDashes float64 `json:"phone_dashes"`
	PhoneTypo   float64 `json:"phone_typo"`
	// SSNs: a typo, another person's number (a household member's when
	// there is one, as when a guarantor's is copied), a placeholder such as
	// 999-99-9999, written with dashes.
	SSNTypo        float64 `json:"ssn_typo"`
	SSNOther       float64 `json:"ssn_other"`
	SSNPlaceholder float64 `json:"ssn_placeholder"`
	SSNDashes      float64 `json:"ssn_dashes"`
	EmailTypo      float64 `json:"email_typo"`
}

// DefaultKnobs returns the rates described on Knobs.
func DefaultKnobs() Knobs {
	return Knobs{
		RecordsPerPerson: []float64{45, 35, 15, 5},
		HouseholdShare:   0.5,
		TwinShare:        0.02,
		TwinLookalike:    0.15,
		JuniorShare:      0.005,
		JuniorSuffix:     0.3,

		NeighbourShare:  0.08,
		Coverage:        0.5,
		MinResidents:    50000,
		ResidentsPerZIP: 15000,
		DuplicateMRN:    0.01,

		MovesPerDecade:        2.0,
		PhoneChangesPerDecade: 1.5,
		MarriagesPerDecade:    0.35,
		Hyphenate:             0.2,

		SSNPerson:       0.68,
		SSNShown:        0.77,
		EmailPerson:     0.55,
		EmailShown:      0.72,
		MiddlePerson:    0.75,
		MiddleShown:     0.8,
		MiddleInitial:   0.45,
		PhoneMissing:    0.01,
		NicknamePerson:  0.6,
		NicknameUse:     0.6,
		NicknameUnknown: 0.1,

		GivenTypo:         0.2,
		FamilyTypo:        0.2,
		SecondTypo:        0.02,
		GivenFamilySwap:   0.024,
		GivenInitial:      0.003,
		UpperCase:         0.24,
		BirthDayTypo:      0.053,
		BirthDayMonthSwap: 0.03,
		BirthYearTypo:     0.021,
		BirthPlaceholder:  0.002,
		SexUnknown:        0.01,
		SexWrong:          0.002,
		StreetAbbrev:      0.18,
		AddressTypo:       0.01,
		AddressMissing:    0.005,
		ZIPPlus4:          0.03,
		ZIPTypo:           0.003,
		PhoneParens:       0.236,
		PhoneDashes:       0.02,
		PhoneTypo:         0.003,
		SSNTypo:           0.03,
		SSNOther:          0.001,
		SSNPlaceholder:    0.002,
		SSNDashes:         0.05,
		EmailTypo:         0.005,
	}
}

// errorKnobs name the per-record error rates that ScaleErrors scales.
var errorKnobs = []string{
	"GivenTypo", "FamilyTypo", "SecondTypo", "GivenFamilySwap", "GivenInitial",
	"BirthDayTypo", "BirthDayMonthSwap", "BirthYearTypo", "BirthPlaceholder", "SexUnknown", "SexWrong",
	"AddressTypo", "AddressMissing", "ZIPTypo", "PhoneTypo", "PhoneMissing",
	"SSNTypo", "SSNOther", "SSNPlaceholder", "EmailTypo", "DuplicateMRN",
}

// ScaleErrors multiplies every per-record error rate (typos, swaps, wrong
// or missing values; not formats, case or life events) by f, capped at 1:
// 0.5 halves the noise, 2 doubles it.
func (k *Knobs) ScaleErrors(f float64) {
	v := reflect.ValueOf(k).Elem()
	for _, name := range errorKnobs {
		fv := v.FieldByName(name)
		fv.SetFloat(min(1, fv.Float()*f))
	}
}

// LoadKnobs reads a JSON object of knobs (any subset of the fields, named
// as in their json tags) over the defaults.
func LoadKnobs(path string) (Knobs, error) {
	k := DefaultKnobs()
	b, err := os.ReadFile(path)
	if err != nil {
		return k, fmt.Errorf("knobs: %w", err)
	}
	if err := UnmarshalKnobs(b, &k); err != nil {
		return k, fmt.Errorf("knobs %s: %w", path, err)
	}
	return k, nil
}

// UnmarshalKnobs decodes JSON over k, refusing unknown fields.
func UnmarshalKnobs(b []byte, k *Knobs) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(k); err != nil {
		return err
	}
	return k.Validate()
}

// Validate checks that rates are probabilities and sizes are sane.
func (k Knobs) Validate() error {
	var errs []error
	v := reflect.ValueOf(k)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Float64 {
			continue
		}
		x := v.Field(i).Float()
		switch f.Name {
		case "MovesPerDecade", "PhoneChangesPerDecade", "MarriagesPerDecade":
			if x < 0 || x > 10 {
				errs = append(errs, fmt.Errorf("%s %.3g must be within [0, 10]", f.Tag.Get("json"), x))
			}
		case "MinResidents", "ResidentsPerZIP":
			if x < 500 || x > 1e8 {
				errs = append(errs, fmt.Errorf("%s %.3g must be within [500, 1e8]", f.Tag.Get("json"), x))
			}
		case "Coverage":
			if x <= 0 || x > 1 {
				errs = append(errs, fmt.Errorf("coverage %.3g must be within (0, 1]", x))
			}
		default:
			if x < 0 || x > 1 || x != x {
				errs = append(errs, fmt.Errorf("%s %.3g must be a share within [0, 1]", f.Tag.Get("json"), x))
			}
		}
	}
	total := 0.0
	for _, w := range k.RecordsPerPerson {
		if w < 0 {
			errs = append(errs, fmt.Errorf("records_per_person weights must not be negative"))
		}
		total += w
	}
	if total <= 0 || len(k.RecordsPerPerson) > 20 {
		errs = append(errs, fmt.Errorf("records_per_person needs 1 to 20 weights with a positive sum"))
	}
	if k.Facilities < 0 || k.Facilities > 100000 {
		errs = append(errs, fmt.Errorf("facilities %d must be within [0, 100000]", k.Facilities))
	}
	if k.TwinShare+k.JuniorShare > 0.2 {
		errs = append(errs, fmt.Errorf("twin_share + junior_share %.3g must not exceed 0.2", k.TwinShare+k.JuniorShare))
	}
	if k.HomeState != "" {
		t, err := loadTables()
		if err != nil {
			return err
		}
		if t.state(k.HomeState) == nil {
			errs = append(errs, fmt.Errorf("home_state %q is not in data/states.txt", k.HomeState))
		}
	}
	return errors.Join(errs...)
}
