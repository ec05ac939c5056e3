package mpi

import (
	"fmt"
	"math"
)

// Config is the match configuration: Fellegi–Sunter m and u probabilities
// and weights per field and agreement level, the decision thresholds and the
// limits that keep candidate lists bounded. It lives in the replicated state
// (Store.Config) so every node decides alike; it is a plain JSON value, and
// Go's JSON encoding of float64 round-trips exactly, so a decoded Config
// scores bit-for-bit like the original.
type Config struct {
	// Version increases by one with every configuration proposed.
	Version uint64 `json:"version"`
	// Source says where the weights came from ("default", or the EM run).
	Source string `json:"source"`
	// Model is the scoring model the configuration was made for
	// (ScoringModel); a stored configuration of another model is not used.
	Model int `json:"model"`
	// Upper and Lower are the decision thresholds on the posterior log2
	// odds that the record is the best candidate person rather than anyone
	// else (another candidate, or nobody in the index): at or above Upper
	// the record links to that person; from Lower up to Upper it gets a
	// person of its own and a review item; below Lower a person of its own.
	Upper float64 `json:"upper"`
	Lower float64 `json:"lower"`
	// PriorMatchShare is the prior probability that a registration is of
	// someone already in the index (π). Each indexed person gets the prior
	// π/N, N the number of persons indexed, so the evidence a link needs
	// grows with log2 N: in an index of a million persons a stranger who
	// shares a common name and a town is a million times more likely than
	// in an index of one.
	PriorMatchShare float64 `json:"prior_match_share"`
	// MinPriorPersons is the least N the prior assumes: while an index is
	// young its registrations still come from a whole population, and the
	// first records must not link on the strength of a name.
	MinPriorPersons int `json:"min_prior_persons"`
	// HouseholdRate is how many members of other people's households a
	// record's blocking finds on average (κ). A record that shares a home
	// with an indexed person is that person with prior π/N, or a member of
	// their household with prior κ/N; the second reading is scored with the
	// H of each level. Spouses, parents and children share a family name,
	// an address, a phone and sometimes an e-mail address: counted as one
	// person's evidence, those agreements outweigh a different given name
	// and birth date.
	HouseholdRate float64 `json:"household_rate"`
	// MaxBlockSize bounds what a query reads of one block: a blocking key
	// with more records than this is read through a window of MaxBlockSize
	// records around the query's own sort value (named in the Decision), so
	// a query never scans a block like "born 1970, family name code SM0" in
	// a million-person index, and never skips it either.
	MaxBlockSize int `json:"max_block_size"`
	// MaxCandidateRecords bounds how many records a query scores: the
	// records found through blocking are ranked by the blocking keys they
	// share with the query, rare keys counting more (a true match shares
	// many keys or a rare one; a stranger met in one common block shares
	// one), and only the first MaxCandidateRecords are scored, so a query
	// costs about the same in an index of a thousand people or of ten
	// million.
	MaxCandidateRecords int `json:"max_candidate_records"`
	// MaxPersonRecords bounds how many of a candidate person's records are
	// scored (the first ones in key order).
	MaxPersonRecords int `json:"max_person_records"`
	// MaxCandidates is how many candidates a Decision reports.
	MaxCandidates int `json:"max_candidates"`
	// TFMaxUp and TFMaxDown bound the term-frequency adjustment of an exact
	// name agreement (in score units): rare names gain up to TFMaxUp, very
	// common ones lose up to TFMaxDown.
	TFMaxUp   float64 `json:"tf_max_up"`
	TFMaxDown float64 `json:"tf_max_down"`
	// HouseholdRules turns on the twin and generation rules (see
	// Explanation.Household). Explicit suffix conflicts always apply.
	HouseholdRules bool `json:"household_rules"`
	// Fields holds the weights, one entry per field in FieldNames order.
	Fields []FieldWeights `json:"fields"`
}

// FieldWeights holds one field's agreement levels, strongest first.
type FieldWeights struct {
	Field  string        `json:"field"`
	Levels []LevelWeight `json:"levels"`
}

// LevelWeight is the Fellegi–Sunter weight of one agreement level: M is
// P(level | same person), U is P(level | different people) and Weight is
// log2(M/U), the evidence the level adds to the score. H is P(level | two
// people of one household) and HouseholdWeight log2(H/U): for a pair that
// shares a home, the household is the reading a link must beat (see
// Config.HouseholdRate).
type LevelWeight struct {
	Level           string  `json:"level"`
	M               float64 `json:"m"`
	U               float64 `json:"u"`
	Weight          float64 `json:"weight"`
	H               float64 `json:"h"`
	HouseholdWeight float64 `json:"household_weight"`
}

// Validate checks that the configuration names exactly the fields and
// levels this package compares, in order, with finite weights and sane
// thresholds.
func (c *Config) Validate() error {
	names := FieldNames()
	if len(c.Fields) != len(names) {
		return fmt.Errorf("%w: %d fields, want %d", ErrInvalidConfig, len(c.Fields), len(names))
	}
	for i, f := range c.Fields {
		if f.Field != names[i] {
			return fmt.Errorf("%w: field %d is %q, want %q", ErrInvalidConfig, i, f.Field, names[i])
		}
		if len(f.Levels) != len(levelNames[i]) {
			return fmt.Errorf("%w: field %s has %d levels, want %d", ErrInvalidConfig, f.Field, len(f.Levels), len(levelNames[i]))
		}
		for j, l := range f.Levels {
			if l.Level != levelNames[i][j] {
				return fmt.Errorf("%w: field %s level %d is %q, want %q", ErrInvalidConfig, f.Field, j, l.Level, levelNames[i][j])
			}
			if math.IsNaN(l.Weight) || math.IsInf(l.Weight, 0) || math.IsNaN(l.HouseholdWeight) || math.IsInf(l.HouseholdWeight, 0) {
				return fmt.Errorf("%w: field %s level %s weight is not finite", ErrInvalidConfig, f.Field, l.Level)
			}
		}
	}
	if c.Model != ScoringModel {
		return fmt.Errorf("%w: model %d, this release scores with model %d", ErrInvalidConfig, c.Model, ScoringModel)
	}
	if !(c.Upper >= c.Lower) || math.IsInf(c.Upper, 0) || math.IsInf(c.Lower, 0) || math.IsNaN(c.Lower) {
		return fmt.Errorf("%w: thresholds upper %v lower %v", ErrInvalidConfig, c.Upper, c.Lower)
	}
	if !(c.HouseholdRate >= 0) || math.IsInf(c.HouseholdRate, 0) {
		return fmt.Errorf("%w: household_rate %v must be a number of 0 or more", ErrInvalidConfig, c.HouseholdRate)
	}
	if !(c.PriorMatchShare > 0 && c.PriorMatchShare < 1) {
		return fmt.Errorf("%w: prior_match_share %v must be between 0 and 1", ErrInvalidConfig, c.PriorMatchShare)
	}
	if c.MinPriorPersons < 1 || c.MaxBlockSize < 1 || c.MaxCandidateRecords < 1 || c.MaxPersonRecords < 1 || c.MaxCandidates < 1 {
		return fmt.Errorf("%w: min_prior_persons, max_block_size, max_candidate_records, max_person_records and max_candidates must be positive", ErrInvalidConfig)
	}
	if c.TFMaxUp < 0 || c.TFMaxDown < 0 {
		return fmt.Errorf("%w: tf bounds must not be negative", ErrInvalidConfig)
	}
	return nil
}

// defaultMU holds the hand-set m and u of DefaultConfig, per field and level
// in levelNames order. They are round figures for registration data with
// some movers and name changes: m from the error rates seen in registration
// audits, u from the chance agreement of two random people (u of an exact
// birth date is about 1/(365*80)). Train replaces them with estimates from
// the data itself.
var defaultMU = [numFields][][2]float64{
	fGiven:    {{0.86, 0.01}, {0.03, 0.002}, {0.05, 0.003}, {0.02, 0.01}, {0.01, 0.01}, {0.01, 0.03}, {0.02, 0.935}},
	fMiddle:   {{0.6, 0.02}, {0.3, 0.05}, {0.03, 0.01}, {0.07, 0.92}},
	fFamily:   {{0.82, 0.005}, {0.03, 0.0005}, {0.05, 0.002}, {0.02, 0.01}, {0.08, 0.9825}},
	fBirth:    {{0.88, 0.00004}, {0.02, 0.00002}, {0.05, 0.0003}, {0.01, 0.0002}, {0.02, 0.003}, {0.02, 0.99644}},
	fSex:      {{0.98, 0.5}, {0.02, 0.5}},
	fLocation: {{0.5, 0.00002}, {0.08, 0.00002}, {0.1, 0.001}, {0.1, 0.02}, {0.1, 0.1}, {0.12, 0.87896}},
	fPhone:    {{0.65, 0.00001}, {0.05, 0.00005}, {0.02, 0.0001}, {0.28, 0.99984}},
	fEmail:    {{0.85, 0.00001}, {0.05, 0.0001}, {0.1, 0.99989}},
	fSSN:      {{0.94, 0.00001}, {0.04, 0.0001}, {0.01, 0.0001}, {0.01, 0.99979}},
}

// defaultH holds the hand-set H of DefaultConfig: how the records of two
// people of one household compare. They share the address (or a phone, or
// both: that is what makes a pair a household candidate at all), usually
// the family name and sometimes an e-mail address; they rarely share a
// given name (a junior) or a birth date (twins).
var defaultH = [numFields][]float64{
	fGiven:    {0.01, 0.002, 0.005, 0.005, 0.003, 0.03, 0.945},
	fMiddle:   {0.01, 0.07, 0.005, 0.915},
	fFamily:   {0.5, 0.04, 0.05, 0.02, 0.39},
	fBirth:    {0.03, 0.001, 0.01, 0.005, 0.01, 0.944},
	fSex:      {0.5, 0.5},
	fLocation: {0.85, 0.05, 0.03, 0.04, 0.02, 0.01},
	fPhone:    {0.4, 0.005, 0.005, 0.59},
	fEmail:    {0.1, 0.01, 0.89},
	fSSN:      {0.001, 0.001, 0.003, 0.995},
}

// DefaultConfig is the configuration a new cluster starts with, before any
// EM training: version 0, hand-set weights.
func DefaultConfig() Config {
	c := Config{
		Version:             0,
		Source:              "default",
		Model:               ScoringModel,
		Upper:               5,
		Lower:               0,
		PriorMatchShare:     0.5,
		MinPriorPersons:     1000,
		HouseholdRate:       0.5,
		MaxBlockSize:        50,
		MaxCandidateRecords: 12,
		MaxPersonRecords:    20,
		MaxCandidates:       10,
		TFMaxUp:             4,
		TFMaxDown:           3,
		HouseholdRules:      true,
	}
	names := FieldNames()
	for i := range names {
		fw := FieldWeights{Field: names[i]}
		for j, mu := range defaultMU[i] {
			h := defaultH[i][j]
			fw.Levels = append(fw.Levels, LevelWeight{Level: levelNames[i][j], M: mu[0], U: mu[1], Weight: weightOf(mu[0], mu[1]),
				H: h, HouseholdWeight: weightOf(h, mu[1])})
		}
		c.Fields = append(c.Fields, fw)
	}
	return c
}

// weightOf is log2(m/u), bounded so that one field can never outweigh all
// the others (a probability estimated as 0 would otherwise give ±Inf).
func weightOf(m, u float64) float64 {
	const bound = 20
	if m <= 0 || u <= 0 {
		if m > u {
			return bound
		}
		return -bound
	}
	return math.Max(-bound, math.Min(bound, math.Log2(m/u)))
}

// ScoringModel identifies how this release compares and scores records:
// the comparison fields and levels, the location hierarchy, the prior by
// index size and the posterior decision. A Config names the model it was
// made for; one made for another model is not used (the default is, until
// the configuration is trained again).
const ScoringModel = 2

// maxLevels is the most levels any field has.
const maxLevels = 8

// compiled is a Config laid out for scoring: weights indexed by field and
// level.
type compiled struct {
	cfg     *Config
	weights [numFields][maxLevels]float64
	// household holds the HouseholdWeight of every level.
	household [numFields][maxLevels]float64
	uExact    [numFields]float64
}

func compile(c *Config) (*compiled, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cc := &compiled{cfg: c}
	for i, f := range c.Fields {
		for j, l := range f.Levels {
			cc.weights[i][j] = l.Weight
			cc.household[i][j] = l.HouseholdWeight
		}
		cc.uExact[i] = f.Levels[0].U
	}
	return cc, nil
}

// defaultCompiled is DefaultConfig compiled once; it is never modified.
var defaultCompiled = mustCompileDefault()

func mustCompileDefault() *compiled {
	c := DefaultConfig()
	cc, err := compile(&c)
	if err != nil {
		panic(err) // the default is part of the code; a test validates it
	}
	return cc
}
