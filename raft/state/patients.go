package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/model"
)

// Buckets of the patient registry around the matcher's index.
var (
	// bucketPatients holds the registry entries by the slot of their record (see
	// recordSlots): slot (8 bytes) → model.PatientMeta.
	bucketPatients = []byte("patient_slots")
	// bucketLegacyPatients held them by record key in releases before slots; opening a
	// file moves them into bucketPatients (migrateToSlots).
	bucketLegacyPatients = []byte("patients")
	bucketLinkHistory    = []byte("link_history") // EUID 0x00 seq → model.LinkEvent
	// bucketLinkEventOrder lists the link history in log order (seq → the event's key in
	// bucketLinkHistory), so that the newest events are read without a scan of every
	// person's history. A state file from before it existed gets it filled from the history
	// when opened (backfillLinkEventOrder).
	bucketLinkEventOrder = []byte("link_event_order")

	patientBuckets = [][]byte{bucketPatients, bucketLinkHistory, bucketLinkEventOrder}
)

// patientValue returns the stored registry entry of a record key, if the transaction
// holds it.
func (t *Tx) patientValue(key string) []byte {
	slot, ok := t.slots().get(mpi.RecordKey(key))
	if !ok {
		return nil
	}
	k := slotKey(slot)
	return t.tx.Bucket(bucketPatients).Get(k[:])
}

// slots returns the records' slots this transaction reads (see recordSlots).
func (t *Tx) slots() *recordSlots {
	if t.batch != nil {
		return t.batch.index.slots
	}
	return t.mpiIndex.slots
}

// PatientMeta returns the registry entry of a record key.
func (t *Tx) PatientMeta(key string) (model.PatientMeta, bool, error) {
	var m model.PatientMeta
	v := t.patientValue(key)
	if v == nil {
		return m, false, nil
	}
	if _, err := m.UnmarshalMsg(v); err != nil {
		return m, false, fmt.Errorf("decode patient %s: %w", key, err)
	}
	return m, true, nil
}

// PatientKeyByID returns the record key of a FHIR Patient id, if this transaction holds
// the record. The ids are found through the in-memory patient search index (a record's id
// is a function of its key, model.PatientID), which may be ahead of the transaction and
// files ids by a 64-bit hash: a key it gives is taken only if its id is the one asked for
// and the transaction holds its registry entry.
func (t *Tx) PatientKeyByID(id string) (string, bool) {
	var found string
	slots, patients := t.slots(), t.tx.Bucket(bucketPatients)
	t.search().scan(searchPatientID, valueScan(searchPatientID, id, 0), func(slot uint32) bool {
		key := slots.keyOf(uint64(slot))
		if model.PatientID(string(key)) != id {
			return true
		}
		if k := slotKey(uint64(slot)); patients.Get(k[:]) == nil {
			return true // registered after this transaction began
		}
		found = string(key)
		return false
	})
	return found, found != ""
}

// PutPatientMeta stores a registry entry, under the slot of its record: the match index
// must hold the record (the registry is written after the matcher stored it).
func (t *Tx) PutPatientMeta(m model.PatientMeta) error {
	slot, ok := t.slots().get(mpi.RecordKey(m.Key))
	if !ok {
		return fmt.Errorf("store patient %s: %w: no such record", m.Key, ErrNotFound)
	}
	v, err := m.MarshalMsg(t.tx.encodeBuffer())
	if err != nil {
		return fmt.Errorf("encode patient %s: %w", m.Key, err)
	}
	t.tx.keepBuffer(v)
	k := slotKey(slot)
	if err := t.tx.Bucket(bucketPatients).Put(k[:], v); err != nil {
		return fmt.Errorf("store patient %s: %w", m.Key, err)
	}
	return nil
}

// AppendLinkEvent adds an event to a person's link history, numbering it in log order.
func (t *Tx) AppendLinkEvent(ev model.LinkEvent) error {
	b := t.tx.Bucket(bucketLinkHistory)
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("number link event: %w", err)
	}
	ev.Seq = seq
	v, err := ev.MarshalMsg(t.tx.encodeBuffer())
	if err != nil {
		return fmt.Errorf("encode link event: %w", err)
	}
	t.tx.keepBuffer(v)
	var kb [keyBufferSize]byte
	var seqKey [8]byte
	binary.BigEndian.PutUint64(seqKey[:], seq)
	key := append(append(keyBytes(&kb, ev.EUID), keySep), seqKey[:]...)
	if err := b.Put(key, v); err != nil {
		return fmt.Errorf("store link event: %w", err)
	}
	if err := t.tx.Bucket(bucketLinkEventOrder).Put(seqKey[:], key); err != nil {
		return fmt.Errorf("order link event: %w", err)
	}
	return t.indexLinkEvent(seq, ev.EUID)
}

// backfillLinkEventOrder fills the log-ordered index of link events from the link history
// when a state file has history but no index (written by a release before the index, or
// restored from such a snapshot). Every node then holds the whole index, and the same state
// hash, whenever it was upgraded; the index is derived from the history alone.
func backfillLinkEventOrder(tx *kvTx) error {
	order := tx.Bucket(bucketLinkEventOrder)
	if k, _ := order.Cursor().First(); k != nil {
		return nil
	}
	return tx.Bucket(bucketLinkHistory).ForEach(func(k, _ []byte) error {
		// The key is EUID 0x00 seq, seq 8 bytes big-endian (AppendLinkEvent).
		if len(k) < 9 || k[len(k)-9] != keySep {
			return fmt.Errorf("link history key %x is not EUID, separator, sequence", k)
		}
		if err := order.Put(bytes.Clone(k[len(k)-8:]), bytes.Clone(k)); err != nil {
			return fmt.Errorf("backfill the link event order: %w", err)
		}
		return nil
	})
}

// RecentLinkEvents calls fn for the newest link events of the whole index, newest first,
// until fn returns false or limit events have been read. It reads limit events at most,
// whatever the index holds.
func (t *Tx) RecentLinkEvents(limit int, fn func(model.LinkEvent) bool) error {
	history := t.tx.Bucket(bucketLinkHistory)
	c := t.tx.Bucket(bucketLinkEventOrder).Cursor()
	read := 0
	for k, key := c.Last(); k != nil && read < limit; k, key = c.Prev() {
		read++
		v := history.Get(key)
		if v == nil {
			continue
		}
		var ev model.LinkEvent
		if _, err := ev.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("decode link event %d: %w", decodeUint(k), err)
		}
		if !fn(ev) {
			return nil
		}
	}
	return nil
}

// LinkHistory returns a person's link history, oldest first.
func (t *Tx) LinkHistory(euid string) ([]model.LinkEvent, error) {
	prefix := append([]byte(euid), keySep)
	var out []model.LinkEvent
	c := t.tx.Bucket(bucketLinkHistory).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var ev model.LinkEvent
		if _, err := ev.UnmarshalMsg(v); err != nil {
			return nil, fmt.Errorf("decode link event of %s: %w", euid, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// Search key kinds: one byte, then the normalised value, 0x00, the record key.
const (
	searchFamily       = 'f'
	searchFamilyCode   = 'F'
	searchGiven        = 'g'
	searchGivenCode    = 'G'
	searchFormalCode   = 'N'
	searchBirth        = 'b'
	searchPostal       = 'z'
	searchCity         = 'c'
	searchPhone        = 'p'
	searchEmail        = 'e'
	searchIdentifierSV = 'i' // identifier value alone (any system)
	searchPatientID    = 'r' // the FHIR Patient id (PatientKeyByID)
)

// searchTerms lists the (kind, value) pairs a normalised record is findable by.
func searchTerms(key mpi.RecordKey, n *mpi.Normalized) [][2]string {
	out := make([][2]string, 0, 32) // a record with several phones and name parts has over 16
	add := func(kind byte, v string) {
		if v != "" {
			out = append(out, [2]string{string(kind), v})
		}
	}
	add(searchFamily, n.Family)
	for _, p := range n.FamilyParts {
		add(searchFamily, p)
	}
	add(searchFamilyCode, n.FamilyCode)
	for _, c := range n.FamilyPartCodes {
		add(searchFamilyCode, c)
	}
	add(searchGiven, n.Given)
	for _, p := range n.GivenParts {
		add(searchGiven, p)
	}
	add(searchGivenCode, n.GivenCode)
	for _, c := range n.FormalCodes {
		add(searchFormalCode, c)
	}
	add(searchBirth, n.Birth)
	add(searchPostal, n.Postal)
	add(searchCity, n.City)
	for _, p := range n.Phones {
		add(searchPhone, p)
	}
	add(searchEmail, n.Email)
	_, value := key.Split()
	add(searchIdentifierSV, value)
	add(searchPatientID, model.PatientID(string(key)))
	// Kinds are one byte each, so ordering by kind, then value, is the byte order of
	// kind+value, without building either string.
	slices.SortFunc(out, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	return slices.Compact(out)
}

// IndexedNorm returns the normalised form the match index holds for a record (shared: do
// not modify it); ok is false when it holds no such record. Only the FSM's write
// transaction asks: a reader's state may be older than the index.
func (t *Tx) IndexedNorm(key mpi.RecordKey) (norm *mpi.Normalized, ok bool) {
	if t.batch == nil {
		return nil, false
	}
	_, norm, ok = t.batch.index.mem.Normalized(key)
	return norm, ok
}

// IndexPatient moves a record's search entries from its old normalised form (nil when
// new) to its new one (nil when removed); the forms must not be changed afterwards (the
// entries are filed beside the FSM, see patientSearch). Only the FSM's write transaction
// indexes.
func (t *Tx) IndexPatient(key mpi.RecordKey, old, new *mpi.Normalized) error {
	if t.batch == nil {
		return errReadOnly
	}
	slot, ok := t.batch.index.slots.get(key)
	if !ok {
		return fmt.Errorf("index patient %s: %w: no such record", key, ErrNotFound)
	}
	t.batch.mpiChanged = true
	t.batch.index.search.update(uint32(slot), key, old, new) // no slot is given beyond 32 bits
	return nil
}

// ErrSearchTooBroad is returned when every criterion of a patient search matches more
// records than a search may scan.
var ErrSearchTooBroad = errors.New("search too broad")

// PatientQuery is a demographic search (PDQm). Values are normalised by the caller with
// mpi.Normalize; empty criteria are ignored. Name criteria are forgiving: a family or given
// name matches by prefix of the normalised name or by its phonetic code (and a given name
// by its nickname's formal names).
type PatientQuery struct {
	Family, FamilyCode         string
	Given, GivenCode           string
	FormalCodes                []string
	BirthFrom, BirthTo         string // YYYYMMDD, inclusive
	Sex                        string
	Postal, City, Phone, Email string
	IdentifierValue            string
	ExactFamily, ExactGiven    bool
	MaxScan                    int // per criterion; 0 means 20,000
}

// PatientHit is one search result with how well its names agreed (exact beats prefix
// beats phonetic).
type PatientHit struct {
	Key  mpi.RecordKey
	Rank int
}

// SearchPatients returns the records matching every criterion, best name agreement
// first, then by key.
//
// The criteria are looked up in the in-memory search index, which may hold entries this
// transaction cannot see yet (see patientSearch); every hit is therefore read from the
// transaction and its criteria and rank decided again on the record as the transaction
// holds it.
func (t *Tx) SearchPatients(q PatientQuery) ([]PatientHit, error) {
	maxScan := q.MaxScan
	if maxScan == 0 {
		maxScan = 20000
	}
	type criterion struct {
		name  string
		scans []scan
		ranks map[mpi.RecordKey]int
	}
	var crits []criterion
	var tooBroad []string
	collect := func(name string, scans ...scan) {
		ranks := map[mpi.RecordKey]int{}
		n := 0
		for _, s := range scans {
			broad := false
			slots := t.slots()
			t.search().scan(s.kind, s, func(slot uint32) bool {
				rk := slots.keyOf(uint64(slot))
				if n++; n > maxScan {
					broad = true
					return false
				}
				if r, seen := ranks[rk]; !seen || s.rank > r {
					ranks[rk] = s.rank
				}
				return true
			})
			if broad {
				tooBroad = append(tooBroad, name)
				return
			}
		}
		crits = append(crits, criterion{name: name, scans: scans, ranks: ranks})
	}
	if q.Family != "" {
		if q.ExactFamily {
			collect("family", valueScan(searchFamily, q.Family, 3))
		} else {
			collect("family", valueScan(searchFamily, q.Family, 3), prefixScan(searchFamily, q.Family, 2), valueScan(searchFamilyCode, q.FamilyCode, 1))
		}
	}
	if q.Given != "" {
		if q.ExactGiven {
			collect("given", valueScan(searchGiven, q.Given, 3))
		} else {
			scans := []scan{valueScan(searchGiven, q.Given, 3), prefixScan(searchGiven, q.Given, 2), valueScan(searchGivenCode, q.GivenCode, 1)}
			for _, c := range q.FormalCodes {
				scans = append(scans, valueScan(searchFormalCode, c, 1))
			}
			collect("given", scans...)
		}
	}
	if q.BirthFrom != "" || q.BirthTo != "" {
		collect("birthdate", scan{kind: searchBirth, value: q.BirthFrom, upTo: q.BirthTo, hasUpTo: q.BirthTo != ""})
	}
	for _, c := range []struct {
		name string
		kind byte
		v    string
	}{{"address-postalcode", searchPostal, q.Postal}, {"address-city", searchCity, q.City}, {"telecom", searchPhone, q.Phone}, {"email", searchEmail, q.Email}, {"identifier", searchIdentifierSV, q.IdentifierValue}} {
		if c.v != "" {
			collect(c.name, valueScan(c.kind, c.v, 0))
		}
	}
	if len(crits) == 0 {
		if len(tooBroad) == 0 && q.Sex == "" {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s match more than %d records; add criteria", ErrSearchTooBroad, strings.Join(append(tooBroad, "gender"), ", "), maxScan)
	}
	sort.SliceStable(crits, func(i, j int) bool { return len(crits[i].ranks) < len(crits[j].ranks) })
	var hits []PatientHit
	for key := range crits[0].ranks {
		ok := true
		for _, c := range crits[1:] {
			if _, in := c.ranks[key]; !in {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		sr, err := getRecord(t.tx, t.slots(), key)
		if err != nil {
			return nil, err
		}
		if sr == nil {
			continue // registered after this transaction began
		}
		terms := searchTerms(key, &sr.Norm)
		total := 0
		for _, c := range crits {
			rank, matched := termRank(terms, c.scans)
			if !matched {
				ok = false
				break
			}
			total += rank
		}
		// Criteria too broad to scan, and gender, are checked on the record itself.
		if !ok || !recordMatches(&sr.Norm, q, tooBroad) {
			continue
		}
		hits = append(hits, PatientHit{Key: key, Rank: total})
	}
	slices.SortFunc(hits, func(a, b PatientHit) int {
		if a.Rank != b.Rank {
			return b.Rank - a.Rank
		}
		return strings.Compare(string(a.Key), string(b.Key))
	})
	return hits, nil
}

// search returns the patient search index this transaction reads.
func (t *Tx) search() *patientSearch {
	if t.batch != nil {
		return t.batch.index.search
	}
	return t.mpiIndex.search
}

// scan selects the values of one kind of search term: exactly value, or (ordered kinds)
// the values from value on that start with prefix and, with hasUpTo, are at most upTo.
type scan struct {
	kind          byte
	exact         bool
	value, prefix string
	upTo          string
	hasUpTo       bool
	rank          int
}

// valueScan finds the records whose value of kind is exactly v.
func valueScan(kind byte, v string, rank int) scan {
	return scan{kind: kind, exact: true, value: v, rank: rank}
}

// prefixScan finds the records whose value of kind starts with v.
func prefixScan(kind byte, v string, rank int) scan {
	return scan{kind: kind, value: v, prefix: v, rank: rank}
}

func (s scan) matches(kind byte, value string) bool {
	if kind != s.kind {
		return false
	}
	if s.exact {
		return value == s.value
	}
	return value >= s.value && strings.HasPrefix(value, s.prefix) && (!s.hasUpTo || value <= s.upTo)
}

// termRank returns the best rank among the scans that a record's terms meet, and whether
// any does.
func termRank(terms [][2]string, scans []scan) (rank int, matched bool) {
	for _, s := range scans {
		for _, t := range terms {
			if s.matches(t[0][0], t[1]) && (!matched || s.rank > rank) {
				rank, matched = s.rank, true
			}
		}
	}
	return rank, matched
}

// recordMatches checks the criteria that were not answered from the index.
func recordMatches(n *mpi.Normalized, q PatientQuery, unchecked []string) bool {
	if q.Sex != "" && n.Sex != q.Sex {
		return false
	}
	for _, name := range unchecked {
		switch name {
		case "family":
			if !strings.HasPrefix(n.Family, q.Family) && n.FamilyCode != q.FamilyCode {
				return false
			}
		case "given":
			if !strings.HasPrefix(n.Given, q.Given) && n.GivenCode != q.GivenCode {
				return false
			}
		case "birthdate":
			if n.Birth == "" || (q.BirthFrom != "" && n.Birth < q.BirthFrom) || (q.BirthTo != "" && n.Birth > q.BirthTo) {
				return false
			}
		case "address-postalcode":
			if n.Postal != q.Postal {
				return false
			}
		case "address-city":
			if n.City != q.City {
				return false
			}
		case "telecom":
			if !slices.Contains(n.Phones, q.Phone) {
				return false
			}
		case "email":
			if n.Email != q.Email {
				return false
			}
		}
	}
	return true
}
