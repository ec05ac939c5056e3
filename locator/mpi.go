package locator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/state"
)

// matchConfig answers GET /v1/mpi/config: the replicated match configuration (the
// built-in default until one is proposed).
func (s *Server) matchConfig(w http.ResponseWriter, r *http.Request, rq *request) error {
	var cfg mpi.Config
	err := s.node.State().View(func(tx *state.Tx) error {
		c, ok, err := tx.MPI().Config()
		if !ok {
			c = mpi.DefaultConfig()
		}
		cfg = c
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, cfg)
}

// TrainResult is the answer of POST /v1/mpi/train.
type TrainResult struct {
	Version uint64         `json:"version"`
	Source  string         `json:"source"`
	Records int            `json:"records"`
	Stats   mpi.TrainStats `json:"stats"`
	Seconds float64        `json:"seconds"`
	Index   uint64         `json:"index"`
}

// train estimates m and u with EM from every record the cluster holds (no labels) and
// proposes the result as the new replicated configuration; every node then decides with
// it. It runs on the leader, from the leader's state.
func (s *Server) train(w http.ResponseWriter, r *http.Request, rq *request) error {
	start := time.Now()
	// Train from everything committed, the configuration an operator just replaced
	// included: the FSM commits its state in batches after it acknowledges.
	if err := s.node.CatchUp(r.Context()); err != nil {
		return err
	}
	var records []mpi.Record
	var current mpi.Config
	err := s.node.State().View(func(tx *state.Tx) error {
		c, ok, err := tx.MPI().Config()
		if err != nil {
			return err
		}
		current = mpi.EffectiveConfig(c, ok)
		return tx.ForEachRecord(func(sr *mpi.StoredRecord) error {
			records = append(records, sr.Record)
			return nil
		})
	})
	if err != nil {
		return err
	}
	if len(records) < 2 {
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "the cluster holds %d records; training needs records to learn from", len(records))
	}
	trained, stats, err := mpi.Train(records, current, mpi.TrainOptions{})
	if err != nil {
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "train: %v", err)
	}
	data, err := json.Marshal(trained)
	if err != nil {
		return fmt.Errorf("encode trained configuration: %w", err)
	}
	a, err := s.node.Apply(r.Context(), command.TypeMatchConfigSet, header(rq), &command.MatchConfigSet{Config: data})
	if err != nil {
		return err
	}
	s.logger.Info("match configuration trained and replicated", "version", trained.Version, "records", len(records), "by", rq.principal.ID)
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(a.Index, 10))
	return writeJSON(w, http.StatusOK, TrainResult{Version: trained.Version, Source: trained.Source, Records: len(records),
		Stats: stats, Seconds: time.Since(start).Seconds(), Index: a.Index})
}

// explain answers GET /v1/mpi/explain?a=system|value&b=system|value: the field-by-field
// agreement levels and weights behind the score of two registered records.
func (s *Server) explain(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	a, b := q.Get("a"), q.Get("b")
	for _, p := range [][2]string{{"a", a}, {"b", b}} {
		if sys, val := mpi.RecordKey(p[1]).Split(); sys == "" || val == "" {
			return fhir.Invalid(p[0], "%s must be a record identifier system|value", p[0])
		}
	}
	var ex mpi.Explanation
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		ex, err = mpi.NewMatcher().ExplainRecords(tx.MPI(), mpi.RecordKey(a), mpi.RecordKey(b))
		return err
	})
	if errors.Is(err, mpi.ErrNotFound) {
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "%v", err)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ex)
}

// putMatchConfig is PUT /v1/mpi/config: an operator replaces the match configuration (for
// example to tune the thresholds). Its version must exceed the current one.
func (s *Server) putMatchConfig(w http.ResponseWriter, r *http.Request, rq *request) error {
	var cfg mpi.Config
	if err := decodeJSON(rq.body, &cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fhir.Invalid("", "%v", err)
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	a, err := s.node.Apply(r.Context(), command.TypeMatchConfigSet, header(rq), &command.MatchConfigSet{Config: data})
	if err != nil {
		return err
	}
	s.logger.Info("match configuration replaced", "version", cfg.Version, "upper", cfg.Upper, "lower", cfg.Lower, "by", rq.principal.ID)
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(a.Index, 10))
	return writeJSON(w, http.StatusOK, cfg)
}
