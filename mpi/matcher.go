package mpi

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Outcome is what registration did with a record.
type Outcome string

const (
	// OutcomeLinked: the record joined an existing person.
	OutcomeLinked Outcome = "linked"
	// OutcomeNew: the record got a new person; nobody scored at the lower
	// threshold.
	OutcomeNew Outcome = "new"
	// OutcomeReview: the record got its own person and a review item names
	// the candidate person(s) a steward should look at.
	OutcomeReview Outcome = "review"
)

// Match grades for FHIR $match (the match-grade extension).
const (
	GradeCertain      = "certain"
	GradeProbable     = "probable"
	GradePossible     = "possible"
	GradeCertainlyNot = "certainly-not"
)

// Candidate is a person scored against a record: the best score over the
// person's records and the record that gave it.
type Candidate struct {
	EUID string `json:"euid"`
	// Score is the log2 odds that the record is this person rather than
	// somebody not in the index: the evidence of the best-scoring record
	// pair (a sum of log2 likelihood ratios) plus the prior of one person
	// among those indexed.
	Score float64 `json:"score"`
	// Probability is the posterior probability that the record is this
	// person, weighed against every other candidate and against nobody in
	// the index (0 for a person a household rule excludes).
	Probability float64   `json:"probability"`
	Record      RecordKey `json:"record"`
	// Grade is certain (posterior log2 odds at or above the upper threshold,
	// with identifying evidence), probable (at or above the lower one),
	// possible, or certainly-not (household conflict).
	Grade string `json:"grade"`
	// Household names the rule that forbids linking to this person, if any
	// of its records conflicts with the query (see Explanation.Household).
	Household string `json:"household,omitempty"`
	// PersonSSN is set when Record gives no SSN but the person's other
	// records give one that is not the query's: Score counts the pair as
	// disagreeing on SSN (see ExplainCandidate).
	PersonSSN bool `json:"person_ssn,omitempty"`

	// odds is the posterior log2 odds of Probability; identifying whether
	// the best record pair shares identifying evidence (see identifying).
	odds        float64
	identifying bool
}

// Decision is the result of registering a record. It is deterministic and
// JSON-serialisable, so it can travel back from the Raft FSM as the Apply
// response.
type Decision struct {
	Record  RecordKey `json:"record"`
	Outcome Outcome   `json:"outcome"`
	// EUID is the person the record now belongs to.
	EUID string `json:"euid"`
	// Score is the best score of a person the record could link to (0 when
	// there was none), and Probability that person's posterior probability.
	Score       float64 `json:"score"`
	Probability float64 `json:"probability"`
	// Candidates are the best-scoring persons, best first (ties by the key of
	// their best-scoring record), at
	// most Config.MaxCandidates, including those a household rule excluded.
	Candidates []Candidate `json:"candidates"`
	// Review is the review item appended, if any.
	Review *ReviewItem `json:"review,omitempty"`
	// Updated is set when the identifier was already registered: the record
	// was replaced and its link decided again. PreviousEUID is the person it
	// belonged to before.
	Updated      bool   `json:"updated,omitempty"`
	PreviousEUID string `json:"previous_euid,omitempty"`
	// WindowedBlocks are blocking keys with more than Config.MaxBlockSize
	// records, of which only the window nearest the record's sort value
	// was searched.
	WindowedBlocks []string `json:"windowed_blocks,omitempty"`
	// CandidateRecords is how many records were scored; UnscoredRecords
	// how many more blocking found beyond Config.MaxCandidateRecords.
	CandidateRecords int    `json:"candidate_records"`
	UnscoredRecords  int    `json:"unscored_records,omitempty"`
	ConfigVersion    uint64 `json:"config_version"`
}

// Matcher registers and matches records against a Store. It holds no
// matching state of its own (the configuration is read from the store on
// every call), so one Matcher may serve any number of stores and
// goroutines; it only recycles scratch buffers between calls, which never
// changes a result.
type Matcher struct {
	scratch sync.Pool // of *scratch
}

// scratch holds the buffers of one candidates call, reused so that a query
// against a large index allocates little (at a million records, garbage
// collection of per-query maps cost more than the scoring).
type scratch struct {
	// keyBytes holds the keys of members when the store reads them as views
	// (BatchReader): they are valid until the next registration's read.
	keyBytes []byte
	members  []RecordKey // of all blocks read, block i's ending at ends[i]
	ends     []int
	complete []bool
	index    map[RecordKey]int
	hits     []hit
	best     []hit
	keys     []RecordKey
	found    []*StoredRecord // the records of keys, in order
	records  map[RecordKey]*StoredRecord
	arena    RecordArena // holds found's records when the store decodes them
	seen     map[string]bool
	euids    []string
	persons  []Person // the persons of euids, in order
	exists   []bool
}

type hit struct {
	key  RecordKey
	rank int
}

// better orders hits: more shared blocks first, then by key.
func (h *hit) better(o *hit) bool {
	if h.rank != o.rank {
		return h.rank > o.rank
	}
	return h.key < o.key
}

// bestHits appends to buf the k best hits, best first. Only a dozen of a
// hundred-odd hits are kept, so an insertion into a short sorted list beats
// sorting them all.
func bestHits(hits []hit, k int, buf []hit) []hit {
	for i := range hits {
		h := &hits[i]
		if len(buf) == k && !h.better(&buf[k-1]) {
			continue
		}
		at := len(buf)
		for at > 0 && h.better(&buf[at-1]) {
			at--
		}
		if len(buf) < k {
			buf = append(buf, hit{})
		}
		copy(buf[at+1:], buf[at:len(buf)-1])
		buf[at] = *h
	}
	return buf
}

// maxScratchEntries keeps an unusually large query's maps from being
// recycled (clearing a map costs its capacity, not its length).
const maxScratchEntries = 4096

func (m *Matcher) getScratch() *scratch {
	if sc, ok := m.scratch.Get().(*scratch); ok {
		return sc
	}
	return &scratch{index: map[RecordKey]int{}, records: map[RecordKey]*StoredRecord{}, seen: map[string]bool{}}
}

func (m *Matcher) putScratch(sc *scratch) {
	if len(sc.index) > maxScratchEntries {
		return
	}
	clear(sc.index)
	clear(sc.records)
	clear(sc.seen)
	sc.arena.Reset()
	// Drop references to keys and records, up to capacity: truncated
	// slices still hold them beyond their length.
	clear(sc.members[:cap(sc.members)])
	clear(sc.hits[:cap(sc.hits)])
	clear(sc.best[:cap(sc.best)])
	clear(sc.keys[:cap(sc.keys)])
	clear(sc.found[:cap(sc.found)])
	clear(sc.euids[:cap(sc.euids)])
	clear(sc.persons[:cap(sc.persons)])
	sc.members, sc.ends, sc.complete = sc.members[:0], sc.ends[:0], sc.complete[:0]
	sc.hits, sc.best, sc.keys, sc.found = sc.hits[:0], sc.best[:0], sc.keys[:0], sc.found[:0]
	sc.euids, sc.persons, sc.exists = sc.euids[:0], sc.persons[:0], sc.exists[:0]
	m.scratch.Put(sc)
}

// NewMatcher returns a Matcher.
func NewMatcher() *Matcher { return &Matcher{} }

// loadConfig reads and compiles the configuration stored in s, or the
// default one when none is stored or the stored one was made for another
// scoring model (an index from an earlier release, until it is trained
// again: every node of one release reads the same default).
func loadConfig(s Store) (*compiled, error) {
	cfg, ok, err := s.Config()
	if err != nil {
		return nil, fmt.Errorf("read match configuration: %w", err)
	}
	if !ok || cfg.Model != ScoringModel {
		return defaultCompiled, nil
	}
	return compile(&cfg)
}

// EffectiveConfig is the configuration a store's matcher decides with,
// given what the store holds: the stored one, or DefaultConfig when none is
// stored or it was made for another scoring model (then with the stored
// version, so a configuration trained from it still goes up).
func EffectiveConfig(stored Config, ok bool) Config {
	if ok && stored.Model == ScoringModel {
		return stored
	}
	c := DefaultConfig()
	if ok {
		c.Version = stored.Version
	}
	return c
}

// Register files a record and decides its link (see decide): it joins the
// best person when that person's posterior reaches the upper threshold with
// identifying evidence, or the best of several persons that look like one
// person split (with a review item for their merge); when the decision is
// uncertain it gets a person of its own and a review item; otherwise a new
// person. A new person takes newEUID (the caller stamps IDs, as the Raft
// leader does), except that a re-registered record whose old person has no
// other record keeps that person's EUID.
//
// Re-registering a known identifier replaces the record and decides its
// link again. Register is deterministic for a given store content and
// input. It writes through s in several calls; on error the caller must
// discard the store's transaction.
func (m *Matcher) Register(s Store, rec Record, newEUID string) (Decision, error) {
	return m.RegisterPrepared(s, rec, nil, newEUID)
}

// Prepared is the part of registering a record that depends on the record alone: its
// normalised form and its blocking keys. The Raft leader prepares a record once, before
// proposing it, and the command carries the result, so that the nodes applying it do not
// each repeat the work (see RegisterPrepared).
type Prepared struct {
	Norm   Normalized
	Blocks []Block
}

// Prepare normalises a record and computes its blocking keys.
func Prepare(rec Record) Prepared {
	n := Normalize(rec)
	return Prepared{Norm: n, Blocks: BlockingKeys(&n)}
}

// ErrPreparedMismatch is returned (wrapped) by Prepared.Verify when a prepared record is
// not what Prepare gives for its record.
var ErrPreparedMismatch = errors.New("prepared record does not follow from its record")

// Verify checks a prepared record against the record it claims to come from, at a small
// part of the cost of preparing it: the normalised form, which decides every comparison
// and every term count, is derived again and must be identical, under this release's
// NormVersion; the blocking keys, which cost more to derive than the normalised form and
// decide only which stored records are read as candidates, must be well formed (sorted by
// key without duplicates, each of a known blocking pass). A
// Raft command carries the same bytes to every node, so whatever passes here is filed and
// matched alike on every node.
func (p *Prepared) Verify(rec Record) error {
	if p.Norm.Version != NormVersion {
		return fmt.Errorf("%w: normalised by rules version %d, this release has %d", ErrPreparedMismatch, p.Norm.Version, NormVersion)
	}
	want := Normalize(rec)
	// Compared in their encoded form, so that no field can be left out of the comparison;
	// encoded on the stack, as every node verifies every record it applies.
	var haveBuf, wantBuf [512]byte
	if !bytes.Equal(appendNormalized(haveBuf[:0], &p.Norm), appendNormalized(wantBuf[:0], &want)) {
		return fmt.Errorf("%w: the normalised form differs", ErrPreparedMismatch)
	}
	for i, b := range p.Blocks {
		if !knownPass(passOf(b.Key)) || len(b.Key) <= len(passOf(b.Key))+1 {
			return fmt.Errorf("%w: blocking key %d is of no known pass", ErrPreparedMismatch, i)
		}
		if i > 0 && p.Blocks[i-1].Key >= b.Key {
			return fmt.Errorf("%w: blocking keys not sorted or repeated at %d", ErrPreparedMismatch, i)
		}
	}
	return nil
}

// RegisterPrepared is Register with the record's normalised form and blocking keys
// computed beforehand by Prepare(rec); p nil, or prepared by normalisation rules of
// another NormVersion, is prepared again here. The caller checks p first (Verify): a Raft
// command carries it as the same bytes to every node, so every node decides alike.
func (m *Matcher) RegisterPrepared(s Store, rec Record, p *Prepared, newEUID string) (Decision, error) {
	cc, p, err := beginRegistration(s, rec, p, newEUID)
	if err != nil {
		return Decision{}, err
	}
	key := rec.Key()
	n := p.Norm
	d := Decision{Record: key, ConfigVersion: cc.cfg.Version}

	old, err := s.Record(key)
	if err != nil {
		return Decision{}, fmt.Errorf("register %s: read record: %w", key, err)
	}
	reuseEUID := ""
	if old != nil {
		d.Updated, d.PreviousEUID = true, old.EUID
		emptied, err := detach(s, old)
		if err != nil {
			return Decision{}, fmt.Errorf("register %s: detach old version: %w", key, err)
		}
		if emptied {
			reuseEUID = old.EUID
		}
	}

	blocks := p.Blocks
	cands, err := m.candidates(s, cc, &n, blocks, key, &d)
	if err != nil {
		return Decision{}, fmt.Errorf("register %s: %w", key, err)
	}
	decide(cc, &d, cands)
	if err := m.bridgeSplitPerson(s, cc, &d, cands); err != nil {
		return Decision{}, fmt.Errorf("register %s: %w", key, err)
	}
	if d.Outcome != OutcomeLinked {
		d.EUID = reuseEUID
		if d.EUID == "" {
			if _, exists, err := s.Person(newEUID); err != nil {
				return Decision{}, fmt.Errorf("register %s: read person %s: %w", key, newEUID, err)
			} else if exists {
				return Decision{}, fmt.Errorf("%w: %s already names a person", ErrInvalidEUID, newEUID)
			}
			d.EUID = newEUID
		}
	}
	if d.Review != nil {
		d.Review.EUID = d.EUID
	}
	if err := file(s, rec, p, &d); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// beginRegistration checks a record and the EUID it would found, and returns the
// configuration in force and the record prepared (p, or prepared here when nil or of
// another NormVersion).
func beginRegistration(s Store, rec Record, p *Prepared, newEUID string) (*compiled, *Prepared, error) {
	if err := rec.Validate(); err != nil {
		return nil, nil, err
	}
	if newEUID == "" {
		return nil, nil, fmt.Errorf("%w: empty", ErrInvalidEUID)
	}
	cc, err := loadConfig(s)
	if err != nil {
		return nil, nil, err
	}
	if p == nil || p.Norm.Version != NormVersion {
		prepared := Prepare(rec)
		p = &prepared
	}
	return cc, p, nil
}

// file writes a decided record: the record under its person, its blocking keys and term
// counts, and the decision's review item.
func file(s Store, rec Record, p *Prepared, d *Decision) error {
	sr := &StoredRecord{Key: d.Record, EUID: d.EUID, Record: rec, Norm: p.Norm, Blocks: p.Blocks}
	if err := attach(s, sr); err != nil {
		return fmt.Errorf("register %s: %w", d.Record, err)
	}
	if d.Review != nil {
		if err := s.AppendReview(*d.Review); err != nil {
			return fmt.Errorf("register %s: append review: %w", d.Record, err)
		}
	}
	return nil
}

// ErrDecisionMismatch is returned (wrapped) by RegisterDecided for a decision that does not
// fit the index it is given to; nothing was written.
var ErrDecisionMismatch = errors.New("decision does not fit the index")

// RegisterDecided registers rec with a decision RegisterPrepared made for the same record,
// the same newEUID and an index in the same state: another node's, which applied the same
// Raft entry. It writes what RegisterPrepared writes for that decision and reads no
// candidate. Before writing anything it checks that the decision fits this index (the
// record's key and previous person, the configuration version, the person it joins exists
// or the one it founds does not) and returns ErrDecisionMismatch if not: the caller then
// registers with RegisterPrepared. The checks cannot tell a wrong link from a right one;
// what makes the decision right is where it came from (see fsm.DecisionSource).
func (m *Matcher) RegisterDecided(s Store, rec Record, p *Prepared, newEUID string, d Decision) (Decision, error) {
	cc, p, err := beginRegistration(s, rec, p, newEUID)
	if err != nil {
		return Decision{}, err
	}
	key := rec.Key()
	mismatch := func(what string) (Decision, error) {
		return Decision{}, fmt.Errorf("register %s: %w: %s", key, ErrDecisionMismatch, what)
	}
	if d.Record != key {
		return mismatch("another record's decision")
	}
	if d.ConfigVersion != cc.cfg.Version {
		return mismatch("decided under another configuration")
	}
	old, err := s.Record(key)
	if err != nil {
		return Decision{}, fmt.Errorf("register %s: read record: %w", key, err)
	}
	// The person the record leaves, when it is its last record, is deleted by detach and
	// its EUID given to the record again if it founds a person (as RegisterPrepared does).
	reuseEUID := ""
	if old != nil {
		if !d.Updated || d.PreviousEUID != old.EUID {
			return mismatch("the record's previous person differs")
		}
		prev, ok, err := s.Person(old.EUID)
		if err != nil {
			return Decision{}, fmt.Errorf("register %s: read person %s: %w", key, old.EUID, err)
		}
		if !ok {
			return mismatch("the record's person is missing")
		}
		if len(prev.Records) == 1 && prev.Records[0] == key {
			reuseEUID = old.EUID
		}
	} else if d.Updated || d.PreviousEUID != "" {
		return mismatch("the record is new here")
	}
	exists := func(euid string) (bool, error) {
		_, ok, err := s.Person(euid)
		if err != nil {
			return false, fmt.Errorf("register %s: read person %s: %w", key, euid, err)
		}
		return ok, nil
	}
	switch d.Outcome {
	case OutcomeLinked:
		if d.EUID == "" || d.EUID == reuseEUID {
			return mismatch("links to no person")
		}
		if ok, err := exists(d.EUID); err != nil {
			return Decision{}, err
		} else if !ok {
			return mismatch("links to a person not in the index")
		}
	case OutcomeNew, OutcomeReview:
		want := reuseEUID
		if want == "" {
			if ok, err := exists(newEUID); err != nil {
				return Decision{}, err
			} else if ok {
				return mismatch("the new EUID names a person")
			}
			want = newEUID
		}
		if d.EUID != want {
			return mismatch("founds a person under another EUID")
		}
	default:
		return mismatch(fmt.Sprintf("outcome %q", d.Outcome))
	}
	if d.Review != nil && (d.Review.Record != key || d.Review.EUID != d.EUID) {
		return mismatch("the review item names another record or person")
	}
	if old != nil {
		if _, err := detach(s, old); err != nil {
			return Decision{}, fmt.Errorf("register %s: detach old version: %w", key, err)
		}
	}
	if err := file(s, rec, p, &d); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// Match scores the persons that could be the given record, best first (ties
// by the key of their best-scoring record), without writing anything: the read side of FHIR $match and of
// a search by demographics. limit <= 0 means Config.MaxCandidates. If the
// record's identifier is registered, that record itself is not a candidate.
func (m *Matcher) Match(s Store, rec Record, limit int) ([]Candidate, error) {
	cc, err := loadConfig(s)
	if err != nil {
		return nil, err
	}
	n := Normalize(rec)
	self := RecordKey("")
	if rec.System != "" || rec.Value != "" {
		self = rec.Key()
	}
	var d Decision
	cands, err := m.candidates(s, cc, &n, BlockingKeys(&n), self, &d)
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	if limit <= 0 {
		limit = cc.cfg.MaxCandidates
	}
	if len(cands) > limit {
		cands = cands[:limit]
	}
	return cands, nil
}

// Explain compares two records field by field with the store's
// configuration and term frequencies.
func (m *Matcher) Explain(s Store, a, b Record) (Explanation, error) {
	cc, err := loadConfig(s)
	if err != nil {
		return Explanation{}, err
	}
	na, nb := Normalize(a), Normalize(b)
	pl := comparePair(cc, &na, &nb)
	return explainLevels(cc, &pl, &na, &nb, storeTF(s, cc))
}

// ExplainCandidate explains a candidate's score for a query: the query against the
// candidate's best record, with the SSN disagreement of the person's other records where
// the candidate was scored with it (Candidate.PersonSSN).
func (m *Matcher) ExplainCandidate(s Store, query Record, c Candidate) (Explanation, error) {
	sr, err := s.Record(c.Record)
	if err != nil || sr == nil {
		return Explanation{}, fmt.Errorf("explain: record %s: %w", c.Record, notFound(err))
	}
	cc, err := loadConfig(s)
	if err != nil {
		return Explanation{}, err
	}
	na, nb := Normalize(query), normOf(sr)
	pl := comparePair(cc, &na, nb)
	personSSN := c.PersonSSN && pl.level[fSSN] == missing
	if personSSN {
		pl.level[fSSN] = ssnDisagree
	}
	e, err := explainLevels(cc, &pl, &na, nb, storeTF(s, cc))
	e.PersonSSN = personSSN
	return e, err
}

// ExplainRecords explains the score between two stored records.
func (m *Matcher) ExplainRecords(s Store, a, b RecordKey) (Explanation, error) {
	ra, err := s.Record(a)
	if err != nil || ra == nil {
		return Explanation{}, fmt.Errorf("explain: record %s: %w", a, notFound(err))
	}
	rb, err := s.Record(b)
	if err != nil || rb == nil {
		return Explanation{}, fmt.Errorf("explain: record %s: %w", b, notFound(err))
	}
	cc, err := loadConfig(s)
	if err != nil {
		return Explanation{}, err
	}
	na, nb := normOf(ra), normOf(rb)
	pl := comparePair(cc, na, nb)
	return explainLevels(cc, &pl, na, nb, storeTF(s, cc))
}

func notFound(err error) error {
	if err != nil {
		return err
	}
	return ErrNotFound
}

// normOf returns a stored record's normalised form, recomputing it when it
// was stored by other normalisation rules.
func normOf(sr *StoredRecord) *Normalized {
	if sr.Norm.Version == NormVersion {
		return &sr.Norm
	}
	n := Normalize(sr.Record)
	return &n
}

// candidates finds the records sharing a blocking key with n, keeps the
// MaxCandidateRecords most likely ones, groups them by person and scores
// each person: the best pair score over the person's records (at most
// MaxPersonRecords, in key order), with a household conflict if any of its
// records conflicts. The result is sorted best first; ties go to the person
// whose best-scoring record has the smaller key, not the smaller EUID: EUIDs
// are drawn at random by the leader, so a tie broken by them would be decided
// alike on every node but differently from `rls mpi eval` over the same file,
// or from the same file loaded again.
//
// "Most likely" ranks records by the blocks they share with the query,
// each block counting MaxBlockSize/size: sharing a phone number (a block of
// one or two) outranks sharing a common name and a town (a block of two
// hundred), and sharing several keys outranks sharing one. The arithmetic
// is in integers and ties go to key order, so the ranking is the same on
// every node.
func (m *Matcher) candidates(s Store, cc *compiled, n *Normalized, blocks []Block, self RecordKey, d *Decision) ([]Candidate, error) {
	sc := m.getScratch()
	defer m.putScratch(sc)
	if err := readBlocks(s, blocks, cc.cfg.MaxBlockSize, sc); err != nil {
		return nil, err
	}
	index, hits := sc.index, sc.hits
	start := 0
	for i, block := range blocks {
		members := sc.members[start:sc.ends[i]]
		start = sc.ends[i]
		if !sc.complete[i] {
			d.WindowedBlocks = append(d.WindowedBlocks, block.Key)
		}
		if len(members) == 0 {
			continue
		}
		weight := cc.cfg.MaxBlockSize / len(members)
		for _, k := range members {
			if i, seen := index[k]; seen {
				hits[i].rank += weight
			} else {
				index[k] = len(hits)
				hits = append(hits, hit{k, weight})
			}
		}
	}
	// The record itself is not its own candidate (Match of a registered
	// identifier; Register has detached it already).
	if i, ok := index[self]; ok && self != "" {
		hits = append(hits[:i], hits[i+1:]...)
	}
	sc.hits = hits
	if len(hits) > cc.cfg.MaxCandidateRecords {
		d.UnscoredRecords = len(hits) - cc.cfg.MaxCandidateRecords
		hits = bestHits(hits, cc.cfg.MaxCandidateRecords, sc.best[:0])
		sc.best = hits
	}
	keys := sc.keys
	for _, h := range hits {
		keys = append(keys, h.key)
	}
	slices.Sort(keys)
	sc.keys = keys

	found, err := readRecords(s, keys, sc.found[:0], &sc.arena)
	sc.found = found
	if err != nil {
		return nil, err
	}
	records, euids, euidSeen := sc.records, sc.euids, sc.seen
	for i, k := range keys {
		sr := found[i]
		if sr == nil {
			return nil, fmt.Errorf("%w: block lists %s, which is not stored", ErrCorruptStore, k)
		}
		records[k] = sr
		if !euidSeen[sr.EUID] {
			euidSeen[sr.EUID] = true
			euids = append(euids, sr.EUID)
		}
	}
	slices.Sort(euids)
	sc.euids = euids

	persons, exists, err := readPersons(s, euids, sc.persons[:0], sc.exists[:0])
	sc.persons, sc.exists = persons, exists
	if err != nil {
		return nil, err
	}
	tf := storeTF(s, cc)
	pri, err := loadPriors(s, cc)
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, 0, len(euids))
	for i, euid := range euids {
		p := &persons[i]
		if !exists[i] {
			return nil, fmt.Errorf("%w: person %s of a stored record does not exist", ErrCorruptStore, euid)
		}
		c := Candidate{EUID: euid, Score: math.Inf(-1)}
		var best pairLevels
		var bestOther *Normalized
		ssnKnown, ssnAgrees := false, false
		onlyNameTwins := true // every household conflict is a twin rule's reading of two given names
		scored, err := scoredRecords(s, cc, p, records, &sc.arena, self, func(rk RecordKey, sr *StoredRecord) (bool, error) {
			d.CandidateRecords++
			other := normOf(sr)
			pl := comparePair(cc, n, other)
			score, err := pri.pairScore(cc, &pl, n, other, tf)
			if err != nil {
				return false, err
			}
			if score > c.Score {
				c.Score, c.Record, c.identifying = score, rk, identifying(&pl)
				best, bestOther = pl, other
			}
			if pl.household != "" && c.Household == "" {
				c.Household = pl.household
			}
			if pl.household != "" && (pl.household != HouseholdTwin || !pl.twinByName) {
				onlyNameTwins = false
			}
			switch pl.level[fSSN] {
			case missing:
			case ssnDisagree:
				ssnKnown = true
			default:
				ssnKnown, ssnAgrees = true, true
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		if scored == 0 {
			continue
		}
		if c.Household == HouseholdTwin && onlyNameTwins {
			explained, err := twinNamesMisspelt(s, cc, n, p, records, &sc.arena, self)
			if err != nil {
				return nil, err
			}
			if explained {
				c.Household = ""
			}
		}
		if ssnKnown && !ssnAgrees && best.level[fSSN] == missing {
			// The record that scores best gives no SSN, but the person's others do and
			// none of theirs is this record's: the person's SSN is not the record's. (A
			// twin without an SSN on one record scored against it as if nothing told
			// them apart.)
			best.level[fSSN] = ssnDisagree
			if c.Score, err = pri.pairScore(cc, &best, n, bestOther, tf); err != nil {
				return nil, err
			}
			c.PersonSSN = true
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Candidate) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return strings.Compare(string(a.Record), string(b.Record))
	})
	posteriors(cc, out)
	return out, nil
}

// scoredRecords calls fn with each record of person p that a query is scored
// against (all but self, at most MaxPersonRecords), taken from records, which
// holds those read ahead, or else read from the store (into arena, which may
// be nil), until fn returns false. It returns how many it passed.
func scoredRecords(s Store, cc *compiled, p *Person, records map[RecordKey]*StoredRecord, arena *RecordArena, self RecordKey, fn func(RecordKey, *StoredRecord) (bool, error)) (int, error) {
	scored := 0
	for _, rk := range p.Records {
		if rk == self {
			continue
		}
		if scored == cc.cfg.MaxPersonRecords {
			break
		}
		scored++
		sr := records[rk]
		if sr == nil {
			var err error
			if sr, err = readScored(s, rk, arena); err != nil {
				return scored, fmt.Errorf("read record %s: %w", rk, err)
			}
			if sr == nil {
				return scored, fmt.Errorf("%w: person %s lists %s, which is not stored", ErrCorruptStore, p.EUID, rk)
			}
		}
		if more, err := fn(rk, sr); err != nil || !more {
			return scored, err
		}
	}
	return scored, nil
}

// twinNamesMisspelt reports whether every record of person p that the twin
// rule parts from the query by its given name is a misspelling of the
// person's own name: another record of p, itself parted by no rule and not
// matched crosswise, gives a given name that agrees with the query's
// (exactly, as a nickname or a near spelling) and lies one keying error,
// or a nickname, from the conflicting record's (Joel and Jodel beside the
// query's Jeol). Such a record says no more about a twin than the person's
// other records do, and those say the query is the person; the person is
// not forbidden. Two keying errors are too many: a twin's record already
// linked by mistake (Cad, Chad's, joined to his twin Caden) is two errors
// from the twin's name and would let Chad in too (generated population
// seed 1 at 100,000 persons). A conflict over a sex or a middle name, or
// any other rule, is not explained this way. It runs only for persons a
// twin rule forbids, and compares their records again.
func twinNamesMisspelt(s Store, cc *compiled, n *Normalized, p *Person, records map[RecordKey]*StoredRecord, arena *RecordArena, self RecordKey) (bool, error) {
	var conflicting, agreeing [8]string
	nc, na := 0, 0
	tooMany := false
	_, err := scoredRecords(s, cc, p, records, arena, self, func(_ RecordKey, sr *StoredRecord) (bool, error) {
		other := normOf(sr)
		pl := comparePair(cc, n, other)
		switch {
		case pl.household != "":
			if nc == len(conflicting) {
				tooMany = true
				return false, nil
			}
			conflicting[nc] = other.Given
			nc++
		case !pl.swapped && pl.level[fGiven] != missing && pl.level[fGiven] <= givenFuzzyHigh:
			if na < len(agreeing) {
				agreeing[na] = other.Given
				na++
			}
		}
		return true, nil
	})
	if err != nil || tooMany || na == 0 {
		return false, err
	}
	for _, x := range conflicting[:nc] {
		explained := false
		for _, y := range agreeing[:na] {
			if withinOneEdit(x, y) || nicknameEquivalent(x, y) {
				explained = true
				break
			}
		}
		if !explained {
			return false, nil
		}
	}
	return true, nil
}

// priors are the prior log2 odds of a decision, for an index of N persons
// (at least MinPriorPersons): match is log2(π/(1-π)) - log2 N, that the
// record is one given indexed person rather than somebody not in the index;
// household is log2 κ - log2 N - log2(1-π), that it is a member of that
// person's household rather than somebody unrelated.
type priors struct {
	match, household float64
}

func loadPriors(s Store, cc *compiled) (priors, error) {
	n, err := s.PersonCount()
	if err != nil {
		return priors{}, fmt.Errorf("count persons: %w", err)
	}
	logN := math.Log2(float64(max(n, int64(cc.cfg.MinPriorPersons))))
	pi := cc.cfg.PriorMatchShare
	return priors{
		match:     math.Log2(pi) - math.Log2(1-pi) - logN,
		household: math.Log2(cc.cfg.HouseholdRate) - logN - math.Log2(1-pi),
	}, nil
}

// pairScore is the log2 odds that record a is the person of record b: the
// pair's evidence, the prior, and for records that share a home the
// household reading weighed against it (log2(1 + κ/(N(1-π))·H/U): a pair
// that agrees on the home and little else is a household, not a person).
// Adjustments of a level's weight for the values compared (how common a
// name is) correct U, the chance of an agreement, and so apply to H/U as
// they do to M/U.
func (p priors) pairScore(cc *compiled, pl *pairLevels, a, b *Normalized, tf tfLookup) (float64, error) {
	mu, hu, err := pairEvidence(cc, pl, a, b, tf)
	if err != nil {
		return 0, err
	}
	score := mu + p.match
	if sharesHome(pl) && !math.IsInf(p.household, -1) {
		x := p.household + hu
		// log2(1 + 2^x), without overflow for large x
		if x > 0 {
			score -= x + math.Log2(1+math.Exp2(-x))
		} else {
			score -= math.Log2(1 + math.Exp2(x))
		}
	}
	return score, nil
}

// pairEvidence returns log2(M/U) and log2(H/U) of a pair, in field order,
// each with the adjustments of the values compared.
func pairEvidence(cc *compiled, pl *pairLevels, a, b *Normalized, tf tfLookup) (mu, hu float64, err error) {
	for f := 0; f < numFields; f++ {
		l := pl.level[f]
		if l == missing {
			continue
		}
		adj, err := adjustment(cc, pl, f, a, b, tf)
		if err != nil {
			return 0, 0, err
		}
		mu += cc.weights[f][l] + adj
		hu += cc.household[f][l] + adj
	}
	return mu, hu, nil
}

// posteriors sets each candidate's Probability and Grade from the scores of
// them all (sorted best first): the probability that the record is that
// person, against every other candidate and against nobody in the index.
// A candidate a household rule excludes cannot be the person and takes no
// share. Sums run in the candidates' order, the same on every node.
func posteriors(cc *compiled, cands []Candidate) {
	// Scores are shifted by the best one before exponentiation so that no
	// term overflows, however strong the evidence.
	top := 0.0
	for i := range cands {
		if cands[i].Household == "" {
			top = max(top, cands[i].Score)
			break
		}
	}
	total := math.Exp2(-top) // nobody in the index
	for i := range cands {
		if cands[i].Household == "" {
			total += math.Exp2(cands[i].Score - top)
		}
	}
	for i := range cands {
		c := &cands[i]
		if c.Household == "" {
			c.Probability = math.Exp2(c.Score-top) / total
			c.odds = c.Score - top - math.Log2(total-math.Exp2(c.Score-top))
		} else {
			c.odds = math.Inf(-1)
		}
		c.Grade = grade(cc, c)
	}
}

// identifying reports whether a pair agrees on something that tells one
// person from another beyond a name and a place: a birth date (at most one
// keying error away), a social security number, an e-mail address, a phone
// number or a street address. Given name, family name and town are shared
// by too many people for a link to rest on them alone, however the weights
// were estimated.
func identifying(pl *pairLevels) bool {
	switch pl.level[fBirth] {
	case birthExact, birthTransposed, birthTypo, birthYearTypo:
		return true
	}
	switch pl.level[fSSN] {
	case ssnExact, ssnTypo:
		return true
	}
	return pl.level[fEmail] == emailExact || pl.level[fPhone] == phoneExact ||
		pl.level[fLocation] == locationAddress || pl.level[fLocation] == locationAddressFuzzy
}

// readBlocks reads the members of every block into sc.members, block i's
// ending at sc.ends[i], through BatchReader when the store has it.
func readBlocks(s Store, blocks []Block, limit int, sc *scratch) error {
	members, ends, complete := sc.members[:0], sc.ends[:0], sc.complete[:0]
	defer func() { sc.members, sc.ends, sc.complete = members, ends, complete }()
	if br, ok := s.(BatchReader); ok {
		var err error
		if sc.keyBytes, members, ends, complete, err = br.BlockMembersBatch(blocks, limit, sc.keyBytes[:0], members, ends, complete); err != nil {
			return fmt.Errorf("read blocks: %w", err)
		}
		return nil
	}
	for _, block := range blocks {
		var c bool
		var err error
		if members, c, err = s.BlockMembers(block, limit, members); err != nil {
			return fmt.Errorf("read block %s: %w", block.Key, err)
		}
		ends, complete = append(ends, len(members)), append(complete, c)
	}
	return nil
}

// readRecords appends the stored record of each key to out (nil where
// none), through BatchReader when the store has it.
func readRecords(s Store, keys []RecordKey, out []*StoredRecord, arena *RecordArena) ([]*StoredRecord, error) {
	if br, ok := s.(BatchReader); ok {
		out, err := br.RecordsBatch(keys, out, arena)
		if err != nil {
			return out, fmt.Errorf("read records: %w", err)
		}
		return out, nil
	}
	for _, k := range keys {
		sr, err := s.Record(k)
		if err != nil {
			return out, fmt.Errorf("read record %s: %w", k, err)
		}
		out = append(out, sr)
	}
	return out, nil
}

// readScored reads the record a query is scored against: through BatchReader,
// into arena, when the store has it (only the part scoring reads), and whole
// otherwise.
func readScored(s Store, key RecordKey, arena *RecordArena) (*StoredRecord, error) {
	br, ok := s.(BatchReader)
	if !ok {
		return s.Record(key)
	}
	keys := [1]RecordKey{key}
	var out [1]*StoredRecord
	found, err := br.RecordsBatch(keys[:], out[:0], arena)
	if err != nil {
		return nil, err
	}
	return found[0], nil
}

// readPersons appends the person of each EUID to out and whether it exists
// to found, through BatchReader when the store has it.
func readPersons(s Store, euids []string, out []Person, found []bool) ([]Person, []bool, error) {
	if br, ok := s.(BatchReader); ok {
		out, found, err := br.PersonsBatch(euids, out, found)
		if err != nil {
			return out, found, fmt.Errorf("read persons: %w", err)
		}
		return out, found, nil
	}
	for _, euid := range euids {
		p, ok, err := s.Person(euid)
		if err != nil {
			return out, found, fmt.Errorf("read person %s: %w", euid, err)
		}
		out, found = append(out, p), append(found, ok)
	}
	return out, found, nil
}

func grade(cc *compiled, c *Candidate) string {
	switch {
	case c.Household != "":
		return GradeCertainlyNot
	case c.odds >= cc.cfg.Upper && c.identifying:
		return GradeCertain
	case c.odds >= cc.cfg.Lower:
		return GradeProbable
	}
	return GradePossible
}

// decide links the record to the best candidate when its posterior log2
// odds reach Upper and the pair shares identifying evidence; sends it to
// review (with a person of its own) when the best candidate reaches Lower,
// when the candidates together are likely though none alone is, when the
// evidence is strong but not identifying, or when a household rule forbids
// a strong candidate; and otherwise gives it a new person. The common
// outcomes (linked, new) allocate nothing.
func decide(cc *compiled, d *Decision, cands []Candidate) {
	cfg := cc.cfg
	d.Candidates = cands
	if len(d.Candidates) > cfg.MaxCandidates {
		d.Candidates = d.Candidates[:cfg.MaxCandidates]
	}
	linkable := func(c *Candidate) bool { return c.Household == "" }
	d.Outcome = OutcomeNew
	var review *ReviewItem
	if best := slices.IndexFunc(cands, func(c Candidate) bool { return linkable(&c) }); best >= 0 {
		b := cands[best]
		d.Score, d.Probability = b.Score, b.Probability
		shared := 0.0 // the probability that the record is one of the candidates
		for i := range cands {
			shared += cands[i].Probability
		}
		switch {
		case b.odds >= cfg.Upper && b.identifying:
			d.Outcome, d.EUID = OutcomeLinked, b.EUID
			return
		case b.odds >= cfg.Upper:
			review = &ReviewItem{Reason: ReviewWeakEvidence, Score: b.Score, Candidates: []Candidate{b}}
		case b.odds >= cfg.Lower || shared >= oddsToProbability(cfg.Lower):
			var named []Candidate
			for i := best; i < len(cands); i++ {
				if c := &cands[i]; linkable(c) && (c.odds >= cfg.Lower || i == best || c.Probability >= 0.01) {
					named = append(named, *c)
				}
			}
			reason := ReviewBetweenThresholds
			if len(named) > 1 && b.odds < cfg.Lower {
				reason = ReviewAmbiguous
			}
			review = &ReviewItem{Reason: reason, Score: b.Score, Candidates: named}
		}
	}
	for i := range cands {
		if c := &cands[i]; !linkable(c) && c.Score >= cfg.Upper {
			if review == nil {
				review = &ReviewItem{Reason: ReviewHousehold, Score: c.Score}
			}
			review.Candidates = append(review.Candidates, *c)
		}
	}
	if review != nil {
		if len(review.Candidates) > cfg.MaxCandidates {
			review.Candidates = review.Candidates[:cfg.MaxCandidates]
		}
		review.Record, review.ConfigVersion = d.Record, cfg.Version
		d.Outcome, d.Review = OutcomeReview, review
	}
}

// bridgeSplitPerson handles a record that is surely one of several
// persons who are themselves one person split in two: each candidate alone
// is strong (at or above Upper against a new person, with identifying
// evidence) and together they reach Upper, but they share the probability
// between them, so decide sent the record to review. Founding yet another
// person would split the person a third time. Instead the record links to
// the best of them and a review item asks a steward to merge the others
// into it. The others must look like the best one themselves (their
// records score at least Lower against each other, prior included) and no
// household rule may keep them apart.
func (m *Matcher) bridgeSplitPerson(s Store, cc *compiled, d *Decision, cands []Candidate) error {
	cfg := cc.cfg
	if d.Review == nil || (d.Review.Reason != ReviewBetweenThresholds && d.Review.Reason != ReviewAmbiguous) {
		return nil
	}
	var strong []Candidate
	together := 0.0
	for _, c := range cands {
		if c.Household == "" && c.identifying && c.Score >= cfg.Upper {
			strong = append(strong, c)
			together += c.Probability
		}
	}
	if len(strong) < 2 || together < oddsToProbability(cfg.Upper) {
		return nil
	}
	// Read for scoring only: a store that keeps records whole elsewhere (the FSM's) gives
	// this part from memory.
	best, err := readScored(s, strong[0].Record, nil)
	if err != nil || best == nil {
		return fmt.Errorf("read record %s: %w", strong[0].Record, notFound(err))
	}
	pri, err := loadPriors(s, cc)
	if err != nil {
		return err
	}
	tf := storeTF(s, cc)
	others := strong[1:]
	for _, c := range others {
		other, err := readScored(s, c.Record, nil)
		if err != nil || other == nil {
			return fmt.Errorf("read record %s: %w", c.Record, notFound(err))
		}
		a, b := normOf(best), normOf(other)
		pl := comparePair(cc, a, b)
		if pl.household != "" {
			return nil
		}
		if parted, err := personsParted(s, cc, strong[0].EUID, c.EUID); err != nil || parted {
			return err
		}
		if score, err := pri.pairScore(cc, &pl, a, b, tf); err != nil {
			return err
		} else if score < cfg.Lower {
			return nil
		}
	}
	if len(others) > cfg.MaxCandidates {
		others = others[:cfg.MaxCandidates]
	}
	d.Outcome, d.EUID = OutcomeLinked, strong[0].EUID
	d.Review = &ReviewItem{Record: d.Record, Reason: ReviewDuplicatePersons, Score: strong[0].Score, Candidates: others, ConfigVersion: cfg.Version}
	return nil
}

// personsParted reports whether a household rule parts any record of one
// person from any record of the other (at most MaxPersonRecords of each):
// two persons of which one holds a twin's record and the other its sibling's
// are two people however alike their best records look.
func personsParted(s Store, cc *compiled, euidA, euidB string) (bool, error) {
	pa, okA, err := s.Person(euidA)
	if err != nil || !okA {
		return false, err
	}
	pb, okB, err := s.Person(euidB)
	if err != nil || !okB {
		return false, err
	}
	var normsA []*Normalized
	_, err = scoredRecords(s, cc, &pa, nil, nil, "", func(_ RecordKey, sr *StoredRecord) (bool, error) {
		normsA = append(normsA, normOf(sr))
		return true, nil
	})
	if err != nil {
		return false, err
	}
	parted := false
	_, err = scoredRecords(s, cc, &pb, nil, nil, "", func(_ RecordKey, sr *StoredRecord) (bool, error) {
		b := normOf(sr)
		for _, a := range normsA {
			if pl := comparePair(cc, a, b); pl.household != "" {
				parted = true
				return false, nil
			}
		}
		return true, nil
	})
	return parted, err
}

// oddsToProbability converts log2 odds to a probability.
func oddsToProbability(logOdds float64) float64 { return 1 / (1 + math.Exp2(-logOdds)) }

// attach writes a record and files it under its blocking keys, its term
// counts and its person.
func attach(s Store, sr *StoredRecord) error {
	if err := IndexRecord(s, sr); err != nil {
		return err
	}
	p, _, err := s.Person(sr.EUID)
	if err != nil {
		return fmt.Errorf("read person %s: %w", sr.EUID, err)
	}
	recs := make([]RecordKey, 0, len(p.Records)+1)
	i := sort.Search(len(p.Records), func(i int) bool { return p.Records[i] >= sr.Key })
	recs = append(recs, p.Records[:i]...)
	recs = append(recs, sr.Key)
	if i < len(p.Records) && p.Records[i] == sr.Key {
		i++
	}
	recs = append(recs, p.Records[i:]...)
	if err := s.PutPerson(Person{EUID: sr.EUID, Records: recs}); err != nil {
		return fmt.Errorf("write person %s: %w", sr.EUID, err)
	}
	return nil
}

// IndexRecord writes a stored record and files it under its blocking keys and term
// counts, as Register does, leaving its person alone. A store that keeps the blocking
// index and the term counts in memory rebuilds them with it from the stored records (and
// the persons from wherever it keeps them).
func IndexRecord(s Store, sr *StoredRecord) error {
	if err := s.PutRecord(sr); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	for _, b := range sr.Blocks {
		if err := s.AddToBlock(b, sr.Key); err != nil {
			return fmt.Errorf("write block %s: %w", b.Key, err)
		}
	}
	return addTerms(s, &sr.Norm, 1)
}

// detach removes a stored record from its blocks, term counts and person
// (but leaves the record itself, which the caller overwrites). It reports
// whether the person was left without records and deleted.
func detach(s Store, sr *StoredRecord) (bool, error) {
	for _, b := range sr.Blocks {
		if err := s.RemoveFromBlock(b, sr.Key); err != nil {
			return false, fmt.Errorf("remove from block %s: %w", b.Key, err)
		}
	}
	if err := addTerms(s, &sr.Norm, -1); err != nil {
		return false, err
	}
	p, ok, err := s.Person(sr.EUID)
	if err != nil {
		return false, fmt.Errorf("read person %s: %w", sr.EUID, err)
	}
	if !ok {
		return false, fmt.Errorf("%w: person %s of record %s does not exist", ErrCorruptStore, sr.EUID, sr.Key)
	}
	recs := make([]RecordKey, 0, len(p.Records))
	for _, k := range p.Records {
		if k != sr.Key {
			recs = append(recs, k)
		}
	}
	if len(recs) == 0 {
		return true, s.DeletePerson(sr.EUID)
	}
	return false, s.PutPerson(Person{EUID: sr.EUID, Records: recs})
}

// addTerms counts (delta 1) or uncounts (delta -1) a record's names in the
// term-frequency table, with the per-field totals under value "".
func addTerms(s Store, n *Normalized, delta int64) error {
	for _, t := range [...]struct{ field, value string }{{FieldGiven, n.Given}, {FieldFamily, n.Family}} {
		if t.value == "" {
			continue
		}
		if err := s.AddTermCount(t.field, t.value, delta); err != nil {
			return fmt.Errorf("count %s %q: %w", t.field, t.value, err)
		}
		if err := s.AddTermCount(t.field, "", delta); err != nil {
			return fmt.Errorf("count %s total: %w", t.field, err)
		}
	}
	return nil
}

// tfPriorOccurrences is the strength, in expected occurrences, of the prior
// that every name is as common as the average (u of the exact level). It
// keeps the adjustment near zero while the index is small, so the first
// records registered are not scored on a handful of counts.
const tfPriorOccurrences = 2

// storeTF returns the term-frequency adjustment read from the store, cached
// for the duration of one call: log2(u_exact / u_value), where u_value is
// the smoothed share of records with that value, bounded by TFMaxUp and
// TFMaxDown.
func storeTF(s Store, cc *compiled) tfLookup {
	cache := map[termKey]float64{}
	names := FieldNames()
	return func(field int, value string) (float64, error) {
		k := termKey{names[field], value}
		if v, ok := cache[k]; ok {
			return v, nil
		}
		count, err := s.TermCount(k.field, value)
		if err != nil {
			return 0, fmt.Errorf("read term count %s %q: %w", k.field, value, err)
		}
		total, err := s.TermCount(k.field, "")
		if err != nil {
			return 0, fmt.Errorf("read term total %s: %w", k.field, err)
		}
		adj := tfAdjustment(cc.uExact[field], count, total, cc.cfg.TFMaxUp, cc.cfg.TFMaxDown)
		cache[k] = adj
		return adj, nil
	}
}

func tfAdjustment(uExact float64, count, total int64, maxUp, maxDown float64) float64 {
	if uExact <= 0 || uExact >= 1 {
		return 0
	}
	prior := tfPriorOccurrences / uExact
	uValue := (float64(count) + tfPriorOccurrences) / (float64(total) + prior)
	adj := math.Log2(uExact / uValue)
	return math.Max(-maxDown, math.Min(maxUp, adj))
}
