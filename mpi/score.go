package mpi

import (
	"strconv"
	"strings"
)

// Household conflicts: reasons two records that look alike must not be
// linked because they describe two people of one family.
const (
	// HouseholdTwin: same birth date (or one digit off), same family name,
	// clearly different given names (not a nickname, typo, initial or swap)
	// and no shared SSN (twins never share one).
	HouseholdTwin = "twin"
	// HouseholdGeneration: same given and family name but birth years at
	// least MinGenerationGap apart in a way no single keying error explains
	// (a father and son of the same name).
	HouseholdGeneration = "generation"
	// HouseholdSuffix: both records carry a generational suffix and they
	// differ (Jr and Sr, II and III).
	HouseholdSuffix = "suffix"
)

// MinGenerationGap is the smallest difference in birth years that the
// generation rule reads as parent and child.
const MinGenerationGap = 13

// pairLevels is the outcome of comparing two normalised records: one
// agreement level per field, whether the names matched crosswise (given
// and family swapped), and any household conflict.
type pairLevels struct {
	level     [numFields]int8
	swapped   bool
	household string
}

// comparePair compares two records field by field. It is symmetric:
// comparePair(a, b) and comparePair(b, a) give the same levels.
func comparePair(cc *compiled, a, b *Normalized) pairLevels {
	var pl pairLevels
	pl.level[fGiven] = compareGiven(a, b)
	pl.level[fMiddle] = compareMiddle(a, b)
	pl.level[fFamily] = compareFamily(a, b)
	pl.level[fBirth] = compareBirth(a, b)
	pl.level[fSex] = compareSex(a, b)
	pl.level[fAddress] = compareAddress(a, b)
	pl.level[fCity] = compareCity(a, b)
	pl.level[fState] = compareState(a, b)
	pl.level[fPostal] = comparePostal(a, b)
	pl.level[fPhone] = comparePhone(a, b)
	pl.level[fEmail] = compareEmail(a, b)
	pl.level[fSSN] = compareSSN(a, b)

	// Given and family name entered in each other's place: compare them
	// crosswise (as given names, so nicknames and typos count) and keep
	// that reading when it explains the names better. Both crosswise pairs
	// get the weaker of their two levels, so the reading is the same
	// whichever record comes first.
	// The first letters must agree crosswise: that rules out nearly every
	// pair of strangers cheaply (a swap with a typo in a first letter too
	// is left to the other fields).
	if a.Given != "" && a.Family != "" && b.Given != "" && b.Family != "" &&
		a.Given[0] == b.Family[0] && a.Family[0] == b.Given[0] &&
		pl.level[fGiven] != givenExact && pl.level[fFamily] != familyExact {
		x := compareGivenNames(a.Given, b.Family, nil, nil, "", "")
		if y := compareGivenNames(a.Family, b.Given, nil, nil, "", ""); y > x {
			x = y
		}
		if sf := crossToFamily(x); sf != familyDisagree {
			w := cc.weights
			if w[fGiven][x]+w[fFamily][sf] > w[fGiven][pl.level[fGiven]]+w[fFamily][pl.level[fFamily]] {
				pl.level[fGiven], pl.level[fFamily], pl.swapped = x, sf, true
			}
		}
	}
	pl.household = household(cc, a, b, &pl)
	return pl
}

// crossToFamily maps a crosswise given-name level onto the family levels;
// initials and weak resemblances do not count as a swap.
func crossToFamily(l int8) int8 {
	switch l {
	case givenExact:
		return familyExact
	case givenNickname, givenFuzzyHigh:
		return familyFuzzyHigh
	case givenFuzzyLow:
		return familyFuzzyLow
	}
	return familyDisagree
}

// household applies the rules that keep members of one family apart.
//
// The twin and generation rules decide between two readings that name,
// birth date and address alone cannot separate: the same person with a
// mistyped given name or birth year, or two people of one household. They
// apply only when both records state an administrative sex: a registration
// desk records it for every patient, and sources that record no sex (such
// as the FEBRL test files, whose generator replaces whole given names and
// birth dates as "typing errors") would otherwise lose real links. There the
// pair is scored on its fields alone, where the given-name or birth-date
// disagreement still counts against it.
func household(cc *compiled, a, b *Normalized, pl *pairLevels) string {
	if a.Suffix != "" && b.Suffix != "" && a.Suffix != b.Suffix {
		return HouseholdSuffix
	}
	if !cc.cfg.HouseholdRules || a.Sex == "" || b.Sex == "" || pl.swapped {
		return ""
	}
	if s := pl.level[fSSN]; s == ssnExact || s == ssnTypo {
		return "" // one person's number: two people of a household never share it
	}
	g, f, bd := pl.level[fGiven], pl.level[fFamily], pl.level[fBirth]
	sameFamily := f != missing && f <= familyFuzzyLow
	if g == givenDisagree && sameFamily && (bd == birthExact || bd == birthTransposed || bd == birthTypo) {
		return HouseholdTwin
	}
	if g != missing && g <= givenFuzzyHigh && sameFamily &&
		a.BirthYear != 0 && b.BirthYear != 0 && generationsApart(a.BirthYear, b.BirthYear) {
		return HouseholdGeneration
	}
	return ""
}

// generationsApart reports whether two birth years are at least
// MinGenerationGap apart and not one keying error from each other
// (1940/1950 is one digit, 1972/1927 a transposition; 1972/1997 is neither).
func generationsApart(y1, y2 int) bool {
	d := y1 - y2
	if d < 0 {
		d = -d
	}
	if d < MinGenerationGap {
		return false
	}
	s1, s2 := strconv.Itoa(y1), strconv.Itoa(y2)
	return len(s1) != len(s2) || !withinOneEdit(s1, s2)
}

// tfLookup returns the term-frequency adjustment for an exact agreement on
// value in field (fGiven or fFamily).
type tfLookup func(field int, value string) (float64, error)

// scoreLevels sums the weights of the levels in field order (a fixed order,
// so the floating-point sum is the same on every node). Exact agreement on
// a given or family name is adjusted by how common the name is.
func scoreLevels(cc *compiled, pl *pairLevels, a *Normalized, tf tfLookup) (float64, error) {
	total := 0.0
	for i := 0; i < numFields; i++ {
		l := pl.level[i]
		if l == missing {
			continue
		}
		total += cc.weights[i][l]
		if l == 0 && !pl.swapped && tf != nil {
			var adj float64
			var err error
			switch i {
			case fGiven:
				adj, err = tf(fGiven, a.Given)
			case fFamily:
				adj, err = tf(fFamily, a.Family)
			}
			if err != nil {
				return 0, err
			}
			total += adj
		}
	}
	return total, nil
}

// Explanation shows why two records scored as they did: each field's
// agreement level, its weight and the values compared.
type Explanation struct {
	Score  float64      `json:"score"`
	Fields []FieldScore `json:"fields"`
	// NamesSwapped is set when given and family names agreed crosswise.
	NamesSwapped bool `json:"names_swapped,omitempty"`
	// Household names the household rule that forbids linking the two
	// records ("twin", "generation", "suffix"), if any.
	Household     string `json:"household,omitempty"`
	ConfigVersion uint64 `json:"config_version"`
}

// FieldScore is one field's part of an Explanation. Level is "missing" when
// either side is empty; such a field weighs nothing.
type FieldScore struct {
	Field        string  `json:"field"`
	Level        string  `json:"level"`
	Weight       float64 `json:"weight"`
	TFAdjustment float64 `json:"tf_adjustment,omitempty"`
	A            string  `json:"a,omitempty"`
	B            string  `json:"b,omitempty"`
}

func explainLevels(cc *compiled, pl *pairLevels, a, b *Normalized, tf tfLookup) (Explanation, error) {
	total, err := scoreLevels(cc, pl, a, tf)
	if err != nil {
		return Explanation{}, err
	}
	e := Explanation{Score: total, NamesSwapped: pl.swapped, Household: pl.household, ConfigVersion: cc.cfg.Version}
	names := FieldNames()
	for i := 0; i < numFields; i++ {
		fs := FieldScore{Field: names[i], Level: "missing"}
		fs.A, fs.B = fieldValue(i, a), fieldValue(i, b)
		if l := pl.level[i]; l != missing {
			fs.Level = levelNames[i][l]
			fs.Weight = cc.weights[i][l]
			if l == 0 && !pl.swapped && tf != nil && (i == fGiven || i == fFamily) {
				v := a.Given
				if i == fFamily {
					v = a.Family
				}
				if fs.TFAdjustment, err = tf(i, v); err != nil {
					return Explanation{}, err
				}
			}
		}
		e.Fields = append(e.Fields, fs)
	}
	return e, nil
}

func fieldValue(field int, n *Normalized) string {
	switch field {
	case fGiven:
		return n.Given
	case fMiddle:
		return n.Middle
	case fFamily:
		if n.Suffix != "" {
			return n.Family + " " + n.Suffix
		}
		return n.Family
	case fBirth:
		return n.Birth
	case fSex:
		return n.Sex
	case fAddress:
		var lines []string
		for _, l := range n.Addresses {
			lines = append(lines, l.Full)
		}
		return strings.Join(lines, "; ")
	case fCity:
		return n.City
	case fState:
		return n.State
	case fPostal:
		return n.Postal
	case fPhone:
		return strings.Join(n.Phones, "; ")
	case fEmail:
		return n.Email
	case fSSN:
		if n.SSN != "" {
			return n.SSN
		}
		return n.SSNLast4
	}
	return ""
}
