package locator

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/state"
)

// RematchRequest is the body of POST /v1/mpi/rematch.
type RematchRequest struct {
	// DryRun reports what a rematch would change, on a private copy of the leader's
	// state (raft.Sandbox).
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
	// Passes is how many passes the rematch took: the first over every record, each
	// further one over the records the one before moved.
	Passes  int     `json:"passes"`
	Seconds float64 `json:"seconds"`
	// Index is the Raft index of the last batch applied (0 for a dry run).
	Index uint64 `json:"index,omitempty"`
}

const (
	defaultRematchBatch = 200
	maxRematchBatch     = 2000
)

// rematch is POST /v1/mpi/rematch: every registered record's link is decided again under
// the current match configuration, in replicated batches of records in key order, each an
// MPIRematch command that keeps every steward decision (see raft/fsm, applyMPIRematch). With
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
	if err := s.node.CatchUp(r.Context()); err != nil {
		return err
	}
	var keys []mpi.RecordKey
	rep := RematchReport{DryRun: req.DryRun, Reviews: map[string]int{}, Changes: []RematchChange{}}
	if err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		if keys, err = tx.RecordKeys(); err != nil {
			return err
		}
		cfg, ok, err := tx.MPI().Config()
		rep.ConfigVersion = mpi.EffectiveConfig(cfg, ok).Version
		return err
	}); err != nil {
		return err
	}
	// A person split over several persons under the old configuration gathers again only
	// as its records are decided one by one: a record decided early may join one part
	// before the others have met. So the records whose person changed are decided again,
	// pass after pass, until a pass changes none (at most maxRematchPasses).
	var target interface {
		Apply(context.Context, command.Type, command.Header, command.Payload) (raft.Applied, error)
	} = s.node
	if req.DryRun {
		sb, err := s.node.Sandbox()
		if err != nil {
			return err
		}
		defer sb.Close()
		target = sb
	}
	apply := func(ctx context.Context, batches []command.Payload) ([][]raft.Rematched, error) {
		var out [][]raft.Rematched
		for _, b := range batches {
			a, err := target.Apply(ctx, command.TypeMPIRematch, header(rq), b)
			if err != nil {
				return out, fmt.Errorf("rematch stopped (index %d): %w", rep.Index, err)
			}
			if !req.DryRun {
				rep.Index = a.Index
			}
			outs, ok := a.Value.([]raft.Rematched)
			if !ok {
				return out, fmt.Errorf("unexpected rematch result %T", a.Value)
			}
			out = append(out, outs)
		}
		return out, nil
	}
	origin := map[string]string{}
	final := map[string]rematchOutcome{}
	pending := keys
	for pass := 1; pass <= maxRematchPasses && len(pending) > 0; pass++ {
		batches, err := rematchBatches(pending, req.Batch, pass == 1)
		if err != nil {
			return err
		}
		results, err := apply(r.Context(), batches)
		if err != nil {
			return fmt.Errorf("pass %d: %w", pass, err)
		}
		var moved []mpi.RecordKey
		for _, outs := range results {
			for _, o := range outs {
				if _, seen := origin[o.Record]; !seen {
					origin[o.Record] = o.From
				}
				prev, seen := final[o.Record]
				o.From = origin[o.Record]
				if seen && o.Review == "" {
					o.Review = prev.Review
				}
				final[o.Record] = rematchOutcome{o}
				if o.To != prev.To || !seen && o.To != o.From {
					moved = append(moved, mpi.RecordKey(o.Record))
				}
			}
		}
		rep.Passes = pass
		pending = moved
	}
	for _, k := range keys {
		if o, ok := final[string(k)]; ok {
			rep.add(o.Rematched)
		}
	}
	if !req.DryRun {
		w.Header().Set(HeaderRaftIndex, strconv.FormatUint(rep.Index, 10))
	}
	rep.Seconds = time.Since(start).Seconds()
	s.logger.Info("rematch", "dry_run", req.DryRun, "records", rep.Records, "linked", rep.Linked, "split_off", rep.SplitOff,
		"unchanged", rep.Unchanged, "kept", rep.Kept, "by", rq.principal.ID)
	return writeJSON(w, http.StatusOK, rep)
}

// maxRematchPasses bounds how often a rematch decides the records that moved again.
const maxRematchPasses = 4

// rematchOutcome is a record's outcome over all passes (From is where it was before the
// first).
type rematchOutcome struct{ raft.Rematched }

// rematchBatches cuts keys into MPIRematch commands of batch records, each record with a
// new EUID drawn for it; the first command of a first pass also drops the legacy index.
func rematchBatches(keys []mpi.RecordKey, batch int, first bool) ([]command.Payload, error) {
	var out []command.Payload
	for i := 0; i < len(keys); i += batch {
		c := &command.MPIRematch{DropLegacyBlocks: first && i == 0}
		for _, k := range keys[i:min(i+batch, len(keys))] {
			euid, err := newEUID()
			if err != nil {
				return nil, err
			}
			c.Records, c.NewEUIDs = append(c.Records, string(k)), append(c.NewEUIDs, euid)
		}
		out = append(out, c)
	}
	return out, nil
}

// add counts one record's outcome into the report.
func (rep *RematchReport) add(o raft.Rematched) {
	rep.Records++
	switch {
	case o.Err != nil:
		rep.Refused++
		return
	case o.Gone:
		rep.Gone++
		return
	case o.Kept:
		rep.Kept++
		return
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
