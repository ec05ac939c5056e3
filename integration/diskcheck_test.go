package integration

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	// The analysis components rls's document mapping names: Bleve registers them when
	// their packages load, and cannot read the stored mapping (nor open the index)
	// without them.
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	_ "github.com/blevesearch/bleve/v2/analysis/char/asciifolding"
	_ "github.com/blevesearch/bleve/v2/analysis/lang/en"
	_ "github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	_ "github.com/blevesearch/bleve/v2/analysis/tokenizer/single"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// DiskState is what a stopped node's data dir holds: the applied entry recorded in its
// state file and the range of its Raft log.
type DiskState struct {
	AppliedIndex, AppliedTerm   uint64
	FirstLogIndex, LastLogIndex uint64
	// LogTermAtApplied is the term of the log entry at AppliedIndex (0 if compacted away).
	LogTermAtApplied uint64
}

// inspectDataDir opens a stopped node's state file and Raft log read-only, runs bbolt's
// consistency check on the state file and reports what both hold. It reads the files'
// layout directly (the meta bucket's applied_index and applied_term, raft-boltdb's log) so
// that it checks what is on disk, not what the node's code says about it.
func inspectDataDir(dir string) (DiskState, error) {
	var d DiskState
	state, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return d, fmt.Errorf("open state file: %w", err)
	}
	defer state.Close()
	err = state.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt consistency check of the state file: %w", errors.Join(errs...))
		}
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return errors.New("state file has no meta bucket")
		}
		d.AppliedIndex = bigEndian(meta.Get([]byte("applied_index")))
		d.AppliedTerm = bigEndian(meta.Get([]byte("applied_term")))
		return nil
	})
	if err != nil {
		return d, err
	}

	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: &bolt.Options{ReadOnly: true, Timeout: time.Second}})
	if err != nil {
		return d, fmt.Errorf("open raft log: %w", err)
	}
	defer logs.Close()
	if d.FirstLogIndex, err = logs.FirstIndex(); err != nil {
		return d, fmt.Errorf("raft log first index: %w", err)
	}
	if d.LastLogIndex, err = logs.LastIndex(); err != nil {
		return d, fmt.Errorf("raft log last index: %w", err)
	}
	if d.AppliedIndex >= d.FirstLogIndex && d.AppliedIndex <= d.LastLogIndex && d.AppliedIndex > 0 {
		var entry hraft.Log
		if err := logs.GetLog(d.AppliedIndex, &entry); err != nil {
			return d, fmt.Errorf("raft log entry %d: %w", d.AppliedIndex, err)
		}
		d.LogTermAtApplied = entry.Term
	}
	return d, nil
}

func bigEndian(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// diskDocument is a document as a stopped node's state file holds it.
type diskDocument struct {
	Master  string // master identifier value
	Patient string // source record key, system|value
	Index   uint64 // Raft index of the entry that last changed it
}

// inspectDocuments reads the documents bucket of a stopped node's state file (id →
// the stored document as JSON), read-only.
func inspectDocuments(dir string) (map[string]diskDocument, error) {
	state, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state file: %w", err)
	}
	defer state.Close()
	out := map[string]diskDocument{}
	err = state.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("documents"))
		if b == nil {
			return nil // no document ever registered
		}
		return b.ForEach(func(k, v []byte) error {
			var d struct {
				Document struct {
					ID               string `json:"id"`
					MasterIdentifier struct {
						Value string `json:"value"`
					} `json:"master_identifier"`
					PatientRecord string `json:"patient_record"`
				} `json:"document"`
				Index uint64 `json:"index"`
			}
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("document %s: %w", k, err)
			}
			if d.Document.ID != string(k) {
				return fmt.Errorf("document stored under %s says it is %s", k, d.Document.ID)
			}
			out[string(k)] = diskDocument{Master: d.Document.MasterIdentifier.Value, Patient: d.Document.PatientRecord, Index: d.Index}
			return nil
		})
	})
	return out, err
}

// SearchDisk is what a stopped node's Bleve document index holds: the generation CURRENT
// names, the Raft index its last batch recorded and the ids of its documents. Unusable
// says why the node will have to rebuild it (a generation that will not open, a build that
// never finished); the other fields are then empty.
type SearchDisk struct {
	Generation string
	Applied    uint64
	IDs        map[string]bool
	Unusable   string
}

// inspectSearchIndex opens a stopped node's document index read-only with Bleve itself,
// as rls lays it out (search/: a CURRENT file naming the live gen-N directory; the applied
// index and mapping version as internal values the last batch wrote), and lists what it
// holds. An index the node would refuse is reported as Unusable, not as an error: the rule
// is that the node then rebuilds it by itself.
func inspectSearchIndex(dir string) (sd SearchDisk, err error) {
	root := filepath.Join(dir, "search")
	cur, err := os.ReadFile(filepath.Join(root, "CURRENT"))
	if errors.Is(err, os.ErrNotExist) {
		return SearchDisk{Unusable: "no CURRENT file"}, nil
	}
	if err != nil {
		return sd, err
	}
	sd.Generation = strings.TrimSpace(string(cur))
	defer func() {
		// Bleve may panic on a damaged segment; rls treats that as unusable, so do we.
		if r := recover(); r != nil {
			sd, err = SearchDisk{Generation: sd.Generation, Unusable: fmt.Sprintf("panic while reading: %v", r)}, nil
		}
	}()
	idx, oerr := bleve.OpenUsing(filepath.Join(root, sd.Generation), map[string]any{"read_only": true, "bolt_timeout": "1s"})
	if oerr != nil {
		return SearchDisk{Generation: sd.Generation, Unusable: "open: " + oerr.Error()}, nil
	}
	defer idx.Close()
	version, err := idx.GetInternal([]byte("rls.mapping_version"))
	if err != nil {
		return sd, fmt.Errorf("read mapping version: %w", err)
	}
	if version == nil {
		return SearchDisk{Generation: sd.Generation, Unusable: "no mapping version (a build that never finished)"}, nil
	}
	applied, err := idx.GetInternal([]byte("rls.applied_index"))
	if err != nil {
		return sd, fmt.Errorf("read applied index: %w", err)
	}
	sd.Applied = bigEndian(applied)
	n, err := idx.DocCount()
	if err != nil {
		return sd, fmt.Errorf("count documents: %w", err)
	}
	req := bleve.NewSearchRequestOptions(bleve.NewMatchAllQuery(), int(n)+1, 0, false)
	res, err := idx.Search(req)
	if err != nil {
		return sd, fmt.Errorf("list documents: %w", err)
	}
	sd.IDs = map[string]bool{}
	for _, h := range res.Hits {
		sd.IDs[h.ID] = true
	}
	return sd, nil
}

// checkSearchDisk compares a stopped node's document index with its state file: the
// index may lag the state (it is updated after each commit) but never lead it, and it
// holds exactly the documents the state had changed by the entry the index recorded
// (the workload never replaces a document, so each has one version). It returns a
// description of each difference, the first ten of them and a count of the rest.
func checkSearchDisk(sd SearchDisk, docs map[string]diskDocument, stateApplied uint64) []string {
	if sd.Unusable != "" {
		return nil
	}
	var problems []string
	if sd.Applied > stateApplied {
		problems = append(problems, fmt.Sprintf("the search index records entry %d, the state only %d", sd.Applied, stateApplied))
	}
	for id, d := range docs {
		if d.Index <= sd.Applied && !sd.IDs[id] {
			problems = append(problems, fmt.Sprintf("document %s (%s, entry %d) is in the state but not in the index at %d", id, d.Master, d.Index, sd.Applied))
		}
		if d.Index > sd.Applied && sd.IDs[id] {
			problems = append(problems, fmt.Sprintf("document %s (%s) of entry %d is in the index that records only %d", id, d.Master, d.Index, sd.Applied))
		}
	}
	for id := range sd.IDs {
		if _, ok := docs[id]; !ok {
			problems = append(problems, fmt.Sprintf("document %s is in the index but not in the state", id))
		}
	}
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("and %d more differences", len(problems)-10))
	}
	return problems
}
