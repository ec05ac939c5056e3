package mpi

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// Blocking passes. Each pass turns a record into zero or more keys; two
// records become candidates when they share any key. The passes pair up
// fields so that a true match survives any one field, and most pairs of
// fields, being wrong:
//
//	pass key                                survives                         sorted by
//	db   birth year + month/day (sorted)    wrong names (marriage), d/m swap given name code
//	fy   family-name code + birth year      wrong given name, month or day   month/day
//	fd   family-name code + month/day       wrong given name and year        birth year
//	gd   formal given-name code + month/day new family name and a wrong year birth year
//	gy   formal given-name code + birth year new family name, wrong month/day month/day
//	gf   both name codes (unordered)        wrong birth date, names swapped  birth date
//	iy   both name initials (unordered)     misspelt names, wrong month/day  month/day
//	     + birth year                       (and a move), names swapped
//	zn   postal code + any name code        wrong birth date and one name    birth date
//	ns   any name code + street name code   wrong birth date, postal, a name birth date
//	nc   any name code + city               wrong birth date, postal, street birth date
//	ps   postal code + street name code     wrong names and birth date       house number
//	np   house number + postal code         wrong names, street, birth date  street code
//	ad   house number + street name code    wrong names, birth date, postal  postal code
//	ssn  full SSN                           everything else (movers who marry)
//	ph   phone number                       everything else                  birth date
//	em   e-mail address                     everything else
//
// "Any name code" files the given name's codes and the family name's under
// the same key space, so a record with given and family swapped still
// meets. Keys are "pass:value" strings; their byte order is their storage
// order.
//
// Within a block records are kept in the order of a sort value, a field the
// pass does not select on. A block that grows beyond Config.MaxBlockSize
// (Mary Smith in a city of a million) is not skipped: the query reads the
// MaxBlockSize records whose sort values lie nearest its own, a window of
// the sorted block (the sorted-neighbourhood method of Hernández and
// Stolfo), so every block costs a bounded read at any index size and a
// person is still found through a common name when the sort field agrees.
const (
	passBirthDate       = "db"
	passFamilyYear      = "fy"
	passFamilyMonthDay  = "fd"
	passGivenMonthDay   = "gd"
	passGivenYear       = "gy"
	passNames           = "gf"
	passInitialsYear    = "iy"
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

// Block is one blocking key of a record and the record's sort value within
// that block. A query reads a block around its own sort value.
type Block struct {
	Key  string `json:"k"`
	Sort string `json:"s,omitempty"`
}

// UnmarshalJSON also reads the plain key strings of records stored before
// blocks had sort values.
func (b *Block) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		b.Sort = ""
		return json.Unmarshal(data, &b.Key)
	}
	type plain Block
	return json.Unmarshal(data, (*plain)(b))
}

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
	{passFamilyMonthDay, []int{fFamily, fBirth}},
	{passGivenMonthDay, []int{fGiven, fBirth}},
	{passGivenYear, []int{fGiven, fBirth}},
	{passNames, []int{fGiven, fFamily}},
	{passInitialsYear, []int{fGiven, fFamily, fBirth}},
	{passNameCity, []int{fGiven, fFamily, fLocation}},
	{passNumberPostal, []int{fLocation, fPhone}},
	{passNameStreet, []int{fGiven, fFamily, fLocation}},
	{passPhone, []int{fPhone, fLocation}},
	{passPostalStreet, []int{fLocation, fPhone}},
	{passSSN, []int{fSSN}},
	{passPostalName, []int{fGiven, fFamily, fLocation}},
}

// knownPass reports whether pass is one of the blocking passes above.
func knownPass(pass string) bool {
	for _, c := range passConditions {
		if c.pass == pass {
			return true
		}
	}
	return false
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

// BlockingKeys returns the blocking keys of a normalised record with its
// sort value in each, sorted by key and without duplicate keys. The keys
// share one allocation.
func BlockingKeys(n *Normalized) []Block {
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

	kb.add(passBirthDate, n.GivenCode, year, monthDay)
	for _, fc := range familyCodes {
		kb.add(passFamilyYear, monthDay, fc, year)
		kb.add(passFamilyMonthDay, year, fc, monthDay)
	}
	for _, gc := range n.FormalCodes {
		kb.add(passGivenMonthDay, year, gc, monthDay)
		kb.add(passGivenYear, monthDay, gc, year)
	}
	if n.GivenCode != "" && n.FamilyCode != "" {
		a, b := n.GivenCode, n.FamilyCode
		if a > b {
			a, b = b, a
		}
		kb.add(passNames, n.Birth, a, b)
	}
	if n.Given != "" && n.Family != "" {
		// First letters, not bytes: a name may begin with a letter of several bytes.
		_, gl := utf8.DecodeRuneInString(n.Given)
		_, fl := utf8.DecodeRuneInString(n.Family)
		a, b := n.Given[:gl], n.Family[:fl]
		if a > b {
			a, b = b, a
		}
		kb.add(passInitialsYear, monthDay, year, a, b)
	}
	for _, nc := range nameCodes {
		kb.add(passPostalName, n.Birth, n.Postal, nc)
		kb.add(passNameCity, n.Birth, nc, n.City)
		for _, sc := range streetCodes {
			kb.add(passNameStreet, n.Birth, nc, sc)
		}
	}
	houseNumber := ""
	for _, a := range n.Addresses {
		if a.Number != "" {
			houseNumber = a.Number
			break
		}
	}
	for _, sc := range streetCodes {
		kb.add(passPostalStreet, houseNumber, n.Postal, sc)
	}
	for _, a := range n.Addresses {
		if a.Number != "" {
			kb.add(passNumberPostal, a.StreetCode, a.Number, n.Postal)
			kb.add(passAddress, n.Postal, a.Number, a.StreetCode)
		}
	}
	kb.add(passSSN, "", n.SSN)
	for _, p := range n.Phones {
		kb.add(passPhone, n.Birth, p)
	}
	kb.add(passEmail, "", n.Email)
	blocks := kb.blocks()
	slices.SortFunc(blocks, func(a, b Block) int { return strings.Compare(a.Key, b.Key) })
	return slices.CompactFunc(blocks, func(a, b Block) bool { return a.Key == b.Key })
}

// keyBuilder writes blocking keys and sort values into one buffer and cuts
// them out of one string at the end: a record's thirty-odd blocks cost two
// allocations, not sixty.
type keyBuilder struct {
	buf  []byte
	ends []int // end of each key, then end of its sort value
}

// add writes the key "pass:part1|part2…" with its sort value, unless a part
// is empty (the record has no value for a field the pass needs).
func (kb *keyBuilder) add(pass, sort string, parts ...string) {
	for _, p := range parts {
		if p == "" {
			return
		}
	}
	if kb.buf == nil {
		kb.buf = make([]byte, 0, 768)
		kb.ends = make([]int, 0, 96)
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
	kb.buf = append(kb.buf, sort...)
	kb.ends = append(kb.ends, len(kb.buf))
}

func (kb *keyBuilder) blocks() []Block {
	all := string(kb.buf)
	out := make([]Block, len(kb.ends)/2)
	start := 0
	for i := range out {
		keyEnd, sortEnd := kb.ends[2*i], kb.ends[2*i+1]
		out[i] = Block{Key: all[start:keyEnd], Sort: all[keyEnd:sortEnd]}
		start = sortEnd
	}
	return out
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
