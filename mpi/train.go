package mpi

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
)

// TrainOptions tune EM estimation. The zero value uses the defaults.
type TrainOptions struct {
	// Seed seeds the random pairs that estimate u; 0 means DefaultTrainSeed.
	// The same records, options and base give the same configuration.
	Seed uint64
	// RandomPairs is how many random pairs estimate u (0: 1,000,000); when
	// the records have fewer pairs than that, all pairs are used.
	RandomPairs int
	// MaxBlockedPairs caps the blocked pairs EM runs over (0: 5,000,000);
	// above it an evenly spaced subset is used.
	MaxBlockedPairs int
	// MaxIterations bounds each EM run (0: 200); Tolerance is the largest
	// change of any m that counts as converged (0: 1e-7).
	MaxIterations int
	Tolerance     float64
}

// DefaultTrainSeed is the seed used when TrainOptions.Seed is 0.
const DefaultTrainSeed = 20240521

// TrainStats describes an EM run.
type TrainStats struct {
	Records      int `json:"records"`
	BlockedPairs int `json:"blocked_pairs"`
	RandomPairs  int `json:"random_pairs"`
	// HouseholdPairs are blocked pairs a household rule keeps apart; they
	// are left out of EM because they are known not to match.
	HouseholdPairs int  `json:"household_pairs"`
	Iterations     int  `json:"iterations"`
	Converged      bool `json:"converged"`
	// MatchShare is the share of blocked pairs EM reads as matches (λ);
	// HouseholdShare the share it reads as two people of one household.
	MatchShare     float64 `json:"match_share"`
	HouseholdShare float64 `json:"household_share"`
	// RandomMatchShare is the share of random pairs read as matches, which
	// are discounted from u.
	RandomMatchShare float64 `json:"random_match_share"`
	// SexRecordedShare is the share of records stating a sex; the household
	// rules are on when it is at least minSexRecordedShare.
	SexRecordedShare float64 `json:"sex_recorded_share"`
	// Bounded names the m estimates held to their bounds (see boundM).
	Bounded []string `json:"bounded,omitempty"`
	// Changes compares every weight with the configuration trained from.
	Changes []WeightChange `json:"changes,omitempty"`
}

// minSexRecordedShare is the share of records with a stated sex from which a
// source counts as recording it.
const minSexRecordedShare = 0.5

// Train estimates the m and u probabilities of every field level from
// unlabelled records and returns a new configuration based on base (same
// thresholds and limits, Version base.Version+1, new weights).
//
// u, the chance of each level between different people, comes from random
// pairs drawn with a fixed seed. m, its chance for the same person, comes
// from EM (expectation–maximisation) over the blocked pairs, the pairs
// registration compares, one blocking pass at a time: a pass selects pairs
// that agree on its own fields (birth date, say), so EM on that pass learns
// m only for the other fields, and each field's m pools the expected match
// counts of every pass that does not select on it. Random pairs include a
// few true matches (a real share in small files with many duplicates), so
// after EM each random pair's match probability is computed and u is
// re-estimated from the random pairs weighted by their probability of being
// different people; EM then runs again with the cleaner u. Levels too rare
// in the data to estimate keep base's m and u. Training is deterministic: no
// map iteration, a seeded generator, and sums in a fixed order.
func Train(records []Record, base Config, opts TrainOptions) (Config, TrainStats, error) {
	opts = opts.withDefaults()
	stats := TrainStats{Records: len(records)}
	if len(records) < 2 {
		return Config{}, stats, fmt.Errorf("train: need at least 2 records, have %d", len(records))
	}
	norms := make([]Normalized, len(records))
	withSex := 0
	for i := range records {
		norms[i] = Normalize(records[i])
		if norms[i].Sex != "" {
			withSex++
		}
	}
	// The twin and generation rules need a source that records sex (see
	// household); the data says whether it does.
	stats.SexRecordedShare = float64(withSex) / float64(len(records))
	base.HouseholdRules = stats.SexRecordedShare >= minSexRecordedShare
	cc, err := compile(&base)
	if err != nil {
		return Config{}, stats, err
	}

	passes, vecs, households := blockedPairs(cc, norms, base.MaxBlockSize, opts.MaxBlockedPairs)
	stats.BlockedPairs, stats.HouseholdPairs = len(vecs), households
	if len(vecs) == 0 {
		return Config{}, stats, fmt.Errorf("train: the records share no blocking key; nothing to learn from")
	}
	rVecs := randomPairs(cc, norms, opts)
	stats.RandomPairs = len(rVecs)

	var m, m0, h0, u0 [numFields][]float64
	for f := 0; f < numFields; f++ {
		for _, l := range base.Fields[f].Levels {
			m0[f] = append(m0[f], l.M)
			h0[f] = append(h0[f], l.H)
			u0[f] = append(u0[f], l.U)
		}
		m[f] = append([]float64(nil), m0[f]...)
	}
	h := h0
	rWeights := make([]float64, len(rVecs))
	for i := range rWeights {
		rWeights[i] = 1
	}
	u, uSupport := unrelatedShares(rVecs, rWeights, u0)
	var mSupport, hSupport [numFields][]float64
	var shareH float64
	for round := 0; round < 3; round++ {
		var it int
		var conv bool
		var mix mixture
		mix, mSupport, hSupport, stats.MatchShare, shareH, it, conv = emByPass(passes, vecs, mixture{m: m, h: h, u: u, households: base.HouseholdRules}, m0, h0, opts)
		m, h = mix.m, mix.h
		stats.Iterations += it
		stats.Converged = conv
		// Re-estimate u from random pairs weighted by P(different people).
		rl := randomPrior(rVecs, m, u)
		stats.RandomMatchShare = rl
		w := logRatios(&m, &u)
		for i := range rVecs {
			rWeights[i] = 1 - posterior(&rVecs[i], w, rl, nil)
		}
		u, uSupport = unrelatedShares(rVecs, rWeights, u0)
	}

	stats.Bounded = boundM(&m, base)
	stats.HouseholdShare = shareH
	out := base
	out.HouseholdRate = 0
	if base.HouseholdRules {
		out.HouseholdRate = householdRate(vecs, mixture{m: m, h: h, u: u}, stats.MatchShare, shareH, len(records))
	}
	out.Version = base.Version + 1
	out.Source = fmt.Sprintf("em: %d records, %d blocked pairs, %d random pairs, seed %d", stats.Records, stats.BlockedPairs, stats.RandomPairs, opts.Seed)
	out.Fields = make([]FieldWeights, numFields)
	for f := 0; f < numFields; f++ {
		fw := FieldWeights{Field: base.Fields[f].Field}
		for l, bl := range base.Fields[f].Levels {
			lw := LevelWeight{Level: bl.Level, M: m[f][l], U: u[f][l], H: h[f][l]}
			// A level seen too rarely among matches keeps the base estimate:
			// a handful of pairs says little. One that unrelated people almost
			// never reach (the same street address, where people do not share
			// homes) is estimated as half a pair of all those compared: the
			// base value would credit the data with coincidences it never
			// showed.
			switch {
			case mSupport[f][l] < minSupport:
				lw.M, lw.U = bl.M, bl.U
			case uSupport[f][l] < minSupport:
				lw.U = max(uSupport[f][l], 0.5) / max(sum(uSupport[f]), 1)
			}
			if !householdLearned[f] || hSupport[f][l] < minSupport || uSupport[f][l] < minSupport {
				lw.H = bl.H
			}
			lw.Weight = weightOf(lw.M, lw.U)
			lw.HouseholdWeight = weightOf(lw.H, lw.U)
			fw.Levels = append(fw.Levels, lw)
		}
		out.Fields[f] = fw
	}
	if err := out.Validate(); err != nil {
		return Config{}, stats, fmt.Errorf("train: %w", err)
	}
	stats.Changes = WeightChanges(base, out)
	return out, stats, nil
}

// maxDisagreeM bounds the share of true matches EM may find disagreeing
// on a field. Above it the "matches" EM found are not one person's records
// (households, namesakes): the weight of a disagreement would shrink, and
// with it the evidence that keeps such people apart.
const maxDisagreeM = 0.5

// boundM holds each field's disagreement level to maxDisagreeM, spreading
// the excess over the field's other levels in proportion, and returns what
// it changed.
func boundM(m *[numFields][]float64, base Config) []string {
	var out []string
	for f := 0; f < numFields; f++ {
		levels := m[f]
		last := len(levels) - 1
		if levels[last] <= maxDisagreeM {
			continue
		}
		rest := 1 - levels[last]
		if rest <= 0 {
			continue // every match disagrees: nothing to spread it over
		}
		out = append(out, fmt.Sprintf("%s %s m %.3f bounded to %.2f", base.Fields[f].Field, base.Fields[f].Levels[last].Level, levels[last], maxDisagreeM))
		scale := (1 - maxDisagreeM) / rest
		for l := range levels[:last] {
			levels[l] *= scale
		}
		levels[last] = maxDisagreeM
	}
	return out
}

// WeightChange is how a new configuration moved one level's weight.
type WeightChange struct {
	Field  string  `json:"field"`
	Level  string  `json:"level"`
	Before float64 `json:"before"`
	After  float64 `json:"after"`
	M      float64 `json:"m"`
	U      float64 `json:"u"`
}

// WeightChanges lists every level of after with its weight in before (0
// when before has no such field and level, as a configuration of another
// scoring model), in after's field and level order.
func WeightChanges(before, after Config) []WeightChange {
	old := map[[2]string]float64{}
	for _, f := range before.Fields {
		for _, l := range f.Levels {
			old[[2]string{f.Field, l.Level}] = l.Weight
		}
	}
	var out []WeightChange
	for _, f := range after.Fields {
		for _, l := range f.Levels {
			out = append(out, WeightChange{Field: f.Field, Level: l.Level, Before: old[[2]string{f.Field, l.Level}], After: l.Weight, M: l.M, U: l.U})
		}
	}
	return out
}

// trainPass is one blocking pass's pairs (indexes into the compared
// vectors) and the fields it selects on.
type trainPass struct {
	name     string
	pairs    []int
	excluded [numFields]bool
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

// minSupport is the least expected number of pairs at a level for its
// estimate to replace the base one.
const minSupport = 3

func (o TrainOptions) withDefaults() TrainOptions {
	if o.Seed == 0 {
		o.Seed = DefaultTrainSeed
	}
	if o.RandomPairs <= 0 {
		o.RandomPairs = 1_000_000
	}
	if o.MaxBlockedPairs <= 0 {
		o.MaxBlockedPairs = 5_000_000
	}
	if o.MaxIterations <= 0 {
		o.MaxIterations = 200
	}
	if o.Tolerance <= 0 {
		o.Tolerance = 1e-7
	}
	return o
}

// blockedPairs compares the distinct pairs of records that registration
// could compare: the pairs within each block of at most maxBlock records,
// and in a larger block each record with its maxBlock/2 neighbours in sort
// order (the window a query reads); evenly thinned to at most maxPairs and
// grouped by pass. Pairs a household rule keeps apart are left out and
// counted.
func blockedPairs(cc *compiled, norms []Normalized, maxBlock, maxPairs int) ([]trainPass, []pairLevels, int) {
	type entry struct {
		sort   string
		record uint32
	}
	blocks := map[string][]entry{}
	var keys []string
	for i := range norms {
		for _, b := range BlockingKeys(&norms[i]) {
			if _, ok := blocks[b.Key]; !ok {
				keys = append(keys, b.Key)
			}
			blocks[b.Key] = append(blocks[b.Key], entry{b.Sort, uint32(i)})
		}
	}
	sort.Strings(keys)
	byPass := map[string][]uint64{}
	var all []uint64
	for _, k := range keys {
		members := blocks[k]
		reach := len(members)
		if len(members) > maxBlock {
			slices.SortFunc(members, func(a, b entry) int {
				if c := strings.Compare(a.sort, b.sort); c != 0 {
					return c
				}
				return cmp.Compare(a.record, b.record)
			})
			reach = maxBlock/2 + 1
		}
		p := passOf(k)
		for a := 0; a < len(members); a++ {
			for b := a + 1; b < len(members) && b < a+reach; b++ {
				x, y := members[a].record, members[b].record
				if x > y {
					x, y = y, x
				}
				pair := uint64(x)<<32 | uint64(y)
				byPass[p] = append(byPass[p], pair)
				all = append(all, pair)
			}
		}
	}
	all = sortUnique(all)
	if len(all) > maxPairs {
		thin := make([]uint64, 0, maxPairs)
		for i := 0; i < maxPairs; i++ {
			thin = append(thin, all[i*len(all)/maxPairs])
		}
		all = thin
	}
	index := make(map[uint64]int, len(all))
	var vecs []pairLevels
	households := 0
	for _, pair := range all {
		pl := comparePair(cc, &norms[pair>>32], &norms[pair&0xffffffff])
		if pl.household != "" {
			households++
			continue
		}
		index[pair] = len(vecs)
		vecs = append(vecs, pl)
	}
	var passes []trainPass
	for _, pc := range passConditions {
		tp := trainPass{name: pc.pass}
		for _, f := range pc.fields {
			tp.excluded[f] = true
		}
		for _, pair := range sortUnique(byPass[pc.pass]) {
			if i, ok := index[pair]; ok {
				tp.pairs = append(tp.pairs, i)
			}
		}
		if len(tp.pairs) > 0 {
			passes = append(passes, tp)
		}
	}
	return passes, vecs, households
}

func sortUnique(s []uint64) []uint64 {
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	out := s[:0]
	for i, p := range s {
		if i == 0 || p != s[i-1] {
			out = append(out, p)
		}
	}
	return out
}

// randomPairs compares random distinct pairs drawn with the seeded PCG
// generator, or every pair when there are fewer than asked for.
func randomPairs(cc *compiled, norms []Normalized, opts TrainOptions) []pairLevels {
	n := len(norms)
	all := n * (n - 1) / 2
	var out []pairLevels
	if all <= opts.RandomPairs {
		out = make([]pairLevels, 0, all)
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				out = append(out, comparePair(cc, &norms[i], &norms[j]))
			}
		}
		return out
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	out = make([]pairLevels, 0, opts.RandomPairs)
	for len(out) < opts.RandomPairs {
		i, j := rng.IntN(n), rng.IntN(n)
		if i == j {
			continue
		}
		out = append(out, comparePair(cc, &norms[i], &norms[j]))
	}
	return out
}

// levelShares estimates each field's level distribution from weighted pairs
// (missing values left out), with a half-pair pseudo-count spread by the
// prior so no level gets probability 0. It also returns the weighted count
// behind each level. subset, when not nil, selects the pairs to use.
func levelShares(vecs []pairLevels, weights []float64, prior [numFields][]float64, subset []int) (shares, support [numFields][]float64) {
	for f := 0; f < numFields; f++ {
		support[f] = make([]float64, len(prior[f]))
	}
	add := func(i int, w float64) {
		for f := 0; f < numFields; f++ {
			if l := vecs[i].level[f]; l != missing {
				support[f][l] += w
			}
		}
	}
	if subset == nil {
		for i := range vecs {
			add(i, weights[i])
		}
	} else {
		for k, i := range subset {
			add(i, weights[k])
		}
	}
	return sharesOf(support, prior), support
}

// unrelatedShares estimates u, each field's level distribution between
// unrelated people, from random pairs weighted by their probability of
// being different people; for each field it counts only the pairs that
// plainly are unrelated on the other identifying fields (they disagree on
// at least two of given name, family name and birth date, leaving the
// field itself aside). Random pairs hold a few records of one person and of
// one household, and at the rare levels (the same street address, the same
// SSN) those few decide the estimate: a source whose people never share an
// address would otherwise be credited with one person's duplicates as
// chance agreements.
func unrelatedShares(vecs []pairLevels, weights []float64, prior [numFields][]float64) (shares, support [numFields][]float64) {
	for f := 0; f < numFields; f++ {
		support[f] = make([]float64, len(prior[f]))
	}
	strong := [...]int{fGiven, fFamily, fBirth}
	disagrees := func(pl *pairLevels, f int) bool {
		switch f {
		case fGiven:
			return pl.level[f] == givenDisagree
		case fFamily:
			return pl.level[f] == familyDisagree
		}
		return pl.level[f] == birthDisagree
	}
	for i := range vecs {
		pl := &vecs[i]
		for f := 0; f < numFields; f++ {
			l := pl.level[f]
			if l == missing {
				continue
			}
			apart := 0
			for _, g := range strong {
				if g != f && disagrees(pl, g) {
					apart++
				}
			}
			if apart >= 2 {
				support[f][l] += weights[i]
			}
		}
	}
	return sharesOf(support, prior), support
}

func sharesOf(counts, prior [numFields][]float64) (shares [numFields][]float64) {
	const pseudo = 0.5
	for f := 0; f < numFields; f++ {
		total := 0.0
		for _, c := range counts[f] {
			total += c
		}
		s := make([]float64, len(counts[f]))
		for l := range counts[f] {
			s[l] = (counts[f][l] + pseudo*prior[f][l]) / (total + pseudo)
		}
		shares[f] = s
	}
	return shares
}

// logRatios returns ln(m/u) per field and level.
func logRatios(m, u *[numFields][]float64) *[numFields][]float64 {
	var w [numFields][]float64
	for f := 0; f < numFields; f++ {
		w[f] = make([]float64, len(m[f]))
		for l := range m[f] {
			w[f][l] = math.Log(m[f][l]) - math.Log(u[f][l])
		}
	}
	return &w
}

// logLR is the log likelihood ratio (natural log) of a comparison vector,
// leaving out the excluded fields.
func logLR(pl *pairLevels, w *[numFields][]float64, excluded *[numFields]bool) float64 {
	s := 0.0
	for f := 0; f < numFields; f++ {
		if excluded != nil && excluded[f] {
			continue
		}
		if l := pl.level[f]; l != missing {
			s += w[f][l]
		}
	}
	return s
}

// posterior is P(match | vector) for prior match share lambda, given the
// log ratios w.
func posterior(pl *pairLevels, w *[numFields][]float64, lambda float64, excluded *[numFields]bool) float64 {
	x := logLR(pl, w, excluded) + math.Log(lambda) - math.Log1p(-lambda)
	return 1 / (1 + math.Exp(-x))
}

// emByPass runs EM on each pass with u fixed, learning m and h only for
// the fields the pass does not select on, then pools every pass's expected
// counts into one m and one h per field. It returns the pooled mixture
// (u unchanged), the pooled expected counts behind m and h, the pooled
// shares of matches and of household pairs among the blocked pairs, and the
// iteration count.
func emByPass(passes []trainPass, vecs []pairLevels, start mixture, m0, h0 [numFields][]float64, opts TrainOptions) (mixture, [numFields][]float64, [numFields][]float64, float64, float64, int, bool) {
	var pooledM, pooledH [numFields][]float64
	for f := 0; f < numFields; f++ {
		pooledM[f] = make([]float64, len(start.m[f]))
		pooledH[f] = make([]float64, len(start.h[f]))
	}
	iterations, converged := 0, true
	matches, households, pairs := 0.0, 0.0, 0
	for pi := range passes {
		p := &passes[pi]
		if len(p.pairs) < minPassPairs || informativeFields(vecs, p) < minInformativeFields {
			continue
		}
		r := em(vecs, p, start, m0, h0, opts)
		iterations += r.iterations
		converged = converged && r.converged
		matches += r.expectedM
		households += r.expectedH
		pairs += len(p.pairs)
		for f := 0; f < numFields; f++ {
			if p.excluded[f] {
				continue
			}
			for l := range r.countsM[f] {
				pooledM[f][l] += r.countsM[f][l]
				pooledH[f][l] += r.countsH[f][l]
			}
		}
	}
	shareM, shareH := 0.0, 0.0
	if pairs > 0 {
		shareM, shareH = matches/float64(pairs), households/float64(pairs)
	}
	out := mixture{m: sharesOf(pooledM, m0), h: sharesOf(pooledH, h0), u: start.u, households: start.households}
	return out, pooledM, pooledH, shareM, shareH, iterations, converged
}

// householdRate estimates how many household members of another person
// the average record meets among its blocked pairs: the expected number of
// household pairs among all blocked pairs (every field compared), per
// record. It is the prior weight of the household reading at decision time.
func householdRate(vecs []pairLevels, mix mixture, shareM, shareH float64, records int) float64 {
	if records == 0 || shareH <= 0 {
		return 0
	}
	lm, lh, lu := logTable(&mix.m), logTable(&mix.h), logTable(&mix.u)
	shareU := max(1-shareM-shareH, 1e-9)
	expected := 0.0
	for i := range vecs {
		pl := &vecs[i]
		if !sharesHome(pl) {
			continue
		}
		xm := math.Log(shareM) + logLik(pl, lm, nil)
		xh := math.Log(shareH) + logLik(pl, lh, nil)
		xu := math.Log(shareU) + logLik(pl, lu, nil)
		top := max(xm, xh, xu)
		expected += math.Exp(xh-top) / (math.Exp(xm-top) + math.Exp(xh-top) + math.Exp(xu-top))
	}
	return expected / float64(records)
}

// minPassPairs is the fewest pairs a pass needs for EM to learn from it.
const minPassPairs = 20

// minInformativeFields is the fewest fields a pass must leave to compare
// for EM to learn from it: with one field, the share of matches and that
// field's m cannot be told apart (any split fits the data alike), and EM
// drifts instead of converging. FEBRL records without an SSN, blocked on a
// name and a place, leave only the birth date.
const minInformativeFields = 2

// informativeFields counts the fields the pass does not select on that are
// compared (not missing) in at least minSupport of its pairs.
func informativeFields(vecs []pairLevels, p *trainPass) int {
	var present [numFields]int
	for _, i := range p.pairs {
		for f := 0; f < numFields; f++ {
			if vecs[i].level[f] != missing {
				present[f]++
			}
		}
	}
	n := 0
	for f := 0; f < numFields; f++ {
		if !p.excluded[f] && present[f] >= minSupport {
			n++
		}
	}
	return n
}

// mixture holds the class distributions EM estimates: m for records of one
// person, h for two people of one household (pairs that share a home
// only), u (fixed) for unrelated people.
type mixture struct {
	m, h, u [numFields][]float64
	// households is false for a source without household rules (see
	// Train): the mixture then has no household class.
	households bool
}

// emResult is what EM learned from one pass.
type emResult struct {
	m, h                 [numFields][]float64
	countsM, countsH     [numFields][]float64
	lambdaM, lambdaH     float64
	iterations           int
	converged            bool
	expectedM, expectedH float64
}

// em runs expectation–maximisation over one pass's pairs with u held fixed
// and the pass's own fields left out. The mixture has three classes: the
// same person (m), two people of one household (h), unrelated people (u).
// Only a pair that shares a home (see sharesHome) may be of the household
// class: without it, a household's shared family name, address and phone
// look like one person's records, and EM learns that given names and birth
// dates often disagree between a person's records.
func em(vecs []pairLevels, p *trainPass, start mixture, m0, h0 [numFields][]float64, opts TrainOptions) emResult {
	m, h, u := start.m, start.h, start.u
	postM := make([]float64, len(p.pairs))
	postH := make([]float64, len(p.pairs))
	lambdaM, lambdaH := 0.4, 0.2
	if !start.households {
		lambdaH = 0
	}
	var r emResult
	for it := 1; it <= opts.MaxIterations; it++ {
		lm, lh, lu := logTable(&m), logTable(&h), logTable(&u)
		sumM, sumH := 0.0, 0.0
		for k, i := range p.pairs {
			pl := &vecs[i]
			xm := math.Log(lambdaM) + logLik(pl, lm, &p.excluded)
			xu := math.Log(1-lambdaM-lambdaH) + logLik(pl, lu, &p.excluded)
			xh := math.Inf(-1)
			if start.households && sharesHome(pl) {
				xh = math.Log(lambdaH) + logLik(pl, lh, &p.excluded)
			}
			top := max(xm, xu, xh)
			em, eh, eu := math.Exp(xm-top), math.Exp(xh-top), math.Exp(xu-top)
			total := em + eh + eu
			postM[k], postH[k] = em/total, eh/total
			sumM += postM[k]
			sumH += postH[k]
		}
		nextM, countsM := levelShares(vecs, postM, m0, p.pairs)
		nextH, countsH := levelShares(vecs, postH, h0, p.pairs)
		n := float64(len(p.pairs))
		lambdaM = math.Min(math.Max(sumM/n, 1e-6), 1-2e-6)
		if start.households {
			lambdaH = math.Min(math.Max(sumH/n, 1e-6), 1-lambdaM-1e-6)
		}
		delta := 0.0
		for f := 0; f < numFields; f++ {
			if !householdLearned[f] {
				nextH[f] = h0[f]
			}
			if p.excluded[f] {
				nextM[f], nextH[f] = m[f], h[f]
				continue
			}
			for l := range nextM[f] {
				delta = max(delta, math.Abs(nextM[f][l]-m[f][l]), math.Abs(nextH[f][l]-h[f][l]))
			}
		}
		m, h = nextM, nextH
		r = emResult{m: m, h: h, countsM: countsM, countsH: countsH, lambdaM: lambdaM, lambdaH: lambdaH,
			iterations: it, expectedM: sumM, expectedH: sumH}
		if delta < opts.Tolerance {
			r.converged = true
			return r
		}
	}
	return r
}

// householdLearned marks the fields whose H training estimates: what two
// people of one household share (family name, home, phone, e-mail) and
// their sexes. The others keep the configuration's H, because they are what
// makes a household two people rather than one: estimated too, the
// household class becomes "one person's records at one home" and takes
// true matches from the match class.
var householdLearned = [numFields]bool{fFamily: true, fLocation: true, fPhone: true, fEmail: true, fSex: true}

// logTable returns the natural log of every probability of a class.
func logTable(p *[numFields][]float64) *[numFields][]float64 {
	var out [numFields][]float64
	for f := 0; f < numFields; f++ {
		out[f] = make([]float64, len(p[f]))
		for l, v := range p[f] {
			out[f][l] = math.Log(v)
		}
	}
	return &out
}

// logLik is the log likelihood of a comparison vector under one class,
// leaving out the excluded fields and the missing ones.
func logLik(pl *pairLevels, logP *[numFields][]float64, excluded *[numFields]bool) float64 {
	s := 0.0
	for f := 0; f < numFields; f++ {
		if excluded != nil && excluded[f] {
			continue
		}
		if l := pl.level[f]; l != missing {
			s += logP[f][l]
		}
	}
	return s
}

// randomPrior estimates the share of matches among random pairs by EM on
// that one parameter, m and u fixed.
func randomPrior(vecs []pairLevels, m, u [numFields][]float64) float64 {
	lr := make([]float64, len(vecs))
	w := logRatios(&m, &u)
	for i := range vecs {
		lr[i] = logLR(&vecs[i], w, nil)
	}
	lambda := 1e-4
	for it := 0; it < 100; it++ {
		sum := 0.0
		prior := math.Log(lambda) - math.Log1p(-lambda)
		for _, x := range lr {
			sum += 1 / (1 + math.Exp(-(x + prior)))
		}
		next := math.Min(math.Max(sum/float64(len(vecs)), 1e-12), 0.5)
		if math.Abs(next-lambda) < 1e-12 {
			return next
		}
		lambda = next
	}
	return lambda
}
