package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// Buckets of the audit log. The log itself is keyed by sequence number; the other buckets
// are indexes that answer "who saw this patient", "what did this participant do" and "what
// happened on that day" without scanning the whole log.
var (
	bucketAudit            = []byte("audit")                // seq → AuditEntry
	bucketAuditMeta        = []byte("audit_meta")           // head seq, head hash, cluster key
	bucketAuditIDs         = []byte("audit_ids")            // entry id → seq
	bucketAuditByEUID      = []byte("audit_by_euid")        // euid 0x00 seq → empty
	bucketAuditByActor     = []byte("audit_by_participant") // participant 0x00 seq → empty
	bucketAuditByTime      = []byte("audit_by_time")        // recorded unix nanos, seq → empty
	bucketAuditBreakGlass  = []byte("audit_break_glass")    // seq → empty
	keyAuditHeadSeq        = []byte("head_seq")
	keyAuditHeadHash       = []byte("head_hash")
	keyClusterKey          = []byte("cluster_key")
	auditBuckets           = [][]byte{bucketAudit, bucketAuditMeta, bucketAuditIDs, bucketAuditByEUID, bucketAuditByActor, bucketAuditByTime, bucketAuditBreakGlass}
	auditSeqLen            = 8
	auditTimeKeyLen        = 16
	auditIndexKeySeparator = byte(keySep)
)

// AuditHash returns the chain hash of an entry whose PrevHash and Seq are set: hex
// SHA-256 of the previous hash followed by the entry's MessagePack encoding with Hash
// empty. MessagePack of a generated struct is canonical (fields in declaration order), so
// every node computes the same hash.
func AuditHash(e model.AuditEntry) (string, error) {
	e.Hash = ""
	b, err := e.MarshalMsg(nil)
	if err != nil {
		return "", fmt.Errorf("encode audit entry %d: %w", e.Seq, err)
	}
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// AuditHead returns the sequence number and hash of the last audit entry (0, "" when the
// log is empty).
func (t *Tx) AuditHead() (uint64, string) {
	b := t.tx.Bucket(bucketAuditMeta)
	return decodeUint(b.Get(keyAuditHeadSeq)), string(b.Get(keyAuditHeadHash))
}

// ClusterKey returns the secret nodes authenticate internal calls with, or nil before the
// first leader has drawn one.
func (t *Tx) ClusterKey() []byte {
	return bytes.Clone(t.tx.Bucket(bucketAuditMeta).Get(keyClusterKey))
}

// SetClusterKey stores the cluster key unless one is already stored (the first wins, so
// two leaders drawing one in turn cannot change it under the nodes using it).
func (t *Tx) SetClusterKey(key []byte) error {
	b := t.tx.Bucket(bucketAuditMeta)
	if len(key) == 0 || b.Get(keyClusterKey) != nil {
		return nil
	}
	if err := b.Put(keyClusterKey, key); err != nil {
		return fmt.Errorf("store cluster key: %w", err)
	}
	return nil
}

func seqKey(seq uint64) []byte { return encodeUint(seq) }

func auditIndexKey(value string, seq uint64) []byte {
	k := make([]byte, 0, len(value)+1+auditSeqLen)
	k = append(k, value...)
	k = append(k, auditIndexKeySeparator)
	return binary.BigEndian.AppendUint64(k, seq)
}

func auditTimeKey(t time.Time, seq uint64) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, auditTimeKeyLen), uint64(t.UnixNano()))
	return binary.BigEndian.AppendUint64(k, seq)
}

// AppendAudit numbers, chains and stores e, recorded at the given (leader-stamped) time,
// with its index entries. An entry whose ID the log already holds is not appended again
// (appended is false): batches are retried after a lost answer.
func (t *Tx) AppendAudit(e model.AuditEntry, recorded time.Time) (stored model.AuditEntry, appended bool, err error) {
	if e.ID == "" {
		return e, false, fmt.Errorf("audit entry without an id: %w", model.ErrInvalid)
	}
	ids := t.tx.Bucket(bucketAuditIDs)
	if v := ids.Get([]byte(e.ID)); v != nil {
		return e, false, nil
	}
	seq, prev := t.AuditHead()
	e.Seq, e.PrevHash, e.Recorded, e.Hash = seq+1, prev, recorded.UTC(), ""
	if e.Hash, err = AuditHash(e); err != nil {
		return e, false, err
	}
	v, err := e.MarshalMsg(nil)
	if err != nil {
		return e, false, fmt.Errorf("encode audit entry %d: %w", e.Seq, err)
	}
	key := seqKey(e.Seq)
	puts := []struct {
		bucket   []byte
		key, val []byte
	}{
		{bucketAudit, key, v},
		{bucketAuditIDs, []byte(e.ID), key},
		{bucketAuditByTime, auditTimeKey(e.Recorded, e.Seq), nil},
		{bucketAuditMeta, keyAuditHeadSeq, key},
		{bucketAuditMeta, keyAuditHeadHash, []byte(e.Hash)},
	}
	if e.Participant != "" {
		puts = append(puts, struct {
			bucket   []byte
			key, val []byte
		}{bucketAuditByActor, auditIndexKey(e.Participant, e.Seq), nil})
	}
	if e.BreakGlass != "" {
		puts = append(puts, struct {
			bucket   []byte
			key, val []byte
		}{bucketAuditBreakGlass, key, nil})
	}
	for _, euid := range e.EUIDs {
		puts = append(puts, struct {
			bucket   []byte
			key, val []byte
		}{bucketAuditByEUID, auditIndexKey(euid, e.Seq), nil})
	}
	for _, p := range puts {
		val := p.val
		if val == nil {
			val = []byte{}
		}
		if err := t.tx.Bucket(p.bucket).Put(p.key, val); err != nil {
			return e, false, fmt.Errorf("store audit entry %d in %s: %w", e.Seq, p.bucket, err)
		}
	}
	return e, true, nil
}

// AuditEntry returns the entry with sequence number seq, or ErrNotFound.
func (t *Tx) AuditEntry(seq uint64) (model.AuditEntry, error) {
	var e model.AuditEntry
	v := t.tx.Bucket(bucketAudit).Get(seqKey(seq))
	if v == nil {
		return e, fmt.Errorf("audit entry %d: %w", seq, ErrNotFound)
	}
	if _, err := e.UnmarshalMsg(v); err != nil {
		return e, fmt.Errorf("decode audit entry %d: %w", seq, err)
	}
	return e, nil
}

// AuditQuery selects audit entries; empty fields do not filter. Entries come in log order,
// except for a query by time alone, which walks the time index and so comes in order of
// recorded time (the two differ where a new leader's clock is behind its predecessor's).
type AuditQuery struct {
	EUID string
	// Record is a Patient id (the record's id, not its identifier).
	Record      string
	Participant string
	// From and To bound the recorded time: From ≤ recorded < To.
	From, To   time.Time
	BreakGlass bool
	Offset     int
	Limit      int
}

// SearchAudit returns the entries matching q (at most q.Limit, after q.Offset) and how many
// match in all. It walks the most selective index and checks the other criteria on each
// entry.
func (t *Tx) SearchAudit(q AuditQuery) ([]model.AuditEntry, int, error) {
	var seqs func(yield func(uint64) bool)
	switch {
	case q.EUID != "":
		seqs = t.prefixSeqs(bucketAuditByEUID, q.EUID)
	case q.Participant != "":
		seqs = t.prefixSeqs(bucketAuditByActor, q.Participant)
	case q.BreakGlass:
		seqs = t.keySeqs(bucketAuditBreakGlass)
	case !q.From.IsZero() || !q.To.IsZero():
		seqs = t.timeSeqs(q.From, q.To)
	default:
		seqs = t.keySeqs(bucketAudit)
	}
	var out []model.AuditEntry
	total := 0
	var ferr error
	seqs(func(seq uint64) bool {
		e, err := t.AuditEntry(seq)
		if err != nil {
			ferr = err
			return false
		}
		if !q.matches(e) {
			return true
		}
		if total >= q.Offset && (q.Limit <= 0 || len(out) < q.Limit) {
			out = append(out, e)
		}
		total++
		return true
	})
	return out, total, ferr
}

func (q AuditQuery) matches(e model.AuditEntry) bool {
	if q.EUID != "" && !slices.Contains(e.EUIDs, q.EUID) {
		return false
	}
	if q.Record != "" && !slices.Contains(e.Records, q.Record) {
		return false
	}
	if q.Participant != "" && e.Participant != q.Participant {
		return false
	}
	if q.BreakGlass && e.BreakGlass == "" {
		return false
	}
	if !q.From.IsZero() && e.Recorded.Before(q.From) {
		return false
	}
	if !q.To.IsZero() && !e.Recorded.Before(q.To) {
		return false
	}
	return true
}

func (t *Tx) prefixSeqs(bucket []byte, value string) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		prefix := append([]byte(value), auditIndexKeySeparator)
		c := t.tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) != len(prefix)+auditSeqLen {
				continue // a longer value that shares the prefix cannot, with the separator; be safe
			}
			if !yield(binary.BigEndian.Uint64(k[len(prefix):])) {
				return
			}
		}
	}
}

func (t *Tx) keySeqs(bucket []byte) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		c := t.tx.Bucket(bucket).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) == auditSeqLen && !yield(binary.BigEndian.Uint64(k)) {
				return
			}
		}
	}
}

func (t *Tx) timeSeqs(from, to time.Time) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		c := t.tx.Bucket(bucketAuditByTime).Cursor()
		var k []byte
		if from.IsZero() {
			k, _ = c.First()
		} else {
			k, _ = c.Seek(binary.BigEndian.AppendUint64(nil, uint64(from.UnixNano())))
		}
		for ; k != nil; k, _ = c.Next() {
			if len(k) != auditTimeKeyLen {
				continue
			}
			if !to.IsZero() && int64(binary.BigEndian.Uint64(k[:8])) >= to.UnixNano() {
				return
			}
			if !yield(binary.BigEndian.Uint64(k[8:])) {
				return
			}
		}
	}
}

// AuditVerification is the result of walking the audit chain.
type AuditVerification struct {
	OK bool `json:"ok"`
	// Entries is how many entries were checked; HeadSeq and HeadHash are what the log
	// records as its last entry.
	Entries  uint64 `json:"entries"`
	HeadSeq  uint64 `json:"head_seq"`
	HeadHash string `json:"head_hash,omitempty"`
	// BrokenAt is the sequence number of the first entry that does not verify, and
	// Problem says why.
	BrokenAt uint64 `json:"broken_at,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// VerifyAudit walks the whole audit log in order and checks that sequence numbers have no
// gap, that each entry names its predecessor's hash, that each hash is the hash of its
// entry, and that the recorded head is the last entry. It stops at the first broken link.
func (s *Store) VerifyAudit() (AuditVerification, error) {
	var v AuditVerification
	err := s.View(func(tx *Tx) error {
		v = tx.verifyAudit()
		return nil
	})
	return v, err
}

func (t *Tx) verifyAudit() AuditVerification {
	var v AuditVerification
	v.HeadSeq, v.HeadHash = t.AuditHead()
	fail := func(seq uint64, format string, args ...any) AuditVerification {
		v.BrokenAt, v.Problem = seq, fmt.Sprintf(format, args...)
		return v
	}
	prevHash, want := "", uint64(1)
	c := t.tx.Bucket(bucketAudit).Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		if len(k) != auditSeqLen {
			return fail(want, "key %x is not a sequence number", k)
		}
		seq := binary.BigEndian.Uint64(k)
		if seq != want {
			return fail(want, "entry %d is missing (next stored is %d)", want, seq)
		}
		var e model.AuditEntry
		if _, err := e.UnmarshalMsg(val); err != nil {
			return fail(seq, "entry does not decode: %v", err)
		}
		if e.Seq != seq {
			return fail(seq, "entry says it is number %d", e.Seq)
		}
		if e.PrevHash != prevHash {
			return fail(seq, "previous hash %.16s… does not match entry %d's hash %.16s…", e.PrevHash, seq-1, prevHash)
		}
		h, err := AuditHash(e)
		if err != nil {
			return fail(seq, "%v", err)
		}
		if h != e.Hash {
			return fail(seq, "content does not match its hash (altered)")
		}
		prevHash, want = e.Hash, want+1
		v.Entries++
	}
	if v.Entries != v.HeadSeq || prevHash != v.HeadHash {
		return fail(v.Entries+1, "the log ends at entry %d but its head records entry %d (entries removed)", v.Entries, v.HeadSeq)
	}
	v.OK = true
	return v
}
