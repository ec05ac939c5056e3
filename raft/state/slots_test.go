package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/mpi"
)

// legacyFile writes a state file as releases before slots kept records: n records and a
// registry entry for every third, keyed by record key, plus the registry entries of
// orphans records that are not there.
func legacyFile(t *testing.T, n, orphans int) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		records, patients, err := createLegacyBuckets(tx)
		if err != nil {
			return err
		}
		for j := range n {
			key := fmt.Appendf(nil, "urn:oid:1.2|M%05d", j)
			if err := records.Put(key, fmt.Appendf(nil, "record %d", j)); err != nil {
				return err
			}
			if j%3 == 0 {
				if err := patients.Put(key, fmt.Appendf(nil, "entry %d", j)); err != nil {
					return err
				}
			}
		}
		for i := range orphans {
			if err := patients.Put(fmt.Appendf(nil, "urn:oid:9.9|X%d", i), []byte("orphan")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// openTestStore opens a store on a new file, closed when the test ends.
func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// createLegacyBuckets creates the buckets that held records and registry entries by
// record key before slots.
func createLegacyBuckets(tx *bolt.Tx) (records, patients *bolt.Bucket, err error) {
	if records, err = tx.CreateBucket(bucketLegacyMPIRecords); err != nil {
		return nil, nil, err
	}
	patients, err = tx.CreateBucket(bucketLegacyPatients)
	return records, patients, err
}

// dump lists every bucket, key and value of a file.
func dump(t *testing.T, db *bolt.DB) string {
	t.Helper()
	var b strings.Builder
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			fmt.Fprintf(&b, "[%s] seq %d\n", name, bk.Sequence())
			return bk.ForEach(func(k, v []byte) error {
				fmt.Fprintf(&b, "%x=%q\n", k, v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestMigrationToSlotsNumbersByKeyAndResumes: a file of an earlier release gets its
// records numbered 1, 2, … in key order, each registry entry under its record's slot, and
// the buckets keyed by record key dropped; moved in small transactions, or stopped after
// the first and resumed, it ends byte for byte as moved in one (every node numbers alike).
func TestMigrationToSlotsNumbersByKeyAndResumes(t *testing.T) {
	const n = 100
	whole := legacyFile(t, n, 0)
	if err := migrateToSlots(whole, slog.New(slog.DiscardHandler), migrateChunk); err != nil {
		t.Fatal(err)
	}
	want := dump(t, whole)
	err := whole.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketLegacyMPIRecords) != nil || tx.Bucket(bucketLegacyPatients) != nil {
			return fmt.Errorf("a bucket keyed by record key is left")
		}
		records, patients := tx.Bucket(bucketMPIRecords), tx.Bucket(bucketPatients)
		for j := range n {
			k := slotKey(uint64(j + 1))
			if got := records.Get(k[:]); !bytes.Equal(got, fmt.Appendf(nil, "record %d", j)) {
				return fmt.Errorf("slot %d holds %q, want record %d", j+1, got, j)
			}
			got := patients.Get(k[:])
			if j%3 == 0 != (got != nil) || got != nil && !bytes.Equal(got, fmt.Appendf(nil, "entry %d", j)) {
				return fmt.Errorf("slot %d holds the registry entry %q", j+1, got)
			}
		}
		if records.Sequence() != n {
			return fmt.Errorf("the next record would get slot %d, want %d", records.Sequence()+1, n+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	small := legacyFile(t, n, 0)
	if err := migrateToSlots(small, slog.New(slog.DiscardHandler), 7); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, small); got != want {
		t.Fatalf("moved 7 at a time:\n%s\nwant\n%s", got, want)
	}

	stopped := legacyFile(t, n, 0)
	err = stopped.Update(func(tx *bolt.Tx) error {
		moved, done, err := moveToSlots(tx, 30)
		if err == nil && (moved != 30 || done) {
			err = fmt.Errorf("the first transaction moved %d records (done %v), want 30", moved, done)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateToSlots(stopped, slog.New(slog.DiscardHandler), migrateChunk); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, stopped); got != want {
		t.Fatalf("stopped after 30 and resumed:\n%s\nwant\n%s", got, want)
	}
}

// TestMigrationToSlotsRefusesRegistryEntriesWithoutRecords: a registry entry is written
// only for a record the index holds, so one without a record is a damaged file, and the
// node must not open it as if it were whole.
func TestMigrationToSlotsRefusesRegistryEntriesWithoutRecords(t *testing.T) {
	db := legacyFile(t, 10, 2)
	err := migrateToSlots(db, slog.New(slog.DiscardHandler), migrateChunk)
	if err == nil || !strings.Contains(err.Error(), "2 registry entries have no record") {
		t.Fatalf("migration of a file with two orphan registry entries: %v", err)
	}
}

// TestRecordsTakeSlotsInTheOrderTheyArrive: records registered in descending key order
// are stored under slots 1, 2, … in the order they were registered (so new records fill
// the bucket's last pages), a record registered again keeps its slot, a rollback gives
// its slots again, and the map rebuilt from the file equals the one kept in step.
func TestRecordsTakeSlotsInTheOrderTheyArrive(t *testing.T) {
	s := openTestStore(t)
	m := mpi.NewMatcher()
	// register registers rec as the FSM does (matched, then filed for patient search).
	register := func(euid string, rec mpi.Record, rollback bool) {
		t.Helper()
		b, err := s.Begin()
		if err != nil {
			t.Fatal(err)
		}
		registerInTx(t, b.Tx(), m, rec, euid)
		if rollback {
			b.Rollback()
			return
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	const n = 30
	for i := range n {
		register(fmt.Sprintf("E%06d", i), indexRecord(n-1-i), false)
	}
	// Registered again with another phone: same slot.
	again := indexRecord(n - 1)
	again.Phones = []string{"5035559999"}
	register("E-again", again, false)
	// A rolled-back registration takes a slot the next one is given again.
	register("E-rolled-back", indexRecord(n), true)
	register("E-last", indexRecord(n+1), false)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	err := s.View(func(tx *Tx) error {
		records := tx.tx.Bucket(bucketMPIRecords)
		for i := range n + 1 {
			want := indexRecord(n - 1 - i).Key()
			if i == n {
				want = indexRecord(n + 1).Key()
			}
			k := slotKey(uint64(i + 1))
			r, err := decodeRecord(records.Get(k[:]))
			if err != nil {
				return fmt.Errorf("slot %d: %w", i+1, err)
			}
			if r.Key != want {
				return fmt.Errorf("slot %d holds %s, want %s", i+1, r.Key, want)
			}
			if i == 0 && r.Record.Phones[0] != "5035559999" {
				return fmt.Errorf("slot 1 holds the record as first registered")
			}
		}
		if seq := records.Sequence(); seq != n+1 {
			return fmt.Errorf("%d slots given, want %d", seq, n+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRebuilt(t, s, "after registrations, a re-registration and a rollback")
}

// TestRecordSlotsFindEveryKey: the slots' table finds the slot of every key through its
// growth (keys share table entries' neighbourhoods long before it grows), finds nothing for
// keys without one, answers every slot's key, and refuses a slot of 0, one given to
// another key, and one beyond 32 bits.
func TestRecordSlotsFindEveryKey(t *testing.T) {
	s := newRecordSlots()
	const n = 20000
	key := func(i int) mpi.RecordKey {
		return mpi.RecordKey(fmt.Sprintf("urn:oid:1.2.%d|MRN%07d", i%7, i*7919%100003))
	}
	for i := 1; i <= n; i++ {
		if err := s.set(key(i), uint64(i)); err != nil {
			t.Fatal(err)
		}
		if i%997 != 0 {
			continue
		}
		for j := 1; j <= i; j++ {
			if slot, ok := s.get(key(j)); !ok || slot != uint64(j) {
				t.Fatalf("after %d keys: key %d has slot %d (%v)", i, j, slot, ok)
			}
		}
	}
	for j := n + 1; j <= n+1000; j++ {
		if slot, ok := s.get(key(j)); ok {
			t.Fatalf("a key never given a slot has slot %d", slot)
		}
	}
	for _, slot := range []uint64{1, 777, n} {
		if got := s.keyOf(slot); got != key(int(slot)) {
			t.Fatalf("slot %d answers %q", slot, got)
		}
	}
	if got := s.keyOf(n + 1); got != "" {
		t.Fatalf("a slot not given answers %q", got)
	}
	if err := s.set("urn:oid:9|X", 0); err == nil {
		t.Fatal("slot 0 was given")
	}
	if err := s.set("urn:oid:9|X", 5); err == nil {
		t.Fatal("a slot was given to a second key")
	}
	if err := s.set("urn:oid:9|X", math.MaxUint32+1); !errors.Is(err, errTooManyRecords) {
		t.Fatalf("a slot beyond 32 bits: %v", err)
	}
	if _, ok := s.get("urn:oid:9|X"); ok {
		t.Fatal("a refused key has a slot")
	}
}

// TestAppendedBucketsFillTheirPages: records stored by slot only ever land after the last
// one, so the flush fills their pages instead of splitting each in half (bbolt's default),
// which left the state file of a million persons half empty.
func TestAppendedBucketsFillTheirPages(t *testing.T) {
	s := openTestStore(t)
	m := mpi.NewMatcher()
	for batch := range 10 {
		b, err := s.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := batch * 60; i < (batch+1)*60; i++ {
			registerInTx(t, b.Tx(), m, indexRecord(i), fmt.Sprintf("E%06d", i))
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketMPIRecords).Stats()
		if st.LeafPageN < 4 {
			return fmt.Errorf("the records fill %d leaf pages: too few to tell", st.LeafPageN)
		}
		if fill := float64(st.LeafInuse) / float64(st.LeafPageN*tx.DB().Info().PageSize); fill < 0.85 {
			return fmt.Errorf("the records' %d leaf pages are %.0f%% full", st.LeafPageN, 100*fill)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
