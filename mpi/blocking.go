package mpi

import (
	"slices"
	"strings"
)

// Blocking passes. Each pass turns a record into zero or more keys; two
// records become candidates when they share any key. The passes pair up
// fields so that a true match survives any one field, and most pairs of
// fields, being wrong:
//
//	db  birth year + month/day (sorted)     wrong names (marriage), day and month swapped
//	fy  family-name code + birth year       wrong given name, month or day
//	gd  formal given-name code + month/day  new family name and a wrong year
//	gy  formal given-name code + birth year new family name, wrong month or day
//	gf  both name codes (unordered)         wrong birth date, names swapped
//	zn  postal code + any name code         wrong birth date and one name
//	ns  any name code + street name code    wrong birth date, postal code, one name
//	nc  any name code + city                wrong birth date, postal code, address
//	ps  postal code + street name code      wrong names and birth date
//	np  house number + postal code          wrong names, street spelling, birth date
//	ad  house number + street name code     wrong names, birth date, postal code
//	ssn full SSN                            everything else (movers who marry)
//	ph  phone number                        everything else
//	em  e-mail address                      everything else
//
// "Any name code" files the given name's codes and the family name's under
// the same key space, so a record with given and family swapped still
// meets. Keys are "pass:value" strings; their byte order is their storage
// order.
const (
	passBirthDate       = "db"
	passFamilyYear      = "fy"
	passGivenMonthDay   = "gd"
	passGivenYear       = "gy"
	passNames           = "gf"
	passPostalName      = "zn"
	passNameStreet      = "ns"
	passNameCity        = "nc"
	passPostalStreet    = "ps"
	passNumberPostal    = "np"
	passAddress         = "ad"
	passSSN             = "ssn"
	passPhone           = "ph"
	passEmail           = "em"
	blockKeySeparator   = ":"
	blockValueSeparator = "|"
)

// passConditions lists, for each blocking pass, the fields whose agreement
// the pass itself selects (and fields that follow from them, such as city
// and state from a postal code). EM training leaves those fields out when
// it learns from a pass's pairs: among pairs blocked on birth date,
// different people agree on birth date too, so those pairs say nothing
// about how often the same person's birth date agrees.
var passConditions = []struct {
	pass   string
	fields []int
}{
	{passAddress, []int{fLocation, fPhone}},
	{passBirthDate, []int{fBirth}},
	{passEmail, []int{fEmail}},
	{passFamilyYear, []int{fFamily, fBirth}},
	{passGivenMonthDay, []int{fGiven, fBirth}},
	{passGivenYear, []int{fGiven, fBirth}},
	{passNames, []int{fGiven, fFamily}},
	{passNameCity, []int{fGiven, fFamily, fLocation}},
	{passNumberPostal, []int{fLocation, fPhone}},
	{passNameStreet, []int{fGiven, fFamily, fLocation}},
	{passPhone, []int{fPhone, fLocation}},
	{passPostalStreet, []int{fLocation, fPhone}},
	{passSSN, []int{fSSN}},
	{passPostalName, []int{fGiven, fFamily, fLocation}},
}

// passOf returns the pass of a blocking key.
func passOf(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == ':' {
			return key[:i]
		}
	}
	return key
}

// BlockingKeys returns the blocking keys of a normalised record, sorted and
// without duplicates. The keys share one allocation.
func BlockingKeys(n *Normalized) []string {
	var kb keyBuilder
	year, monthDay := "", ""
	var monthDayBuf [4]byte
	if n.Birth != "" {
		year = n.Birth[:4]
		mm, dd := n.Birth[4:6], n.Birth[6:8]
		if dd < mm { // day and month swapped land in the same block
			mm, dd = dd, mm
		}
		monthDay = string(append(append(monthDayBuf[:0], mm...), dd...))
	}
	var familyBuf, nameBuf, streetBuf [8]string
	familyCodes := append(append(familyBuf[:0], n.FamilyCode), n.FamilyPartCodes...)
	nameCodes := append(nameBuf[:0], n.FormalCodes...)
	nameCodes = append(nameCodes, n.GivenCode)
	nameCodes = append(nameCodes, familyCodes...)
	nameCodes = uniqueNonEmpty(nameCodes)
	streetCodes := streetBuf[:0]
	for _, a := range n.Addresses {
		streetCodes = append(streetCodes, a.StreetCode)
	}
	streetCodes = uniqueNonEmpty(streetCodes)

	kb.add(passBirthDate, year, monthDay)
	for _, fc := range familyCodes {
		kb.add(passFamilyYear, fc, year)
	}
	for _, gc := range n.FormalCodes {
		kb.add(passGivenMonthDay, gc, monthDay)
		kb.add(passGivenYear, gc, year)
	}
	if n.GivenCode != "" && n.FamilyCode != "" {
		a, b := n.GivenCode, n.FamilyCode
		if a > b {
			a, b = b, a
		}
		kb.add(passNames, a, b)
	}
	for _, nc := range nameCodes {
		kb.add(passPostalName, n.Postal, nc)
		kb.add(passNameCity, nc, n.City)
		for _, sc := range streetCodes {
			kb.add(passNameStreet, nc, sc)
		}
	}
	for _, sc := range streetCodes {
		kb.add(passPostalStreet, n.Postal, sc)
	}
	for _, a := range n.Addresses {
		if a.Number != "" {
			kb.add(passNumberPostal, a.Number, n.Postal)
			kb.add(passAddress, a.Number, a.StreetCode)
		}
	}
	kb.add(passSSN, n.SSN)
	for _, p := range n.Phones {
		kb.add(passPhone, p)
	}
	kb.add(passEmail, n.Email)
	keys := kb.keys()
	slices.Sort(keys)
	return uniqueSorted(keys)
}

// keyBuilder writes blocking keys into one buffer and cuts them out of one
// string at the end: a record's thirty-odd keys cost two allocations, not
// sixty.
type keyBuilder struct {
	buf  []byte
	ends []int
}

// add writes the key "pass:part1|part2…", unless a part is empty (the
// record has no value for a field the pass needs).
func (kb *keyBuilder) add(pass string, parts ...string) {
	for _, p := range parts {
		if p == "" {
			return
		}
	}
	if kb.buf == nil {
		kb.buf = make([]byte, 0, 512)
		kb.ends = make([]int, 0, 48)
	}
	kb.buf = append(kb.buf, pass...)
	kb.buf = append(kb.buf, blockKeySeparator...)
	for i, p := range parts {
		if i > 0 {
			kb.buf = append(kb.buf, blockValueSeparator...)
		}
		kb.buf = append(kb.buf, p...)
	}
	kb.ends = append(kb.ends, len(kb.buf))
}

func (kb *keyBuilder) keys() []string {
	all := string(kb.buf)
	keys := make([]string, len(kb.ends))
	start := 0
	for i, end := range kb.ends {
		keys[i] = all[start:end]
		start = end
	}
	return keys
}

// streetCode is the phonetic code of the first word of a street name
// ("hensman st" → HNSM), the part least likely to be abbreviated.
func streetCode(street string) string {
	if i := strings.IndexByte(street, ' '); i > 0 {
		street = street[:i]
	}
	if len(street) < 2 || isDigits(street) {
		return ""
	}
	return phonetic(street)
}

func uniqueNonEmpty(list []string) []string {
	out := list[:0]
	for _, s := range list {
		if s != "" && !containsString(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func uniqueSorted(keys []string) []string {
	out := keys[:0]
	for i, k := range keys {
		if i == 0 || k != keys[i-1] {
			out = append(out, k)
		}
	}
	return out
}
