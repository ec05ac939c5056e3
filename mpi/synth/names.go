package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// group is the naming tradition of a family name: persons whose family
// name is tagged Hispanic, Asian or South Asian draw their given names from
// that group's list more often, as they do in US registration data.
type group uint8

const (
	groupGeneral group = iota
	groupHispanic
	groupAsian
	groupSouthAsian
	numGroups
)

func groupOf(tag string) group {
	switch tag {
	case "H":
		return groupHispanic
	case "A":
		return groupAsian
	case "S":
		return groupSouthAsian
	}
	return groupGeneral
}

// groupGivenShare is the share of persons of a group whose given name comes
// from the group's list rather than the general US distribution.
var groupGivenShare = [numGroups]float64{0, 0.55, 0.35, 0.6}

// surnameAnchors are (rank, bearers per 100,000 persons) points of the US
// surname distribution, read from the 2010 Census surname summary (Smith
// 828, the 10th name about 360, the 100th about 73, names ranked about
// 150,000 occur about 100 times in 300 million). Frequencies between
// anchors are interpolated on log-log axes; beyond the last listed name the
// ranks are filled by generated names, up to 6 million distinct surnames.
var surnameAnchors = [][2]float64{
	{1, 828}, {2, 655}, {3, 550}, {5, 483}, {10, 359}, {20, 233}, {50, 127}, {100, 73},
	{270, 36}, {1000, 10.5}, {3000, 3.9}, {25000, 0.42}, {150000, 0.042}, {6e6, 0.00033},
}

func surnameFreq(rank float64) float64 {
	a := surnameAnchors
	if rank <= a[0][0] {
		return a[0][1]
	}
	for i := 1; i < len(a); i++ {
		if rank <= a[i][0] {
			t := (math.Log(rank) - math.Log(a[i-1][0])) / (math.Log(a[i][0]) - math.Log(a[i-1][0]))
			return math.Exp(math.Log(a[i-1][1]) + t*(math.Log(a[i][1])-math.Log(a[i-1][1])))
		}
	}
	return 0
}

type listedSurname struct {
	name  string
	group group
}

// tailSeg is a stretch of ranks [lo, hi) whose frequency falls as a power
// law f0*(r/lo)^-exp, sampled by inverting its continuous distribution.
type tailSeg struct {
	lo, hi, exp, f0 float64
	cumEnd          float64
}

func (s tailSeg) mass() float64 {
	if math.Abs(s.exp-1) < 1e-9 {
		return s.f0 * s.lo * math.Log(s.hi/s.lo)
	}
	return s.f0 * math.Pow(s.lo, s.exp) * (math.Pow(s.hi, 1-s.exp) - math.Pow(s.lo, 1-s.exp)) / (1 - s.exp)
}

// at returns the rank at fraction w of the segment's mass.
func (s tailSeg) at(w float64) float64 {
	if math.Abs(s.exp-1) < 1e-9 {
		return s.lo * math.Exp(w*math.Log(s.hi/s.lo))
	}
	a, b := math.Pow(s.lo, 1-s.exp), math.Pow(s.hi, 1-s.exp)
	return math.Pow(a+w*(b-a), 1/(1-s.exp))
}

// surnameTable samples family-name ranks from the US distribution: listed
// names (and generated ones at the ranks between them) up to the last
// listed rank, then power-law segments of generated names.
type surnameTable struct {
	listed  []listedSurname // index rank-1; name "" where a generated name stands
	headCum []float64
	segs    []tailSeg
	total   float64
}

func parseSurnames() (surnameTable, error) {
	lines, err := readData("surnames.txt")
	if err != nil {
		return surnameTable{}, err
	}
	var st surnameTable
	rank, step := 1, 1
	seen := map[string]bool{}
	for _, l := range lines {
		if strings.HasPrefix(l, "@") {
			f := strings.Fields(strings.TrimPrefix(l, "@"))
			r, err1 := strconv.Atoi(f[0])
			s, err2 := strconv.Atoi(f[len(f)-1])
			if len(f) != 2 || err1 != nil || err2 != nil || r < rank || s < 1 {
				return surnameTable{}, fmt.Errorf("synth: surnames.txt: bad rank line %q", l)
			}
			rank, step = r, s
			continue
		}
		for _, tok := range strings.Fields(l) {
			name, tag, _ := strings.Cut(tok, "/")
			name = strings.ReplaceAll(name, "_", " ")
			if seen[strings.ToLower(name)] {
				return surnameTable{}, fmt.Errorf("synth: surnames.txt: %s listed twice", name)
			}
			seen[strings.ToLower(name)] = true
			for len(st.listed) < rank {
				st.listed = append(st.listed, listedSurname{})
			}
			st.listed[rank-1] = listedSurname{name, groupOf(tag)}
			rank += step
		}
	}
	total := 0.0
	for r := 1; r <= len(st.listed); r++ {
		total += surnameFreq(float64(r))
		st.headCum = append(st.headCum, total)
	}
	lo := float64(len(st.listed)) + 1
	for i := 1; i < len(surnameAnchors); i++ {
		hi := surnameAnchors[i][0]
		if hi <= lo {
			continue
		}
		f0 := surnameFreq(lo)
		exp := -(math.Log(surnameFreq(hi)) - math.Log(f0)) / (math.Log(hi) - math.Log(lo))
		seg := tailSeg{lo: lo, hi: hi, exp: exp, f0: f0}
		total += seg.mass()
		seg.cumEnd = total
		st.segs = append(st.segs, seg)
		lo = hi
	}
	st.total = total
	return st, nil
}

// rank maps u in [0,1) to a surname rank.
func (st *surnameTable) rank(u float64) int {
	x := u * st.total
	head := st.headCum[len(st.headCum)-1]
	if x < head {
		return sort.SearchFloat64s(st.headCum, x) + 1
	}
	start := head
	for _, s := range st.segs {
		if x < s.cumEnd || s.cumEnd == st.total {
			r := int(s.at((x - start) / (s.cumEnd - start)))
			return max(r, int(s.lo))
		}
		start = s.cumEnd
	}
	return int(st.segs[len(st.segs)-1].hi) - 1
}

// name returns the family name at a rank, generated where none is listed.
func (st *surnameTable) name(rank int) (string, group) {
	if rank >= 1 && rank <= len(st.listed) && st.listed[rank-1].name != "" {
		return st.listed[rank-1].name, st.listed[rank-1].group
	}
	return st.tailSurname(uint64(rank))
}

// Parts of generated surnames by naming tradition. The generated tail
// stands for the millions of US surnames too rare to list: it must look
// like surnames (so string comparators behave as on real ones) and be
// diverse enough that distinct rare ranks nearly always get distinct names
// (a root, an optional middle syllable, an ending: a million or more
// names per tradition).
type surnameStyle struct {
	weight   float64
	group    group
	prefixes []string // every name of the style takes one
	roots    []string
	middles  []string // "" entries make the middle optional
	endings  []string
}

var surnameStyles = []surnameStyle{
	{weight: 26, roots: strings.Fields("Ab Ash Bar Black Brad Brom Bur Cald Cart Chad Chat Cob Cran Crom Dal Dar Den Dun Els Fair Farn Fen Gar Glad Grim Had Hal Ham Hart Hath Hay Hol Horn Kel Ken Kin Lang Lath Lind Lock Mar Mer Mid Mont Nor Orm Pem Pen Ral Rad Red Ring Rock Roth Rud Sal Shel Sher Stan Stock Stod Sut Thorn Til Wad Wal War Wes Whit Wil Win Wood Wyn Bick Bram Brig Bud Cam Cul Dor Drum Eg Fal Gos Hux Ibb Jen Kirk Lan Mal Nut Pad Quil Rams Sand Tem Up Ver Walm Yar Alden Bex Birk Blen Cass Cheel Clem Cot Crad Dill Eld Fel Fin Garn Gil Gren Hamb Hask Hew Hild Hin Hob Huck Ket Knol Lid Lin Lud Mab Mel Mor Mund Nap Nev Old Ott Pell Pick Pott Pres Pur Rath Rid Rol Rus Sef Skel Snell Spel Sted Stor Swin Tal Tib Tor Trem Tun Wen Wex Wick Wor"),
		middles: strings.Fields(". . . . . . . . . . er en in ing s a el le an am ow ers ey is ock ol on ry"),
		endings: strings.Fields("ford ley ton well wood ham by man er son field ridge more ington stead worth wick comb den dale hurst low shaw thorpe win ward sley ney ing ett ick ock ell ard ers kins lin ey cott bury hill lock brook cliff gate wright smith")},
	{weight: 10, roots: strings.Fields("Brand Eisen Gross Hoff Kirch Klein Lind Rein Schnei Schwarz Stein Wein Zimmer Acker Baum Berg Bieber Dorn Eck Feld Frei Gart Hasel Heil Hirsch Holz Kalt Kess Knopp Krug Lang Lieb Mohr Nuss Ober Rosen Sauer Schaf Scholl Stahl Stroh Tann Unger Vogel Wald Wendel Wolf Ziegel Apfel Bruck Dietz Ebel Fass Fisch Gold Haber Hau Kemp Kuhl Lenz Mast Metz Nagel Pfaff Reich Ritt Roth Sachs Schell Schmal Seid Sieg Stock Trautz Uhl Weid Wirt Zell Amm Bach Bein Bier Busch Dreh Ehr Forst Grun Hahn Hell Hopp Jung Kohl"),
		middles: strings.Fields(". . . . . . . en el er s ing ig am ol ur ast ers"),
		endings: strings.Fields("berg mann er hardt stein feld baum inger ler hauser bach meier huber wald dorf stadt heim ner ling burg hofer macher brenner haus tal kamp reiter wieser")},
	{weight: 8, roots: strings.Fields("Kowal Nowak Wisni Zielin Lewan Kamin Dabrow Jankow Mazur Pawl Wojcie Krawc Piotr Grab Sokol Wrob Zaj Krol Jabl Maj Olsz Pietr Dud Wal Gorsk Nowic Sadow Stepan Kozl Horv Novot Dvor Svob Prochaz Kuchar Vesel Hor Ned Pol Bart Bial Bork Chmiel Cies Czar Dziub Gaw Glow Gol Jasin Karp Kasp Kur Lis Mich Mil Nied Ostr Paw Pras Rud Sliw Szym Tom Wilk Wit Zab Zar Zim"),
		middles: strings.Fields(". . . . . . ow in ar el us ol"),
		endings: strings.Fields("ski czyk ewicz owski iak ek ak enko uk icki czak ik ic ovich ov ska inski arski yk as")},
	{weight: 8, roots: strings.Fields("Castel Bel Benedet Capr Cost Ferr Gall Lomb Marin Pell Ross Sant Vit Amat Bar Bon Carb Cap Cast Del Fab Fal Gentil Giac Grass Leon Lucch Mart Mazz Min Mor Nap Orl Pag Pal Parr Pesc Ric Rom Sal Sorr Tor Vent Zan Abb Ald Ang Bass Bert Bian Bocc Brun Cal Cam Cerr Cir Coll Cre Dam Fior Gar Gior Greg Land Lor Mancin Mass Mel Mont Nar Ols Pat Pier Quar Rizz Rus Scal Ser Spin Tes Tul Vacc Ver"),
		middles: strings.Fields(". . . . . . ar in ol an ell ett icc"),
		endings: strings.Fields("ano elli etti ino one ucci aro ini esi ari etto ella ardi oni ato accio esco ieri otti uzzi")},
	{weight: 6, prefixes: []string{"Mc", "Mc", "Mac", "O'"}, roots: strings.Fields("Gill Carr Dono Fadd Gowan Kenn Lough Namar Ghee Quill Rory Bride Cann Coll Dermott Grath Guire Kenna Laugh Mahon Manus Nally Niff Shane Tigue Ward Bryan Dowd Hanl Kee Leary Mara Neal Reill Shea Sull Brien Keef Hal Gorm Flah Conn Ardle Aul Cab Clos Crack Cull Dade Elroy Fall Gar Geough Gonn Hugh Ilroy Iver Kay Kib Kin Lan Lear Lin Mull Nult Phail Rae Rann Swee Tav"),
		middles: strings.Fields(". . . . . . . a i e"),
		endings: strings.Fields(". . . an in ey y on ell ane ough ahan")},
	{weight: 14, group: groupHispanic, roots: strings.Fields("Alvar Barr Cerv Escob Galin Iba Lozan Marr Quint Sepul Valen Vill Zamor Arreg Bec Cabr Carv Castan Corr Echev Elizon Garib Jaureg Lizar Mald Manriqu Oliv Orteg Palom Quir Rend Salaz Tamay Urib Verd Yban Zub Acev Benav Cald Dur Espin Fajard Gallard Herm Iban Lar Med Nav Oroz Pad Rang Sot Tej Val Agu Alm Arm Bal Bust Cam Cas Ced Cont Cuell Esc Fig Gal Gam Godin Guard Hin Jar Lem Lop Lug Mac Marq Mend Mont Nev Ocamp Olm Orn Pach Par Pin Quez Ram Rey Riv Rom Sal Sant Sauc Ser Tap Tor Tov Ur Vald Vel Zap"),
		middles: strings.Fields(". . . . . . . . an ar il err on al ill or ol ur en in ad ab eg ib as ev"),
		endings: strings.Fields("ez ado era anilla ios eda ales arreal uela ino ero ana illo ona ueta iga ega on ar ia enas ejo ueda uez oso ante ines ido aga ote")},
	{weight: 3, group: groupAsian, roots: strings.Fields("Ng Th Tr Ph Nh H Kh V Ch Zh X L W Y K P S J D B M Q T Hw Gw Ts Sh"),
		middles: strings.Fields(". . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . ao an ai"),
		endings: strings.Fields("uyen anh ien uong oang ao ai ang ong ing an en in un ui ue ei ou ia iu u o am im ieu ach ung")},
	{weight: 5, group: groupSouthAsian, roots: strings.Fields("Ragh Sriniv Bhat Chakr Venk Subram Krish Nar Ram Gop Bal Shank Muk Ban Chatt Das Sen Gho Mitr Kap Mal Sax Tri Agar Khann Ahl Sidd Qure Farr Sheikh Nazar Rajag Anan Dev Pras Bhal Chand Dhill Gar Jai Kaush Lal Madh Nand Pand Rath Sahn Thak Vard Wad Yad"),
		middles: strings.Fields(". . . . a u i e am an"),
		endings: strings.Fields("unathan asan tacharya avarti atesan aniam nan ayan an ar erjee opadhyay hosh ur ena edi wal ani ui ooqi wala eja kar ari")},
	{weight: 6, roots: strings.Fields("Lind Berg Holm Dahl Sund Strom Lund Nord Ek Sjo Hag Ny Gran Blom Fors Wahl Tor Sol Hed Alm Aker Bjor Eng Hell Kval Ols Pers Rask Sand Vik Ask Bro Dal Fag Frid Gust Hall Hog Jon Kell Lid Ljung Mal Nils Ost Rud Sten Sved Tid Ulf"),
		middles: strings.Fields(". . . . . . e a er in"),
		endings: strings.Fields("son sen berg strom quist lund dahl gren man borg stad vik gaard by holm feldt")},
}

var surnameStyleCum = func() []float64 {
	var cum []float64
	t := 0.0
	for _, s := range surnameStyles {
		t += s.weight
		cum = append(cum, t)
	}
	return cum
}()

// spellingShare is the share of generated surnames that are rare spellings
// of listed ones (Smithe, Jonsson, Hernandes): real, rare, and one edit
// from a common name, as typos are.
const spellingShare = 0.2

// tailSurname gives the generated family name of a rank. It depends on the
// rank only, so a rank is the same name in every population.
func (st *surnameTable) tailSurname(rank uint64) (string, group) {
	h := mix64(rank*0x9e3779b97f4a7c15 + 0x5eed)
	next := func(n int) int {
		h = mix64(h + 0x632be59bd9b4e019)
		return int(h % uint64(n))
	}
	if next(1000) < int(spellingShare*1000) {
		base := st.listed[next(len(st.listed))]
		if base.name != "" && !strings.ContainsAny(base.name, " '") {
			r := rand.New(rand.NewPCG(h, rank))
			if v := respell(r, base.name); v != base.name {
				return v, base.group
			}
		}
	}
	u := float64(next(1<<30)) / (1 << 30) * surnameStyleCum[len(surnameStyleCum)-1]
	style := &surnameStyles[sort.SearchFloat64s(surnameStyleCum, u)]
	var b strings.Builder
	if len(style.prefixes) > 0 {
		b.WriteString(style.prefixes[next(len(style.prefixes))])
	}
	root := style.roots[next(len(style.roots))]
	if next(4) == 0 {
		root = revowel(root, next(5))
	}
	b.WriteString(root)
	if m := style.middles[next(len(style.middles))]; m != "." {
		b.WriteString(m)
	}
	if e := style.endings[next(len(style.endings))]; e != "." {
		b.WriteString(e)
	}
	return b.String(), style.group
}

// revowel replaces the first vowel after the initial of a root.
func revowel(root string, k int) string {
	const vowels = "aeiou"
	for i := 1; i < len(root); i++ {
		if strings.IndexByte(vowels, root[i]) >= 0 {
			v := vowels[k%5]
			if v == root[i] {
				v = vowels[(k+1)%5]
			}
			return root[:i] + string(v) + root[i+1:]
		}
	}
	return root
}

// respell writes a name as a rarer family spells it: a phonetic variant,
// a doubled or single letter, an added or changed ending.
func respell(r *rand.Rand, name string) string {
	switch r.IntN(4) {
	case 0:
		if v, ok := replaceOne(r, name, phoneticConfusions); ok {
			return v
		}
	case 1:
		return insertTypo(r, name)
	case 2:
		endings := []string{"e", "s", "son", "sen", "er", "y"}
		return name + endings[r.IntN(len(endings))]
	}
	return substituteVowel(r, name)
}

func substituteVowel(r *rand.Rand, name string) string {
	const vowels = "aeiouy"
	var idx []int
	for i := 1; i < len(name); i++ {
		if strings.IndexByte(vowels, name[i]) >= 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return name + "e"
	}
	i := idx[r.IntN(len(idx))]
	v := vowels[r.IntN(len(vowels))]
	return name[:i] + string(v) + name[i+1:]
}

var rareOnsets = strings.Fields("Ja Ka Bra Ma Ry Ay Jay Ke Ni Ta La Za Bry Kay Ar El Ad Ca Da Ash Bro Kin Tre Zy Nev Ro Sky Bri Cha Dem Gra Jo Kha Lu Mi Na Ori Pey Re Sa Te Va Xa Ya")
var rareEndings = [2][]string{
	strings.Fields("lyn leigh ella anna iah ley ari ira ina ette ia ya lee rah elle onna isha ara ene iyah ora"),
	strings.Fields("den don son ton ric ian en us ius el iel ace ai ler ston ko ter rick o an ias ell"),
}

// rareGiven composes an uncommon given name (the share of births outside
// the listed names grows from a few percent in the 1920s to a quarter).
func rareGiven(r *rand.Rand, sex int) string {
	return rareOnsets[r.IntN(len(rareOnsets))] + rareEndings[sex][r.IntN(len(rareEndings[sex]))]
}

// givenName draws a given name for a person of a sex, birth year and
// naming group.
func (t *tables) givenName(r *rand.Rand, sex, birthYear int, g group) string {
	if g != groupGeneral && r.Float64() < groupGivenShare[g] {
		return t.groupName[g][sex].pick(r.Float64())
	}
	ds := t.given[sex]
	d := &ds[0]
	for i := range ds {
		if ds[i].decade <= birthYear {
			d = &ds[i]
		}
	}
	if n := d.dist.pick(r.Float64()); n != "" {
		return n
	}
	return rareGiven(r, sex)
}

// middleName draws a middle name, never the given name itself.
func (t *tables) middleName(r *rand.Rand, sex, birthYear int, g group, given string) string {
	for range 4 {
		var n string
		if r.Float64() < 0.6 {
			n = t.middle[sex].pick(r.Float64())
		} else {
			n = t.givenName(r, sex, birthYear, g)
		}
		if n != given {
			return n
		}
	}
	return ""
}

// nicknameOf returns a nickname of a formal given name, or "" when it has
// none. extra selects the nicknames the matcher's table does not know.
func (t *tables) nicknameOf(r *rand.Rand, given string, extra bool) string {
	key := strings.ToLower(given)
	m := t.nicknames
	if extra {
		m = t.nicknamesExtra
	}
	vs := m[key]
	if len(vs) == 0 {
		return ""
	}
	v := vs[r.IntN(len(vs))]
	return strings.ToUpper(v[:1]) + v[1:]
}

// twinPair draws both names of a twin pair from the listed pairs.
func (t *tables) twinPair(r *rand.Rand, sexA, sexB int) (string, string) {
	switch {
	case sexA == 0 && sexB == 0:
		p := t.twinPairs[0][r.IntN(len(t.twinPairs[0]))]
		return p[0], p[1]
	case sexA == 1 && sexB == 1:
		p := t.twinPairs[1][r.IntN(len(t.twinPairs[1]))]
		return p[0], p[1]
	}
	p := t.twinPairs[2][r.IntN(len(t.twinPairs[2]))]
	if sexA == 1 {
		return p[0], p[1]
	}
	return p[1], p[0]
}
