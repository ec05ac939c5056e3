package mpi

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"
)

// The tables in this file are constants: they are built once when the
// package loads and never written afterwards, so they are safe to share
// between goroutines and do not break determinism.

//go:embed nicknames.txt
var nicknameText string

// nicknameGroups maps a normalised given name to the formal names of every
// group it belongs to (sorted). A formal name maps to itself.
var nicknameGroups = mustParseNicknames(nicknameText)

// nicknameVariants maps a name of the table to the other names of every group
// it belongs to (sorted): Donald to Don, Donnie and Donny.
var nicknameVariants = variantsOfGroups(nicknameGroups)

func variantsOfGroups(groups map[string][]string) map[string][]string {
	members := map[string][]string{}
	for name, formals := range groups {
		for _, f := range formals {
			members[f] = append(members[f], name)
		}
	}
	out := make(map[string][]string, len(groups))
	for name, formals := range groups {
		seen := map[string]bool{name: true}
		var variants []string
		for _, f := range formals {
			for _, m := range members[f] {
				if !seen[m] {
					seen[m] = true
					variants = append(variants, m)
				}
			}
		}
		sort.Strings(variants)
		out[name] = variants
	}
	return out
}

func mustParseNicknames(text string) map[string][]string {
	groups, err := parseNicknames(text)
	if err != nil {
		panic(err) // the table is shipped with the code; a test parses it too
	}
	return groups
}

func parseNicknames(text string) (map[string][]string, error) {
	sets := map[string]map[string]bool{}
	add := func(name, formal string) {
		if sets[name] == nil {
			sets[name] = map[string]bool{}
		}
		sets[name][formal] = true
	}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		formal, variants, ok := strings.Cut(line, ":")
		formal = strings.TrimSpace(formal)
		if !ok || formal == "" || strings.ContainsAny(formal, " \t") {
			return nil, fmt.Errorf("nicknames.txt line %d: want \"formal: variants\"", i+1)
		}
		add(formal, formal)
		for _, v := range strings.Fields(variants) {
			if v != strings.ToLower(v) {
				return nil, fmt.Errorf("nicknames.txt line %d: %q is not lower case", i+1, v)
			}
			add(v, formal)
		}
	}
	out := make(map[string][]string, len(sets))
	for name, set := range sets {
		formals := make([]string, 0, len(set))
		for f := range set {
			formals = append(formals, f)
		}
		sort.Strings(formals)
		out[name] = formals
	}
	return out, nil
}

// formalNames returns the formal names a given name stands for: its
// nickname groups, or the name itself when it is in no group.
func formalNames(name string) []string {
	if g, ok := nicknameGroups[name]; ok {
		return g
	}
	return []string{name}
}

// SameGivenName reports whether two normalised given names are the same
// name or nicknames of each other (Bill and William).
func SameGivenName(a, b string) bool { return a == b || nicknameEquivalent(a, b) }

//go:embed givennames.txt
var givenNameText string

// commonGivenNames holds the names of givennames.txt.
var commonGivenNames = parseNameList(givenNameText)

func parseNameList(text string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, n := range strings.Fields(line) {
			names[n] = true
		}
	}
	return names
}

// establishedName reports whether a given name is a name in its own right:
// in the list of common given names or in the nickname table. A keying
// error seldom turns one such name into another, so two of them one or two
// errors apart are more likely two people's names than one name mistyped.
func establishedName(name string) bool {
	return commonGivenNames[name] || knownName(name)
}

// knownName reports whether a name is in the nickname table.
func knownName(name string) bool {
	_, ok := nicknameGroups[name]
	return ok
}

// nicknameEquivalent reports whether two different given names share a
// nickname group (Bill and William, Peggy and Margaret).
func nicknameEquivalent(a, b string) bool {
	ga, okA := nicknameGroups[a]
	gb, okB := nicknameGroups[b]
	if !okA || !okB {
		return false
	}
	for _, x := range ga { // both lists are short and sorted
		for _, y := range gb {
			if x == y {
				return true
			}
		}
	}
	return false
}

// streetAbbreviations maps street suffixes and unit designators
// to one abbreviation (after USPS Publication 28, plus common Australian
// forms so FEBRL addresses normalise too). Both the long form and common
// variants map to the standard abbreviation, so "Street", "Str" and "St."
// all compare equal. The first word of the street name is never abbreviated
// ("Forest Court" stays "forest ct"), since there the word is a name.
var streetAbbreviations = map[string]string{
	"alley": "aly", "allee": "aly", "ally": "aly",
	"annex": "anx", "arcade": "arc",
	"avenue": "ave", "av": "ave", "aven": "ave", "avenu": "ave", "avn": "ave", "avnue": "ave",
	"bayou": "byu", "beach": "bch", "bend": "bnd", "bluff": "blf", "bottom": "btm",
	"boulevard": "blvd", "boul": "blvd", "boulv": "blvd",
	"branch": "br", "bridge": "brg", "brook": "brk", "bypass": "byp",
	"causeway": "cswy", "center": "ctr", "centre": "ctr", "circle": "cir", "circ": "cir", "crcl": "cir",
	"circuit": "cct", "close": "cl", "cliff": "clf", "club": "clb", "common": "cmn", "corner": "cor",
	"course": "crse", "court": "ct", "crt": "ct", "cove": "cv", "creek": "crk",
	"crescent": "cres", "cresent": "cres", "crest": "crst", "crossing": "xing", "crossroad": "xrd",
	"drive": "dr", "driv": "dr", "drv": "dr",
	"esplanade": "esp", "estate": "est", "expressway": "expy", "extension": "ext",
	"field": "fld", "fields": "flds", "flat": "flt", "ford": "frd", "forest": "frst", "fork": "frk",
	"fort": "ft", "freeway": "fwy", "garden": "gdn", "gardens": "gdns", "gateway": "gtwy",
	"glen": "gln", "green": "grn", "grove": "grv", "harbor": "hbr", "harbour": "hbr", "haven": "hvn",
	"heights": "hts", "highway": "hwy", "highwy": "hwy", "hiway": "hwy", "hill": "hl", "hills": "hls",
	"hollow": "holw", "island": "is", "junction": "jct", "key": "ky", "knoll": "knl",
	"lake": "lk", "lakes": "lks", "landing": "lndg", "lane": "ln", "light": "lgt", "loop": "loop",
	"manor": "mnr", "meadow": "mdw", "meadows": "mdws", "mews": "mews", "mill": "ml", "mount": "mt",
	"mountain": "mtn", "orchard": "orch", "parade": "pde", "park": "park", "parkway": "pkwy",
	"pkway": "pkwy", "parkwy": "pkwy", "pass": "pass", "path": "path", "pike": "pike",
	"place": "pl", "plaza": "plz", "point": "pt", "port": "prt", "prairie": "pr", "ridge": "rdg",
	"river": "riv", "road": "rd", "route": "rte", "row": "row", "run": "run", "shore": "shr",
	"spring": "spg", "springs": "spgs", "square": "sq", "station": "sta", "stream": "strm",
	"street": "st", "str": "st", "strt": "st", "stret": "st", "summit": "smt",
	"terrace": "ter", "terr": "ter", "trace": "trce", "track": "trak", "trail": "trl",
	"tunnel": "tunl", "turnpike": "tpke", "valley": "vly", "view": "vw", "village": "vlg",
	"vlge": "vlg", "ville": "vl", "vista": "vis", "walk": "walk", "way": "way", "wells": "wls",
	// unit designators
	"apartment": "apt", "building": "bldg", "department": "dept", "floor": "fl",
	"room": "rm", "suite": "ste", "unit": "unit", "number": "no",
}

// directionals are abbreviated wherever they stand in an address line.
var directionals = map[string]string{
	"north": "n", "south": "s", "east": "e", "west": "w",
	"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw",
}

// usStates maps US state and territory names to their postal abbreviations.
var usStates = map[string]string{
	"alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
	"colorado": "co", "connecticut": "ct", "delaware": "de", "districtofcolumbia": "dc",
	"florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il",
	"indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
	"maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi", "minnesota": "mn",
	"mississippi": "ms", "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv",
	"newhampshire": "nh", "newjersey": "nj", "newmexico": "nm", "newyork": "ny",
	"northcarolina": "nc", "northdakota": "nd", "ohio": "oh", "oklahoma": "ok", "oregon": "or",
	"pennsylvania": "pa", "rhodeisland": "ri", "southcarolina": "sc", "southdakota": "sd",
	"tennessee": "tn", "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va",
	"washington": "wa", "westvirginia": "wv", "wisconsin": "wi", "wyoming": "wy",
	"puertorico": "pr", "guam": "gu", "virginislands": "vi", "americansamoa": "as",
	"northernmarianaislands": "mp",
}

// generationalSuffixes maps suffix spellings to one form. A suffix tells
// generations of one family apart (a father and son of the same name).
var generationalSuffixes = map[string]string{
	"jr": "jr", "junior": "jr", "jnr": "jr",
	"sr": "sr", "senior": "sr", "snr": "sr",
	"ii": "ii", "2nd": "ii", "iii": "iii", "3rd": "iii", "iv": "iv", "4th": "iv", "v": "v", "5th": "v",
}

// nameTitles are honorifics and degrees dropped from names.
var nameTitles = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "miss": true, "mx": true, "dr": true, "prof": true,
	"rev": true, "sir": true, "dame": true, "md": true, "phd": true, "rn": true, "esq": true,
}

// familyParticles are the small words of multi-part family names (de la
// Cruz, van der Berg). They stay part of the whole name but do not count on
// their own when parts of two family names are compared.
var familyParticles = map[string]bool{
	"de": true, "del": true, "della": true, "la": true, "le": true, "da": true, "das": true,
	"do": true, "dos": true, "di": true, "du": true, "van": true, "von": true, "der": true,
	"den": true, "ter": true, "ten": true, "y": true, "e": true, "st": true, "saint": true,
	"al": true, "el": true, "bin": true, "ibn": true,
}

// placeholderSSNs are values registration desks type when the patient has no
// number; they are treated as missing.
var placeholderSSNs = map[string]bool{
	"000000000": true, "111111111": true, "222222222": true, "333333333": true,
	"444444444": true, "555555555": true, "666666666": true, "777777777": true,
	"888888888": true, "999999999": true, "123456789": true, "987654321": true,
}
