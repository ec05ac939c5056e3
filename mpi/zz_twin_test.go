package mpi

import (
	"fmt"
	"os"
	"sort"
	"testing"

	"encoding/csv"
)

type zzRow struct {
	Record Record
	Label  string
}

func zzRead(path string) []zzRow {
	fh, _ := os.Open(path)
	defer fh.Close()
	all, _ := csv.NewReader(fh).ReadAll()
	var out []zzRow
	for _, r := range all[1:] {
		g := []string{r[4]}
		if r[5] != "" {
			g = append(g, r[5])
		}
		rec := Record{System: r[2], Value: r[3], Given: g, Family: r[6], BirthDate: r[7], Sex: r[8], AddressLines: []string{r[9]}, City: r[10], State: r[11], PostalCode: r[12], Phones: []string{r[13]}, Email: r[14], SSN: r[15]}
		out = append(out, zzRow{rec, r[1]})
	}
	return out
}

func TestZZTwinTable(t *testing.T) {
	path := os.Getenv("TWIN")
	if path == "" {
		t.Skip()
	}
	rows := zzRead(path)
	norms := make([]Normalized, len(rows))
	for i := range rows {
		norms[i] = Normalize(rows[i].Record)
	}
	// pairs sharing address or phone: use blocks np/ph
	idx := map[string][]int{}
	for i := range norms {
		for _, a := range norms[i].Addresses {
			idx["a"+a.Full+norms[i].Postal] = append(idx["a"+a.Full+norms[i].Postal], i)
		}
		for _, p := range norms[i].Phones {
			idx["p"+p] = append(idx["p"+p], i)
		}
	}
	seen := map[[2]int]bool{}
	tab := map[string]int{}
	base := func(l string) string {
		if len(l) > 0 && (l[len(l)-1] == 't' || l[len(l)-1] == 'j') {
			return l[:len(l)-1]
		}
		return l
	}
	for _, m := range idx {
		for x := 0; x < len(m); x++ {
			for y := x + 1; y < len(m); y++ {
				i, j := m[x], m[y]
				if i > j {
					i, j = j, i
				}
				if seen[[2]int{i, j}] {
					continue
				}
				seen[[2]int{i, j}] = true
				pl := comparePair(defaultCompiled, &norms[i], &norms[j])
				bd := pl.level[fBirth]
				if os.Getenv("GEN") != "" {
					g := pl.level[fGiven]
					dy := norms[i].BirthYear - norms[j].BirthYear
					if dy < 0 {
						dy = -dy
					}
					if !(g == givenExact || g == givenNickname || g == givenFuzzyHigh) || dy < 10 {
						continue
					}
					ed := "far"
					if withinOneEdit(fmt.Sprint(norms[i].BirthYear), fmt.Sprint(norms[j].BirthYear)) {
						ed = "1edit"
					}
					li, lj := rows[i].Label, rows[j].Label
					kind := "other"
					if li == lj {
						kind = "SAME"
					} else if base(li) == base(lj) {
						kind = "twin/jr"
					}
					tab[fmt.Sprintf("%-10s %-5s dy>=13:%v bd=%s %s", levelName2(fGiven, g), ed, dy >= 13, levelName2(fBirth, bd), kind)]++
					continue
				}
				if !(bd == birthExact || bd == birthTransposed || bd == birthTypo) {
					continue
				}
				li, lj := rows[i].Label, rows[j].Label
				kind := "other"
				if li == lj {
					kind = "SAME"
				} else if base(li) == base(lj) {
					kind = "twin/jr"
				}
				dist := editDistance(norms[i].Given, norms[j].Given)
				if dist > 3 {
					dist = 3
				}
				sx := "sex=" + levelName2(fSex, pl.level[fSex])
				key := fmt.Sprintf("%-10s d%d %-14s %s", levelName2(fGiven, pl.level[fGiven]), dist, sx, kind)
				tab[key]++
			}
		}
	}
	var keys []string
	for k := range tab {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%s %5d", k, tab[k])
	}
}

func levelName2(field int, l int8) string {
	if l == missing {
		return "missing"
	}
	return levelNames[field][l]
}

func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := 0; j <= len(b); j++ {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+c)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func csvAll(fh *os.File) ([][]string, error) {
	r := csv.NewReader(fh)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	return r.ReadAll()
}
