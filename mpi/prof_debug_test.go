//go:build debug

package mpi

import (
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"
)

func TestProfileMatch(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("N"))
	gen := newPersonGenerator(1)
	store := NewMemStore()
	m := NewMatcher()
	for i := 0; i < n; i++ {
		if _, err := m.Register(store, gen.person(i), "P"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	qs := make([]Record, 5000)
	rng := newTestRand(3)
	for i := range qs {
		qs[i] = gen.variant(rng, gen.person(rng.IntN(n)), "Q")
	}
	f, _ := os.Create(os.Getenv("PROF"))
	pprof.StartCPUProfile(f)
	t0 := time.Now()
	for r := 0; r < 4; r++ {
		for _, q := range qs {
			m.Match(store, q, 5)
		}
	}
	t.Logf("%v per match", time.Since(t0)/20000)
	t0 = time.Now()
	for i := 0; i < 20000; i++ {
		r := gen.person(n + i)
		m.Register(store, r, "N"+strconv.Itoa(i))
	}
	t.Logf("%v per register", time.Since(t0)/20000)
	pprof.StopCPUProfile()
}
