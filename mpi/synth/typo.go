package synth

import (
	"math/rand/v2"
	"strings"
)

// Data-entry errors. The kinds and their mix follow what the shared
// population-20k file shows (insertions and deletions about a quarter
// each, keyboard-adjacent substitutions a fifth, transpositions an eighth)
// plus the OCR and phonetic confusions of scanned and dictated forms.

// keyboardNeighbours lists the keys next to each letter on a QWERTY keyboard.
var keyboardNeighbours = map[byte]string{
	'q': "wa", 'w': "qesa", 'e': "wrds", 'r': "etfd", 't': "rygf", 'y': "tuhg", 'u': "yijh",
	'i': "uokj", 'o': "iplk", 'p': "ol", 'a': "qszw", 's': "adwxze", 'd': "sfecxr", 'f': "dgrvct",
	'g': "fhtbvy", 'h': "gjynbu", 'j': "hkumni", 'k': "jlimo", 'l': "kop", 'z': "asx", 'x': "zsdc",
	'c': "xdfv", 'v': "cfgb", 'b': "vghn", 'n': "bhjm", 'm': "njk",
}

// ocrConfusions are strings a scanner or a hurried reader takes for others.
var ocrConfusions = [][2]string{
	{"rn", "m"}, {"m", "rn"}, {"cl", "d"}, {"d", "cl"}, {"h", "b"}, {"e", "c"}, {"l", "i"},
	{"i", "l"}, {"u", "v"}, {"vv", "w"}, {"n", "ri"}, {"o", "a"},
}

// phoneticConfusions are spellings of the same sound.
var phoneticConfusions = [][2]string{
	{"ph", "f"}, {"f", "ph"}, {"ck", "k"}, {"ie", "ei"}, {"ei", "ie"}, {"y", "i"}, {"i", "y"},
	{"ou", "ow"}, {"c", "k"}, {"k", "c"}, {"s", "z"}, {"z", "s"}, {"ee", "ea"}, {"son", "sen"},
	{"ll", "l"}, {"tt", "t"}, {"nn", "n"}, {"ss", "s"}, {"rr", "r"}, {"mm", "m"}, {"l", "ll"},
	{"t", "tt"}, {"n", "nn"}, {"er", "ar"}, {"an", "en"}, {"ai", "ay"},
}

// typo returns s with one error of data entry. Letters only are touched;
// the first letter is hit less often, as in real registration data.
func typo(r *rand.Rand, s string) string {
	if len(s) < 2 {
		return s
	}
	switch x := r.Float64(); {
	case x < 0.28:
		return insertTypo(r, s)
	case x < 0.56:
		return deleteTypo(r, s)
	case x < 0.76:
		return substituteTypo(r, s)
	case x < 0.88:
		return transposeTypo(r, s)
	case x < 0.95:
		if t, ok := replaceOne(r, s, phoneticConfusions); ok {
			return t
		}
		return substituteTypo(r, s)
	default:
		if t, ok := replaceOne(r, s, ocrConfusions); ok {
			return t
		}
		return substituteTypo(r, s)
	}
}

// letterPos picks a position holding a letter, the first one a third as
// often as the others; -1 when there is none.
func letterPos(r *rand.Rand, s string) int {
	for range 8 {
		i := r.IntN(len(s))
		if i == 0 && r.IntN(3) != 0 {
			continue
		}
		if isLetter(s[i]) {
			return i
		}
	}
	for i := 0; i < len(s); i++ {
		if isLetter(s[i]) {
			return i
		}
	}
	return -1
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// like gives c the case of model.
func like(c, model byte) byte {
	if model >= 'A' && model <= 'Z' && c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

func neighbour(r *rand.Rand, c byte) byte {
	n := keyboardNeighbours[lower(c)]
	if n == "" {
		return c
	}
	return like(n[r.IntN(len(n))], c)
}

func insertTypo(r *rand.Rand, s string) string {
	i := letterPos(r, s)
	if i < 0 {
		return s
	}
	var c byte
	if r.IntN(2) == 0 {
		c = s[i] // a doubled key
	} else {
		c = neighbour(r, s[i])
	}
	if i == 0 {
		c = lower(c)
		i = 1
	}
	return s[:i] + string(c) + s[i:]
}

func deleteTypo(r *rand.Rand, s string) string {
	i := letterPos(r, s)
	if i < 0 {
		return s
	}
	if i == 0 {
		return string(like(lower(s[1]), s[0])) + s[2:]
	}
	return s[:i] + s[i+1:]
}

func substituteTypo(r *rand.Rand, s string) string {
	i := letterPos(r, s)
	if i < 0 {
		return s
	}
	return s[:i] + string(neighbour(r, s[i])) + s[i+1:]
}

func transposeTypo(r *rand.Rand, s string) string {
	for range 8 {
		i := 1 + r.IntN(len(s)-1)
		if i+1 < len(s) && isLetter(s[i]) && isLetter(s[i+1]) && lower(s[i]) != lower(s[i+1]) {
			return s[:i] + string(s[i+1]) + string(s[i]) + s[i+2:]
		}
	}
	return substituteTypo(r, s)
}

// replaceOne replaces one occurrence (not at the start) of one of the
// confusions that applies to s, matching case.
func replaceOne(r *rand.Rand, s string, confusions [][2]string) (string, bool) {
	low := strings.ToLower(s)
	start := r.IntN(len(confusions))
	for k := range confusions {
		c := confusions[(start+k)%len(confusions)]
		i := strings.Index(low[1:], c[0])
		if i < 0 {
			continue
		}
		i++
		rep := []byte(c[1])
		if s[i] >= 'A' && s[i] <= 'Z' {
			rep = []byte(strings.ToUpper(c[1]))
		}
		return s[:i] + string(rep) + s[i+len(c[0]):], true
	}
	return s, false
}

// digitTypo changes a string of digits as a keyboard or a form does: an
// adjacent transposition, a substituted digit, a letter read for a digit
// (O for 0, l for 1, S for 5, B for 8), or a dropped digit.
func digitTypo(r *rand.Rand, s string) string {
	if len(s) < 2 {
		return s
	}
	var idx []int
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			idx = append(idx, i)
		}
	}
	if len(idx) < 2 {
		return s
	}
	i := idx[r.IntN(len(idx))]
	switch x := r.Float64(); {
	case x < 0.5:
		for _, j := range idx {
			if j > i && s[j] != s[i] {
				b := []byte(s)
				b[i], b[j] = b[j], b[i]
				return string(b)
			}
			if j > i {
				break
			}
		}
		fallthrough
	case x < 0.85:
		b := []byte(s)
		b[i] = byte('0' + (int(b[i]-'0')+1+r.IntN(9))%10)
		return string(b)
	case x < 0.95:
		letters := map[byte]byte{'0': 'O', '1': 'l', '5': 'S', '8': 'B', '2': 'Z', '6': 'b'}
		if c, ok := letters[s[i]]; ok {
			return s[:i] + string(c) + s[i+1:]
		}
		b := []byte(s)
		b[i] = byte('0' + (int(b[i]-'0')+1+r.IntN(9))%10)
		return string(b)
	default:
		return s[:i] + s[i+1:]
	}
}
