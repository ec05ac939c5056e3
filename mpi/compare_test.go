package mpi

import (
	"math/rand/v2"
	"testing"

	"github.com/antzucaro/matchr"
)

func nrm(r Record) *Normalized {
	n := Normalize(r)
	return &n
}

func given(names ...string) Record { return Record{Given: names} }

func TestCompareGiven(t *testing.T) {
	for _, c := range []struct {
		a, b Record
		want int8
	}{
		{given("Mary"), given("MARY"), givenExact},
		{given("Bill"), given("William"), givenNickname},
		{given("Peggy"), given("Margaret"), givenNickname},
		{given("Chuck"), given("Chrles"), givenFuzzyHigh}, // a misspelt formal name of a nickname
		{given("Jessica"), given("Juessica"), givenFuzzyHigh},
		{given("Cheryl"), given("Cjeryl"), givenFuzzyHigh}, // one keying error
		{given("Mary"), given("Mray"), givenFuzzyHigh},
		{given("Mary"), given("Mark"), givenFuzzyLow}, // short names one letter apart: often other names
		{given("Mary Jane"), given("Mary"), givenFuzzyHigh},
		{given("J"), given("John"), givenInitial},
		{given("K"), given("John"), givenDisagree},
		{given("Robert", "James"), given("James"), givenFuzzyLow}, // known by the middle name
		{given("Tylesr"), given("Tuler"), givenWeak},
		{given("Mary"), given("Judith"), givenDisagree},
		{given("Richard"), given("Randy"), givenDisagree},
		{given(""), given("Mary"), missing},
	} {
		if got := compareGiven(nrm(c.a), nrm(c.b)); got != c.want {
			t.Errorf("%v / %v: level %s, want %s", c.a.Given, c.b.Given, levelName(fGiven, got), levelName(fGiven, c.want))
		}
		if got := compareGiven(nrm(c.b), nrm(c.a)); got != c.want {
			t.Errorf("%v / %v reversed: level %s, want %s", c.a.Given, c.b.Given, levelName(fGiven, got), levelName(fGiven, c.want))
		}
	}
}

func levelName(field int, l int8) string {
	if l == missing {
		return "missing"
	}
	return levelNames[field][l]
}

func TestCompareMiddle(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int8
	}{
		{"Helen", "Helen", middleExact},
		{"H", "Helen", middleInitial},
		{"H", "H", middleInitial},
		{"Helen", "Helan", middleFuzzy},
		{"Helen", "Amy", middleDisagree},
		{"", "Amy", missing},
	} {
		if got := compareMiddle(nrm(given("X", c.a)), nrm(given("X", c.b))); got != c.want {
			t.Errorf("%q / %q: %s, want %s", c.a, c.b, levelName(fMiddle, got), levelName(fMiddle, c.want))
		}
	}
}

func TestCompareFamily(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int8
	}{
		{"Smith", "SMITH", familyExact},
		{"Castro", "Castro-Garcia", familyPart}, // a married double name
		{"Garcia Lopez", "Lopez Ruiz", familyPart},
		{"Washington", "Washinton", familyFuzzyHigh},
		{"Moore", "Mopre", familyFuzzyHigh},
		{"Jones", "Harrison", familyDisagree}, // a married name
		{"", "Jones", missing},
	} {
		if got := compareFamily(nrm(Record{Family: c.a}), nrm(Record{Family: c.b})); got != c.want {
			t.Errorf("%q / %q: %s, want %s", c.a, c.b, levelName(fFamily, got), levelName(fFamily, c.want))
		}
	}
}

func TestCompareBirth(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int8
	}{
		{"1980-02-03", "19800203", birthExact},
		{"1980-02-03", "1980-03-02", birthTransposed},
		{"1940-02-04", "1950-02-04", birthTypo},    // one digit of the year
		{"1941-06-07", "1941-06-08", birthTypo},    // one digit of the day
		{"1981-09-07", "1918-09-07", birthTypo},    // adjacent digits swapped
		{"1981-09-07", "1958-09-07", birthOnePart}, // two digits of the year
		{"1972-04-01", "1997-04-01", birthOnePart},
		{"1972-04-01", "1997-05-01", birthDisagree},
		{"", "1997-05-01", missing},
	} {
		if got := compareBirth(nrm(Record{BirthDate: c.a}), nrm(Record{BirthDate: c.b})); got != c.want {
			t.Errorf("%s / %s: %s, want %s", c.a, c.b, levelName(fBirth, got), levelName(fBirth, c.want))
		}
	}
}

func TestCompareContact(t *testing.T) {
	addr := func(lines ...string) *Normalized { return nrm(Record{AddressLines: lines}) }
	for _, c := range []struct {
		name string
		got  int8
		want int8
	}{
		{"address abbreviations", compareAddress(addr("6098 Meadow Street"), addr("6098 Meadow St")), addressExact},
		{"address typo", compareAddress(addr("177 Pridham Street"), addr("177 Pridhamp Street")), addressFuzzyHigh},
		{"address lines swapped", compareAddress(addr("121 Ethnam Farm", "Blackbutt Street"), addr("121 Blackbutt Street", "Ethnam Farm")), addressFuzzyHigh},
		{"address no number", compareAddress(addr("Burnage Place"), addr("39 Burnage Place")), addressFuzzyHigh},
		{"address number typo", compareAddress(addr("12 Oak Road"), addr("14 Oak Road")), addressFuzzyHigh},
		{"address other house", compareAddress(addr("12 Oak Road"), addr("48 Oak Road")), addressFuzzyLow},
		{"address same house, typo", compareAddress(addr("12 Oak Road"), addr("12 Oka Road")), addressFuzzyHigh},
		{"address moved", compareAddress(addr("3127 Oak Road"), addr("8623 Park Lane")), addressDisagree},
		{"bare numbers", compareAddress(addr("9"), addr("5")), addressDisagree},
		{"city", compareCity(nrm(Record{City: "Winston Hills"}), nrm(Record{City: "winstonhills"})), cityExact},
		{"city typo", compareCity(nrm(Record{City: "Maitland"}), nrm(Record{City: "Maitkand"})), cityExact},
		{"state", compareState(nrm(Record{State: "Oregon"}), nrm(Record{State: "OR"})), agree},
		{"postal", comparePostal(nrm(Record{PostalCode: "97311"}), nrm(Record{PostalCode: "97311-1234"})), postalExact},
		{"postal transposed", comparePostal(nrm(Record{PostalCode: "2139"}), nrm(Record{PostalCode: "2193"})), postalTypo},
		{"postal nearby", comparePostal(nrm(Record{PostalCode: "97311"}), nrm(Record{PostalCode: "97399"})), postalDisagree},
		{"phone format", comparePhone(nrm(Record{Phones: []string{"(335) 604-2247"}}), nrm(Record{Phones: []string{"3356042247"}})), phoneExact},
		{"phone any of several", comparePhone(nrm(Record{Phones: []string{"5551234567", "3356042247"}}), nrm(Record{Phones: []string{"3356042247"}})), phoneExact},
		{"phone typo", comparePhone(nrm(Record{Phones: []string{"3356042247"}}), nrm(Record{Phones: []string{"3356042274"}})), phoneTypo},
		{"phone area code", comparePhone(nrm(Record{Phones: []string{"3356042247"}}), nrm(Record{Phones: []string{"9096042247"}})), phoneLast7},
		{"email", compareEmail(nrm(Record{Email: "A@b.org"}), nrm(Record{Email: "a@b.org"})), emailExact},
		{"email numbered", compareEmail(nrm(Record{Email: "jennifer.hernandez48@x.org"}), nrm(Record{Email: "jennifer.hernandez80@x.org"})), emailDisagree},
		{"ssn", compareSSN(nrm(Record{SSN: "123-45-6780"}), nrm(Record{SSN: "123456780"})), ssnExact},
		{"ssn transposed", compareSSN(nrm(Record{SSN: "779821035"}), nrm(Record{SSN: "779821053"})), ssnTypo},
		{"ssn letter for digit", compareSSN(nrm(Record{SSN: "640e86524"}), nrm(Record{SSN: "640886524"})), ssnTypo},
		{"ssn dropped digit", compareSSN(nrm(Record{SSN: "345796069"}), nrm(Record{SSN: "34579609"})), ssnTypo},
		{"ssn last 4", compareSSN(nrm(Record{SSN: "123456780"}), nrm(Record{SSN: "6780"})), ssnLast4},
		{"ssn last 4 differ", compareSSN(nrm(Record{SSN: "123456780"}), nrm(Record{SSN: "6781"})), ssnDisagree},
		{"ssn missing", compareSSN(nrm(Record{}), nrm(Record{SSN: "6781"})), missing},
		{"sex", compareSex(nrm(Record{Sex: "F"}), nrm(Record{Sex: "female"})), agree},
		{"sex unknown", compareSex(nrm(Record{Sex: "U"}), nrm(Record{Sex: "female"})), missing},
	} {
		if c.got != c.want {
			t.Errorf("%s: level %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestWithinOneEdit(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"abc", "abc", true}, {"abc", "abd", true}, {"abc", "acb", true}, {"abc", "ab", true},
		{"abc", "xabc", true}, {"abc", "cba", false}, {"abcd", "ab", false}, {"", "a", true}, {"", "ab", false},
	} {
		if got := withinOneEdit(c.a, c.b); got != c.want {
			t.Errorf("withinOneEdit(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestJaroWinklerAtLeastAgreesWithLibrary(t *testing.T) {
	names := []string{"martha", "marhta", "dwayne", "duane", "dixon", "dicksonx", "mary", "judith", "jose", "josé", "", "a"}
	for _, a := range names {
		for _, b := range names {
			full := jaroWinkler(a, b)
			for _, min := range []float64{0, 0.7, 0.85, 0.92} {
				got := jaroWinklerAtLeast(a, b, min)
				if full >= min && got != full {
					t.Errorf("jaroWinklerAtLeast(%q, %q, %v) = %v, library says %v", a, b, min, got, full)
				}
				if full < min && got >= min {
					t.Errorf("jaroWinklerAtLeast(%q, %q, %v) = %v above the bound", a, b, min, got)
				}
			}
		}
	}
}

// TestJaroWinklerASCIIIsTheLibrary holds the allocation-free port to the
// library bit for bit, on names, typos, digits and random strings.
func TestJaroWinklerASCIIIsTheLibrary(t *testing.T) {
	words := []string{"martha", "marhta", "dwayne", "duane", "dixon", "dicksonx", "mary", "judith", "a", "ab", "ba",
		"crate", "trace", "1234 main st", "1243 main st", "12", "21", "abcd", "abdc", "jellyfish", "smellyfish",
		"hensman st", "hensmann st", "o", "oo", "aaaa", "aaab"}
	rng := rand.New(rand.NewPCG(3, 3))
	for i := 0; i < 3000; i++ {
		n := 1 + rng.IntN(14)
		b := make([]byte, n)
		for j := range b {
			b[j] = "abcde12 "[rng.IntN(8)]
		}
		words = append(words, string(b))
	}
	for i, a := range words {
		for _, b := range words[max(0, i-40) : i+1] {
			if got, want := jaroWinklerASCII(a, b), matchr.JaroWinkler(a, b, false); got != want {
				t.Fatalf("jaroWinklerASCII(%q, %q) = %v, library %v", a, b, got, want)
			}
			if got, want := jaroWinklerASCII(b, a), matchr.JaroWinkler(b, a, false); got != want {
				t.Fatalf("jaroWinklerASCII(%q, %q) = %v, library %v", b, a, got, want)
			}
		}
	}
}
