package mpi

import (
	"sort"
	"strings"
	"testing"
)

// sharedPasses returns the passes under which two records share a key.
func sharedPasses(a, b Record) []string {
	ka := BlockingKeys(nrm(a))
	in := map[string]bool{}
	for _, k := range ka {
		in[k] = true
	}
	passes := map[string]bool{}
	for _, k := range BlockingKeys(nrm(b)) {
		if in[k] {
			passes[passOf(k)] = true
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
	keys := BlockingKeys(nrm(r))
	if !sort.StringsAreSorted(keys) {
		t.Errorf("keys not sorted: %v", keys)
	}
	known := map[string]bool{}
	for _, pc := range passConditions {
		known[pc.pass] = true
	}
	for i, k := range keys {
		if i > 0 && keys[i-1] == k {
			t.Errorf("duplicate key %s", k)
		}
		if !known[passOf(k)] {
			t.Errorf("key %s of an unknown pass", k)
		}
		if strings.ContainsRune(k, 0) {
			t.Errorf("key %q contains NUL, which the bbolt layout uses as a separator", k)
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
