package synth

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// Every random choice comes from a PCG (math/rand/v2) seeded from the
// population's seed and the index of what is being drawn (a unit, a
// record, the geography), so that any unit or record can be drawn again
// alone, in any order, with the same result.
const (
	streamGeography uint64 = iota + 1
	streamShape
	streamUnit
	streamRecord
	streamSSN
	streamPhone
	streamMRN
	streamOrder
	streamFacility
)

// mix64 is the SplitMix64 finaliser: a bijective scramble of 64 bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// source is a reusable PCG and its Rand, re-seeded for each draw.
type source struct {
	pcg rand.PCG
	r   *rand.Rand
}

func newSource() *source {
	s := &source{}
	s.r = rand.New(&s.pcg)
	return s
}

func (s *source) at(seed, stream, index uint64) *rand.Rand {
	a := mix64(seed ^ mix64(stream*0x9e3779b97f4a7c15+index))
	b := mix64(a ^ stream<<32 ^ index)
	s.pcg.Seed(a, b)
	return s.r
}

func chance(r *rand.Rand, p float64) bool { return p > 0 && r.Float64() < p }

// poisson draws a Poisson count (Knuth's method; the means used are small).
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// logNormal draws exp(N(0, sigma²)).
func logNormal(r *rand.Rand, sigma float64) float64 { return math.Exp(r.NormFloat64() * sigma) }

// permute is a keyed bijection of [0, n): a four-round Feistel network on
// the smallest even number of bits that covers n, walking the cycle until
// the value falls inside. It gives each person a distinct SSN and each
// record a distinct MRN without remembering which were used.
func permute(x, n, key uint64) uint64 {
	if n <= 1 {
		return 0
	}
	half := uint((bits.Len64(n-1) + 1) / 2)
	mask := uint64(1)<<half - 1
	for {
		l, r := x>>half, x&mask
		for round := range uint64(4) {
			l, r = r, l^(mix64(r^key^round<<56)&mask)
		}
		x = l<<half | r
		if x < n {
			return x
		}
	}
}

// Calendar days are counted from 1970-01-01 (days, civil: Howard
// Hinnant's algorithms), so that no clock or time zone is involved.
func days(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func civil(z int) (y, m, d int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era = (z - 146096) / 146097
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func daysInMonth(y, m int) int {
	return days(y+m/12, m%12+1, 1) - days(y, m, 1)
}
