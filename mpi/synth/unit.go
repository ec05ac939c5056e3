package synth

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The records span ten years; ages are counted at the end of the span.
var (
	spanStart = days(2016, 1, 1)
	spanEnd   = days(2026, 1, 1)
)

// ageBands weighs 5-year age bands 0–4 … 100–104 like the US population
// (2020 census, millions).
var ageBands = []float64{19.4, 20.4, 21.6, 21.6, 21.0, 22.3, 22.5, 21.7, 20.9, 20.3, 20.8,
	21.5, 20.5, 17.5, 14.5, 9.9, 6.5, 3.9, 1.8, 0.5, 0.1}

var ageCum = func() []float64 {
	var cum []float64
	t := 0.0
	for age := range 5 * len(ageBands) {
		t += ageBands[age/5]
		cum = append(cum, t)
	}
	return cum
}()

// drawAge draws an age in years within [lo, hi] from the US age pyramid.
func drawAge(r *rand.Rand, lo, hi int) int {
	hi = min(hi, len(ageCum)-1)
	lo = max(0, min(lo, hi))
	base := 0.0
	if lo > 0 {
		base = ageCum[lo-1]
	}
	x := base + r.Float64()*(ageCum[hi]-base)
	return min(hi, max(lo, sort.SearchFloat64s(ageCum, x)))
}

// unit kinds: a unit is the persons generated together — a household, or
// a family whose grown children (or a twin, or a junior) live elsewhere.
const (
	kindRegular uint8 = iota
	kindTwin
	kindJunior
)

type unitShape struct {
	firstPerson uint32
	size        uint8
	kind        uint8
}

type role uint8

const (
	roleSingle role = iota
	roleHead
	rolePartner
	roleChild
	roleRoommate
)

type person struct {
	index int
	label string
	role  role
	sex   int // 0 F, 1 M
	age   int
	grp   group

	given, nick, middle string
	// family is the family name at the start of the span; from marriedDay
	// on the records say married instead.
	family, second, married string
	marriedDay              int
	suffix                  string

	birth      int // days since 1970-01-01
	by, bm, bd int
	hasSSN     bool
	email      string

	res           int // index into unitBuf.res
	mobiles       []phoneEpoch
	prefersMobile bool
	phoneOf       int // member whose mobile a young child's records carry, -1 for none

	records  []recSpec
	twinOf   int // co-twin member index, -1
	juniorOf int // father member index, -1
}

type phoneEpoch struct {
	from   int
	number uint64
}

type addrEpoch struct {
	from     int
	addr     address
	landline uint64 // 0 for none
}

type residence struct{ epochs []addrEpoch }

type recSpec struct {
	day      int
	facility int
}

// unitBuf holds one generated unit; it is reused from unit to unit.
type unitBuf struct {
	src     *source
	persons []person
	res     []residence
	unit    int
}

func newUnitBuf() *unitBuf { return &unitBuf{src: newSource(), unit: -1} }

func (b *unitBuf) reset(n int) {
	for cap(b.persons) < n {
		b.persons = append(b.persons[:cap(b.persons)], person{})
	}
	b.persons = b.persons[:n]
	for i := range b.persons {
		p := &b.persons[i]
		*p = person{mobiles: p.mobiles[:0], records: p.records[:0], twinOf: -1, juniorOf: -1, phoneOf: -1}
	}
	for i := range b.res {
		b.res[i].epochs = b.res[i].epochs[:0]
	}
	b.res = b.res[:0]
}

func (b *unitBuf) newResidence() int {
	if len(b.res) < cap(b.res) {
		b.res = b.res[:len(b.res)+1]
		b.res[len(b.res)-1].epochs = b.res[len(b.res)-1].epochs[:0]
	} else {
		b.res = append(b.res, residence{})
	}
	return len(b.res) - 1
}

// buildUnit generates unit u in full: persons, names, homes, phones and
// record specifications. It depends only on the seed and u.
func (g *generator) buildUnit(u int, sh unitShape, b *unitBuf) {
	r := b.src.at(g.seed, streamUnit, uint64(u))
	n := int(sh.size)
	b.reset(n)
	b.unit = u
	ps := b.persons
	for i := range ps {
		ps[i].index = int(sh.firstPerson) + i
	}
	g.planRoles(r, sh, ps)

	family, grp := g.familyName(r)
	home := b.newResidence()
	g.settle(r, b, home, ps[0].index, -1, g.geo.pickZIP(r), 1)

	for i := range ps {
		p := &ps[i]
		p.res = home
		p.family, p.grp = family, grp
		switch {
		case p.role == roleRoommate && i > 0:
			p.family, p.grp = g.familyName(r)
		case p.role == rolePartner:
			g.partnerName(r, p, family)
		case p.role == roleChild && i > 0 && ps[1].role == rolePartner && ps[1].married == "" && ps[1].family != family && chance(r, 0.1):
			p.family, p.grp = ps[1].family, ps[1].grp
		}
		if p.grp == groupHispanic && chance(r, 0.25) {
			p.second = g.hispanicSurname(r)
		}
		g.birth(r, p)
		if p.twinOf >= 0 {
			co := &ps[p.twinOf]
			p.birth, p.by, p.bm, p.bd = co.birth, co.by, co.bm, co.bd
		}
	}
	g.names(r, ps)
	g.awayAndMarriages(r, b)
	for i := range ps {
		g.identifiers(r, b, i)
	}
	g.ensurePhones(r, b)
	for i := range ps {
		g.recordSpecs(r, &ps[i])
	}
	g.labels(ps)
}

// planRoles sets each member's role, sex and age, and marks twins and
// juniors.
func (g *generator) planRoles(r *rand.Rand, sh unitShape, ps []person) {
	n := len(ps)
	if n == 1 {
		ps[0].role, ps[0].sex, ps[0].age = roleSingle, r.IntN(2), drawAge(r, 0, 104)
		return
	}
	switch sh.kind {
	case kindTwin:
		if n == 2 {
			age := drawAge(r, 0, 95)
			ps[0].role, ps[1].role = roleSingle, roleSingle
			ps[0].sex, ps[0].age, ps[1].age = r.IntN(2), age, age
			ps[1].sex = twinSex(r, ps[0].sex)
			ps[1].twinOf = 0
			return
		}
		adults := 1
		if n >= 4 {
			adults = 2
		}
		g.family(r, ps, adults, -1)
		first := adults
		ps[first+1].age = ps[first].age
		ps[first+1].sex = twinSex(r, ps[first].sex)
		ps[first+1].twinOf = first
		return
	case kindJunior:
		adults := 1
		if n >= 3 {
			adults = 2
		}
		g.family(r, ps, adults, drawAge(r, 36, 95))
		ps[0].sex = 1
		if adults == 2 {
			ps[1].sex = 0
		}
		son := &ps[adults]
		son.sex = 1
		son.age = max(0, ps[0].age-18-r.IntN(28))
		son.juniorOf = 0
		return
	}
	partner := chance(r, 0.72)
	if !partner && n == 2 && chance(r, 0.3) {
		for i := range ps {
			ps[i].role, ps[i].sex, ps[i].age = roleRoommate, r.IntN(2), drawAge(r, 18, 90)
		}
		return
	}
	adults := 1
	if partner {
		adults = 2
	}
	g.family(r, ps, adults, -1)
}

func twinSex(r *rand.Rand, co int) int {
	if chance(r, 2.0/3) {
		return co
	}
	return 1 - co
}

// family sets a head (of headAge, or drawn when it is -1), an optional
// partner and children born to them.
func (g *generator) family(r *rand.Rand, ps []person, adults, headAge int) {
	kids := len(ps) - adults
	head := &ps[0]
	head.role = roleHead
	switch {
	case headAge >= 0:
		head.age = headAge
	case kids > 0:
		head.age = drawAge(r, 22, 68)
	default:
		head.age = drawAge(r, 18, 95)
	}
	motherAge := head.age
	if adults == 2 {
		head.sex = 1
		if chance(r, 0.05) {
			head.sex = 0
		}
		pt := &ps[1]
		pt.role = rolePartner
		pt.sex = 1 - head.sex
		if chance(r, 0.04) {
			pt.sex = head.sex
		}
		pt.age = max(18, head.age+int(math.Round(r.NormFloat64()*4-2)))
		if pt.sex == 0 {
			motherAge = pt.age
		}
	} else {
		head.sex = 0
		if kids == 0 || chance(r, 0.3) {
			head.sex = r.IntN(2)
		}
	}
	for i := adults; i < len(ps); i++ {
		c := &ps[i]
		c.role, c.sex = roleChild, r.IntN(2)
		gap := 18 + r.IntN(max(1, min(25, motherAge-17)))
		c.age = max(0, motherAge-gap)
	}
}

// partnerName gives a partner the head's family name (most wives, a few
// husbands), hyphenated, or their own; a marriage inside the span shows
// the maiden name on the records before it.
func (g *generator) partnerName(r *rand.Rand, p *person, headFamily string) {
	own, grp := g.familyName(r)
	took := (p.sex == 0 && chance(r, 0.8)) || (p.sex == 1 && chance(r, 0.03))
	if !took {
		p.family, p.grp = own, grp
		return
	}
	married := headFamily
	if chance(r, g.k.Hyphenate*0.5) {
		married = own + "-" + headFamily
	}
	if p.age-10 <= 45 && chance(r, g.k.MarriagesPerDecade*0.6) {
		p.family, p.married = own, married
		p.marriedDay = spanStart + r.IntN(spanEnd-spanStart)
		return
	}
	p.family = married
}

// familyName draws a family name: from the US distribution, or with
// NameConcentration from the steep head population-20k shows.
func (g *generator) familyName(r *rand.Rand) (string, group) {
	if chance(r, g.k.NameConcentration) {
		n := g.t.concentratedFamily.pick(r.Float64())
		return n, g.t.surnameGroup[n]
	}
	return g.t.surnames.name(g.t.surnames.rank(r.Float64()))
}

// givenName draws a given name likewise.
func (g *generator) givenName(r *rand.Rand, sex, birthYear int, grp group) string {
	if chance(r, g.k.NameConcentration) {
		return g.t.concentratedGiven[sex].pick(r.Float64())
	}
	return g.t.givenName(r, sex, birthYear, grp)
}

func (g *generator) hispanicSurname(r *rand.Rand) string {
	for range 6 {
		if n, grp := g.familyName(r); grp == groupHispanic {
			return n
		}
	}
	return "Garcia"
}

// birth sets a birth date from the age at the end of the span.
func (g *generator) birth(r *rand.Rand, p *person) {
	p.birth = spanEnd - 1 - int(float64(p.age)*365.25) - r.IntN(365)
	p.by, p.bm, p.bd = civil(p.birth)
}

// names gives every member a given name (siblings never share one; twins
// are sometimes named alike; a junior takes his father's), a middle name
// and a nickname they may go by.
func (g *generator) names(r *rand.Rand, ps []person) {
	for i := range ps {
		if p := &ps[i]; p.twinOf >= 0 && chance(r, g.k.TwinLookalike) {
			co := &ps[p.twinOf]
			co.given, p.given = g.t.twinPair(r, co.sex, p.sex)
		}
	}
	for i := range ps {
		p := &ps[i]
		switch {
		case p.given != "":
		case p.juniorOf >= 0:
			f := &ps[p.juniorOf]
			p.given, p.suffix, f.suffix = f.given, "Jr", "Sr"
			if chance(r, 0.7) {
				p.middle = f.middle
			}
		default:
			sameInitial := p.twinOf >= 0 && chance(r, g.k.TwinLookalike/(1-g.k.TwinLookalike+1e-9))
			for try := range 40 {
				p.given = g.givenName(r, p.sex, p.by, p.grp)
				if !g.clashes(ps, i, p.given) && (!sameInitial || p.given[0] == ps[p.twinOf].given[0] || try == 39) {
					break
				}
			}
		}
		if p.middle == "" && chance(r, g.k.MiddlePerson) {
			p.middle = g.t.middleName(r, p.sex, p.by, p.grp, p.given)
		}
		if chance(r, g.k.NicknamePerson) {
			if chance(r, g.k.NicknameUnknown) {
				p.nick = g.t.nicknameOf(r, p.given, true)
			}
			if p.nick == "" {
				p.nick = g.t.nicknameOf(r, p.given, false)
			}
		}
	}
}

// clashes reports whether another member born within 15 years (a
// sibling) already has the name.
func (g *generator) clashes(ps []person, i int, name string) bool {
	for j := range ps {
		if j != i && ps[j].given == name && (ps[j].role == roleChild) == (ps[i].role == roleChild) {
			return true
		}
	}
	return false
}

// awayAndMarriages gives grown children (and some adult twins and
// juniors) homes of their own, and marries unmarried women inside the span.
func (g *generator) awayAndMarriages(r *rand.Rand, b *unitBuf) {
	ps := b.persons
	homeZIP := b.res[0].epochs[0].addr.zip
	for i := range ps {
		p := &ps[i]
		away := false
		switch {
		case p.role == roleChild && p.age >= 23:
			away = chance(r, 0.6)
		case p.role == roleChild && p.age >= 18:
			away = chance(r, 0.25)
		case p.twinOf >= 0 && p.role == roleSingle && p.age >= 25:
			away = chance(r, 0.55)
		}
		if p.juniorOf >= 0 && p.age >= 22 {
			away = chance(r, 0.5)
		}
		if away {
			p.res = b.newResidence()
			zip := homeZIP
			if !chance(r, 0.5) {
				zip = g.geo.pickZIP(r)
			}
			g.settle(r, b, p.res, p.index, -1, zip, 1.3)
		}
		unmarried := p.sex == 0 && p.married == "" && p.role != rolePartner && p.role != roleHead
		if unmarried && p.age >= 18 && p.age-10 <= 45 && chance(r, g.k.MarriagesPerDecade) {
			newName, _ := g.familyName(r)
			if chance(r, g.k.Hyphenate) {
				newName = p.family + "-" + newName
			}
			earliest := max(spanStart, p.birth+18*365)
			if earliest >= spanEnd {
				continue
			}
			p.married, p.marriedDay = newName, earliest+r.IntN(spanEnd-earliest)
			if chance(r, 0.6) {
				// She moves at her marriage: out of the family home, or on.
				old := p.res
				p.res = b.newResidence()
				g.copyUntil(b, old, p.res, p.marriedDay)
				g.settle(r, b, p.res, p.index, p.marriedDay, -1, 1)
			}
		}
	}
}

// settle fills a residence: an address from day from (-1: always) in zip
// (-1: moved from the residence's last address), then the household's
// moves over the span at scale times the knob's rate. Its landlines are
// numbered from the owner's phone ordinals.
func (g *generator) settle(r *rand.Rand, b *unitBuf, ri, owner, from int, zip int32, scale float64) {
	res := &b.res[ri]
	created := len(res.epochs)
	var a address
	if zip >= 0 {
		a = g.geo.newAddress(g.t, r, zip)
	} else {
		a = g.geo.moveFrom(g.t, r, res.epochs[len(res.epochs)-1].addr)
	}
	start := math.MinInt
	if from >= 0 {
		start = from
	}
	res.epochs = append(res.epochs, addrEpoch{from: start, addr: a})
	moves := poisson(r, g.k.MovesPerDecade*scale)
	var when []int
	lo := max(spanStart, start)
	for range moves {
		if lo < spanEnd {
			when = append(when, lo+r.IntN(spanEnd-lo))
		}
	}
	slices.Sort(when)
	for _, d := range when {
		last := res.epochs[len(res.epochs)-1].addr
		res.epochs = append(res.epochs, addrEpoch{from: d, addr: g.geo.moveFrom(g.t, r, last)})
	}
	for i := created; i < len(res.epochs); i++ {
		if chance(r, 0.3) {
			ord := uint64(owner)*phoneOrdinals + 3 + uint64(min(i, 4))
			res.epochs[i].landline = g.phoneNumber(g.geo.zips[res.epochs[i].addr.zip].area, ord)
		}
	}
}

// copyUntil copies a residence's addresses before day into another.
func (g *generator) copyUntil(b *unitBuf, from, to, day int) {
	for _, e := range b.res[from].epochs {
		if e.from < day {
			b.res[to].epochs = append(b.res[to].epochs, e)
		}
	}
}

// identifiers draws SSN, e-mail and phones.
func (g *generator) identifiers(r *rand.Rand, b *unitBuf, i int) {
	p := &b.persons[i]
	p.hasSSN = chance(r, g.k.SSNPerson)
	if p.age >= 14 && chance(r, g.k.EmailPerson) {
		p.email = g.email(r, p)
	} else if p.age < 14 && b.persons[0].email != "" && i > 0 && chance(r, 0.25) {
		p.email = b.persons[0].email // a parent's address on a child's record
	}
	switch {
	case p.age >= 18 && chance(r, 0.9), p.age >= 13 && p.age < 18 && chance(r, 0.6):
		area := g.geo.zips[b.res[p.res].epochs[0].addr.zip].area
		if chance(r, 0.1) {
			area = g.geo.allAreas[r.IntN(len(g.geo.allAreas))]
		}
		p.mobiles = append(p.mobiles, phoneEpoch{from: math.MinInt, number: g.phoneNumber(area, uint64(p.index)*phoneOrdinals)})
		changes := min(2, poisson(r, g.k.PhoneChangesPerDecade))
		var when []int
		for range changes {
			when = append(when, spanStart+r.IntN(spanEnd-spanStart))
		}
		slices.Sort(when)
		for k, d := range when {
			p.mobiles = append(p.mobiles, phoneEpoch{from: d, number: g.phoneNumber(area, uint64(p.index)*phoneOrdinals+uint64(k+1))})
		}
		p.prefersMobile = chance(r, 0.85)
	case p.age < 18 && i > 0 && b.persons[0].role != roleChild && b.persons[0].role != roleSingle:
		p.phoneOf = 0
		if b.persons[1].role == rolePartner && chance(r, 0.5) {
			p.phoneOf = 1
		}
	}
}

// ensurePhones gives a home a landline wherever a member would otherwise
// have no number at all (no mobile, no parent's to give).
func (g *generator) ensurePhones(r *rand.Rand, b *unitBuf) {
	for i := range b.persons {
		p := &b.persons[i]
		if len(p.mobiles) > 0 || (p.phoneOf >= 0 && len(b.persons[p.phoneOf].mobiles) > 0) {
			continue
		}
		res := &b.res[p.res]
		for k := range res.epochs {
			if res.epochs[k].landline == 0 {
				ord := uint64(p.index)*phoneOrdinals + 3 + uint64(min(k, 4))
				res.epochs[k].landline = g.phoneNumber(g.geo.zips[res.epochs[k].addr.zip].area, ord)
			}
		}
	}
}

// email composes a personal e-mail address on a reserved example domain.
func (g *generator) email(r *rand.Rand, p *person) string {
	given := emailPart(p.given)
	if p.nick != "" && chance(r, 0.3) {
		given = emailPart(p.nick)
	}
	family := emailPart(p.family)
	var local string
	switch r.IntN(8) {
	case 0, 1, 2:
		local = given + "." + family
	case 3:
		local = given + family
	case 4:
		local = given[:1] + family
	case 5:
		local = given + family[:1]
	case 6:
		local = given + "_" + family
	default:
		local = family + "." + given
	}
	switch x := r.Float64(); {
	case x < 0.25:
		local += strconv.Itoa(p.by % 100)
	case x < 0.5:
		local += strconv.Itoa(1 + r.IntN(999))
	}
	domains := []string{"example.com", "example.com", "example.com", "example.net", "example.net", "example.org", "mail.example.com", "inbox.example.net"}
	return local + "@" + domains[r.IntN(len(domains))]
}

func emailPart(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := lower(s[i]); c >= 'a' && c <= 'z' {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// recordSpecs draws how many records a person has, when, and where.
func (g *generator) recordSpecs(r *rand.Rand, p *person) {
	n := 1 + sort.SearchFloat64s(g.recordsCum, r.Float64()*g.recordsCum[len(g.recordsCum)-1])
	n = min(n, len(g.recordsCum))
	lo := max(spanStart, p.birth)
	for k := range n {
		day := lo + r.IntN(max(1, spanEnd-lo))
		f := -1
		if k > 0 && chance(r, g.k.DuplicateMRN) {
			f = p.records[r.IntN(k)].facility
		}
		for try := 0; f < 0; try++ {
			c := sort.SearchFloat64s(g.facilityCum, r.Float64()*g.facilityCum[len(g.facilityCum)-1])
			c = min(c, len(g.facilityCum)-1)
			if try > 20 || !slices.ContainsFunc(p.records, func(s recSpec) bool { return s.facility == c }) {
				f = c
			}
		}
		p.records = append(p.records, recSpec{day: day, facility: f})
	}
}

// labels names every person's truth label: P<N> from the person's index,
// a second twin P<N>t and a junior P<N>j after their co-twin or father.
func (g *generator) labels(ps []person) {
	for i := range ps {
		p := &ps[i]
		switch {
		case p.twinOf >= 0:
			p.label = "P" + strconv.Itoa(ps[p.twinOf].index+1) + "t"
		case p.juniorOf >= 0:
			p.label = "P" + strconv.Itoa(ps[p.juniorOf].index+1) + "j"
		default:
			p.label = "P" + strconv.Itoa(p.index+1)
		}
	}
}

// phoneOrdinals is how many phone numbers a person owns: three mobiles
// (two changes), five landlines of homes they head.
const phoneOrdinals = 8

// phoneNumber gives the ord-th number of an area code: distinct ordinals
// below 8 million give distinct numbers in an area, so up to a million
// persons no two households share a number by chance.
func (g *generator) phoneNumber(area int, ord uint64) uint64 {
	const space = 800 * 10000
	x := permute(ord%space, space, mix64(g.seed^uint64(area)*0x9e3779b97f4a7c15^streamPhone))
	exchange := 200 + x/10000
	if exchange%100 == 11 {
		exchange++
	}
	return uint64(area)*10_000_000 + exchange*10000 + x%10000
}
