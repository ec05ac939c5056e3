package mpi

// Store is the state the matcher reads and writes. It is key/value shaped
// so that each method maps onto one bbolt bucket with byte-ordered keys (the
// Raft FSM implements it over the bbolt transaction of the entry being
// applied); NewMemStore implements it in memory for evaluation, tests and
// benchmarks.
//
// Contract, for every implementation:
//
//   - Reads see every write made earlier through the same Store value (a
//     bbolt implementation reads and writes within one read-write
//     transaction during Register).
//   - Everything is deterministic: the same calls on the same contents give
//     the same results; every list is returned in ascending byte order of
//     its keys.
//   - Values are stored as given and returned unchanged (a JSON round trip
//     is fine: every type here is JSON-serialisable and float64 values
//     round-trip exactly). The matcher never modifies a value it read (not
//     even through the pointer Record returns), and never modifies a value
//     after passing it to a Put method, so an in-memory implementation may
//     share them.
//   - A missing key is not an error: getters return ok=false (or 0 for
//     counts). Errors are I/O or decoding failures; the matcher wraps and
//     returns them, and the caller must then discard the transaction,
//     because Register's writes are not undone on error.
//
// Suggested bbolt layout (one bucket per method group):
//
//	config   "current"                     → Config (JSON)
//	records  RecordKey ("system|value")    → StoredRecord (JSON)
//	blocks   key + 0x00 + sort + 0x00 +    → empty; BlockMembers seeks to
//	         RecordKey                       key+0x00 and reads at most limit+1
//	                                         entries with that prefix; beyond,
//	                                         it seeks to key+0x00+sort+0x00 and
//	                                         reads around it (blocking keys and
//	                                         sort values never contain 0x00)
//	persons  EUID                          → Person (JSON)
//	terms    field + 0x00 + value          → int64 (8 bytes big-endian)
//	reviews  NextSequence (8 bytes BE)     → ReviewItem (JSON)
type Store interface {
	// Config returns the current match configuration; ok is false when none
	// was ever stored, and the matcher then uses DefaultConfig.
	Config() (cfg Config, ok bool, err error)
	// PutConfig replaces the match configuration.
	PutConfig(cfg Config) error

	// Record returns the stored source record with that key, or nil when
	// there is none. It is the hottest read (every candidate), hence a
	// pointer: an in-memory store returns its own copy without copying.
	Record(key RecordKey) (*StoredRecord, error)
	// PutRecord inserts or replaces the record under rec.Key.
	PutRecord(rec *StoredRecord) error

	// BlockMembers appends to buf the record keys filed under block.Key,
	// in block order (ascending sort value, then record key), and returns
	// the extended slice. When the block holds at most limit records it
	// appends them all and complete is true; otherwise complete is false
	// and it appends the window of limit records around block.Sort: the
	// records from position p-limit/2 on, where p is the position block.Sort
	// would take, moved to lie wholly inside the block. The matcher passes
	// a reused buffer, so a query allocates nothing here.
	BlockMembers(block Block, limit int, buf []RecordKey) (members []RecordKey, complete bool, err error)
	// AddToBlock files a record key under block.Key at block.Sort
	// (idempotent).
	AddToBlock(block Block, key RecordKey) error
	// RemoveFromBlock removes a record key filed under block.Key at
	// block.Sort (idempotent).
	RemoveFromBlock(block Block, key RecordKey) error

	// Person returns the person with that EUID.
	Person(euid string) (p Person, ok bool, err error)
	// PutPerson inserts or replaces a person.
	PutPerson(p Person) error
	// DeletePerson removes a person (idempotent).
	DeletePerson(euid string) error
	// PersonCount returns the number of persons stored: the size of the
	// index that the prior of a match is drawn from.
	PersonCount() (int64, error)

	// TermCount returns how many stored records have value in field
	// ("given" or "family"); value "" returns the number of records that
	// have the field at all. Unknown pairs count 0.
	TermCount(field, value string) (int64, error)
	// AddTermCount adds delta (which may be negative) to a count.
	AddTermCount(field, value string, delta int64) error

	// AppendReview appends an item to the review queue; the store assigns
	// its sequence number (bbolt: Bucket.NextSequence, which is the same on
	// every node because entries apply in log order).
	AppendReview(item ReviewItem) error
}

// BatchReader is an optional interface a Store may implement to serve the
// matcher's reads in batches. A query knows at once the fifteen-odd blocks
// it reads, then the dozen records it ranks highest, then their persons;
// an in-memory store can overlap the cache misses of such independent
// lookups instead of taking them one after another (MemStore registers
// about a quarter more records per second with it at a million records).
// The matcher uses these methods when the store has them and the single
// reads otherwise; the results must be exactly those of calling the single
// reads in turn (but for the parts of a record RecordsBatch may leave out,
// which the matcher never reads from a candidate), so a store without it
// (bbolt, where a read is a B+tree descent either way) decides identically.
type BatchReader interface {
	// BlockMembersBatch is BlockMembers for each block in turn: it appends
	// the members of blocks[i] to buf, then len(buf) to ends and the
	// block's completeness to complete, and returns the slices. The keys
	// may be views of keyBytes, to which it may append (and which it
	// returns) instead of allocating strings: they stay valid while the
	// caller leaves those bytes alone. The matcher reuses keyBytes for the
	// next registration, so no key read this way outlives the one it was
	// read for (candidates keeps only stored records' own keys).
	BlockMembersBatch(blocks []Block, limit int, keyBytes []byte, buf []RecordKey, ends []int, complete []bool) ([]byte, []RecordKey, []int, []bool, error)
	// RecordsBatch appends Record(keys[i]) for each key to out (nil where
	// there is none), or only the part of it scoring reads: Key, EUID and
	// Norm, with Record and Blocks possibly left empty. The records may be
	// decoded into arena, and then stay valid until its Reset; they may
	// also be shared: do not modify them.
	RecordsBatch(keys []RecordKey, out []*StoredRecord, arena *RecordArena) ([]*StoredRecord, error)
	// PersonsBatch appends Person(euids[i]) for each EUID to out and its ok
	// to found (a zero Person where found is false).
	PersonsBatch(euids []string, out []Person, found []bool) ([]Person, []bool, error)
}

// StoredRecord is a source record as the index keeps it: the record as
// registered, the person it belongs to, its normalised form and the blocks
// it is filed under (kept so an update removes exactly those, even after
// the blocking rules change).
type StoredRecord struct {
	Key    RecordKey  `json:"key"`
	EUID   string     `json:"euid"`
	Record Record     `json:"record"`
	Norm   Normalized `json:"norm"`
	Blocks []Block    `json:"blocks"`
}

// Person is an enterprise identity: its EUID and the keys of the source
// records linked to it, in ascending order.
type Person struct {
	EUID    string      `json:"euid"`
	Records []RecordKey `json:"records"`
}

// Review reasons.
const (
	// ReviewBetweenThresholds: the best person scored between the lower and
	// upper thresholds.
	ReviewBetweenThresholds = "between_thresholds"
	// ReviewAmbiguous: several persons are likely together, though none is
	// likely enough alone.
	ReviewAmbiguous = "ambiguous"
	// ReviewWeakEvidence: a person scored at or above the upper threshold
	// but the pair shares nothing identifying (birth date, SSN, e-mail,
	// phone, street address): only names and a place.
	ReviewWeakEvidence = "weak_evidence"
	// ReviewDuplicatePersons: the record matched several persons strongly,
	// each of them alone and all together, as if they were one person
	// split; it was linked to the best of them, and the item names the
	// others, for a steward to merge into it (or keep apart).
	ReviewDuplicatePersons = "duplicate_persons"
	// ReviewHousehold: a person scored at or above the upper threshold but
	// a household rule (twin, generation, suffix) forbade the link.
	ReviewHousehold = "household"
)

// ReviewItem asks a data steward to decide whether a record belongs to one
// of the candidate persons. The record has been given its own person (EUID)
// meanwhile: an uncertain match is never linked silently.
type ReviewItem struct {
	Record        RecordKey   `json:"record"`
	EUID          string      `json:"euid"`
	Reason        string      `json:"reason"`
	Score         float64     `json:"score"`
	Candidates    []Candidate `json:"candidates"`
	ConfigVersion uint64      `json:"config_version"`
}
