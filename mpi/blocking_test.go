package mpi

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// sharedPasses returns the passes under which two records share a key.
func sharedPasses(a, b Record) []string {
	ka := BlockingKeys(nrm(a))
	in := map[string]bool{}
	for _, k := range ka {
		in[k.Key] = true
	}
	passes := map[string]bool{}
	for _, k := range BlockingKeys(nrm(b)) {
		if in[k.Key] {
			passes[passOf(k.Key)] = true
		}
	}
	var out []string
	for p := range passes {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func TestBlockingPasses(t *testing.T) {
	base := person("1", "William", "", "Turner", "1932-01-26", "M", "6730 Oak Court", "62760", "5398966397", "123-45-6780")
	base.Email = "w.turner@example.org"
	mod := func(f func(r *Record)) Record {
		r := base
		r.Value = "2"
		r.Given = append([]string(nil), base.Given...)
		f(&r)
		return r
	}
	for _, c := range []struct {
		name string
		b    Record
		want []string // passes that must still meet
	}{
		{"married: new family name", mod(func(r *Record) { r.Family = "Harrison" }), []string{passBirthDate, passGivenMonthDay, passGivenYear, passPhone, passSSN}},
		{"moved: new address, phone and postal code", mod(func(r *Record) {
			r.AddressLines, r.PostalCode, r.City, r.Phones = []string{"12 Elm Street"}, "97301", "Portland", nil
		}), []string{passBirthDate, passFamilyYear, passNames, passSSN}},
		{"day and month transposed", mod(func(r *Record) { r.BirthDate = "1932-26-01" }), []string{passBirthDate}},
		{"nickname", mod(func(r *Record) { r.Given = []string{"Bill"} }), []string{passGivenMonthDay, passGivenYear, passPostalName}},
		{"given and family swapped", mod(func(r *Record) { r.Given, r.Family = []string{"Turner"}, "William" }), []string{passNames, passPostalName, passNameCity, passNameStreet}},
		{"wrong birth date", mod(func(r *Record) { r.BirthDate = "1923-11-10" }), []string{passNames, passPostalName, passNameStreet, passNameCity, passAddress, passNumberPostal}},
		{"typo in family name", mod(func(r *Record) { r.Family = "Turnrr" }), []string{passBirthDate, passGivenYear}},
		// Only the initials and the birth year are left: both names misspelt
		// past their phonetic codes, a day mistyped, a move and no SSN.
		{"misspelt names, a mistyped day, moved", mod(func(r *Record) {
			r.Given, r.Family, r.BirthDate = []string{"Wlilam"}, "Trunre", "1932-01-28"
			r.AddressLines, r.PostalCode, r.City, r.Phones, r.SSN, r.Email = []string{"12 Elm Street"}, "97301", "Portland", nil, "", ""
		}), []string{passInitialsYear}},
		{"names swapped and misspelt, a mistyped month, moved", mod(func(r *Record) {
			r.Given, r.Family, r.BirthDate = []string{"Trunre"}, "Wlilam", "1932-07-26"
			r.AddressLines, r.PostalCode, r.City, r.Phones, r.SSN, r.Email = []string{"12 Elm Street"}, "97301", "Portland", nil, "", ""
		}), []string{passInitialsYear}},
		{"everything moved but the SSN", mod(func(r *Record) {
			r.Given, r.Family, r.BirthDate, r.AddressLines, r.PostalCode, r.City, r.Phones, r.Email = []string{"Liam"}, "Xu", "", nil, "", "", nil, ""
		}), []string{passSSN}},
		{"everything moved but the e-mail", mod(func(r *Record) {
			r.Given, r.Family, r.BirthDate, r.AddressLines, r.PostalCode, r.City, r.Phones, r.SSN = []string{"Liam"}, "Xu", "", nil, "", "", nil, ""
		}), []string{passEmail}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sharedPasses(base, c.b)
			for _, p := range c.want {
				if !contains(got, p) {
					t.Errorf("pass %s does not meet; shared passes %v", p, got)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestBlockingKeysSortedUniqueAndKnown(t *testing.T) {
	r := person("1", "Mary", "Ann", "Castro-Garcia", "1975-12-13", "F", "3972 View Ave", "93761", "2904435669", "")
	r.AddressLines = append(r.AddressLines, "Apt 4")
	blocks := BlockingKeys(nrm(r))
	if !slices.IsSortedFunc(blocks, func(a, b Block) int { return strings.Compare(a.Key, b.Key) }) {
		t.Errorf("blocks not sorted by key: %v", blocks)
	}
	known := map[string]bool{}
	for _, pc := range passConditions {
		known[pc.pass] = true
	}
	for i, b := range blocks {
		if i > 0 && blocks[i-1].Key == b.Key {
			t.Errorf("duplicate key %s", b.Key)
		}
		if !known[passOf(b.Key)] {
			t.Errorf("key %s of an unknown pass", b.Key)
		}
		if strings.ContainsRune(b.Key+b.Sort, 0) {
			t.Errorf("block %q contains NUL, which the store layouts use as a separator", b)
		}
	}
	// A sort value is a field the pass does not select on.
	for _, b := range blocks {
		if p := passOf(b.Key); (p == passNameCity || p == passPostalName || p == passNames) && b.Sort != "19751213" {
			t.Errorf("block %s sorts by %q, want the birth date", b.Key, b.Sort)
		}
	}
	// A hyphenated family name blocks under each part too (Castro / Castro-Garcia).
	if got := sharedPasses(r, person("2", "Mary", "", "Castro", "1975-12-13", "F", "", "", "", "")); !contains(got, passFamilyYear) {
		t.Errorf("Castro and Castro-Garcia share no family pass: %v", got)
	}
	if len(BlockingKeys(nrm(Record{}))) != 0 {
		t.Error("an empty record has blocking keys")
	}
}

// TestBlockJSONReadsPlainKeys checks that records stored before blocks had
// sort values (a list of key strings) still decode.
func TestBlockJSONReadsPlainKeys(t *testing.T) {
	var sr StoredRecord
	if err := json.Unmarshal([]byte(`{"key":"a|1","blocks":["db:1980|0101",{"k":"nc:SM0|x","s":"19800101"}]}`), &sr); err != nil {
		t.Fatal(err)
	}
	want := []Block{{Key: "db:1980|0101"}, {Key: "nc:SM0|x", Sort: "19800101"}}
	if !slices.Equal(sr.Blocks, want) {
		t.Errorf("blocks %v, want %v", sr.Blocks, want)
	}
}

// Keys are stored and shown as text: a name that begins with a letter of several bytes
// (Cyrillic, Greek) must give whole letters, not the first byte of one.
func TestBlockingKeysAreText(t *testing.T) {
	r := person("1", "Дмитрий", "", "Иванов", "1980-01-02", "M", "", "", "", "")
	var initials string
	for _, b := range BlockingKeys(nrm(r)) {
		if !utf8.ValidString(b.Key) || !utf8.ValidString(b.Sort) {
			t.Errorf("block %q (sort %q) is not text", b.Key, b.Sort)
		}
		if passOf(b.Key) == passInitialsYear {
			initials = b.Key
		}
	}
	if initials != "iy:1980|д|и" {
		t.Errorf("initials block %q, want iy:1980|д|и", initials)
	}
}
