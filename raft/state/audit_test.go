package state

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rls-hie/rls/raft/model"
)

// auditStore returns a store holding n audit entries (ids e1…en).
func auditStore(t *testing.T, n int) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		e := model.AuditEntry{ID: fmt.Sprintf("e%d", i), Action: "locate", Status: 200, Participant: "hosp-b", EUIDs: []string{"E1"}, Node: "n1"}
		if _, ok, err := b.Tx().AppendAudit(e, at.Add(time.Duration(i)*time.Minute)); err != nil || !ok {
			t.Fatalf("append %d: %v %v", i, ok, err)
		}
	}
	// A batch retried after a lost answer appends nothing.
	if _, ok, err := b.Tx().AppendAudit(model.AuditEntry{ID: "e2", Action: "locate"}, at); err != nil || ok {
		t.Fatalf("a duplicate id was appended: %v %v", ok, err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// tamper rewrites the state file directly, as someone with access to the disk could.
func tamper(t *testing.T, s *Store, path string, fn func(audit, meta *bolt.Bucket) error) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketAudit), tx.Bucket(bucketAuditMeta)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rewrite(audit *bolt.Bucket, seq uint64, change func(*model.AuditEntry)) error {
	var e model.AuditEntry
	if _, err := e.UnmarshalMsg(audit.Get(seqKey(seq))); err != nil {
		return err
	}
	change(&e)
	v, err := e.MarshalMsg(nil)
	if err != nil {
		return err
	}
	return audit.Put(seqKey(seq), v)
}

func TestAuditChainDetectsTampering(t *testing.T) {
	cases := []struct {
		name     string
		fn       func(audit, meta *bolt.Bucket) error
		brokenAt uint64
		problem  string
	}{
		{"a disclosure erased from an entry", func(a, _ *bolt.Bucket) error {
			return rewrite(a, 3, func(e *model.AuditEntry) { e.EUIDs = nil })
		}, 3, "altered"},
		{"an entry altered and its hash recomputed", func(a, _ *bolt.Bucket) error {
			return rewrite(a, 2, func(e *model.AuditEntry) {
				e.Status = 403
				e.Hash, _ = AuditHash(*e)
			})
		}, 3, "previous hash"},
		{"an entry removed from the middle", func(a, _ *bolt.Bucket) error { return a.Delete(seqKey(4)) }, 4, "missing"},
		{"the last entry removed", func(a, _ *bolt.Bucket) error { return a.Delete(seqKey(5)) }, 5, "removed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, path := auditStore(t, 5)
			v, err := s.VerifyAudit()
			if err != nil || !v.OK || v.Entries != 5 || v.HeadSeq != 5 {
				t.Fatalf("untouched log does not verify: %+v %v", v, err)
			}
			s = tamper(t, s, path, c.fn)
			v, err = s.VerifyAudit()
			if err != nil || v.OK || v.BrokenAt != c.brokenAt || !strings.Contains(v.Problem, c.problem) {
				t.Fatalf("tampered log: %+v %v; want broken at %d (%s)", v, err, c.brokenAt, c.problem)
			}
		})
	}
}

func TestSearchAuditIndexes(t *testing.T) {
	s, _ := auditStore(t, 5)
	defer s.Close()
	s.View(func(tx *Tx) error {
		at := time.Date(2026, 11, 24, 10, 2, 0, 0, time.UTC)
		got, total, err := tx.SearchAudit(AuditQuery{EUID: "E1", From: at, To: at.Add(2 * time.Minute)})
		if err != nil || total != 2 || got[0].Seq != 2 || got[1].Seq != 3 {
			t.Errorf("E1 between 10:02 and 10:04: %d %+v %v", total, got, err)
		}
		if _, total, _ := tx.SearchAudit(AuditQuery{Participant: "hosp-a"}); total != 0 {
			t.Errorf("hosp-a: %d", total)
		}
		if got, total, _ := tx.SearchAudit(AuditQuery{Participant: "hosp-b", Offset: 3, Limit: 1}); total != 5 || len(got) != 1 || got[0].Seq != 4 {
			t.Errorf("paged: %d %+v", total, got)
		}
		return nil
	})
}
