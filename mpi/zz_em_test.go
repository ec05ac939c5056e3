package mpi

import (
	"os"
	"testing"
)

func TestZZEM(t *testing.T) {
	path := os.Getenv("EMFILE")
	if path == "" {
		t.Skip()
	}
	rows := zzReadFEBRL(path)
	var recs []Record
	for _, r := range rows {
		r.SSN = ""
		recs = append(recs, r)
	}
	base := DefaultConfig()
	cc, _ := compile(&base)
	norms := make([]Normalized, len(recs))
	for i := range recs {
		norms[i] = Normalize(recs[i])
	}
	passes, vecs, _ := blockedPairs(cc, norms, base.MaxBlockSize, 5_000_000)
	opts := TrainOptions{}.withDefaults()
	rv := randomPairs(cc, norms, opts)
	var m0, u0 [numFields][]float64
	for f := 0; f < numFields; f++ {
		for _, l := range base.Fields[f].Levels {
			m0[f] = append(m0[f], l.M)
			u0[f] = append(u0[f], l.U)
		}
	}
	w := make([]float64, len(rv))
	for i := range w {
		w[i] = 1
	}
	u, _ := levelShares(rv, w, u0, nil)
	for pi := range passes {
		p := &passes[pi]
		_, lambda, _, it, conv := em(vecs, p, m0, u, m0, opts)
		t.Logf("pass %s pairs %d lambda %.3f iterations %d converged %v", p.name, len(p.pairs), lambda, it, conv)
	}
}

func zzReadFEBRL(path string) []Record {
	fh, _ := os.Open(path)
	defer fh.Close()
	all, _ := csvAll(fh)
	var out []Record
	for _, r := range all[1:] {
		if len(r) < 11 {
			continue
		}
		// rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id
		out = append(out, Record{System: "f", Value: r[0], Given: []string{r[1]}, Family: r[2], AddressLines: []string{r[3] + " " + r[4], r[5]}, City: r[6], PostalCode: r[7], State: r[8], BirthDate: r[9], SSN: r[10]})
	}
	return out
}
