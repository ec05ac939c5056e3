package synth

import (
	"cmp"
	"slices"
	"strings"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/mpi/dataset"
)

// Profile describes a labelled population: its structure, and what
// changes between the records of one person and how often. It is how the
// default knobs were read from population-20k (`rls mpi profile FILE`),
// and how a generated population is checked against them.
//
// Changes are measured against the person's modal value of the field
// (lower case; on a tie the earliest in the file) over the records of
// persons with two or more records: a field's shares add up to one.
type Profile struct {
	Persons int `json:"persons"`
	Records int `json:"records"`
	// RecordsPerPerson are the shares of persons with 1, 2, 3 and 4 or
	// more records.
	RecordsPerPerson [4]float64 `json:"records_per_person"`
	// Twins and Juniors count P<N>t and P<N>j labels beside a P<N>.
	Twins      int `json:"twins"`
	Juniors    int `json:"juniors"`
	Facilities int `json:"facilities"`
	ZIPs       int `json:"zips"`
	Cities     int `json:"cities"`
	// TopFamilyShare is the share of persons whose (modal) family name is
	// the most common one; RareFamilyShare the share whose family name at
	// most ten other persons of the file share.
	TopFamily       string  `json:"top_family"`
	TopFamilyShare  float64 `json:"top_family_share"`
	RareFamilyShare float64 `json:"rare_family_share"`
	// SharedAddress is the share of persons whose (modal) address line and
	// ZIP another person, not their twin or junior, also has.
	SharedAddress float64 `json:"shared_address"`
	// Changes maps a field to the shares of its kinds of change.
	Changes map[string]map[string]float64 `json:"changes"`
}

// ProfileRows measures a labelled population.
func ProfileRows(rows []dataset.Row) Profile {
	p := Profile{Records: len(rows), Changes: map[string]map[string]float64{}}
	var order []string
	byLabel := map[string][]*dataset.Row{}
	facilities, zips, cities := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := range rows {
		r := &rows[i]
		if byLabel[r.Label] == nil {
			order = append(order, r.Label)
		}
		byLabel[r.Label] = append(byLabel[r.Label], r)
		facilities[r.Record.System] = true
		if r.Record.PostalCode != "" {
			zips[first5(r.Record.PostalCode)] = true
		}
		if r.Record.City != "" {
			cities[strings.ToLower(r.Record.City)+"|"+r.Record.State] = true
		}
	}
	p.Persons, p.Facilities, p.ZIPs, p.Cities = len(byLabel), len(facilities), len(zips), len(cities)
	counts := map[string]float64{}
	add := func(field, kind string) {
		if p.Changes[field] == nil {
			p.Changes[field] = map[string]float64{}
		}
		p.Changes[field][kind]++
		counts[field]++
	}
	families := map[string]int{}
	addresses := map[string]map[string]bool{}
	for _, label := range order {
		rs := byLabel[label]
		p.RecordsPerPerson[min(len(rs), 4)-1]++
		if base := strings.TrimRight(label, "tj"); len(label)-len(base) == 1 && byLabel[base] != nil {
			if label[len(label)-1] == 't' {
				p.Twins++
			} else {
				p.Juniors++
			}
		}
		family := modal(rs, func(r *dataset.Row) string { return strings.ToLower(r.Record.Family) })
		families[family]++
		addr := modal(rs, func(r *dataset.Row) string {
			if len(r.Record.AddressLines) == 0 {
				return ""
			}
			return strings.ToLower(r.Record.AddressLines[0]) + "|" + first5(r.Record.PostalCode)
		})
		if addr != "" {
			if addresses[addr] == nil {
				addresses[addr] = map[string]bool{}
			}
			addresses[addr][strings.TrimRight(label, "tj")] = true
		}
		if len(rs) > 1 {
			profilePerson(rs, add)
		}
	}
	for i := range p.RecordsPerPerson {
		p.RecordsPerPerson[i] /= float64(max(1, p.Persons))
	}
	for field, kinds := range p.Changes {
		for k := range kinds {
			kinds[k] /= counts[field]
		}
	}
	top := 0
	for name, n := range families {
		if n > top || n == top && name < p.TopFamily {
			p.TopFamily, top = name, n
		}
		if n <= 11 {
			p.RareFamilyShare += float64(n)
		}
	}
	p.TopFamilyShare = float64(top) / float64(max(1, p.Persons))
	p.RareFamilyShare /= float64(max(1, p.Persons))
	shared := 0
	for _, labels := range addresses {
		if len(labels) > 1 {
			for range labels {
				shared++
			}
		}
	}
	p.SharedAddress = float64(shared) / float64(max(1, p.Persons))
	return p
}

func first5(zip string) string {
	if len(zip) > 5 {
		return zip[:5]
	}
	return zip
}

// modal is the most common value of a person's records (the earliest on a tie).
func modal(rs []*dataset.Row, value func(*dataset.Row) string) string {
	n := map[string]int{}
	best := ""
	for _, r := range rs {
		v := value(r)
		n[v]++
		if n[v] > n[best] || best == "" && n[v] == n[best] {
			best = v
		}
	}
	return best
}

func given(r *dataset.Row) string {
	if len(r.Record.Given) == 0 {
		return ""
	}
	return strings.ToLower(r.Record.Given[0])
}

func middle(r *dataset.Row) string {
	if len(r.Record.Given) < 2 {
		return ""
	}
	return strings.ToLower(r.Record.Given[1])
}

func digits(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= '0' && c <= '9' {
			return c
		}
		return -1
	}, s)
}

func profilePerson(rs []*dataset.Row, add func(field, kind string)) {
	mGiven := modal(rs, given)
	mFamily := modal(rs, func(r *dataset.Row) string { return strings.ToLower(r.Record.Family) })
	mBirth := modal(rs, func(r *dataset.Row) string { return r.Record.BirthDate })
	mAddr := modal(rs, func(r *dataset.Row) string {
		if len(r.Record.AddressLines) == 0 {
			return ""
		}
		return strings.ToLower(r.Record.AddressLines[0])
	})
	mCity := modal(rs, func(r *dataset.Row) string { return strings.ToLower(r.Record.City) })
	mZIP := modal(rs, func(r *dataset.Row) string { return first5(r.Record.PostalCode) })
	mPhone := modal(rs, func(r *dataset.Row) string {
		if len(r.Record.Phones) == 0 {
			return ""
		}
		return digits(r.Record.Phones[0])
	})
	mSSN := modal(rs, func(r *dataset.Row) string { return strings.ToLower(strings.ReplaceAll(r.Record.SSN, "-", "")) })
	mMiddle := modal(rs, middle)
	mSex := modal(rs, func(r *dataset.Row) string {
		if r.Record.Sex == "U" {
			return ""
		}
		return r.Record.Sex
	})
	for _, r := range rs {
		g, f := given(r), strings.ToLower(r.Record.Family)
		add("given_name", nameChange(g, mGiven, mFamily, true))
		add("family_name", nameChange(f, mFamily, mGiven, false))
		add("birth_date", birthChange(r.Record.BirthDate, mBirth))
		a := ""
		if len(r.Record.AddressLines) > 0 {
			a = strings.ToLower(r.Record.AddressLines[0])
		}
		switch fa, fm := strings.Fields(a), strings.Fields(mAddr); {
		case a == "":
			add("address_line", "missing")
		case a == mAddr:
			add("address_line", "same")
		case len(fa) > 1 && len(fm) > 1 && fa[0] == fm[0] && fa[1] == fm[1]:
			add("address_line", "abbreviated or unit")
		default:
			add("address_line", "moved")
		}
		add("city", sameOr(strings.ToLower(r.Record.City), mCity, "changed"))
		add("postal_code", sameOr(first5(r.Record.PostalCode), mZIP, "changed"))
		ph := ""
		if len(r.Record.Phones) > 0 {
			ph = r.Record.Phones[0]
			if strings.HasPrefix(ph, "(") {
				add("phone_format", "(xxx) xxx-xxxx")
			} else if digits(ph) == ph {
				add("phone_format", "digits")
			} else {
				add("phone_format", "other")
			}
		} else {
			add("phone_format", "missing")
		}
		switch d := digits(ph); {
		case d == "":
			add("phone", "missing")
		case d == mPhone:
			add("phone", "same")
		case editDistance(d, mPhone) == 1:
			add("phone", "typo")
		default:
			add("phone", "changed")
		}
		switch s := strings.ToLower(strings.ReplaceAll(r.Record.SSN, "-", "")); {
		case s == "":
			add("ssn", "missing")
		case s == mSSN:
			add("ssn", "same")
		case mSSN != "" && editDistance(s, mSSN) == 1:
			add("ssn", "typo")
		default:
			add("ssn", "other")
		}
		if r.Record.Email == "" {
			add("email", "missing")
		} else {
			add("email", "present")
		}
		switch m := middle(r); {
		case m == "":
			add("middle_name", "missing")
		case len(m) == 1:
			add("middle_name", "initial")
		case m == mMiddle:
			add("middle_name", "same")
		default:
			add("middle_name", "other")
		}
		switch {
		case r.Record.Sex == "U" || r.Record.Sex == "":
			add("sex", "unknown")
		case r.Record.Sex != mSex:
			add("sex", "wrong")
		default:
			add("sex", "same")
		}
		if len(r.Record.Given) > 0 && len(r.Record.Given[0]) > 1 && r.Record.Given[0] == strings.ToUpper(r.Record.Given[0]) {
			add("given_name_case", "capitals")
		} else {
			add("given_name_case", "other")
		}
	}
}

func sameOr(v, m, other string) string {
	switch {
	case v == "":
		return "missing"
	case v == m:
		return "same"
	}
	return other
}

// nameChange classifies a given (isGiven) or family name against the
// person's modal one; other is the modal name of the other kind, to find
// swaps.
func nameChange(v, m, other string, isGiven bool) string {
	switch {
	case v == "":
		return "missing"
	case v == m:
		return "same"
	case isGiven && mpi.SameGivenName(v, m):
		return "nickname"
	case len(v) == 1:
		return "initial"
	case editDistance(v, m) == 1:
		return "typo"
	case other != "" && editDistance(v, other) <= 1:
		return "given/family swap"
	case !isGiven && (slices.Contains(strings.FieldsFunc(v, isSeparator), m) || slices.Contains(strings.FieldsFunc(m, isSeparator), v)):
		return "one part of two (hyphen, second surname, suffix)"
	case editDistance(v, m) == 2:
		return "two edits"
	}
	return "other (married name, nickname outside mpi's table)"
}

func isSeparator(r rune) bool { return r == '-' || r == ' ' }

func birthChange(v, m string) string {
	if v == "" || m == "" || len(v) != 10 || len(m) != 10 {
		return cmp.Or(sameOr(v, m, "other"), "other")
	}
	y, mo, d := v[:4], v[5:7], v[8:]
	my, mmo, md := m[:4], m[5:7], m[8:]
	switch {
	case v == m:
		return "same"
	case y == my && mo == md && d == mmo:
		return "day and month swapped"
	case y == my && mo == mmo:
		return "day"
	case y == my && d == md:
		return "month"
	case mo == mmo && d == md:
		if yd := atoi(y) - atoi(my); yd == 10 || yd == -10 {
			return "year ±10"
		} else if yd == 1 || yd == -1 {
			return "year ±1"
		}
		return "year, other"
	}
	return "other"
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// editDistance is the optimal string alignment distance of a and b: insertions,
// deletions, substitutions and transpositions of adjacent characters, each counting one
// (the keying errors the generator makes), over bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
