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
	// twinByName is set when household is HouseholdTwin because the given
	// names are two names (not a sex or a middle name telling near names
	// apart).
	twinByName bool
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
	pl.level[fLocation] = compareLocation(a, b)
	pl.level[fPhone] = comparePhone(a, b)
	pl.level[fEmail] = compareEmail(a, b)
	pl.level[fSSN] = compareSSN(a, b)
	// Birth dates less than a year apart are one person's date mistaken as
	// often as not, but not in one home: there they are a sibling's or a
	// spouse's (generated population at 100,000 persons: 13 more false
	// pairs at home than with such dates read as disagreeing).
	if pl.level[fBirth] == birthOnePart && birthPartsAgree(a, b) < 2 && sharesHome(&pl) {
		pl.level[fBirth] = birthDisagree
	}

	// Given and family name entered in each other's place: compare them
	// crosswise (as given names, so nicknames and typos count) and keep
	// that reading when it explains the names better. The closer crosswise
	// pair takes the family slot and the other the given slot, so the
	// reading is the same whichever record comes first. One name exact or
	// a near spelling crosswise lets the other be up to two keying errors
	// off (Sam Webb, Webb Sma; Anna Vaegas, Vargws Ana), which no
	// stranger's name coincidence explains as well.
	// The first letters must agree crosswise, or one name be the same
	// crosswise (Drew Davis, Davis Andrew): that rules out nearly every
	// pair of strangers cheaply. One name exact crosswise also lets the
	// other be an initial of it (Cross Kristen, K Cross). A swap with a
	// typo in a first letter is read as one only when one name is one
	// keying error crosswise and the other a nickname or a near spelling
	// (Billy Grenaamson, Grenamson William): twins of rhyming names (Ron
	// and Don) are a keying error in a first letter apart too.
	allNames := a.Given != "" && a.Family != "" && b.Given != "" && b.Family != ""
	firstLetters := allNames && (a.Given[0] == b.Family[0] && a.Family[0] == b.Given[0] || crossExact(a, b))
	if allNames && pl.level[fGiven] != givenExact && pl.level[fFamily] != familyExact &&
		(firstLetters || crossNearName(a, b)) {
		x := compareGivenNames(a.Given, b.Family, nil, nil, "", "")
		y := compareGivenNames(a.Family, b.Given, nil, nil, "", "")
		closer, other := min(x, y), max(x, y)
		otherNear := crossToFamily(other) != familyDisagree ||
			(closer <= givenFuzzyHigh && other == givenWeak && crossNear(a, b)) ||
			(closer == givenExact && other == givenInitial)
		if !firstLetters {
			otherNear = other <= givenFuzzyHigh
		}
		if otherNear {
			sg, sf := other, crossToFamily(closer)
			w := cc.weights
			if w[fGiven][sg]+w[fFamily][sf] > w[fGiven][pl.level[fGiven]]+w[fFamily][pl.level[fFamily]] {
				pl.level[fGiven], pl.level[fFamily], pl.swapped = sg, sf, true
			}
		}
	}
	pl.household = household(cc, a, b, &pl)
	return pl
}

// crossExact reports whether one record's given name is the other's
// family name.
func crossExact(a, b *Normalized) bool {
	return a.Given != "" && a.Given == b.Family || a.Family != "" && a.Family == b.Given
}

// crossNearName reports whether one record's given name is a near spelling
// of the other's family name: one keying error in a name of
// minOneEditLength letters or more.
func crossNearName(a, b *Normalized) bool {
	near := func(x, y string) bool {
		return len(x) >= minOneEditLength && len(y) >= minOneEditLength && withinOneEdit(x, y)
	}
	return a.Given != "" && b.Given != "" && (near(a.Given, b.Family) || near(a.Family, b.Given))
}

// crossNear reports whether both crosswise name pairs are within two
// keying errors.
func crossNear(a, b *Normalized) bool {
	return withinEdits(a.Given, b.Family, 2) && withinEdits(a.Family, b.Given, 2)
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
// apply when the configuration turns them on (Train does for data that
// records an administrative sex: a registration desk records it for every
// patient, while sources that record none, such as the FEBRL test files,
// whose generator replaces whole given names and birth dates as "typing
// errors", would lose real links).
//
// Records that share a home (the same street address or phone number) are
// held to more: there a household of several people is the likelier
// reading of every near miss. Twins may have similar names (Mary and
// Margaret, Michael and Michelle) or be told apart by sex alone; a father
// and son of one name born 1968 and 1998 are a generation, though the years
// are one keystroke apart.
//
// A shared SSN is one person's, and so is a shared e-mail address unless it
// is made of a name (james.smith71@…, themoores@…): namesakes and families
// share those, so the rules still separate such a pair.
func household(cc *compiled, a, b *Normalized, pl *pairLevels) string {
	if a.Suffix != "" && b.Suffix != "" && a.Suffix != b.Suffix {
		return HouseholdSuffix
	}
	if !cc.cfg.HouseholdRules {
		return ""
	}
	if s := pl.level[fSSN]; s == ssnExact || s == ssnTypo || pl.level[fEmail] == emailExact && !emailFromName(a) && !emailFromName(b) {
		return ""
	}
	g, f, bd := pl.level[fGiven], pl.level[fFamily], pl.level[fBirth]
	home := sharesHome(pl)
	sameFamily := f != missing && f <= familyFuzzyLow
	sameBirth := bd == birthExact || bd == birthTransposed || bd == birthTypo || bd == birthYearTypo
	sameName := g == givenExact || g == givenNickname || g == givenFuzzyHigh
	otherSex := pl.level[fSex] == disagree
	// One name mistyped on both records (Danoel, Darniel) is still one
	// name for the generation rule.
	nearName := sameName || g == givenFuzzyLow || (g == givenWeak && withinEdits(a.Given, b.Given, 2))
	// Names matched crosswise are one person's names entered in each
	// other's place, which twins' are not; nor is one twin's given name the
	// other's family name (Heather Manning, born Heather Brown, entered as
	// Brown Heather).
	if sameBirth && (sameFamily || home) && g != missing && !pl.swapped && !crossExact(a, b) &&
		!crossNearName(a, b) {
		// Two names more than two keying errors apart are two names, but a
		// misspelt nickname (Doonnie for Donald) or a name cut short (Brb for
		// Barbara) is not another name.
		distinct := (g == givenDisagree || (g == givenWeak && !withinEdits(a.Given, b.Given, 2))) &&
			!misspeltNickname(a.Given, b.Given) && !misspeltNickname(b.Given, a.Given) &&
			!abbreviates(a.Given, b.Given) && !abbreviates(b.Given, a.Given)
		// Twins may have near names (Michael and Michelle, Kayla and Kaylee)
		// that a sex or a middle name tells apart: a sex or a middle name
		// mistyped together with a given name misspelt is rarer. A middle
		// name one keying error from the other (Ann and Anb) is mistyped;
		// two initials are two names.
		otherMiddle := pl.level[fMiddle] == middleDisagree &&
			!(len(a.Middle) > 1 && len(b.Middle) > 1 && withinOneEdit(a.Middle, b.Middle))
		// Two names in their own right a keying error or two apart (Kayla and
		// Kara, Dustin and Justin) are twins' names rather than one name
		// mistyped, unless the pair shares a phone: twins named alike are
		// common (parents choose rhymes and shared initials), while a keying
		// error seldom makes another common name. An SSN or a personal
		// e-mail address shared has settled the pair as one person above.
		namedApart := (g == givenFuzzyHigh || g == givenFuzzyLow || g == givenWeak) && twoNames(a, b) &&
			pl.level[fPhone] != phoneExact && pl.level[fPhone] != phoneTypo
		if distinct || namedApart || ((otherSex || otherMiddle) && g != givenExact && g != givenNickname && g != givenInitial) {
			// A sex or a middle name that parts near names is not explained
			// by a misspelt record of the person (twinNamesMisspelt), whatever
			// the names (Gabriel and Gabriella).
			pl.twinByName = distinct || namedApart && !otherSex && !otherMiddle
			return HouseholdTwin
		}
	}
	if nearName && (sameFamily || home) && a.BirthYear != 0 && b.BirthYear != 0 &&
		generationsApart(a.BirthYear, b.BirthYear, home) {
		return HouseholdGeneration
	}
	return ""
}

// twoNames reports whether two given names, neither a nickname of the other,
// are each a name in its own right (establishedName) and more than one
// keying error apart (Kayla and Kara, Larry and Gary), or one apart in the
// first letter with another sound (Dustin and Justin; Carl and Karl are one
// name spelt two ways). A letter dropped, added, doubled or swapped inside a
// name is the commonest keying error and makes a name as often as not
// (Carol and Carl, Lina and Linda, Mathew and Matthew: population-20k has
// each as one person's records), so those pairs stay with the scores, and
// so do names one keying error from a nickname of each other
// (spellsVariant).
func twoNames(a, b *Normalized) bool {
	if !establishedName(a.Given) || !establishedName(b.Given) || nicknameEquivalent(a.Given, b.Given) ||
		spellsVariant(a.Given, b.Given) || spellsVariant(b.Given, a.Given) {
		return false
	}
	if !withinOneEdit(a.Given, b.Given) {
		return true
	}
	// The first letter replaced (Dustin, Justin); one added or dropped
	// (Andy for Randy) is as often one person's name mistyped (generated
	// seed 19 at 1,000 persons). Double Metaphone codes every initial vowel
	// alike, so two other vowels count as two sounds (Ava, Eva).
	inFirst := len(a.Given) == len(b.Given) && a.Given[1:] == b.Given[1:]
	otherSound := a.GivenCode != b.GivenCode || isVowel(a.Given[0]) && isVowel(b.Given[0]) && a.Given[0] != b.Given[0]
	return inFirst && otherSound
}

func isVowel(c byte) bool { return strings.IndexByte("aeiou", c) >= 0 }

// spellsVariant reports whether name is one keying error, not in its first
// letter, from a name of a nickname group of other (Mathew beside Matty, for
// Matthew; Jaime beside James, for Jamie): another spelling of one of the
// other's names, not a second name, though both are names in their own
// right. Ryan is not Brian's (Bryan's) spelling.
func spellsVariant(name, other string) bool {
	for _, v := range nicknameVariants[other] {
		if len(v) >= minMisspeltNameLength && name[0] == v[0] && withinOneEdit(name, v) {
			return true
		}
	}
	return false
}

// sharesHome reports whether two records give the same street address or
// phone number.
func sharesHome(pl *pairLevels) bool {
	l, p := pl.level[fLocation], pl.level[fPhone]
	return l == locationAddress || l == locationAddressFuzzy || p == phoneExact || p == phoneTypo
}

// generationsApart reports whether two birth years are at least
// MinGenerationGap apart and, unless the records share a home, not one
// keying error from each other (1940/1950 is one digit, 1972/1927 a
// transposition; 1972/1997 is neither).
func generationsApart(y1, y2 int, home bool) bool {
	d := y1 - y2
	if d < 0 {
		d = -d
	}
	if d < MinGenerationGap {
		return false
	}
	if home {
		return true
	}
	s1, s2 := strconv.Itoa(y1), strconv.Itoa(y2)
	return len(s1) != len(s2) || !withinOneEdit(s1, s2)
}

// tfLookup returns the term-frequency adjustment for an exact agreement on
// value in field (fGiven or fFamily).
type tfLookup func(field int, value string) (float64, error)

// scoreLevels is log2(M/U) of a pair: the weights of its levels, with
// their adjustments, summed in field order (a fixed order, so the
// floating-point sum is the same on every node).
func scoreLevels(cc *compiled, pl *pairLevels, a, b *Normalized, tf tfLookup) (float64, error) {
	mu, _, err := pairEvidence(cc, pl, a, b, tf)
	return mu, err
}

// nameEmailWeight caps the weight of an e-mail address built from the
// person's name (john.hall36@…): between two people of one name such
// addresses coincide far more often than between two random people, so it
// adds little to the names it repeats.
const nameEmailWeight = 6

// adjustment corrects a field's level weight for what the values
// themselves say. An exact or near-exact name agreement is adjusted by how
// common the name is (a near miss by the commoner spelling: "Barabra" and
// "Barbara" are as likely by chance as two Barbaras); an e-mail address
// made of the name is capped at nameEmailWeight.
func adjustment(cc *compiled, pl *pairLevels, field int, a, b *Normalized, tf tfLookup) (float64, error) {
	l := pl.level[field]
	switch {
	case field == fEmail && l == emailExact && (emailFromName(a) || emailFromName(b)):
		return min(0, nameEmailWeight-cc.weights[fEmail][emailExact]), nil
	case field == fEmail && l == emailFuzzy && (emailFromName(a) || emailFromName(b)):
		// Two addresses made of one name that differ in a digit
		// (jennifer.smith94, jennifer.smith98) are as often two namesakes'
		// numbers as one number mistyped: they add nothing to the names.
		limit := float64(nameEmailWeight)
		if differInDigit(a.Email, b.Email) {
			limit = 0
		}
		return min(0, limit-cc.weights[fEmail][emailFuzzy]), nil
	case pl.swapped || tf == nil || (field != fGiven && field != fFamily):
		return 0, nil
	}
	va, vb := a.Given, b.Given
	exact, near := givenExact, givenFuzzyHigh
	if field == fFamily {
		va, vb, exact, near = a.Family, b.Family, familyExact, familyFuzzyHigh
	}
	switch l {
	case exact:
		return tf(field, va)
	case near:
		x, err := tf(field, va)
		if err != nil {
			return 0, err
		}
		y, err := tf(field, vb)
		return min(x, y), err
	}
	return 0, nil
}

// emailFromName reports whether an e-mail address's local part contains
// the record's given or family name (three letters or more), or, the
// record's name being the one mistyped (Janes Smth, james.smith71@…), a run
// of letters one keying error from a name of four letters or more.
func emailFromName(n *Normalized) bool {
	local, _, _ := strings.Cut(n.Email, "@")
	for _, name := range [...]string{n.Given, n.Family} {
		if len(name) >= 3 && strings.Contains(local, name) {
			return true
		}
		if len(name) < 4 {
			continue
		}
		for run := range strings.FieldsFuncSeq(local, func(r rune) bool { return r < 'a' || r > 'z' }) {
			if len(run) >= 4 && withinOneEdit(run, name) {
				return true
			}
		}
	}
	return false
}

// differInDigit reports whether two strings one keying error apart differ
// in a digit: a digit replaced, inserted or dropped.
func differInDigit(a, b string) bool {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	isDigit := func(s string, i int) bool { return i < len(s) && s[i] >= '0' && s[i] <= '9' }
	return isDigit(a, i) || isDigit(b, i)
}

// Explanation shows why two records scored as they did: each field's
// agreement level, its weight and the values compared.
type Explanation struct {
	Score  float64      `json:"score"`
	Fields []FieldScore `json:"fields"`
	// NamesSwapped is set when given and family names agreed crosswise.
	NamesSwapped bool `json:"names_swapped,omitempty"`
	// HouseholdEvidence, for records that share a home, is log2(H/U) of the
	// pair: the evidence for two people of one household, which the score of
	// a match must beat (see Config.HouseholdRate).
	HouseholdEvidence float64 `json:"household_evidence,omitempty"`
	// Household names the household rule that forbids linking the two
	// records ("twin", "generation", "suffix"), if any.
	Household string `json:"household,omitempty"`
	// PersonSSN is set when the ssn field's disagreement is with the SSN of
	// the person's other records, the record explained giving none
	// (Candidate.PersonSSN).
	PersonSSN     bool   `json:"person_ssn,omitempty"`
	ConfigVersion uint64 `json:"config_version"`
}

// FieldScore is one field's part of an Explanation. Level is "missing" when
// either side is empty; such a field weighs nothing.
type FieldScore struct {
	Field  string  `json:"field"`
	Level  string  `json:"level"`
	Weight float64 `json:"weight"`
	// Adjustment corrects Weight for the values compared: how common a
	// name is, or an e-mail address made of the name (see adjustment).
	Adjustment float64 `json:"adjustment,omitempty"`
	A          string  `json:"a,omitempty"`
	B          string  `json:"b,omitempty"`
}

func explainLevels(cc *compiled, pl *pairLevels, a, b *Normalized, tf tfLookup) (Explanation, error) {
	total, household, err := pairEvidence(cc, pl, a, b, tf)
	if err != nil {
		return Explanation{}, err
	}
	e := Explanation{Score: total, NamesSwapped: pl.swapped, Household: pl.household, ConfigVersion: cc.cfg.Version}
	if sharesHome(pl) {
		e.HouseholdEvidence = household
	}
	names := FieldNames()
	for i := 0; i < numFields; i++ {
		fs := FieldScore{Field: names[i], Level: "missing"}
		fs.A, fs.B = fieldValue(i, a), fieldValue(i, b)
		if l := pl.level[i]; l != missing {
			fs.Level = levelNames[i][l]
			fs.Weight = cc.weights[i][l]
			if fs.Adjustment, err = adjustment(cc, pl, i, a, b, tf); err != nil {
				return Explanation{}, err
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
	case fLocation:
		var parts []string
		for _, l := range n.Addresses {
			parts = append(parts, l.Full)
		}
		for _, p := range []string{n.City, n.State, n.Postal} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		return strings.Join(parts, ", ")
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
