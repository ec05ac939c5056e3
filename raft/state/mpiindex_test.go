package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/model"
)

// indexRecord is the i-th record of a small population in which records 2k and 2k+1 are
// one person (the second with a typo and another identifier system).
func indexRecord(i int) mpi.Record {
	given := []string{"Ann", "Bea", "Cora", "Dina", "Eve", "Fay", "Gail", "Hope"}[i/2%8]
	family := fmt.Sprintf("Lee%c", 'a'+i/16)
	r := mpi.Record{System: "urn:oid:1.2.1", Value: fmt.Sprintf("M%d", i), Given: []string{given}, Family: family,
		BirthDate: fmt.Sprintf("19%02d-0%d-1%d", 40+i/2%50, 1+i/2%9, i/2%10), Sex: "F",
		AddressLines: []string{fmt.Sprintf("%d Oak St", 10+i/2)}, City: "Salem", PostalCode: "97301",
		Phones: []string{fmt.Sprintf("503555%04d", 1000+i/2)}}
	if i%2 == 1 {
		r.System = "urn:oid:1.2.2"
		r.Given = []string{given + "e"}
	}
	return r
}

// registerInTx registers rec through a write transaction as the FSM does: matched, then
// filed for patient search.
func registerInTx(t *testing.T, tx *Tx, m *mpi.Matcher, rec mpi.Record, euid string) mpi.Decision {
	t.Helper()
	old, err := tx.MPI().Record(rec.Key())
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.Register(tx.MPI(), rec, euid)
	if err != nil {
		t.Fatal(err)
	}
	var oldNorm *mpi.Normalized
	if old != nil {
		oldNorm = &old.Norm
	}
	n := mpi.Normalize(rec)
	if err := tx.IndexPatient(rec.Key(), oldNorm, &n); err != nil {
		t.Fatal(err)
	}
	return d
}

// registerInBatch registers records from..to-1 through a write transaction of s (matched
// as the FSM matches them) and commits it unless rollback is set.
func registerInBatch(t *testing.T, s *Store, from, to int, rollback bool) []mpi.Decision {
	t.Helper()
	b, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx := b.Tx()
	m := mpi.NewMatcher()
	var out []mpi.Decision
	for i := from; i < to; i++ {
		out = append(out, registerInTx(t, tx, m, indexRecord(i), fmt.Sprintf("E%06d", i)))
	}
	if rollback {
		b.Rollback()
		return out
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	return out
}

func checkRebuilt(t *testing.T, s *Store, when string) [32]byte {
	t.Helper()
	rebuilt, err := s.RebuiltMPIIndexDigest()
	if err != nil {
		t.Fatal(err)
	}
	if live := s.MPIIndexDigest(); live != rebuilt {
		t.Fatalf("%s: the in-memory indexes differ from indexes rebuilt from the state file", when)
	}
	return rebuilt
}

// TestMPIIndexFollowsTheStateFile: the in-memory indexes equal indexes rebuilt from the
// state file after commits, after a rollback, after the file is reopened and after a
// snapshot of it replaces another store's state; and matching against them decides as
// matching against mpi.MemStore does.
func TestMPIIndexFollowsTheStateFile(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := registerInBatch(t, s, 0, 40, false)
	got = append(got, registerInBatch(t, s, 40, 80, false)...)
	committed := checkRebuilt(t, s, "after two commits")

	// A batch that is rolled back leaves the indexes as the committed state has them.
	registerInBatch(t, s, 80, 120, true)
	if after := checkRebuilt(t, s, "after a rollback"); after != committed {
		t.Fatal("a rolled-back batch changed the committed state")
	}

	// Re-registration (same keys, changed names) moves records between blocks and terms.
	b, _ := s.Begin()
	for i := 0; i < 10; i++ {
		rec := indexRecord(i)
		rec.Family = "Moved"
		old, _ := b.Tx().MPI().Record(rec.Key())
		d, err := mpi.NewMatcher().Register(b.Tx().MPI(), rec, fmt.Sprintf("F%06d", i))
		if err != nil {
			t.Fatal(err)
		}
		n := mpi.Normalize(rec)
		if err := b.Tx().IndexPatient(d.Record, &old.Norm, &n); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	moved := checkRebuilt(t, s, "after re-registrations")

	// The same registrations into mpi.MemStore decide alike.
	mem, m := mpi.NewMemStore(), mpi.NewMatcher()
	for i := 0; i < 80; i++ {
		d, err := m.Register(mem, indexRecord(i), fmt.Sprintf("E%06d", i))
		if err != nil {
			t.Fatal(err)
		}
		if !equalJSON(d, got[i]) {
			t.Fatalf("record %d: state decided %+v, MemStore %+v", i, got[i], d)
		}
	}

	// Reopened, the store builds the same indexes.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(filepath.Join(dir, "state.db"), nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.MPIIndexDigest() != moved {
		t.Fatal("reopened, the store built other indexes")
	}

	// A snapshot restored into another store brings its indexes along.
	other, err := Open(filepath.Join(dir, "other.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	registerInBatch(t, other, 200, 210, false)
	sn, err := s.BeginSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	if err := other.Replace(&buf); err != nil {
		t.Fatal(err)
	}
	if other.MPIIndexDigest() != moved {
		t.Fatal("after a restore, the indexes are not those of the snapshot")
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestReadersSeeOnlyTheirOwnState: a read transaction that began before records were
// registered (committed or still open) neither finds them by matching or searching nor
// fails because the in-memory indexes list them.
func TestReadersSeeOnlyTheirOwnState(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	registerInBatch(t, s, 0, 20, false)

	query := indexRecord(30) // the person of records 30 and 31, registered below
	query.System, query.Value = "", ""
	n := mpi.Normalize(query)
	search := PatientQuery{Family: n.Family, FamilyCode: n.FamilyCode, Given: n.Given, GivenCode: n.GivenCode}

	began, read := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- s.View(func(tx *Tx) error {
			close(began)
			<-read // meanwhile records 20..39 are registered and committed, then 40..59 applied
			cands, err := mpi.NewMatcher().Match(tx.MPI(), query, 10)
			if err != nil {
				return fmt.Errorf("match in an older view: %w", err)
			}
			for _, c := range cands {
				if sr, _ := tx.MPI().Record(c.Record); sr == nil {
					return fmt.Errorf("match returned %s, which this view does not hold", c.Record)
				}
			}
			hits, err := tx.SearchPatients(search)
			if err != nil {
				return err
			}
			for _, h := range hits {
				if sr, _ := tx.MPI().Record(h.Key); sr == nil {
					return fmt.Errorf("search returned %s, which this view does not hold", h.Key)
				}
			}
			return nil
		})
	}()
	<-began
	registerInBatch(t, s, 20, 40, false)
	open, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 40; i < 60; i++ {
		if _, err := mpi.NewMatcher().Register(open.Tx().MPI(), indexRecord(i), fmt.Sprintf("E%06d", i)); err != nil {
			t.Fatal(err)
		}
	}
	close(read)
	err = <-result
	open.Rollback()
	if err != nil {
		t.Fatal(err)
	}

	// A view begun now finds the committed person by matching and by searching.
	err = s.View(func(tx *Tx) error {
		cands, err := mpi.NewMatcher().Match(tx.MPI(), query, 10)
		if err != nil || len(cands) == 0 || cands[0].Grade != mpi.GradeCertain {
			return fmt.Errorf("match now: %+v %v", cands, err)
		}
		hits, err := tx.SearchPatients(search)
		if err != nil {
			return err
		}
		keys := []mpi.RecordKey{}
		for _, h := range hits {
			keys = append(keys, h.Key)
		}
		if !slices.Contains(keys, indexRecord(30).Key()) {
			return fmt.Errorf("search now: %v", keys)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStateOfEarlierReleasesOpens: a state file written before the in-memory indexes, with
// JSON records and persons and the derived buckets (block entries, term counts, patient
// search, person count), opens with those buckets dropped and indexes built from the
// records, which then decide as a store that registered them itself.
func TestStateOfEarlierReleasesOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	// The records as this release registers them, written as an earlier release stored them.
	mem, m := mpi.NewMemStore(), mpi.NewMatcher()
	for i := 0; i < 40; i++ {
		if _, err := m.Register(mem, indexRecord(i), fmt.Sprintf("E%06d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	versions := map[string]uint64{} // the registry entries written, by record key
	err = db.Update(func(tx *bolt.Tx) error {
		// Records and registry entries by record key, before slots.
		legacy, legacyPatients, err := createLegacyBuckets(tx)
		if err != nil {
			return err
		}
		for i := 0; i < 40; i++ {
			sr, _ := mem.Record(indexRecord(i).Key())
			v, _ := json.Marshal(sr)
			if err := legacy.Put([]byte(sr.Key), v); err != nil {
				return err
			}
			keys = append(keys, string(sr.Key))
			if i%2 == 0 {
				versions[string(sr.Key)] = uint64(i + 1)
				meta := model.PatientMeta{Key: string(sr.Key), ID: model.PatientID(string(sr.Key)), Version: uint64(i + 1)}
				v, _ := meta.MarshalMsg(nil)
				if err := legacyPatients.Put([]byte(sr.Key), v); err != nil {
					return err
				}
			}
		}
		for _, p := range mem.Persons() {
			v, _ := json.Marshal(p)
			if err := tx.Bucket(bucketMPIPersons).Put([]byte(p.EUID), v); err != nil {
				return err
			}
		}
		for _, name := range derivedMPIBuckets {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			if err := b.Put([]byte("stale\x00entry"), nil); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMPIConfig).Put(keyPersonCount, encodeUint(12345))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(func(tx *Tx) error {
		for _, name := range derivedMPIBuckets {
			if tx.tx.Bucket(name) != nil {
				return fmt.Errorf("bucket %s was not dropped", name)
			}
		}
		if tx.tx.Bucket(bucketMPIConfig).Get(keyPersonCount) != nil {
			return fmt.Errorf("the stored person count was not dropped")
		}
		for _, name := range [][]byte{bucketLegacyMPIRecords, bucketLegacyPatients} {
			if tx.tx.Bucket(name) != nil {
				return fmt.Errorf("bucket %s was not dropped", name)
			}
		}
		// Slots are given in key order, every record and entry is found by its key.
		slices.Sort(keys)
		for i, key := range keys {
			k := slotKey(uint64(i + 1))
			r, err := decodeRecord(tx.tx.Bucket(bucketMPIRecords).Get(k[:]))
			if err != nil || string(r.Key) != key {
				return fmt.Errorf("slot %d: %v, %v; want the record %s", i+1, r, err, key)
			}
			if got, err := tx.MPI().Record(mpi.RecordKey(key)); err != nil || got == nil || string(got.Key) != key {
				return fmt.Errorf("record %s read back as %v, %v", key, got, err)
			}
			meta, ok, err := tx.PatientMeta(key)
			want, wantOK := versions[key]
			if err != nil || ok != wantOK || meta.Version != want || ok && meta.Key != key {
				return fmt.Errorf("registry entry of %s: %+v, %v, %v; want version %d", key, meta, ok, err, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRebuilt(t, s, "opened from JSON")
	// Registering the rest decides as the in-memory store does.
	b, _ := s.Begin()
	for i := 40; i < 60; i++ {
		want, err := m.Register(mem, indexRecord(i), fmt.Sprintf("E%06d", i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := mpi.NewMatcher().Register(b.Tx().MPI(), indexRecord(i), fmt.Sprintf("E%06d", i))
		if err != nil {
			t.Fatal(err)
		}
		if !equalJSON(got, want) {
			t.Fatalf("record %d: %+v, want %+v", i, got, want)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	// Records written again are written in the binary form.
	err = s.View(func(tx *Tx) error {
		v := recordValue(tx.tx, tx.slots(), indexRecord(50).Key())
		if !mpi.IsBinary(v) {
			return fmt.Errorf("a new record is stored as %.20q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadersTakeFromMemoryOnlyWhatTheirStateHolds: a record is read from the in-memory
// index (the very copy it holds) by a reader whose state includes the entry that last
// wrote it, and from the reader's own transaction by one begun before that entry was
// committed, which gets the record as it was, not as the index holds it now.
func TestReadersTakeFromMemoryOnlyWhatTheirStateHolds(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := indexRecord(0).Key()
	apply := func(index uint64, rec mpi.Record, commit bool) *Batch {
		b, err := s.Begin()
		if err != nil {
			t.Fatal(err)
		}
		tx := b.Tx()
		tx.StampEntry(index)
		if _, err := mpi.NewMatcher().Register(tx.MPI(), rec, fmt.Sprintf("E%06d", index)); err != nil {
			t.Fatal(err)
		}
		if err := tx.SetApplied(index, 1); err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	apply(5, indexRecord(0), true)
	inMemory := func() *mpi.StoredRecord {
		sr, _ := s.mpi.current().mem.Record(key)
		return sr
	}
	// A record read from the index shares the index's own strings; one decoded from the
	// transaction has strings of its own.
	fromMemory := func(sr, mem *mpi.StoredRecord) bool {
		return unsafe.StringData(string(sr.Key)) == unsafe.StringData(string(mem.Key))
	}
	read := func(tx *Tx) *mpi.StoredRecord {
		sr, err := tx.MPI().Record(key)
		if err != nil || sr == nil {
			t.Fatalf("read %s: %v %v", key, sr, err)
		}
		return sr
	}
	if err := s.View(func(tx *Tx) error {
		if sr := read(tx); !fromMemory(sr, inMemory()) {
			return fmt.Errorf("a reader of the current state decoded the record instead of taking it from memory")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	moved := indexRecord(0)
	moved.City, moved.PostalCode, moved.AddressLines = "Portland", "97201", []string{"1 Pine St"}
	began, read2 := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- s.View(func(tx *Tx) error {
			close(began)
			<-read2 // meanwhile entry 6 rewrites the record, applied but not committed
			sr := read(tx)
			if fromMemory(sr, inMemory()) || sr.Record.City != "Salem" {
				return fmt.Errorf("a reader of index 5 got the record as entry 6 wrote it: %s", sr.Record.City)
			}
			return nil
		})
	}()
	<-began
	b := apply(6, moved, false)
	if sr := inMemory(); sr.Record.City != "Portland" {
		t.Fatalf("the index does not hold entry 6's record: %s", sr.Record.City)
	}
	close(read2)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
		if sr := read(tx); !fromMemory(sr, inMemory()) || sr.Record.City != "Portland" {
			return fmt.Errorf("after the commit: %s, from memory %v", sr.Record.City, fromMemory(sr, inMemory()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
