package mpi

// Field indexes, in the fixed scoring order of FieldNames.
const (
	fGiven = iota
	fMiddle
	fFamily
	fBirth
	fSex
	fLocation
	fPhone
	fEmail
	fSSN
	numFields
)

// missing is the level of a field that is empty on either side: it weighs
// nothing, so an absent value is neither for nor against a link.
const missing int8 = -1

// Agreement levels of each field, strongest first. The names are part of the
// replicated Config, so they may be added to (with a new NormVersion) but
// never renamed.
const (
	givenExact int8 = iota
	givenNickname
	givenFuzzyHigh
	givenFuzzyLow
	givenInitial
	givenWeak
	givenDisagree
)

const (
	middleExact int8 = iota
	middleInitial
	middleFuzzy
	middleDisagree
)

const (
	familyExact int8 = iota
	familyPart
	familyFuzzyHigh
	familyFuzzyLow
	familyDisagree
)

const (
	birthExact int8 = iota
	birthTransposed
	birthTypo
	birthYearTypo
	// birthOnePart: two of year, month and day agree, or the dates are less
	// than a year apart (withinAYear).
	birthOnePart
	birthDisagree
)

const (
	agree int8 = iota
	disagree
)

// Location levels: address line, postal code, city and state are nested
// (a street address lies in one ZIP, which lies in one city and state), so
// they are one comparison scored at its most specific agreement, never four
// pieces of evidence added up.
const (
	locationAddress int8 = iota
	locationAddressFuzzy
	locationPostal
	locationCity
	locationState
	locationDisagree
)

const (
	phoneExact int8 = iota
	phoneTypo
	phoneLast7
	phoneDisagree
)

const (
	emailExact int8 = iota
	emailFuzzy
	emailDisagree
)

const (
	ssnExact int8 = iota
	ssnTypo
	ssnLast4
	ssnDisagree
)

// levelNames names each field's levels, indexed like the constants above.
var levelNames = [numFields][]string{
	fGiven:    {"exact", "nickname", "fuzzy_high", "fuzzy_low", "initial", "weak", "disagree"},
	fMiddle:   {"exact", "initial", "fuzzy", "disagree"},
	fFamily:   {"exact", "part", "fuzzy_high", "fuzzy_low", "disagree"},
	fBirth:    {"exact", "day_month_transposed", "one_digit", "year_one_digit", "one_part", "disagree"},
	fSex:      {"agree", "disagree"},
	fLocation: {"address", "address_fuzzy", "postal_code", "city", "state", "disagree"},
	fPhone:    {"exact", "one_digit", "last7", "disagree"},
	fEmail:    {"exact", "fuzzy", "disagree"},
	fSSN:      {"exact", "one_char", "last4", "disagree"},
}

// Jaro–Winkler bands. 0.92 keeps one typo in a name of six or more letters
// (Jessica/Juessica 0.97, Thomas/Thoms 0.97); 0.85 reaches two typos or a
// short name with one (Mary/Mray 0.88), where two different names also land
// now and then (Mary/Mark 0.88), so that band weighs less. Below 0.7 two
// given names are different names (Richard/Randy 0.45, Mary/Judith 0); from
// 0.7 to 0.85 they may still be one name mistyped twice (Tylesr/Tuler 0.84,
// Mak/Muark 0.69), the "weak" level, which the twin rule does not read as
// two people.
const (
	jwHigh      = 0.92
	jwLow       = 0.85
	jwDifferent = 0.7
)

// minOneEditLength is the shortest name for which one keying error
// (Cjeryl/Cheryl, JW 0.90) counts as the high band whatever Jaro–Winkler
// says; shorter names differing by one letter are too often other names.
const minOneEditLength = 5

// jaroWinkler is the Jaro–Winkler similarity of a and b, counted in
// characters (runes). It is symmetric by construction: the arguments are
// ordered first so score(a, b) == score(b, a) whatever the definition does
// with ties.
//
// The definition is the one rls has always used (it was
// github.com/antzucaro/matchr's JaroWinkler(a, b, false) until rls dropped
// that GPL-2.0 library, and TestJaroWinklerPinned holds it to the values the
// library gave, bit for bit): the matching window and the prefix bound
// come from the longer string, the Winkler bonus of 0.1 per common prefix
// character (at most 4, ASCII digits not counted) applies when the Jaro
// similarity exceeds 0.7, and there is no long-string adjustment.
func jaroWinkler(a, b string) float64 {
	if a == b {
		return 1
	}
	if a > b {
		a, b = b, a
	}
	if len(a) <= maxJWASCII && len(b) <= maxJWASCII && isASCII(a) && isASCII(b) {
		return jaroWinklerASCII(a, b)
	}
	return jaroWinklerRunes(a, b)
}

// maxJWASCII bounds the strings jaroWinklerASCII takes (its flags live on
// the stack).
const maxJWASCII = 64

// jaroWinklerASCII is jaroWinkler for ASCII strings, without allocating:
// it runs on every candidate's names and street, and the allocations of
// the library it replaced were a tenth of a registration's cost.
// jaroWinklerRunes takes the same steps over runes, and the two are held
// equal by a test.
func jaroWinklerASCII(a, b string) float64 {
	la, lb := len(a), len(b)
	if la == 0 || lb == 0 {
		return 0
	}
	longer := max(la, lb)
	searchRange := max(longer/2-1, 0)
	var flagsA, flagsB [maxJWASCII + 1]bool
	common := 0
	for i := 0; i < la; i++ {
		lo := max(i-searchRange, 0)
		hi := min(i+searchRange, lb-1)
		for j := lo; j <= hi; j++ {
			if !flagsB[j] && b[j] == a[i] {
				flagsB[j], flagsA[i] = true, true
				common++
				break
			}
		}
	}
	if common == 0 {
		return 0
	}
	k, trans := 0, 0
	for i := 0; i < la; i++ {
		if !flagsA[i] {
			continue
		}
		j := k
		for ; j < lb; j++ {
			if flagsB[j] {
				k = j + 1
				break
			}
		}
		if a[i] != b[j] {
			trans++
		}
	}
	trans /= 2
	d := float64(common)/float64(la) + float64(common)/float64(lb) + float64(common-trans)/float64(common)
	d /= 3.0
	if d > 0.7 {
		prefixMax := min(longer, 4)
		i := 0
		for i < prefixMax && i < la && i < lb && a[i] == b[i] && (a[i] > '9' || a[i] < '0') {
			i++
		}
		if i > 0 {
			d += float64(i) * 0.1 * (1.0 - d)
		}
	}
	return d
}

// jaroWinklerRunes is jaroWinkler for any UTF-8 strings, step for step
// the same as jaroWinklerASCII but over runes. Names with letters that have
// no ASCII form are rare, so only strings longer than maxJWASCII runes
// allocate.
func jaroWinklerRunes(a, b string) float64 {
	var bufA, bufB [maxJWASCII]rune
	ra, rb := appendRunes(bufA[:0], a), appendRunes(bufB[:0], b)
	la, lb := len(ra), len(rb)
	if la == 0 || lb == 0 {
		return 0
	}
	var flagBufA, flagBufB [maxJWASCII]bool
	var flagsA, flagsB []bool
	if la <= maxJWASCII && lb <= maxJWASCII {
		flagsA, flagsB = flagBufA[:la], flagBufB[:lb]
	} else {
		flagsA, flagsB = make([]bool, la), make([]bool, lb)
	}
	longer := max(la, lb)
	searchRange := max(longer/2-1, 0)
	common := 0
	for i := 0; i < la; i++ {
		lo := max(i-searchRange, 0)
		hi := min(i+searchRange, lb-1)
		for j := lo; j <= hi; j++ {
			if !flagsB[j] && rb[j] == ra[i] {
				flagsB[j], flagsA[i] = true, true
				common++
				break
			}
		}
	}
	if common == 0 {
		return 0
	}
	k, trans := 0, 0
	for i := 0; i < la; i++ {
		if !flagsA[i] {
			continue
		}
		j := k
		for ; j < lb; j++ {
			if flagsB[j] {
				k = j + 1
				break
			}
		}
		if ra[i] != rb[j] {
			trans++
		}
	}
	trans /= 2
	d := float64(common)/float64(la) + float64(common)/float64(lb) + float64(common-trans)/float64(common)
	d /= 3.0
	if d > 0.7 {
		prefixMax := min(longer, 4)
		i := 0
		for i < prefixMax && i < la && i < lb && ra[i] == rb[i] && (ra[i] > '9' || ra[i] < '0') {
			i++
		}
		if i > 0 {
			d += float64(i) * 0.1 * (1.0 - d)
		}
	}
	return d
}

// appendRunes appends the runes of s to dst (invalid UTF-8 as U+FFFD, one
// per byte, as a range loop reads it).
func appendRunes(dst []rune, s string) []rune {
	for _, r := range s {
		dst = append(dst, r)
	}
	return dst
}

// jaroWinklerAtLeast returns the Jaro–Winkler similarity of a and b when it
// can reach min, and 0 when it certainly cannot. Most pairs a matcher
// compares are different names; an upper bound from the letters the two
// strings share rejects them before the matching loop. The bound:
// Jaro counts at most c common characters, where c is the size of the
// multiset intersection of the letters, so Jaro <= (c/|a| + c/|b| + 1)/3,
// and the Winkler prefix bonus adds at most 0.4 of the remainder.
func jaroWinklerAtLeast(a, b string, min float64) float64 {
	if a == b {
		return 1
	}
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	var counts [128]int16
	for i := 0; i < len(a); i++ {
		c := a[i]
		if c >= 128 {
			return jaroWinkler(a, b) // not ASCII: no shortcut
		}
		counts[c]++
	}
	common := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 128 {
			return jaroWinkler(a, b)
		}
		if counts[c] > 0 {
			counts[c]--
			common++
		}
	}
	j := (float64(common)/float64(len(a)) + float64(common)/float64(len(b)) + 1) / 3
	if common == 0 || j+0.4*(1-j) < min {
		return 0
	}
	return jaroWinkler(a, b)
}

// withinOneEdit reports whether a and b differ by at most one substitution,
// insertion, deletion or transposition of adjacent characters (the common
// keying errors). It is written out rather than taken from a Damerau–
// Levenshtein library because it runs on every candidate's phone and
// identifiers and must not allocate.
func withinOneEdit(a, b string) bool {
	la, lb := len(a), len(b)
	switch {
	case la == lb:
		i := 0
		for i < la && a[i] == b[i] {
			i++
		}
		if i == la {
			return true
		}
		if a[i+1:] == b[i+1:] {
			return true // one substitution
		}
		return i+1 < la && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
	case la == lb+1:
		return oneDeletion(a, b)
	case lb == la+1:
		return oneDeletion(b, a)
	}
	return false
}

// withinEdits reports whether a and b are at most k insertions, deletions,
// substitutions or adjacent transpositions apart (optimal string alignment
// distance), for the short strings names are; longer ones (over
// maxEditLength bytes) count as further apart.
func withinEdits(a, b string, k int) bool {
	la, lb := len(a), len(b)
	if la > maxEditLength || lb > maxEditLength {
		return a == b
	}
	if d := la - lb; d > k || -d > k {
		return false
	}
	// Three rows of the dynamic programme, on the stack.
	var rows [3][maxEditLength + 1]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= lb; j++ {
		prev[j] = j
	}
	for i := 1; i <= la; i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= lb; j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > k {
			return false
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[lb] <= k
}

// maxEditLength bounds the strings withinEdits compares.
const maxEditLength = 32

// oneDeletion reports whether removing one byte of long gives short.
func oneDeletion(long, short string) bool {
	i := 0
	for i < len(short) && long[i] == short[i] {
		i++
	}
	return long[i+1:] == short[i:]
}

func compareGiven(a, b *Normalized) int8 {
	if a.Given == "" || b.Given == "" {
		return missing
	}
	return compareGivenNames(a.Given, b.Given, a.GivenParts, b.GivenParts, a.Middle, b.Middle)
}

func compareGivenNames(ga, gb string, partsA, partsB []string, middleA, middleB string) int8 {
	if ga == gb {
		return givenExact
	}
	if len(ga) == 1 || len(gb) == 1 {
		if ga[0] == gb[0] {
			return givenInitial
		}
		return givenDisagree
	}
	if nicknameEquivalent(ga, gb) {
		return givenNickname
	}
	// Mary Jane / Mary: one given name is a part of the other.
	if containsString(partsA, gb) || containsString(partsB, ga) {
		return givenFuzzyHigh
	}
	// Someone known by their middle name at one place and their first at
	// another (James Robert / Robert).
	byMiddle := (len(middleA) > 1 && middleA == gb) || (len(middleB) > 1 && middleB == ga)
	if ga[0] != gb[0] && knownName(ga) && knownName(gb) {
		// Two names of the table that share no group and begin with other
		// letters (Donald and Ronald, Donnie and Ronnie) are two names: a
		// keying error seldom strikes the first letter, and more seldom still
		// makes another name of the table.
		if byMiddle {
			return givenFuzzyLow
		}
		return givenDisagree
	}
	best := jaroWinklerAtLeast(ga, gb, jwDifferent)
	if best < jwHigh {
		// A misspelt nickname (Chrles for Chuck) is close to the formal name.
		for _, fa := range formalNames(ga) {
			for _, fb := range formalNames(gb) {
				if fa == ga && fb == gb {
					continue
				}
				if jw := jaroWinklerAtLeast(fa, fb, jwHigh); jw > best {
					best = jw
				}
			}
		}
	}
	switch {
	case best >= jwHigh, len(ga) >= minOneEditLength && len(gb) >= minOneEditLength && withinOneEdit(ga, gb):
		return givenFuzzyHigh
	case best >= jwLow:
		return givenFuzzyLow
	}
	if byMiddle {
		return givenFuzzyLow
	}
	// A short name one keying error away (Eva and Eav, Jim and Jm) may be
	// the same name or another one: Jaro–Winkler cannot tell for three
	// letters, and the weak level leaves it to the other fields.
	if best >= jwDifferent || withinOneEdit(ga, gb) {
		return givenWeak
	}
	return givenDisagree
}

// misspeltNickname reports whether typed, a given name the nickname table does
// not know, is one keying error from another name of a group that name belongs
// to: Doonnie for Donald (Donnie), Msndy for Amanda (Mandy). A name the table
// knows is a name in its own right, not a misspelling (Ronnie is one letter from
// Donnie, but a Ronnie is not a Donald), and names of fewer than three letters are
// left out, as one keying error reaches too many others (a three-letter
// nickname mistyped, Kmi for Kim, Kau for Kay, is as much the person's as a
// longer one). It is too loose to score
// with (a table of a few hundred names leaves many real names unknown, and Jose
// is one letter from Josh) and serves only to keep the twin rule from parting
// one person's records over a misspelt nickname.
func misspeltNickname(typed, name string) bool {
	if knownName(typed) || len(typed) < minMisspeltNameLength {
		return false
	}
	for _, v := range nicknameVariants[name] {
		if len(v) >= minMisspeltNameLength && withinOneEdit(typed, v) {
			return true
		}
	}
	return false
}

// abbreviates reports whether short, a name the nickname table does not know, is
// written with letters of long, in order, from its first (Wm for William, Brb for
// Barbara, Gnt for Grant), as clerks shorten names to fit a field or save
// keystrokes. A name the table knows is a name in its own right: Ken is written
// with letters of Kevin. Like misspeltNickname it only keeps the twin rule from
// parting one person's records.
func abbreviates(short, long string) bool {
	if len(short) < 2 || len(short) >= len(long) || short[0] != long[0] || knownName(short) {
		return false
	}
	j := 1
	for i := 1; i < len(long) && j < len(short); i++ {
		if long[i] == short[j] {
			j++
		}
	}
	return j == len(short)
}

// minMisspeltNameLength is the shortest name misspeltNickname compares.
const minMisspeltNameLength = 3

func compareMiddle(a, b *Normalized) int8 {
	ma, mb := a.Middle, b.Middle
	if ma == "" || mb == "" {
		return missing
	}
	if ma == mb {
		if len(ma) == 1 {
			return middleInitial
		}
		return middleExact
	}
	if ma[0] == mb[0] && (len(ma) == 1 || len(mb) == 1) {
		return middleInitial
	}
	if nicknameEquivalent(ma, mb) || jaroWinklerAtLeast(ma, mb, jwHigh) >= jwHigh ||
		(len(ma) >= minOneEditLength && len(mb) >= minOneEditLength && withinOneEdit(ma, mb)) {
		return middleFuzzy
	}
	return middleDisagree
}

func compareFamily(a, b *Normalized) int8 {
	if a.Family == "" || b.Family == "" {
		return missing
	}
	return compareFamilyNames(a.Family, b.Family, a.FamilyParts, b.FamilyParts, a.FamilyCode, b.FamilyCode)
}

func compareFamilyNames(fa, fb string, partsA, partsB []string, codeA, codeB string) int8 {
	if fa == fb {
		return familyExact
	}
	// Castro / Castro-Garcia, Garcia Lopez / Garcia: a shared part.
	if containsString(partsA, fb) || containsString(partsB, fa) || sharePart(partsA, partsB) {
		return familyPart
	}
	best := jaroWinklerAtLeast(fa, fb, jwLow)
	if best < jwHigh {
		for _, p := range partsB {
			if jw := jaroWinklerAtLeast(fa, p, jwLow); jw > best {
				best = jw
			}
		}
		for _, p := range partsA {
			if jw := jaroWinklerAtLeast(p, fb, jwLow); jw > best {
				best = jw
			}
		}
	}
	switch {
	case best >= jwHigh, len(fa) >= minOneEditLength && len(fb) >= minOneEditLength && withinOneEdit(fa, fb):
		return familyFuzzyHigh
	case best >= jwLow || (codeA != "" && codeA == codeB):
		return familyFuzzyLow
	}
	return familyDisagree
}

func compareBirth(a, b *Normalized) int8 {
	if a.Birth == "" || b.Birth == "" {
		return missing
	}
	if a.Birth == b.Birth {
		return birthExact
	}
	if a.BirthYear == b.BirthYear && a.BirthMonth == b.BirthDay && a.BirthDay == b.BirthMonth {
		return birthTransposed
	}
	if withinOneEdit(a.Birth, b.Birth) {
		// A slip in the day or month keeps the year; one in the year may
		// move it by decades (1970, 1930), which is also how a parent and a
		// child of one name differ, so the two are weighed apart.
		if a.BirthYear == b.BirthYear {
			return birthTypo
		}
		return birthYearTypo
	}
	if birthPartsAgree(a, b) == 2 || withinAYear(a, b) {
		return birthOnePart
	}
	return birthDisagree
}

// birthPartsAgree counts the parts of two birth dates (year, month, day)
// that agree.
func birthPartsAgree(a, b *Normalized) int {
	same := 0
	if a.BirthYear == b.BirthYear {
		same++
	}
	if a.BirthMonth == b.BirthMonth {
		same++
	}
	if a.BirthDay == b.BirthDay {
		same++
	}
	return same
}

// withinAYear reports whether two birth dates are less than a year apart,
// counting every month as 31 days (a date that is not a calendar date, the
// 30th of February, still has its place). Dates that are close but not one
// keying error apart are as often one person's date remembered or entered
// wrongly as two people's (Splink's fake_1000 shifts dates by up to half a
// year: recall 0.81 -> 0.84, no file of the battery losing precision); the
// one_part level weighs them, and EM learns how much they say in the data.
// Not in one home: there they are a brother's or a sister's, or a spouse's
// (comparePair).
func withinAYear(a, b *Normalized) bool {
	day := func(n *Normalized) int { return n.BirthYear*372 + n.BirthMonth*31 + n.BirthDay }
	d := day(a) - day(b)
	return d > -372 && d < 372
}

func compareSex(a, b *Normalized) int8 {
	if a.Sex == "" || b.Sex == "" {
		return missing
	}
	if a.Sex == b.Sex {
		return agree
	}
	return disagree
}

// compareLocation compares where two records live, at the most specific
// level both records allow: the same street address (where ZIP, city and
// state do not clearly contradict it), the same ZIP, the same city, the
// same state, or a contradiction. A ZIP implies its city and state and a
// street address its ZIP, so these are nested readings of one fact and are
// weighed once.
//
// One typo or one wrong part is not a contradiction (a ZIP one digit off in
// the same city, a suburb name in the city field with the right ZIP): a
// place clashes when two of its parts disagree, or one disagrees and
// nothing more precise agrees.
func compareLocation(a, b *Normalized) int8 {
	postal := comparePostal(a, b)
	city := compareCity(a, b)
	state := compareState(a, b)
	postalAgrees := postal == postalExact || postal == postalTypo
	cityAgrees := city == cityExact
	clash := (postal == postalDisagree && (!cityAgrees || state == disagree)) ||
		(city == cityDisagree && !postalAgrees) ||
		(state == disagree && !postalAgrees && !cityAgrees)
	placeKnown := postal != missing || city != missing || state != missing
	switch addr := compareAddress(a, b); {
	case clash:
	case addr == addressExact:
		return locationAddress
	case addr == addressFuzzyHigh:
		return locationAddressFuzzy
	case !placeKnown && addr != missing:
		return locationDisagree
	}
	switch {
	case !placeKnown:
		return missing
	case postal == postalExact && !clash:
		return locationPostal
	case !clash && (cityAgrees || postal == postalTypo):
		return locationCity
	case state == agree && !cityAgrees && postal != postalExact:
		return locationState
	}
	return locationDisagree
}

// Sub-levels of the location comparison.
const (
	addressExact int8 = iota
	addressFuzzyHigh
	addressFuzzyLow
	addressDisagree
)

const (
	cityExact int8 = iota
	cityDisagree
)

const (
	postalExact int8 = iota
	postalTypo
	postalDisagree
)

func compareAddress(a, b *Normalized) int8 {
	if len(a.Addresses) == 0 || len(b.Addresses) == 0 {
		return missing
	}
	best := addressDisagree
	for i := range a.Addresses {
		for j := range b.Addresses {
			if l := compareAddressLine(&a.Addresses[i], &b.Addresses[j]); l < best {
				best = l
				if best == addressExact {
					return best
				}
			}
		}
	}
	return best
}

func compareAddressLine(x, y *AddressLine) int8 {
	if x.Full == y.Full {
		return addressExact
	}
	if x.Street == "" || y.Street == "" {
		return addressDisagree // a bare house number says nothing on its own
	}
	streetJW := jaroWinklerAtLeast(x.Street, y.Street, jwLow)
	if x.Number != "" && y.Number != "" && x.Number != y.Number {
		// Another house number: one keying error away on the same street
		// it is most likely the same home mistyped; further off, a
		// neighbour.
		switch {
		case x.Street == y.Street && withinOneEdit(x.Number, y.Number):
			return addressFuzzyHigh
		case streetJW >= 0.9:
			return addressFuzzyLow
		}
		return addressDisagree
	}
	switch {
	case streetJW >= 0.9, jaroWinklerAtLeast(x.Full, y.Full, jwHigh) >= jwHigh:
		return addressFuzzyHigh
	case streetJW >= jwLow:
		return addressFuzzyLow
	}
	return addressDisagree
}

// compareCity reads a city one typo away as the same city (Springfeld).
func compareCity(a, b *Normalized) int8 {
	if a.City == "" || b.City == "" {
		return missing
	}
	if a.City == b.City || jaroWinklerAtLeast(a.City, b.City, 0.9) >= 0.9 {
		return cityExact
	}
	return cityDisagree
}

func compareState(a, b *Normalized) int8 {
	if a.State == "" || b.State == "" {
		return missing
	}
	if a.State == b.State {
		return agree
	}
	return disagree
}

func comparePostal(a, b *Normalized) int8 {
	if a.Postal == "" || b.Postal == "" {
		return missing
	}
	switch {
	case a.Postal == b.Postal:
		return postalExact
	case len(a.Postal) == len(b.Postal) && withinOneEdit(a.Postal, b.Postal):
		return postalTypo
	}
	return postalDisagree
}

func comparePhone(a, b *Normalized) int8 {
	if len(a.Phones) == 0 || len(b.Phones) == 0 {
		return missing
	}
	best := phoneDisagree
	for _, x := range a.Phones {
		for _, y := range b.Phones {
			l := phoneDisagree
			switch {
			case x == y:
				return phoneExact
			case withinOneEdit(x, y):
				l = phoneTypo
			case len(x) >= 7 && len(y) >= 7 && x[len(x)-7:] == y[len(y)-7:]:
				l = phoneLast7
			}
			if l < best {
				best = l
			}
		}
	}
	return best
}

func compareEmail(a, b *Normalized) int8 {
	if a.Email == "" || b.Email == "" {
		return missing
	}
	if a.Email == b.Email {
		return emailExact
	}
	// One keying error only: generated addresses such as
	// jennifer.hernandez48 and jennifer.hernandez80 belong to two people.
	if withinOneEdit(a.Email, b.Email) {
		return emailFuzzy
	}
	return emailDisagree
}

func compareSSN(a, b *Normalized) int8 {
	switch {
	case a.SSN != "" && b.SSN != "":
		if a.SSN == b.SSN {
			return ssnExact
		}
		if withinOneEdit(a.SSN, b.SSN) {
			return ssnTypo
		}
		return ssnDisagree
	case a.SSN == "" && a.SSNLast4 == "", b.SSN == "" && b.SSNLast4 == "":
		return missing
	case a.SSNLast4 != "" && a.SSNLast4 == b.SSNLast4:
		return ssnLast4
	}
	return ssnDisagree
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sharePart(a, b []string) bool {
	for _, x := range a {
		if containsString(b, x) {
			return true
		}
	}
	return false
}
