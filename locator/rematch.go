package locator

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/fsm"
	"github.com/rls-hie/rls/raft/state"
)

// RematchRequest is the body of POST /v1/mpi/rematch.
type RematchRequest struct {
	// DryRun reports what a rematch would change, on a private copy of the state.
	DryRun bool `json:"dry_run,omitempty"`
	// Batch is how many records one replicated command re-decides (default 200).
	Batch int `json:"batch,omitempty"`
}

// RematchChange is one record whose person a rematch changed, or that it sent to review.
type RematchChange struct {
	Record  string      `json:"record"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	Outcome mpi.Outcome `json:"outcome"`
	Review  string      `json:"review,omitempty"`
}

// RematchReport is the answer of POST /v1/mpi/rematch.
type RematchReport struct {
	DryRun        bool   `json:"dry_run"`
	ConfigVersion uint64 `json:"config_version"`
	Records       int    `json:"records"`
	Unchanged     int    `json:"unchanged"`
	// Linked counts records that joined another existing person (a link made);
	// SplitOff those that left for a person of their own (a link broken).
	Linked   int `json:"linked"`
	SplitOff int `json:"split_off"`
	// Reviews counts the review items queued, by reason.
	Reviews map[string]int `json:"reviews"`
	// Kept counts records a steward put where they are (never re-decided); Gone those
	// deleted while the rematch ran; Refused those the FSM refused.
	Kept    int             `json:"kept"`
	Gone    int             `json:"gone"`
	Refused int             `json:"refused"`
	Changes []RematchChange `json:"changes"`
	Seconds float64         `json:"seconds"`
	// Index is the Raft index of the last batch applied (0 for a dry run).
	Index uint64 `json:"index,omitempty"`
}

const (
	defaultRematchBatch = 200
	maxRematchBatch     = 2000
)

// rematch is POST /v1/mpi/rematch: every registered record's link is decided again under
// the current match configuration, in replicated batches of records in key order, each an
// MPIRematch command that keeps every steward decision (see fsm.applyMPIRematch). With
// dry_run the same commands are applied to a private copy of the leader's state and
// nothing is replicated. It answers with what changed.
func (s *Server) rematch(w http.ResponseWriter, r *http.Request, rq *request) error {
	req := RematchRequest{Batch: defaultRematchBatch}
	if len(rq.body) > 0 {
		if err := decodeJSON(rq.body, &req); err != nil {
			return err
		}
	}
	if req.Batch == 0 {
		req.Batch = defaultRematchBatch
	}
	if req.Batch < 1 || req.Batch > maxRematchBatch {
		return fhir.Invalid("batch", "batch must be between 1 and %d", maxRematchBatch)
	}
	start := time.Now()
	var keys []mpi.RecordKey
	rep := RematchReport{DryRun: req.DryRun, Reviews: map[string]int{}, Changes: []RematchChange{}}
	if err := s.node.State().View(func(tx *state.Tx) error {
		keys = tx.RecordKeys()
		cfg, ok, err := tx.MPI().Config()
		rep.ConfigVersion = mpi.EffectiveConfig(cfg, ok).Version
		return err
	}); err != nil {
		return err
	}
	var batches []command.Payload
	for i := 0; i < len(keys); i += req.Batch {
		part := keys[i:min(i+req.Batch, len(keys))]
		c := &command.MPIRematch{DropLegacyBlocks: i == 0}
		for _, k := range part {
			euid, err := newEUID()
			if err != nil {
				return err
			}
			c.Records, c.NewEUIDs = append(c.Records, string(k)), append(c.NewEUIDs, euid)
		}
		batches = append(batches, c)
	}
	if req.DryRun {
		results, err := s.node.DryRun(r.Context(), command.TypeMPIRematch, header(rq), batches)
		if err != nil {
			return err
		}
		for _, res := range results {
			if err := rep.add(res.Value, res.Err); err != nil {
				return err
			}
		}
	} else {
		for _, b := range batches {
			a, err := s.node.Apply(r.Context(), command.TypeMPIRematch, header(rq), b)
			if err := rep.add(a.Value, err); err != nil {
				return fmt.Errorf("rematch stopped after %d of %d records (index %d): %w", rep.Records, len(keys), rep.Index, err)
			}
			rep.Index = a.Index
		}
		w.Header().Set(HeaderRaftIndex, strconv.FormatUint(rep.Index, 10))
	}
	rep.Seconds = time.Since(start).Seconds()
	s.logger.Info("rematch", "dry_run", req.DryRun, "records", rep.Records, "linked", rep.Linked, "split_off", rep.SplitOff,
		"unchanged", rep.Unchanged, "kept", rep.Kept, "by", rq.principal.ID)
	return writeJSON(w, http.StatusOK, rep)
}

// add counts one batch's outcomes into the report.
func (rep *RematchReport) add(value any, err error) error {
	if err != nil {
		return err
	}
	outs, ok := value.([]fsm.Rematched)
	if !ok {
		return fmt.Errorf("unexpected rematch result %T", value)
	}
	for _, o := range outs {
		rep.Records++
		switch {
		case o.Err != nil:
			rep.Refused++
			continue
		case o.Gone:
			rep.Gone++
			continue
		case o.Kept:
			rep.Kept++
			continue
		case o.To == o.From:
			rep.Unchanged++
		case o.Outcome == mpi.OutcomeLinked:
			rep.Linked++
		default:
			rep.SplitOff++
		}
		if o.Review != "" {
			rep.Reviews[o.Review]++
		}
		if o.To != o.From || o.Review != "" {
			rep.Changes = append(rep.Changes, RematchChange{Record: o.Record, From: o.From, To: o.To, Outcome: o.Outcome, Review: o.Review})
		}
	}
	return nil
}

