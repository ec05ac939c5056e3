package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// region is the nested geography of a population: states ⊃ towns ⊃ ZIP
// codes ⊃ streets ⊃ house numbers. It is built once per population from
// the seed and the number of persons, and only read afterwards.
type region struct {
	states []*stateInfo // the home state first
	towns  []town
	zips   []zipArea
	zipCum []float64 // cumulative residents over zips
	// stateZips lists each state's ZIPs and their cumulative residents, to
	// move a household within its state.
	stateZips [][]int32
	stateCum  [][]float64
	allAreas  []int // every area code of the table, for mobiles from elsewhere
	residents float64
}

type town struct {
	name  string
	state int
	zips  []int32
	cum   []float64
}

type zipArea struct {
	code      string
	town      int32
	area      int // telephone area code
	residents float64
	streets   []street
}

type street struct {
	name  string
	typ   uint8
	dir   int8   // index into tables.directions, -1 for none
	first uint32 // lowest house number
	count uint32 // house numbers first, first+2, …
	flats bool   // apartment buildings: most addresses carry a unit
}

// address is a dwelling: a house number on a street of a ZIP, and a unit.
type address struct {
	zip      int32
	street   int32
	number   uint32
	unit     uint16 // 0 for none
	unitKind uint8
}

// minTown is the population of the smallest towns the Zipf series goes
// down to; ZIP codes of towns that small hold a few thousand residents.
const minTown = 1500

// buildRegion lays out the region of a population of persons.
func buildRegion(t *tables, r *rand.Rand, persons int, k Knobs) (*region, error) {
	residents := math.Max(float64(persons)/k.Coverage, k.MinResidents)
	home := t.state(k.HomeState)
	if home == nil {
		// A state with neighbours and ZIP prefixes enough for the region's
		// ZIP codes (about 99 a prefix), else the one with most prefixes.
		need := int(2 * residents / k.ResidentsPerZIP / 99)
		var candidates []*stateInfo
		roomiest := &t.states[0]
		for i := range t.states {
			s := &t.states[i]
			if len(s.zip3) > len(roomiest.zip3) {
				roomiest = s
			}
			if len(s.neighbours) >= 2 && len(s.zip3) >= need {
				candidates = append(candidates, s)
			}
		}
		home = roomiest
		if len(candidates) > 0 {
			home = candidates[r.IntN(len(candidates))]
		}
	}
	g := &region{states: []*stateInfo{home}, residents: residents}
	shares := []float64{1}
	if k.NeighbourShare > 0 && len(home.neighbours) > 0 {
		nb := append([]string(nil), home.neighbours...)
		r.Shuffle(len(nb), func(i, j int) { nb[i], nb[j] = nb[j], nb[i] })
		nb = nb[:min(3, len(nb))]
		split := []float64{0.5, 0.3, 0.2}[:len(nb)]
		total := 0.0
		for _, s := range split {
			total += s
		}
		shares[0] = 1 - k.NeighbourShare
		for i, code := range nb {
			g.states = append(g.states, t.state(code))
			shares = append(shares, k.NeighbourShare*split[i]/total)
		}
	}
	for _, s := range t.states {
		g.allAreas = append(g.allAreas, s.areas...)
	}
	for si := range g.states {
		if err := g.buildState(t, r, si, g.residents*shares[si], k); err != nil {
			return nil, err
		}
	}
	total := 0.0
	g.stateZips = make([][]int32, len(g.states))
	g.stateCum = make([][]float64, len(g.states))
	for i, z := range g.zips {
		total += z.residents
		g.zipCum = append(g.zipCum, total)
		s := g.towns[z.town].state
		prev := 0.0
		if n := len(g.stateCum[s]); n > 0 {
			prev = g.stateCum[s][n-1]
		}
		g.stateZips[s] = append(g.stateZips[s], int32(i))
		g.stateCum[s] = append(g.stateCum[s], prev+z.residents)
	}
	return g, nil
}

// buildState lays out the towns of one state's share of the region: Zipf
// town sizes down to minTown, so a bigger region has more and bigger
// towns; ZIP codes of ResidentsPerZIP (log-normal) within each town.
func (g *region) buildState(t *tables, r *rand.Rand, si int, residents float64, k Knobs) error {
	st := g.states[si]
	n := 1
	for h := 1.0; residents/h/float64(n) > minTown; {
		n++
		h += 1 / float64(n)
	}
	harmonic := 0.0
	for i := 1; i <= n; i++ {
		harmonic += 1 / float64(i)
	}
	largest := residents / harmonic
	used := map[string]bool{}
	prefixes := append([]int(nil), st.zip3...)
	var cursor zipCursor
	cursor.prefixes = prefixes
	// Big towns come first so that they own whole ZIP prefixes, as cities do.
	for i := 1; i <= n; i++ {
		pop := largest / float64(i) * logNormal(r, 0.2)
		name := townName(t, r, used)
		ti := int32(len(g.towns))
		tw := town{name: name, state: si}
		perZIP := k.ResidentsPerZIP * logNormal(r, 0.3)
		nz := max(1, int(math.Round(pop/perZIP)))
		if nz >= 3 {
			cursor.freshPrefix()
		}
		area := st.areas[min(len(st.areas)-1, cursor.prefixIndex()*len(st.areas)/len(prefixes))]
		total := 0.0
		for range nz {
			code, err := cursor.next(r)
			if err != nil {
				return fmt.Errorf("synth: %s: %w", st.code, err)
			}
			res := pop / float64(nz) * logNormal(r, 0.25)
			z := zipArea{code: code, town: ti, area: area, residents: res}
			z.streets = makeStreets(t, r, res)
			tw.zips = append(tw.zips, int32(len(g.zips)))
			total += res
			tw.cum = append(tw.cum, total)
			g.zips = append(g.zips, z)
		}
		g.towns = append(g.towns, tw)
	}
	return nil
}

// zipCursor hands out ZIP codes within a state's prefixes in order.
type zipCursor struct {
	prefixes []int
	p        int // index of the current prefix
	last     int // last two digits handed out in it, -1 before the first
	started  bool
	wraps    int
}

func (c *zipCursor) prefixIndex() int { return c.p % len(c.prefixes) }

func (c *zipCursor) freshPrefix() {
	if c.started && c.last > 0 {
		c.p++
		c.last = 0
	}
}

func (c *zipCursor) next(r *rand.Rand) (string, error) {
	if !c.started {
		c.started = true
		c.last = 0
	}
	c.last++
	if r.IntN(5) == 0 { // codes not in use leave gaps
		c.last++
	}
	if c.last > 99 {
		c.p++
		c.last = 1
	}
	if c.p >= len(c.prefixes)*(c.wraps+1) {
		// Only a region of tens of millions exhausts a state's prefixes;
		// codes then repeat in another town, as they never do in the US.
		c.wraps++
		if c.wraps > 50 {
			return "", fmt.Errorf("the region needs more ZIP codes than its prefixes hold")
		}
	}
	return fmt.Sprintf("%03d%02d", c.prefixes[c.p%len(c.prefixes)], c.last), nil
}

// townName composes a town name not yet used in the state.
func townName(t *tables, r *rand.Rand, used map[string]bool) string {
	for try := 0; ; try++ {
		var name string
		switch x := r.Float64(); {
		case x < 0.3:
			name = t.placeStandalone[r.IntN(len(t.placeStandalone))]
		case x < 0.75:
			name = t.placeFirst[r.IntN(len(t.placeFirst))] + t.placeSecond[r.IntN(len(t.placeSecond))]
		case x < 0.9:
			name = t.placeFirst[r.IntN(len(t.placeFirst))] + " " + t.placeWord[r.IntN(len(t.placeWord))]
		default:
			name = t.placePrefix[r.IntN(len(t.placePrefix))] + " " + t.placeFirst[r.IntN(len(t.placeFirst))] + t.placeSecond[r.IntN(len(t.placeSecond))]
		}
		if try > 200 {
			name += " " + strconv.Itoa(try)
		}
		if !used[name] {
			used[name] = true
			return name
		}
	}
}

// makeStreets lays out the streets of a ZIP code: about one street for
// every 80 residents, distinct names within the ZIP, Zipf-common names.
func makeStreets(t *tables, r *rand.Rand, residents float64) []street {
	n := min(800, max(6, int(residents/80)))
	seen := make(map[[3]int]bool, n)
	out := make([]street, 0, n)
	for tries := 0; len(out) < n && tries < 8*n; tries++ {
		name := t.streetNames.pick(r.Float64())
		ti, _ := strconv.Atoi(t.streetTypeW.pick(r.Float64()))
		dir := -1
		if r.Float64() < 0.1 {
			dir = r.IntN(len(t.directions))
		}
		key := [3]int{hashString(name), ti, dir}
		if seen[key] {
			continue
		}
		seen[key] = true
		first := uint32(1 + 100*r.IntN(60))
		if r.Float64() < 0.08 { // rural routes and long roads have five digits
			first = uint32(10000 + 100*r.IntN(200))
		}
		out = append(out, street{name: name, typ: uint8(ti), dir: int8(dir), first: first,
			count: uint32(20 + r.IntN(300)), flats: r.Float64() < 0.15})
	}
	return out
}

func hashString(s string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return int(h >> 1)
}

// pickZIP draws a ZIP code by residents.
func (g *region) pickZIP(r *rand.Rand) int32 {
	i := sort.SearchFloat64s(g.zipCum, r.Float64()*g.zipCum[len(g.zipCum)-1])
	return int32(min(i, len(g.zips)-1))
}

// pickInTown draws a ZIP of a town by residents.
func (g *region) pickInTown(r *rand.Rand, ti int32) int32 {
	tw := &g.towns[ti]
	i := sort.SearchFloat64s(tw.cum, r.Float64()*tw.cum[len(tw.cum)-1])
	return tw.zips[min(i, len(tw.zips)-1)]
}

// pickInState draws a ZIP of a state by residents.
func (g *region) pickInState(r *rand.Rand, si int) int32 {
	cum := g.stateCum[si]
	i := sort.SearchFloat64s(cum, r.Float64()*cum[len(cum)-1])
	return g.stateZips[si][min(i, len(cum)-1)]
}

// newAddress draws a dwelling in a ZIP.
func (g *region) newAddress(t *tables, r *rand.Rand, zip int32) address {
	z := &g.zips[zip]
	si := r.IntN(len(z.streets))
	s := &z.streets[si]
	a := address{zip: zip, street: int32(si), number: s.first + 2*uint32(r.IntN(int(s.count))) + uint32(r.IntN(2))}
	if (s.flats && r.Float64() < 0.85) || r.Float64() < 0.03 {
		if r.Float64() < 0.6 {
			a.unit = uint16(1 + r.IntN(40))
		} else {
			a.unit = uint16(100*(1+r.IntN(4)) + 1 + r.IntN(24))
		}
		a.unitKind = uint8(indexOf(t.unitKinds.names, t.unitKinds.pick(r.Float64())))
	}
	return a
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return 0
}

// moveFrom draws the next home of a household: most moves stay in the
// town (a fifth within the ZIP), many go to another town of the state, a
// few cross to a neighbouring state.
func (g *region) moveFrom(t *tables, r *rand.Rand, from address) address {
	z := from.zip
	ti := g.zips[z].town
	si := g.towns[ti].state
	switch x := r.Float64(); {
	case x < 0.2:
	case x < 0.45 && len(g.towns[ti].zips) > 1:
		for range 8 {
			if z = g.pickInTown(r, ti); z != from.zip {
				break
			}
		}
	case x < 0.9:
		for range 8 {
			if z = g.pickInState(r, si); g.zips[z].town != ti {
				break
			}
		}
	default:
		for range 8 {
			if z = g.pickZIP(r); g.towns[g.zips[z].town].state != si {
				break
			}
		}
	}
	for {
		a := g.newAddress(t, r, z)
		if a.street != from.street || a.number != from.number || a.zip != from.zip {
			return a
		}
	}
}

// line renders an address line, with the street type spelt out or
// abbreviated and the unit in one of the usual forms.
func (g *region) line(t *tables, a address, abbreviate bool, unitForm int) string {
	s := &g.zips[a.zip].streets[a.street]
	var b strings.Builder
	b.Grow(40)
	b.WriteString(strconv.FormatUint(uint64(a.number), 10))
	b.WriteByte(' ')
	if s.dir >= 0 {
		d := t.directions[s.dir]
		if abbreviate || len(d[0]) > 5 {
			b.WriteString(d[1])
		} else {
			b.WriteString(d[0])
		}
		b.WriteByte(' ')
	}
	b.WriteString(s.name)
	b.WriteByte(' ')
	typ := t.streetTypes[s.typ]
	if abbreviate {
		b.WriteString(typ.abbr)
	} else {
		b.WriteString(typ.full)
	}
	if a.unit != 0 && unitForm >= 0 {
		kind := t.unitKinds.names[a.unitKind]
		if unitForm == 1 {
			kind = "#"
		}
		b.WriteByte(' ')
		b.WriteString(kind)
		if kind != "#" {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(int(a.unit)))
	}
	return b.String()
}
