package mpi

import (
	"bytes"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rls-hie/rls/mpi/metaphone"
	"golang.org/x/text/unicode/norm"
)

// NormVersion identifies the normalisation rules. It is stored with every
// normalised record; a record whose stored form has another version is
// normalised again when read, so a rule change never compares old forms
// with new ones.
const NormVersion = 1

// Normalized is the comparison form of a record, computed once at
// registration and stored with it so candidates need not be normalised again
// on every query. All strings are lower-case ASCII where the input allowed;
// an empty string means "missing".
type Normalized struct {
	Version int `json:"v"`
	// Given is the first given name with its parts joined (Mary-Jane →
	// "maryjane"); GivenParts keeps the parts.
	Given      string   `json:"g,omitempty"`
	GivenParts []string `json:"gp,omitempty"`
	// Middle is the first middle name (or initial).
	Middle string `json:"mi,omitempty"`
	// Family is the family name with its parts joined; FamilyParts lists the
	// parts other than particles when there is more than one.
	Family      string   `json:"f,omitempty"`
	FamilyParts []string `json:"fp,omitempty"`
	Suffix      string   `json:"sx,omitempty"`
	// GivenCode and FamilyCode are Double Metaphone primary codes;
	// FormalCodes are the codes of the formal names the given name stands for
	// (Bill → WILLIAM), used by blocking so nicknames share blocks;
	// FamilyPartCodes are the codes of each family part.
	GivenCode       string   `json:"gc,omitempty"`
	FamilyCode      string   `json:"fc,omitempty"`
	FormalCodes     []string `json:"fmc,omitempty"`
	FamilyPartCodes []string `json:"fpc,omitempty"`
	// Birth is YYYYMMDD when the birth date had 8 digits (even if not a
	// calendar date); the parts are split out for comparison.
	Birth      string `json:"b,omitempty"`
	BirthYear  int    `json:"by,omitempty"`
	BirthMonth int    `json:"bm,omitempty"`
	BirthDay   int    `json:"bd,omitempty"`
	// Sex is "f", "m", "o" or "" (unknown).
	Sex       string        `json:"s,omitempty"`
	Addresses []AddressLine `json:"a,omitempty"`
	City      string        `json:"c,omitempty"`
	State     string        `json:"st,omitempty"`
	Postal    string        `json:"z,omitempty"`
	Phones    []string      `json:"p,omitempty"`
	Email     string        `json:"e,omitempty"`
	// SSN is the full number (letters kept, since an O typed for 0 is still
	// one keystroke away); SSNLast4 its last four digits, alone when only
	// those were given.
	SSN      string `json:"ssn,omitempty"`
	SSNLast4 string `json:"ssn4,omitempty"`
}

// AddressLine is one normalised street line. StreetCode is the phonetic
// code of the street name's first word, for blocking.
type AddressLine struct {
	Full       string `json:"l"`
	Number     string `json:"n,omitempty"`
	Street     string `json:"s,omitempty"`
	StreetCode string `json:"sc,omitempty"`
}

// Normalize computes the comparison form of a record. It is a pure function
// of the record.
func Normalize(r Record) Normalized {
	n := Normalized{Version: NormVersion}

	var givenTokens, middleTokens []string
	for i, g := range r.Given {
		toks := nameTokens(g)
		if i == 0 {
			givenTokens = toks
		} else if len(middleTokens) == 0 {
			middleTokens = toks
		}
	}
	familyTokens := nameTokens(r.Family)
	suffix := ""
	givenTokens, suffix = stripSuffix(givenTokens, suffix)
	middleTokens, suffix = stripSuffix(middleTokens, suffix)
	familyTokens, suffix = stripSuffix(familyTokens, suffix)
	if s := generationalSuffixes[keyOf(r.Suffix)]; s != "" {
		suffix = s
	}
	n.Suffix = suffix

	if len(givenTokens) > 0 {
		n.Given = strings.Join(givenTokens, "")
		if len(givenTokens) > 1 {
			n.GivenParts = givenTokens
		}
		n.GivenCode = phonetic(n.Given)
		for _, f := range formalNames(n.Given) {
			n.FormalCodes = appendUnique(n.FormalCodes, phonetic(f))
		}
	}
	if len(middleTokens) > 0 {
		n.Middle = middleTokens[0]
	}
	if len(familyTokens) > 0 {
		n.Family = strings.Join(familyTokens, "")
		n.FamilyCode = phonetic(n.Family)
		var parts []string
		for _, t := range familyTokens {
			if !familyParticles[t] && len(t) > 1 {
				parts = append(parts, t)
			}
		}
		if len(parts) > 1 {
			n.FamilyParts = parts
			for _, p := range parts {
				n.FamilyPartCodes = appendUnique(n.FamilyPartCodes, phonetic(p))
			}
		}
	}

	n.Birth, n.BirthYear, n.BirthMonth, n.BirthDay = normalizeBirthDate(r.BirthDate)
	n.Sex = normalizeSex(r.Sex)
	for _, l := range r.AddressLines {
		if a, ok := normalizeAddressLine(l); ok {
			n.Addresses = append(n.Addresses, a)
		}
	}
	n.City = keyOf(r.City)
	n.State = normalizeState(r.State)
	n.Postal = normalizePostal(r.PostalCode)
	for _, p := range r.Phones {
		if d := normalizePhone(p); d != "" {
			n.Phones = appendUnique(n.Phones, d)
		}
	}
	n.Email = normalizeEmail(r.Email)
	n.SSN, n.SSNLast4 = normalizeSSN(r.SSN)
	return n
}

// fold lower-cases s and removes accents (é → e, ß → ss), keeping letters
// that have no ASCII form.
func fold(s string) string {
	if isASCII(s) {
		return strings.ToLower(s) // nothing to decompose
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r < unicode.MaxASCII:
			b.WriteRune(unicode.ToLower(r))
		default:
			if rep, ok := foldSpecial[r]; ok {
				b.WriteString(rep)
			} else {
				b.WriteRune(unicode.ToLower(r))
			}
		}
	}
	return b.String()
}

// foldSpecial covers letters that Unicode does not decompose into a base
// letter and a mark.
var foldSpecial = map[rune]string{
	'ß': "ss", 'æ': "ae", 'Æ': "ae", 'ø': "o", 'Ø': "o", 'œ': "oe", 'Œ': "oe",
	'ł': "l", 'Ł': "l", 'đ': "d", 'Đ': "d", 'ð': "d", 'Ð': "d", 'þ': "th", 'Þ': "th",
	'ı': "i", 'ħ': "h", 'Ħ': "h",
}

// apostrophes are removed so that O'Brien and OBrien compare equal.
var apostrophes = strings.NewReplacer("'", "", "’", "", "`", "", "´", "")

// tokens folds s and splits it into runs of letters and digits. Apostrophes
// join (O'Brien → obrien) rather than split.
func tokens(s string) []string {
	s = fold(s)
	if hasApostrophe(s) { // the replacer allocates even when it replaces nothing
		s = apostrophes.Replace(s)
	}
	return strings.FieldsFunc(s, isTokenSeparator)
}

// hasApostrophe reports whether s holds one of apostropheChars. Looking for
// them with strings.ContainsAny, whose set is not ASCII, cost a seventh of
// normalising a record; an ASCII string needs two byte searches.
func hasApostrophe(s string) bool {
	if strings.IndexByte(s, '\'') >= 0 || strings.IndexByte(s, '`') >= 0 {
		return true
	}
	return !isASCII(s) && strings.ContainsAny(s, apostropheChars)
}

const apostropheChars = "'’`´"

func isTokenSeparator(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }

// keyOf is the joined token form of s: "Winston Hills" → "winstonhills".
func keyOf(s string) string {
	if !isASCII(s) {
		return strings.Join(tokens(s), "")
	}
	// In ASCII the joined tokens are the letters and digits, lower-cased:
	// one pass, and no allocation when s is already in that form (most
	// states, sexes and postal codes).
	var buf [64]byte
	b := buf[:0]
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b = append(b, c)
		case 'A' <= c && c <= 'Z':
			b = append(b, c+'a'-'A')
		}
	}
	if string(b) == s {
		return s
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// nameTokens tokenises a name and drops titles and digits.
func nameTokens(s string) []string {
	toks := tokens(s)
	out := toks[:0]
	for _, t := range toks {
		if nameTitles[t] && len(toks) > 1 {
			continue
		}
		if strings.IndexFunc(t, unicode.IsDigit) >= 0 && generationalSuffixes[t] == "" {
			continue
		}
		out = append(out, t)
	}
	return out
}

// stripSuffix removes a trailing generational suffix from a name's tokens
// (keeping at least one token) and returns the suffix found, or prev.
func stripSuffix(toks []string, prev string) ([]string, string) {
	if len(toks) > 1 {
		if s, ok := generationalSuffixes[toks[len(toks)-1]]; ok {
			return toks[:len(toks)-1], s
		}
	}
	return toks, prev
}

func phonetic(s string) string {
	if s == "" {
		return ""
	}
	p := metaphone.Primary(s)
	if p == "" {
		return s // a name of letters Double Metaphone ignores still blocks on itself
	}
	return p
}

func appendUnique(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// normalizeBirthDate accepts YYYY-MM-DD, YYYYMMDD and other separators. A
// date whose parts are digits but impossible (month 13) is kept: its parts
// still compare, and that is how FEBRL's corrupted dates behave.
func normalizeBirthDate(s string) (string, int, int, int) {
	var buf [8]byte
	digits := buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if len(digits) == len(buf) {
				return "", 0, 0, 0 // more than 8 digits
			}
			digits = append(digits, c)
		case c == '-' || c == '/' || c == '.' || c == ' ':
		default:
			return "", 0, 0, 0
		}
	}
	if len(digits) != 8 {
		return "", 0, 0, 0
	}
	d := string(digits)
	y, _ := strconv.Atoi(d[:4])
	m, _ := strconv.Atoi(d[4:6])
	day, _ := strconv.Atoi(d[6:])
	if y == 0 {
		return "", 0, 0, 0
	}
	return d, y, m, day
}

func normalizeSex(s string) string {
	switch keyOf(s) {
	case "f", "female", "w", "woman":
		return "f"
	case "m", "male", "man":
		return "m"
	case "o", "other", "x", "nonbinary":
		return "o"
	}
	return ""
}

func normalizeAddressLine(s string) (AddressLine, bool) {
	toks := tokens(s)
	if len(toks) == 0 {
		return AddressLine{}, false
	}
	nameStart := -1
	for i, t := range toks {
		if nameStart < 0 && unicode.IsLetter(rune(t[0])) && directionals[t] == "" {
			nameStart = i
		}
	}
	for i, t := range toks {
		if d, ok := directionals[t]; ok {
			toks[i] = d
		} else if a, ok := streetAbbreviations[t]; ok && i != nameStart {
			toks[i] = a
		}
	}
	a := AddressLine{Full: strings.Join(toks, " ")}
	if c := toks[0][0]; c >= '0' && c <= '9' {
		a.Number = toks[0]
		a.Street = strings.Join(toks[1:], " ")
	} else {
		a.Street = a.Full
	}
	a.StreetCode = streetCode(a.Street)
	return a, true
}

func normalizeState(s string) string {
	k := keyOf(s)
	if abbr, ok := usStates[k]; ok {
		return abbr
	}
	return k
}

// normalizePostal keeps US ZIP codes to their 5-digit form (ZIP+4 cut, a
// leading zero lost by a spreadsheet restored). Codes with letters (UK,
// Canada) are kept as their letters and digits.
func normalizePostal(s string) string {
	k := keyOf(s)
	if k == "" {
		return ""
	}
	if strings.IndexFunc(k, unicode.IsLetter) >= 0 {
		return k
	}
	switch {
	case len(k) >= 5:
		return k[:5]
	case len(k) >= 3:
		return strings.Repeat("0", 5-len(k)) + k
	}
	return ""
}

// normalizePhone keeps digits, drops the North American country code and
// rejects numbers too short to dial or made of one repeated digit.
func normalizePhone(s string) string {
	var buf [32]byte // the digits of a usual number, on the stack
	b := buf[:0]
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b = append(b, s[i])
		}
	}
	if len(b) == 11 && b[0] == '1' {
		b = b[1:]
	}
	if len(b) < 7 || bytes.Count(b, b[:1]) == len(b) {
		return ""
	}
	return string(b)
}

func normalizeEmail(s string) string {
	e := strings.ToLower(strings.TrimSpace(s))
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return ""
	}
	return e
}

// normalizeSSN returns the full number and its last four digits, or only the
// last four when that is all that was given. Placeholders are missing.
func normalizeSSN(s string) (full, last4 string) {
	k := keyOf(s)
	if placeholderSSNs[k] || len(k) < 4 {
		return "", ""
	}
	if len(k) == 4 {
		if isDigits(k) && k != "0000" {
			return "", k
		}
		return "", ""
	}
	if t := k[len(k)-4:]; isDigits(t) {
		last4 = t
	}
	return k, last4
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
