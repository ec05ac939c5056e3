package mpi

import (
	"os"
	"sort"
	"testing"
)

func TestZZBlockSizes(t *testing.T) {
	path := os.Getenv("BLOCKS")
	if path == "" {
		t.Skip()
	}
	rows := zzRead(path)
	counts := map[string]int{}
	for _, r := range rows {
		n := Normalize(r.Record)
		for _, k := range BlockingKeys(&n) {
			counts[k.Key]++
		}
	}
	type st struct{ blocks, over50, over200, max, sum int }
	per := map[string]*st{}
	for k, c := range counts {
		p := passOf(k)
		if per[p] == nil {
			per[p] = &st{}
		}
		s := per[p]
		s.blocks++
		s.sum += c
		if c > 50 {
			s.over50++
		}
		if c > 200 {
			s.over200++
		}
		s.max = max(s.max, c)
	}
	var ps []string
	for p := range per {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	for _, p := range ps {
		s := per[p]
		t.Logf("%-4s blocks %7d entries %7d >50 %5d >200 %4d max %5d", p, s.blocks, s.sum, s.over50, s.over200, s.max)
	}
}
