package synth

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// A record is what one facility registered about a person on one day: the
// person's truth at that day (name before or after a marriage, the
// address and phone of the time) through that facility's data entry
// (errors, formats, missing values). render draws it from the record's own
// random stream, so it does not depend on the order records are written.

// ssnSpace counts the SSNs issued by the old rules: area 001–899 but 666,
// group 01–99, serial 0001–9999.
const ssnSpace = 898 * 99 * 9999

func (g *generator) ssnOf(personIndex int) string {
	x := permute(uint64(personIndex)%ssnSpace, ssnSpace, mix64(g.seed^streamSSN))
	serial := x%9999 + 1
	x /= 9999
	group := x%99 + 1
	area := x/99 + 1
	if area >= 666 {
		area++
	}
	return fmt.Sprintf("%03d%02d%04d", area, group, serial)
}

var ssnPlaceholders = []string{"999999999", "000000000", "123456789", "111111111", "999-99-9999"}

// mrnFormats are the shapes of the facilities' medical record numbers;
// facility f uses format f mod len.
var mrnFormats = []struct {
	prefix string
	digits int
	dashAt int // a dash after this many digits, 0 for none
	pad    bool
}{
	{"MRN", 7, 0, true}, {"", 8, 0, true}, {"H", 7, 0, true}, {"", 8, 2, true}, {"V", 8, 0, true},
	{"", 10, 0, true}, {"PT", 7, 0, true}, {"", 7, 0, false}, {"E", 9, 0, true}, {"", 9, 3, true},
}

// mrn gives a record's MRN at its facility: distinct records of a facility
// get distinct numbers.
func (g *generator) mrn(f int, recNo uint32) string {
	form := mrnFormats[f%len(mrnFormats)]
	digits := form.digits
	space := func() uint64 {
		s := uint64(1)
		for range digits {
			s *= 10
		}
		if !form.pad {
			s -= s / 10 // no leading zero
		}
		return s
	}
	for space() < uint64(g.records)+1 {
		digits++
	}
	x := permute(uint64(recNo), space(), mix64(g.seed^streamMRN^uint64(f)<<20))
	var s string
	if form.pad {
		s = fmt.Sprintf("%0*d", digits, x)
	} else {
		lowest := uint64(1)
		for range digits - 1 {
			lowest *= 10
		}
		s = strconv.FormatUint(x+lowest, 10)
	}
	if form.dashAt > 0 && form.dashAt < len(s) {
		s = s[:form.dashAt] + "-" + s[form.dashAt:]
	}
	return form.prefix + s
}

func facilitySystem(f int) string {
	return "urn:oid:2.16.840.1.113883.3." + strconv.Itoa(1001+f)
}

// render writes record ord of member m of the unit in b into out (the 16
// columns of dataset.CSVColumns).
func (g *generator) render(b *unitBuf, m, ord int, recNo uint32, rs *source, out []string) {
	r := rs.at(g.seed, streamRecord, uint64(recNo))
	k := &g.k
	p := &b.persons[m]
	spec := p.records[ord]
	day := spec.day

	given := p.given
	if p.nick != "" && chance(r, k.NicknameUse) {
		given = p.nick
	}
	family := p.family
	if p.married != "" && day >= p.marriedDay {
		family = p.married
	} else if p.second != "" {
		switch x := r.Float64(); {
		case x < 0.35:
			family += " " + p.second
		case x < 0.5:
			family += "-" + p.second
		}
	}
	family = nameVariant(r, family)
	if chance(r, k.GivenInitial) {
		given = given[:1]
	} else if chance(r, k.GivenTypo) {
		given = typo(r, given)
		if chance(r, k.SecondTypo) {
			given = typo(r, given)
		}
	}
	if chance(r, k.FamilyTypo) {
		family = typo(r, family)
		if chance(r, k.SecondTypo) {
			family = typo(r, family)
		}
	}
	if chance(r, k.GivenFamilySwap) {
		given, family = family, given
	}
	switch {
	case p.suffix == "Jr" && chance(r, k.JuniorSuffix):
		family += " Jr"
	case p.suffix == "Sr" && chance(r, k.JuniorSuffix/3):
		family += " Sr"
	}
	middle := ""
	if p.middle != "" && chance(r, k.MiddleShown) {
		middle = p.middle
		if chance(r, k.MiddleInitial) {
			middle = middle[:1]
		} else if chance(r, k.GivenTypo/5) {
			middle = typo(r, middle)
		}
	}
	given, middle, family = caseOf(r, k.UpperCase, given), caseOf(r, k.UpperCase, middle), caseOf(r, k.UpperCase, family)

	sex := "F"
	if p.sex == 1 {
		sex = "M"
	}
	switch {
	case chance(r, k.SexUnknown):
		sex = "U"
	case chance(r, k.SexWrong):
		sex = map[string]string{"F": "M", "M": "F"}[sex]
	}

	res := &b.res[p.res]
	e := res.epochs[0]
	for _, x := range res.epochs[1:] {
		if x.from <= day {
			e = x
		}
	}
	var line, city, state, zip string
	if !chance(r, k.AddressMissing) {
		line, city, state, zip = g.renderAddress(r, e.addr)
	}
	phone := g.phoneAt(b, p, e, day)
	if phone != 0 && !chance(r, k.PhoneMissing) {
		out[13] = formatPhone(r, k, phone)
	} else {
		out[13] = ""
	}
	email := ""
	if p.email != "" && chance(r, k.EmailShown) {
		email = p.email
		if chance(r, k.EmailTypo) {
			at := strings.IndexByte(email, '@')
			email = typo(r, email[:at]) + email[at:]
		}
	}
	ssn := ""
	if p.hasSSN && chance(r, k.SSNShown) {
		ssn = g.ssnOf(p.index)
		switch x := r.Float64(); {
		case x < k.SSNOther:
			ssn = g.otherSSN(r, b, m)
		case x < k.SSNOther+k.SSNPlaceholder:
			ssn = ssnPlaceholders[r.IntN(len(ssnPlaceholders))]
		case x < k.SSNOther+k.SSNPlaceholder+k.SSNTypo:
			ssn = digitTypo(r, ssn)
		}
		if len(ssn) == 9 && chance(r, k.SSNDashes) {
			ssn = ssn[:3] + "-" + ssn[3:5] + "-" + ssn[5:]
		}
	}

	out[0] = "r" + strconv.FormatUint(uint64(recNo)+1, 10)
	out[1] = p.label
	out[2] = facilitySystem(spec.facility)
	out[3] = g.mrn(spec.facility, recNo)
	out[4], out[5], out[6] = given, middle, family
	out[7] = g.renderBirth(r, p)
	out[8] = sex
	out[9], out[10], out[11], out[12] = line, city, state, zip
	out[14], out[15] = email, ssn
}

// nameVariant writes multi-part and apostrophe names as clerks do:
// De La Cruz, Delacruz; O'Brien, OBrien.
func nameVariant(r *rand.Rand, s string) string {
	if strings.ContainsRune(s, '\'') && chance(r, 0.3) {
		s = strings.ReplaceAll(s, "'", "")
	}
	if strings.HasPrefix(s, "De ") && chance(r, 0.35) {
		s = "De" + strings.ToLower(strings.ReplaceAll(s[3:], " ", ""))
	}
	return s
}

// caseOf types a name in capitals with probability p (a few, p/80, in
// lower case).
func caseOf(r *rand.Rand, p float64, s string) string {
	switch x := r.Float64(); {
	case x < p:
		return strings.ToUpper(s)
	case x < p*(1+1.0/80):
		return strings.ToLower(s)
	}
	return s
}

func (g *generator) renderAddress(r *rand.Rand, a address) (line, city, state, zip string) {
	k := &g.k
	unitForm := 0
	switch x := r.Float64(); {
	case x < 0.2:
		unitForm = -1 // the unit left out
	case x < 0.35:
		unitForm = 1 // "#12"
	}
	line = g.geo.line(g.t, a, chance(r, k.StreetAbbrev), unitForm)
	if chance(r, k.AddressTypo) {
		if chance(r, 0.3) {
			sp := strings.IndexByte(line, ' ')
			line = digitTypo(r, line[:sp]) + line[sp:]
		} else {
			sp := strings.IndexByte(line, ' ')
			line = line[:sp+1] + typo(r, line[sp+1:])
		}
	}
	z := &g.geo.zips[a.zip]
	tw := &g.geo.towns[z.town]
	city = tw.name
	if chance(r, 0.3) {
		for _, ab := range [][2]string{{"Saint ", "St. "}, {"Mount ", "Mt "}, {"Fort ", "Ft "}, {"North ", "N "}} {
			if strings.HasPrefix(city, ab[0]) {
				city = ab[1] + city[len(ab[0]):]
				break
			}
		}
	}
	if chance(r, k.AddressTypo/2) {
		city = typo(r, city)
	}
	city = caseOf(r, k.UpperCase, city)
	st := g.geo.states[tw.state]
	state = st.code
	if chance(r, 0.01) {
		state = st.name
	}
	zip = z.code
	if chance(r, k.ZIPTypo) {
		zip = digitTypo(r, zip)
		if len(zip) != 5 || strings.Trim(zip, "0123456789") != "" {
			zip = z.code[:4] + strconv.Itoa((int(z.code[4]-'0')+1)%10)
		}
	}
	if chance(r, k.ZIPPlus4) {
		zip += fmt.Sprintf("-%04d", r.IntN(10000))
	}
	return line, city, state, zip
}

// phoneAt is the number a record of p shows on day: the person's mobile
// of the time (most prefer it), else the home's landline, else for a
// young child a parent's mobile.
func (g *generator) phoneAt(b *unitBuf, p *person, e addrEpoch, day int) uint64 {
	mobile := uint64(0)
	for _, m := range p.mobiles {
		if m.from <= day {
			mobile = m.number
		}
	}
	switch {
	case mobile != 0 && (e.landline == 0 || p.prefersMobile):
		return mobile
	case e.landline != 0:
		return e.landline
	case p.phoneOf >= 0:
		parent := &b.persons[p.phoneOf]
		for _, m := range parent.mobiles {
			if m.from <= day {
				mobile = m.number
			}
		}
	}
	return mobile
}

func formatPhone(r *rand.Rand, k *Knobs, n uint64) string {
	s := strconv.FormatUint(n, 10)
	if chance(r, k.PhoneTypo) {
		s = digitTypo(r, s)
		if len(s) != 10 || strings.Trim(s, "0123456789") != "" {
			s = strconv.FormatUint(n, 10)
			s = s[:9] + strconv.Itoa((int(s[9]-'0')+1)%10)
		}
	}
	switch x := r.Float64(); {
	case x < k.PhoneParens:
		return "(" + s[:3] + ") " + s[3:6] + "-" + s[6:]
	case x < k.PhoneParens+k.PhoneDashes:
		return s[:3] + "-" + s[3:6] + "-" + s[6:]
	case x < k.PhoneParens+k.PhoneDashes+0.005:
		return "+1 " + s[:3] + " " + s[3:6] + " " + s[6:]
	}
	return s
}

// otherSSN is the SSN of another person: a household member's when one
// has an SSN (a guarantor's copied onto a dependant's record), else a
// stranger's.
func (g *generator) otherSSN(r *rand.Rand, b *unitBuf, m int) string {
	for i := range b.persons {
		if i != m && b.persons[i].hasSSN {
			return g.ssnOf(b.persons[i].index)
		}
	}
	other := r.IntN(g.persons)
	if other == b.persons[m].index {
		other = (other + 1) % g.persons
	}
	return g.ssnOf(other)
}

// renderBirth writes the birth date with the record's keying errors; the
// result is always a calendar date (the csv format refuses others).
func (g *generator) renderBirth(r *rand.Rand, p *person) string {
	k := &g.k
	y, m, d := p.by, p.bm, p.bd
	x := r.Float64()
	switch {
	case x < k.BirthPlaceholder:
		m, d = 1, 1
	case x < k.BirthPlaceholder+k.BirthDayMonthSwap && d <= 12 && d != m:
		m, d = d, m
	case x < k.BirthPlaceholder+k.BirthDayMonthSwap+k.BirthDayTypo:
		d = dayTypo(r, y, m, d)
	case x < k.BirthPlaceholder+k.BirthDayMonthSwap+k.BirthDayTypo+k.BirthYearTypo:
		delta := 1
		if r.IntN(2) == 0 {
			delta = 10
		}
		if r.IntN(2) == 0 || y+delta > 2025 {
			delta = -delta
		}
		y += delta
		d = min(d, daysInMonth(y, m))
	}
	if x >= k.BirthPlaceholder && x < k.BirthPlaceholder+k.BirthDayMonthSwap && (p.bd > 12 || p.bd == p.bm) {
		d = dayTypo(r, y, m, d) // no swap possible: key another day error instead
	}
	var buf [10]byte
	b := strconv.AppendInt(buf[:0], int64(y), 10)
	b = append(b, '-', byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
	return string(b)
}

// dayTypo returns a valid day next to d or one digit away from it.
func dayTypo(r *rand.Rand, y, m, d int) int {
	last := daysInMonth(y, m)
	if r.IntN(2) == 0 {
		if (r.IntN(2) == 0 && d > 1) || d == last {
			return d - 1
		}
		return d + 1
	}
	var cands []int
	for c := 1; c <= last; c++ {
		if c != d && (c/10 == d/10 || c%10 == d%10) {
			cands = append(cands, c)
		}
	}
	return cands[r.IntN(len(cands))]
}
