package synth

import (
	"embed"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed data/*.txt
var dataFS embed.FS

// tables holds the parsed data files. It is built once (loadTables) and
// only read afterwards, so generators running at the same time share it.
type tables struct {
	surnames  surnameTable
	given     [2][]givenDecade // by sex (0 F, 1 M), decades in order
	pool      [2]weighted
	groupName [numGroups][2]weighted
	middle    [2]weighted
	rareShare [2][]decadeShare

	nicknames      map[string][]string // formal → variants (mpi's table)
	nicknamesExtra map[string][]string // formal → variants the matcher lacks
	twinPairs      [3][][2]string      // FF, MM, MF

	streetNames weighted
	streetTypes []streetType
	streetTypeW weighted
	directions  [][2]string // full, abbreviation
	unitKinds   weighted

	placeStandalone, placeFirst, placeSecond, placeWord, placePrefix []string

	states []stateInfo

	// The steep name distributions of NameConcentration: Zipf over the 250
	// most common surnames and over the decade lists' given names.
	concentratedFamily weighted
	concentratedGiven  [2]weighted
	surnameGroup       map[string]group
}

type givenDecade struct {
	decade int
	dist   weighted // listed names, then pool entries, then "" for a rare name
}

type decadeShare struct {
	decade int
	share  float64
}

type streetType struct{ full, abbr string }

type stateInfo struct {
	code, name string
	zip3       []int
	areas      []int
	neighbours []string
}

// weighted is a discrete distribution over names, sampled by binary search
// over cumulative weights.
type weighted struct {
	names []string
	cum   []float64
}

func (w *weighted) add(name string, weight float64) {
	total := 0.0
	if n := len(w.cum); n > 0 {
		total = w.cum[n-1]
	}
	w.names = append(w.names, name)
	w.cum = append(w.cum, total+weight)
}

func (w *weighted) total() float64 {
	if len(w.cum) == 0 {
		return 0
	}
	return w.cum[len(w.cum)-1]
}

// pick maps u in [0,1) to a name.
func (w *weighted) pick(u float64) string {
	i := sort.SearchFloat64s(w.cum, u*w.total())
	if i >= len(w.names) {
		i = len(w.names) - 1
	}
	return w.names[i]
}

func zipfWeights(names []string, exp float64) weighted {
	var w weighted
	for i, n := range names {
		w.add(n, math.Pow(float64(i+1), -exp))
	}
	return w
}

var loadTables = sync.OnceValues(parseTables)

func readData(name string) ([]string, error) {
	b, err := dataFS.ReadFile("data/" + name)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// words splits a data list, turning "_" into spaces and dropping repeats.
func words(s string) []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range strings.Fields(s) {
		w = strings.ReplaceAll(w, "_", " ")
		if k := strings.ToLower(w); !seen[k] {
			seen[k] = true
			out = append(out, w)
		}
	}
	return out
}

// keyed splits "key: rest".
func keyed(line string) (string, string, bool) {
	k, v, ok := strings.Cut(line, ":")
	return strings.TrimSpace(k), strings.TrimSpace(v), ok
}

func parseTables() (*tables, error) {
	t := &tables{}
	var err error
	if t.surnames, err = parseSurnames(); err != nil {
		return nil, err
	}
	if err := t.parseGiven(); err != nil {
		return nil, err
	}
	t.surnameGroup = map[string]group{}
	var head []string
	for _, s := range t.surnames.listed {
		if s.name == "" {
			break
		}
		t.surnameGroup[s.name] = s.group
		if len(head) < 250 {
			head = append(head, s.name)
		}
	}
	t.concentratedFamily = zipfWeights(head, 0.85)
	for sex := range 2 {
		var names []string
		seen := map[string]bool{}
		for i := 0; ; i++ { // rank by rank across the decades, oldest first
			added := false
			for _, d := range t.given[sex] {
				if i < len(d.dist.names) && d.dist.names[i] != "" && i < 30 {
					if n := d.dist.names[i]; !seen[n] {
						seen[n] = true
						names = append(names, n)
					}
					added = true
				}
			}
			if !added {
				break
			}
		}
		t.concentratedGiven[sex] = zipfWeights(names, 1)
	}
	if t.nicknames, err = parseNicknames("nicknames.txt"); err != nil {
		return nil, err
	}
	if t.nicknamesExtra, err = parseNicknames("nickname_extra.txt"); err != nil {
		return nil, err
	}
	if err := t.parseTwins(); err != nil {
		return nil, err
	}
	if err := t.parseStreets(); err != nil {
		return nil, err
	}
	if err := t.parsePlaces(); err != nil {
		return nil, err
	}
	if err := t.parseStates(); err != nil {
		return nil, err
	}
	return t, nil
}

func sexIndex(s string) (int, error) {
	switch s {
	case "F":
		return 0, nil
	case "M":
		return 1, nil
	}
	return 0, fmt.Errorf("synth: given.txt: sex %q is not F or M", s)
}

func (t *tables) parseGiven() error {
	lines, err := readData("given.txt")
	if err != nil {
		return err
	}
	type listed struct {
		decade   int
		sex      int
		top, exp float64
		names    []string
	}
	var decades []listed
	var pools [2][]string
	for _, l := range lines {
		key, rest, ok := keyed(l)
		f := strings.Fields(key)
		switch {
		case !ok && len(f) == 4 && f[0] == "rare":
			sex, err := sexIndex(f[1])
			if err != nil {
				return err
			}
			d, err1 := strconv.Atoi(f[2])
			share, err2 := strconv.ParseFloat(f[3], 64)
			if err1 != nil || err2 != nil || share < 0 || share >= 1 {
				return fmt.Errorf("synth: given.txt: bad line %q", l)
			}
			t.rareShare[sex] = append(t.rareShare[sex], decadeShare{d, share})
		case ok && len(f) == 2 && f[0] == "pool":
			sex, err := sexIndex(f[1])
			if err != nil {
				return err
			}
			pools[sex] = words(rest)
		case ok && len(f) == 2 && f[0] == "middle":
			sex, err := sexIndex(f[1])
			if err != nil {
				return err
			}
			t.middle[sex] = zipfWeights(words(rest), 0.7)
		case ok && len(f) == 3 && f[0] == "group":
			g := groupOf(f[1])
			sex, err := sexIndex(f[2])
			if err != nil || g == groupGeneral {
				return fmt.Errorf("synth: given.txt: bad line %q", l)
			}
			t.groupName[g][sex] = zipfWeights(words(rest), 0.8)
		case ok && len(f) == 4:
			d, err1 := strconv.Atoi(f[0])
			sex, err2 := sexIndex(f[1])
			top, err3 := strconv.ParseFloat(f[2], 64)
			exp, err4 := strconv.ParseFloat(f[3], 64)
			if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
				return fmt.Errorf("synth: given.txt: bad line %q", l)
			}
			decades = append(decades, listed{d, sex, top, exp, words(rest)})
		default:
			return fmt.Errorf("synth: given.txt: bad line %q", l)
		}
	}
	for sex := range 2 {
		if len(pools[sex]) == 0 || len(t.rareShare[sex]) == 0 || len(t.middle[sex].names) == 0 {
			return fmt.Errorf("synth: given.txt: sex %d lacks a pool, rare shares or middle names", sex)
		}
		// The pools are written in alphabetical order; their frequency
		// order is a fixed scramble of it.
		pool := slices.Clone(pools[sex])
		sort.SliceStable(pool, func(i, j int) bool { return hashString(pool[i]) < hashString(pool[j]) })
		t.pool[sex] = zipfWeights(pool, 0.3)
	}
	for _, d := range decades {
		var w weighted
		listedMass := 0.0
		for i, n := range d.names {
			share := d.top * math.Pow(float64(i+1), -d.exp)
			w.add(n, share)
			listedMass += share
		}
		if listedMass >= 1 {
			return fmt.Errorf("synth: given.txt: decade %d's listed names take %.2f of births", d.decade, listedMass)
		}
		rare := (1 - listedMass) * t.rareFor(d.sex, d.decade)
		poolMass := 1 - listedMass - rare
		pool := &t.pool[d.sex]
		for i, n := range pool.names {
			prev := 0.0
			if i > 0 {
				prev = pool.cum[i-1]
			}
			w.add(n, poolMass*(pool.cum[i]-prev)/pool.total())
		}
		w.add("", rare)
		t.given[d.sex] = append(t.given[d.sex], givenDecade{decade: d.decade, dist: w})
	}
	for sex := range 2 {
		sort.Slice(t.given[sex], func(i, j int) bool { return t.given[sex][i].decade < t.given[sex][j].decade })
		if len(t.given[sex]) == 0 {
			return fmt.Errorf("synth: given.txt: no decades for sex %d", sex)
		}
	}
	return nil
}

// rareFor interpolates the share of generated (rare) names for a decade.
func (t *tables) rareFor(sex, decade int) float64 {
	s := t.rareShare[sex]
	sort.Slice(s, func(i, j int) bool { return s[i].decade < s[j].decade })
	if decade <= s[0].decade {
		return s[0].share
	}
	for i := 1; i < len(s); i++ {
		if decade <= s[i].decade {
			f := float64(decade-s[i-1].decade) / float64(s[i].decade-s[i-1].decade)
			return s[i-1].share + f*(s[i].share-s[i-1].share)
		}
	}
	return s[len(s)-1].share
}

func parseNicknames(file string) (map[string][]string, error) {
	lines, err := readData(file)
	if err != nil {
		return nil, err
	}
	m := map[string][]string{}
	for _, l := range lines {
		k, v, ok := keyed(l)
		if !ok || k == "" {
			return nil, fmt.Errorf("synth: %s: bad line %q", file, l)
		}
		m[k] = append(m[k], strings.Fields(v)...)
	}
	return m, nil
}

func (t *tables) parseTwins() error {
	lines, err := readData("twinnames.txt")
	if err != nil {
		return err
	}
	for _, l := range lines {
		k, v, ok := keyed(l)
		names := strings.Fields(v)
		if !ok || len(names) != 2 {
			return fmt.Errorf("synth: twinnames.txt: bad line %q", l)
		}
		i := map[string]int{"F F": 0, "M M": 1, "M F": 2}[k]
		if _, known := map[string]bool{"F F": true, "M M": true, "M F": true}[k]; !known {
			return fmt.Errorf("synth: twinnames.txt: bad sexes %q", k)
		}
		t.twinPairs[i] = append(t.twinPairs[i], [2]string{names[0], names[1]})
	}
	return nil
}

func (t *tables) parseStreets() error {
	lines, err := readData("streets.txt")
	if err != nil {
		return err
	}
	for _, l := range lines {
		k, v, ok := keyed(l)
		if !ok {
			return fmt.Errorf("synth: streets.txt: bad line %q", l)
		}
		switch k {
		case "names":
			t.streetNames = zipfWeights(words(v), 0.6)
		case "types", "units":
			f := strings.Fields(v)
			if len(f)%2 != 0 {
				return fmt.Errorf("synth: streets.txt: %s needs NAME WEIGHT pairs", k)
			}
			for i := 0; i < len(f); i += 2 {
				w, err := strconv.ParseFloat(f[i+1], 64)
				if err != nil {
					return fmt.Errorf("synth: streets.txt: %s: %w", k, err)
				}
				if k == "units" {
					t.unitKinds.add(f[i], w)
					continue
				}
				full, abbr, ok := strings.Cut(f[i], "/")
				if !ok {
					return fmt.Errorf("synth: streets.txt: type %q lacks its abbreviation", f[i])
				}
				t.streetTypeW.add(strconv.Itoa(len(t.streetTypes)), w)
				t.streetTypes = append(t.streetTypes, streetType{full, abbr})
			}
		case "directions":
			for _, d := range strings.Fields(v) {
				full, abbr, ok := strings.Cut(d, "/")
				if !ok {
					return fmt.Errorf("synth: streets.txt: direction %q lacks its abbreviation", d)
				}
				t.directions = append(t.directions, [2]string{full, abbr})
			}
		default:
			return fmt.Errorf("synth: streets.txt: unknown key %q", k)
		}
	}
	if len(t.streetNames.names) == 0 || len(t.streetTypes) == 0 || len(t.directions) == 0 || len(t.unitKinds.names) == 0 {
		return fmt.Errorf("synth: streets.txt: names, types, directions and units are all needed")
	}
	return nil
}

func (t *tables) parsePlaces() error {
	lines, err := readData("places.txt")
	if err != nil {
		return err
	}
	for _, l := range lines {
		k, v, ok := keyed(l)
		if !ok {
			return fmt.Errorf("synth: places.txt: bad line %q", l)
		}
		switch k {
		case "standalone":
			t.placeStandalone = words(v)
		case "first":
			t.placeFirst = words(v)
		case "second":
			t.placeSecond = words(v)
		case "word":
			t.placeWord = words(v)
		case "prefix":
			t.placePrefix = words(v)
		default:
			return fmt.Errorf("synth: places.txt: unknown key %q", k)
		}
	}
	if len(t.placeStandalone) == 0 || len(t.placeFirst) == 0 || len(t.placeSecond) == 0 || len(t.placeWord) == 0 || len(t.placePrefix) == 0 {
		return fmt.Errorf("synth: places.txt: every list is needed")
	}
	return nil
}

func (t *tables) parseStates() error {
	lines, err := readData("states.txt")
	if err != nil {
		return err
	}
	for _, l := range lines {
		f := strings.Split(l, "|")
		if len(f) != 5 {
			return fmt.Errorf("synth: states.txt: bad line %q", l)
		}
		s := stateInfo{code: f[0], name: f[1], neighbours: strings.Fields(f[4])}
		for _, rng := range strings.Fields(f[2]) {
			lo, hi, _ := strings.Cut(rng, "-")
			if hi == "" {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || a > b {
				return fmt.Errorf("synth: states.txt: bad ZIP range %q", rng)
			}
			for z := a; z <= b; z++ {
				s.zip3 = append(s.zip3, z)
			}
		}
		for _, a := range strings.Fields(f[3]) {
			n, err := strconv.Atoi(a)
			if err != nil || n < 200 || n > 999 {
				return fmt.Errorf("synth: states.txt: bad area code %q", a)
			}
			s.areas = append(s.areas, n)
		}
		if len(s.zip3) == 0 || len(s.areas) == 0 {
			return fmt.Errorf("synth: states.txt: %s needs ZIP prefixes and area codes", s.code)
		}
		t.states = append(t.states, s)
	}
	for _, s := range t.states {
		for _, n := range s.neighbours {
			if t.state(n) == nil {
				return fmt.Errorf("synth: states.txt: %s's neighbour %s is not in the table", s.code, n)
			}
		}
	}
	return nil
}

func (t *tables) state(code string) *stateInfo {
	for i := range t.states {
		if t.states[i].code == code {
			return &t.states[i]
		}
	}
	return nil
}
