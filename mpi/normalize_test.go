package mpi

import (
	"reflect"
	"testing"
)

func TestFold(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"José", "jose"},
		{"NÚÑEZ", "nunez"},
		{"Groß", "gross"},
		{"Øster-Ærø", "oster-aero"},
		{"Łukasz", "lukasz"},
		{"plain", "plain"},
	} {
		if got := fold(c.in); got != c.want {
			t.Errorf("fold(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNormalizeNames(t *testing.T) {
	for _, c := range []struct {
		name        string
		rec         Record
		given       string
		givenParts  []string
		middle      string
		family      string
		familyParts []string
		suffix      string
	}{
		{"case and accents", Record{Given: []string{"JOSÉ"}, Family: "Núñez"}, "jose", nil, "", "nunez", nil, ""},
		{"hyphenated given", Record{Given: []string{"Mary-Jane"}, Family: "Smith"}, "maryjane", []string{"mary", "jane"}, "", "smith", nil, ""},
		{"apostrophe joins", Record{Given: []string{"Sean"}, Family: "O'Brien"}, "sean", nil, "", "obrien", nil, ""},
		{"hyphenated family", Record{Given: []string{"Nancy"}, Family: "Castro-Garcia"}, "nancy", nil, "", "castrogarcia", []string{"castro", "garcia"}, ""},
		{"particles", Record{Given: []string{"Juan"}, Family: "de la Cruz"}, "juan", nil, "", "delacruz", nil, ""},
		{"two-part family with particle", Record{Given: []string{"Ana"}, Family: "García de Lopez"}, "ana", nil, "", "garciadelopez", []string{"garcia", "lopez"}, ""},
		{"middle name and initial", Record{Given: []string{"John", "F."}, Family: "Kennedy"}, "john", nil, "f", "kennedy", nil, ""},
		{"suffix in family", Record{Given: []string{"Kenneth"}, Family: "Moore Jr."}, "kenneth", nil, "", "moore", nil, "jr"},
		{"suffix field wins", Record{Given: []string{"Kenneth"}, Family: "Moore", Suffix: "III"}, "kenneth", nil, "", "moore", nil, "iii"},
		{"title dropped", Record{Given: []string{"Dr. Alice"}, Family: "Wong"}, "alice", nil, "", "wong", nil, ""},
		{"missing given", Record{Family: "Wong"}, "", nil, "", "wong", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := Normalize(c.rec)
			if n.Given != c.given || !reflect.DeepEqual(n.GivenParts, c.givenParts) || n.Middle != c.middle ||
				n.Family != c.family || !reflect.DeepEqual(n.FamilyParts, c.familyParts) || n.Suffix != c.suffix {
				t.Errorf("got given %q %v middle %q family %q %v suffix %q", n.Given, n.GivenParts, n.Middle, n.Family, n.FamilyParts, n.Suffix)
			}
		})
	}
}

func TestNormalizeNicknameCodes(t *testing.T) {
	bill := Normalize(Record{Given: []string{"Bill"}})
	william := Normalize(Record{Given: []string{"William"}})
	if !reflect.DeepEqual(bill.FormalCodes, william.FormalCodes) {
		t.Errorf("Bill %v and William %v should block under the same formal code", bill.FormalCodes, william.FormalCodes)
	}
}

func TestNormalizeFields(t *testing.T) {
	for _, c := range []struct {
		name string
		got  func() any
		want any
	}{
		{"phone punctuation", func() any { return normalizePhone("(808) 902-1145") }, "8089021145"},
		{"phone country code", func() any { return normalizePhone("+1 808 902 1145") }, "8089021145"},
		{"phone too short", func() any { return normalizePhone("911") }, ""},
		{"phone placeholder", func() any { return normalizePhone("000-000-0000") }, ""},
		{"zip+4", func() any { return normalizePostal("12345-6789") }, "12345"},
		{"zip lost leading zero", func() any { return normalizePostal("2119") }, "02119"},
		{"postcode with letters", func() any { return normalizePostal("SW1A 1AA") }, "sw1a1aa"},
		{"postal junk", func() any { return normalizePostal("12") }, ""},
		{"state name", func() any { return normalizeState("New York") }, "ny"},
		{"state code", func() any { return normalizeState("NY") }, "ny"},
		{"sex word", func() any { return normalizeSex("Female") }, "f"},
		{"sex unknown", func() any { return normalizeSex("U") }, ""},
		{"email", func() any { return normalizeEmail(" Jo.Doe@Example.org ") }, "jo.doe@example.org"},
		{"email invalid", func() any { return normalizeEmail("not-an-email") }, ""},
	} {
		if got := c.got(); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNormalizeBirthDate(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    string
		y, m, d int
	}{
		{"1980-02-03", "19800203", 1980, 2, 3},
		{"19800203", "19800203", 1980, 2, 3},
		{"1980/02/03", "19800203", 1980, 2, 3},
		{"1996-00-94", "19960094", 1996, 0, 94}, // FEBRL's corrupted dates keep their digits
		{"03 Feb 1980", "", 0, 0, 0},
		{"", "", 0, 0, 0},
		{"0000-01-01", "", 0, 0, 0},
	} {
		s, y, m, d := normalizeBirthDate(c.in)
		if s != c.want || y != c.y || m != c.m || d != c.d {
			t.Errorf("normalizeBirthDate(%q) = %q %d %d %d, want %q %d %d %d", c.in, s, y, m, d, c.want, c.y, c.m, c.d)
		}
	}
}

func TestNormalizeAddress(t *testing.T) {
	for _, c := range []struct {
		in                   string
		full, number, street string
	}{
		{"123 Main Street", "123 main st", "123", "main st"},
		{"123 Main St.", "123 main st", "123", "main st"},
		{"6098 Meadow Street", "6098 meadow st", "6098", "meadow st"},
		{"4309 Forest Court", "4309 forest ct", "4309", "forest ct"}, // the street's name is never abbreviated
		{"12 North Main Street Apartment 4", "12 n main st apt 4", "12", "n main st apt 4"},
		{"Boulevard Haussmann", "boulevard haussmann", "", "boulevard haussmann"},
	} {
		a, ok := normalizeAddressLine(c.in)
		if !ok || a.Full != c.full || a.Number != c.number || a.Street != c.street {
			t.Errorf("normalizeAddressLine(%q) = %+v, want %q %q %q", c.in, a, c.full, c.number, c.street)
		}
	}
	if _, ok := normalizeAddressLine(" , "); ok {
		t.Error("an address of punctuation should be missing")
	}
}

func TestNormalizeSSN(t *testing.T) {
	for _, c := range []struct{ in, full, last4 string }{
		{"123-45-6780", "123456780", "6780"},
		{"6789", "", "6789"},
		{"000-00-0000", "", ""},
		{"123456789", "", ""}, // a placeholder
		{"640e86524", "640e86524", "6524"},
		{"12", "", ""},
	} {
		full, last4 := normalizeSSN(c.in)
		if full != c.full || last4 != c.last4 {
			t.Errorf("normalizeSSN(%q) = %q %q, want %q %q", c.in, full, last4, c.full, c.last4)
		}
	}
}

func TestNicknameTable(t *testing.T) {
	groups, err := parseNicknames(nicknameText)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) < 500 {
		t.Errorf("nickname table has %d names, want a few hundred", len(groups))
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"bill", "william", true},
		{"peggy", "margaret", true},
		{"liam", "bill", true},
		{"jenny", "jennifer", true},
		{"sue", "susan", true},
		{"chuck", "charles", true},
		{"mary", "margaret", false},
		{"william", "robert", false},
	} {
		if got := SameGivenName(c.a, c.b); got != c.want {
			t.Errorf("SameGivenName(%q, %q) = %v", c.a, c.b, got)
		}
	}
	if _, err := parseNicknames("Bad Line"); err == nil {
		t.Error("a line without a colon should not parse")
	}
}

// TestCommonGivenNames: the list of common given names is lower case ASCII
// letters, as names are compared after normalisation, and knows the names
// twins are given alike.
func TestCommonGivenNames(t *testing.T) {
	if len(commonGivenNames) < 800 {
		t.Errorf("common given names: %d, want several hundred", len(commonGivenNames))
	}
	for name := range commonGivenNames {
		for _, r := range name {
			if r < 'a' || r > 'z' {
				t.Errorf("common given name %q is not lower case ASCII letters", name)
				break
			}
		}
	}
	for _, name := range []string{"kayla", "kara", "dustin", "justin", "gary", "larry", "megan", "morgan", "donna", "dana"} {
		if !establishedName(name) {
			t.Errorf("%q is not an established name", name)
		}
	}
	for _, typo := range []string{"karza", "brwn", "jasno"} {
		if establishedName(typo) {
			t.Errorf("%q is an established name", typo)
		}
	}
}
