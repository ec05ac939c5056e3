package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestLayersReadAsTheFile runs random writes (puts, deletes, sequences, buckets dropped and
// created, deletions of a run of keys) through the state machine's layers and, in lockstep, straight
// into a bbolt file, committing and flushing at random points. Every read through the layers
// (gets, cursors in both directions, seeks, counts) must equal the file's, inside a batch,
// after a commit and after a flush, and the state hashes must agree.
func TestLayersReadAsTheFile(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { layersAgainstFile(t, seed) })
	}
}

func layersAgainstFile(t *testing.T, seed uint64) {
	dir := t.TempDir()
	st, err := Open(filepath.Join(dir, "layered.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Open(filepath.Join(dir, "reference.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Neither store is closed on failure: Close would wait for the open transactions.

	rng := rand.New(rand.NewPCG(seed, 7))
	buckets := [][]byte{bucketNodes, bucketParticipants, bucketFailed}
	key := func() []byte { return fmt.Appendf(nil, "k%02d", rng.IntN(40)) }
	for round := range 60 {
		b, err := st.Begin()
		if err != nil {
			t.Fatal(err)
		}
		rtx, err := ref.db.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		lt, ft := b.tx, &kvTx{bolt: rtx}
		for op := range 40 {
			name := buckets[rng.IntN(len(buckets))]
			lb, fb := lt.Bucket(name), ft.Bucket(name)
			if (lb == nil) != (fb == nil) {
				t.Fatalf("round %d op %d: bucket %s exists through layers: %v, in the file: %v", round, op, name, lb != nil, fb != nil)
			}
			switch r := rng.IntN(100); {
			case lb == nil || r < 2:
				_, err1 := lt.CreateBucketIfNotExists(name)
				_, err2 := ft.CreateBucketIfNotExists(name)
				sameErr(t, "create bucket", err1, err2)
			case r < 4:
				sameErr(t, "delete bucket", lt.DeleteBucket(name), ft.DeleteBucket(name))
			case r < 50:
				k, v := key(), fmt.Appendf(nil, "v%d-%d", round, op)
				if rng.IntN(10) == 0 {
					v = nil
				}
				sameErr(t, "put", lb.Put(k, v), fb.Put(k, v))
			case r < 65:
				k := key()
				sameErr(t, "delete", lb.Delete(k), fb.Delete(k))
			case r < 70:
				s1, err1 := lb.NextSequence()
				s2, err2 := fb.NextSequence()
				sameErr(t, "next sequence", err1, err2)
				if s1 != s2 {
					t.Fatalf("next sequence %d, file %d", s1, s2)
				}
			case r < 75:
				// Delete the keys up to a point, as the prunes do.
				k := key()
				below := func(have []byte) bool { return bytes.Compare(have, k) < 0 }
				sameErr(t, "delete keys", deleteKeys(lb, below, "test"), deleteKeys(fb, below, "test"))
			case r < 82:
				// The flusher runs while the state machine's batch is open.
				if err := st.Flush(); err != nil {
					t.Fatal(err)
				}
			case r < 85:
				if err := lb.Put([]byte{}, []byte("x")); err == nil {
					t.Fatal("an empty key was accepted")
				}
				if err := lb.Put(make([]byte, bolt.MaxKeySize+1), []byte("x")); err == nil {
					t.Fatal("an oversized key was accepted")
				}
			default:
				compareBucket(t, fmt.Sprintf("round %d op %d", round, op), lb, fb, rng)
			}
		}
		for _, name := range buckets {
			lb, fb := lt.Bucket(name), ft.Bucket(name)
			if (lb == nil) != (fb == nil) {
				t.Fatalf("round %d: bucket %s exists through layers: %v, in the file: %v", round, name, lb != nil, fb != nil)
			}
			if lb != nil {
				compareBucket(t, fmt.Sprintf("round %d end", round), lb, fb, rng)
			}
		}
		if err := (&Tx{tx: lt}).SetApplied(uint64(round+1), 1); err != nil {
			t.Fatal(err)
		}
		if err := (&Tx{tx: ft}).SetApplied(uint64(round+1), 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := rtx.Commit(); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) == 0 {
			if err := st.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		h1, err1 := st.Hash()
		h2, err2 := ref.Hash()
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Fatalf("round %d: hash through layers %v (%v), file %v (%v)", round, h1, err1, h2, err2)
		}
		// A reader sees the committed layers.
		err = st.View(func(tx *Tx) error {
			return ref.View(func(rtx *Tx) error {
				for _, name := range buckets {
					lb, fb := tx.tx.Bucket(name), rtx.tx.Bucket(name)
					if (lb == nil) != (fb == nil) {
						return fmt.Errorf("reader: bucket %s exists through layers: %v, in the file: %v", name, lb != nil, fb != nil)
					}
					if lb != nil {
						compareBucketCounts(t, fmt.Sprintf("round %d reader", round), lb, fb, rng, true)
					}
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, size := st.Unflushed(); n != 0 || size != 0 {
		t.Fatalf("after a flush %d layers (%d bytes) remain", n, size)
	}
	h1, _ := st.Hash()
	h2, _ := ref.Hash()
	if h1 != h2 {
		t.Fatalf("hash after the last flush %v, file %v", h1, h2)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ref.Close(); err != nil {
		t.Fatal(err)
	}
}

func sameErr(t *testing.T, what string, layered, file error) {
	t.Helper()
	if (layered == nil) != (file == nil) {
		t.Fatalf("%s: through layers %v, file %v", what, layered, file)
	}
}

// compareBucket checks that every way of reading a bucket gives the same through the layers
// as in the file.
func compareBucket(t *testing.T, where string, lb, fb *kvBucket, rng *rand.Rand) {
	compareBucketCounts(t, where, lb, fb, rng, false)
}

// compareBucketCounts is compareBucket, comparing the key counts too if counts is set (a
// bbolt write transaction counts only what it found committed).
func compareBucketCounts(t *testing.T, where string, lb, fb *kvBucket, rng *rand.Rand, counts bool) {
	t.Helper()
	walk := func(c *kvCursor, first func() ([]byte, []byte), step func() ([]byte, []byte)) []string {
		var out []string
		for k, v := first(); k != nil; k, v = step() {
			out = append(out, fmt.Sprintf("%s=%s", k, v))
		}
		return out
	}
	lc, fc := lb.Cursor(), fb.Cursor()
	if a, b := walk(lc, lc.First, lc.Next), walk(fc, fc.First, fc.Next); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("%s: forward\n layers %v\n file   %v", where, a, b)
	}
	if a, b := walk(lc, lc.Last, lc.Prev), walk(fc, fc.Last, fc.Prev); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("%s: backward\n layers %v\n file   %v", where, a, b)
	}
	for range 4 {
		seek := fmt.Appendf(nil, "k%02d", rng.IntN(42))
		k1, v1 := lc.Seek(seek)
		k2, v2 := fc.Seek(seek)
		for i := 0; ; i++ {
			if !bytes.Equal(k1, k2) || !bytes.Equal(v1, v2) {
				t.Fatalf("%s: after seek %s, step %d: layers %q=%q, file %q=%q", where, seek, i, k1, v1, k2, v2)
			}
			if k1 == nil || i == 5 {
				break
			}
			if i%3 == 2 {
				k1, v1 = lc.Prev()
				k2, v2 = fc.Prev()
			} else {
				k1, v1 = lc.Next()
				k2, v2 = fc.Next()
			}
		}
		// (bbolt gives an empty value back as nil inside the transaction that put it and
		// as an empty slice after: only the bytes are compared.)
		if g1, g2 := lb.Get(seek), fb.Get(seek); !bytes.Equal(g1, g2) {
			t.Fatalf("%s: get %s: layers %q, file %q", where, seek, g1, g2)
		}
	}
	if a, b := lb.Stats().KeyN, fb.Stats().KeyN; counts && a != b {
		t.Fatalf("%s: %d keys through layers, %d in the file", where, a, b)
	}
	if a, b := lb.Sequence(), fb.Sequence(); a != b {
		t.Fatalf("%s: sequence %d through layers, %d in the file", where, a, b)
	}
}

// TestReadersSeeWholeBatchesWhileFlushing: readers running beside a writer that commits a
// batch after another and a flusher that writes them to the file each see exactly one
// committed batch, whole: the counter it wrote and the window of keys that goes with it.
func TestReadersSeeWholeBatchesWhileFlushing(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const batches, window = 3000, 20
	done := make(chan struct{})
	errs := make(chan error, 8)
	go func() { // the flusher
		for {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			if err := st.Flush(); err != nil {
				errs <- err
				return
			}
		}
	}()
	for range 3 { // readers
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				err := st.View(func(tx *Tx) error {
					b := tx.tx.Bucket(bucketNodes)
					n := int(decodeUint(b.Get([]byte("count"))))
					if index, _ := tx.Applied(); index != uint64(n) {
						return fmt.Errorf("applied index %d with counter %d", index, n)
					}
					var keys []string
					c := b.Cursor()
					for k, _ := c.Seek([]byte("n")); k != nil && k[0] == 'n'; k, _ = c.Next() {
						keys = append(keys, string(k))
					}
					var want []string
					for i := max(1, n-window+1); i <= n; i++ {
						want = append(want, fmt.Sprintf("n%04d", i))
					}
					if fmt.Sprint(keys) != fmt.Sprint(want) {
						return fmt.Errorf("counter %d with keys %v", n, keys)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= batches; i++ {
		b, err := st.Begin()
		if err != nil {
			t.Fatal(err)
		}
		nodes := b.tx.Bucket(bucketNodes)
		if err := nodes.Put([]byte("count"), encodeUint(uint64(i))); err != nil {
			t.Fatal(err)
		}
		if err := nodes.Put(fmt.Appendf(nil, "n%04d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if i > window {
			if err := nodes.Delete(fmt.Appendf(nil, "n%04d", i-window)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Tx().SetApplied(uint64(i), 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestFlushBoundsItsTransactions flushes layers holding more keys than MaxFlushKeys: they
// reach the file in several bbolt transactions of whole layers, oldest first (a layer larger
// than the bound alone), and the file ends with every key and the last applied index.
func TestFlushBoundsItsTransactions(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Layers of 0.4, 0.4, 0.4, 1.5 and 0.3 times the bound: the first two share a
	// transaction, the third goes alone (with the fourth it would exceed), the fourth alone,
	// the fifth alone. Each layer also writes its applied index and counter.
	sizes := []int{MaxFlushKeys * 2 / 5, MaxFlushKeys * 2 / 5, MaxFlushKeys * 2 / 5, MaxFlushKeys * 3 / 2, MaxFlushKeys * 3 / 10}
	want := 0
	for i, n := range sizes {
		b, err := st.Begin()
		if err != nil {
			t.Fatal(err)
		}
		nodes := b.tx.Bucket(bucketNodes)
		for k := range n {
			if err := nodes.Put(fmt.Appendf(nil, "k%d-%06d", i, k), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		want += n
		if err := b.Tx().SetApplied(uint64(i+1), 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	txid := func() (id int) {
		st.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	before := txid()
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := txid() - before; got != 4 {
		t.Errorf("flush of %v keys ran %d transactions, want 4", sizes, got)
	}
	if layers, _ := st.Unflushed(); layers != 0 {
		t.Errorf("%d layers left after the flush", layers)
	}
	if got := st.FlushedIndex(); got != uint64(len(sizes)) {
		t.Errorf("flushed index %d, want %d", got, len(sizes))
	}
	err = st.ViewFile(func(tx *Tx) error {
		if index, _ := tx.Applied(); index != uint64(len(sizes)) {
			return fmt.Errorf("file applied index %d, want %d", index, len(sizes))
		}
		got := 0
		c := tx.tx.Bucket(bucketNodes).Cursor()
		for k, _ := c.Seek([]byte("k")); k != nil && k[0] == 'k'; k, _ = c.Next() {
			got++
		}
		if got != want {
			return fmt.Errorf("file holds %d keys, want %d", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
