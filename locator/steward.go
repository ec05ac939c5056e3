package locator

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// StewardRequest is the body of the data steward's actions.
type StewardRequest struct {
	Record   string `json:"record,omitempty"`
	EUID     string `json:"euid,omitempty"`
	From     string `json:"from,omitempty"`
	Into     string `json:"into,omitempty"`
	Decision string `json:"decision,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// StewardResult reports what an action changed.
type StewardResult struct {
	EUID    string   `json:"euid"`
	From    string   `json:"from,omitempty"`
	Records []string `json:"records"`
	Index   uint64   `json:"index"`
}

func (s *Server) steward(w http.ResponseWriter, r *http.Request, rq *request, typ command.Type, payload command.Payload) error {
	a, err := s.node.Apply(r.Context(), typ, header(rq), payload)
	if err != nil {
		return err
	}
	rel := a.Value.(raft.Relinked)
	rq.disclose([]string{rel.EUID, rel.From}, recordIDs(rel.Records))
	s.logger.Info("steward action", "action", typ.String(), "euid", rel.EUID, "from", rel.From, "records", len(rel.Records), "by", rq.principal.ID)
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(a.Index, 10))
	return writeJSON(w, http.StatusOK, StewardResult{EUID: rel.EUID, From: rel.From, Records: rel.Records, Index: a.Index})
}

func (s *Server) stewardRequest(rq *request, required ...string) (StewardRequest, error) {
	var req StewardRequest
	if err := decodeJSON(rq.body, &req); err != nil {
		return req, err
	}
	fields := map[string]string{"record": req.Record, "euid": req.EUID, "from": req.From, "into": req.Into, "decision": req.Decision}
	for _, f := range required {
		if fields[f] == "" {
			return req, fhir.Invalid(f, "%s is required", f)
		}
	}
	if req.Record != "" {
		if sys, val := mpi.RecordKey(req.Record).Split(); sys == "" || val == "" {
			return req, fhir.Invalid("record", "record must be an identifier system|value")
		}
		if err := model.CheckRecordKey("record", req.Record); err != nil {
			return req, fhir.LimitError("record", err)
		}
	}
	for _, id := range []struct{ name, value string }{{"euid", req.EUID}, {"from", req.From}, {"into", req.Into}} {
		if id.value != "" {
			if err := model.CheckID(id.name, id.value); err != nil {
				return req, fhir.LimitError(id.name, err)
			}
		}
	}
	if err := model.CheckText("decision", req.Decision, model.MaxCodeLength); err != nil {
		return req, fhir.LimitError("decision", err)
	}
	if err := model.CheckFreeText("reason", req.Reason, model.MaxReasonLength); err != nil {
		return req, fhir.LimitError("reason", err)
	}
	return req, nil
}

// linkRecord is POST /v1/steward/link {record, euid, reason}.
func (s *Server) linkRecord(w http.ResponseWriter, r *http.Request, rq *request) error {
	req, err := s.stewardRequest(rq, "record", "euid")
	if err != nil {
		return err
	}
	return s.steward(w, r, rq, command.TypeRecordLink, &command.RecordLink{Record: req.Record, EUID: req.EUID, Reason: req.Reason})
}

// unlinkRecord is POST /v1/steward/unlink {record, reason}: the record gets a new person.
func (s *Server) unlinkRecord(w http.ResponseWriter, r *http.Request, rq *request) error {
	req, err := s.stewardRequest(rq, "record")
	if err != nil {
		return err
	}
	euid, err := newEUID()
	if err != nil {
		return err
	}
	return s.steward(w, r, rq, command.TypeRecordUnlink, &command.RecordUnlink{Record: req.Record, NewEUID: euid, Reason: req.Reason})
}

// mergePersons is POST /v1/steward/merge {from, into, reason}.
func (s *Server) mergePersons(w http.ResponseWriter, r *http.Request, rq *request) error {
	req, err := s.stewardRequest(rq, "from", "into")
	if err != nil {
		return err
	}
	return s.steward(w, r, rq, command.TypePersonMerge, &command.PersonMerge{From: req.From, Into: req.Into, Reason: req.Reason})
}

// unmergePerson is POST /v1/steward/unmerge {euid, reason}.
func (s *Server) unmergePerson(w http.ResponseWriter, r *http.Request, rq *request) error {
	req, err := s.stewardRequest(rq, "euid")
	if err != nil {
		return err
	}
	return s.steward(w, r, rq, command.TypePersonUnmerge, &command.PersonUnmerge{EUID: req.EUID, Reason: req.Reason})
}

// resolveReview is POST /v1/review/{seq}/resolve {decision: link|separate, euid, reason}.
func (s *Server) resolveReview(w http.ResponseWriter, r *http.Request, rq *request) error {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		return fhir.Invalid("seq", "review item number %q is not a number", r.PathValue("seq"))
	}
	req, err := s.stewardRequest(rq, "decision")
	if err != nil {
		return err
	}
	return s.steward(w, r, rq, command.TypeReviewResolve, &command.ReviewResolve{Seq: seq, Decision: req.Decision, EUID: req.EUID, Reason: req.Reason})
}

// listReviews is GET /v1/review?status=open|resolved|all.
func (s *Server) listReviews(w http.ResponseWriter, r *http.Request, rq *request) error {
	status := r.URL.Query().Get("status")
	if status == "" {
		status = "open"
	}
	if status != "open" && status != "resolved" && status != "all" {
		return fhir.Invalid("status", "status must be open, resolved or all")
	}
	out := []state.ReviewEntry{}
	err := s.node.State().View(func(tx *state.Tx) error {
		return tx.Reviews(func(e state.ReviewEntry) error {
			if status == "all" || (status == "open") == (e.Resolution == nil) {
				out = append(out, e)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// showReview is GET /v1/review/{seq}: the item and, for each candidate, the field-by-field
// explanation of its score against the record.
func (s *Server) showReview(w http.ResponseWriter, r *http.Request, rq *request) error {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		return fhir.Invalid("seq", "review item number %q is not a number", r.PathValue("seq"))
	}
	type candidate struct {
		mpi.Candidate
		// Patient is the FHIR id of the candidate's record (Patient/{id}).
		Patient     string           `json:"patient"`
		Explanation *mpi.Explanation `json:"explanation,omitempty"`
		// PersonRecords are the FHIR ids of every record of the candidate person now (none
		// when it no longer exists): ids only, so that a client (the console) reads the
		// person and its records at once, each read audited as its own.
		PersonRecords []string `json:"person_records,omitempty"`
	}
	var out struct {
		state.ReviewEntry
		CurrentEUID string `json:"current_euid"`
		// RecordPatient is the FHIR id of the record under review (Patient/{id}).
		RecordPatient string      `json:"record_patient"`
		Candidates    []candidate `json:"explained_candidates"`
	}
	err = s.node.State().View(func(tx *state.Tx) error {
		e, ok, err := tx.Review(seq)
		if err != nil {
			return err
		}
		if !ok {
			return fhir.Errorf(http.StatusNotFound, "not-found", "", "review item %d does not exist", seq)
		}
		out.ReviewEntry = e
		out.RecordPatient = model.PatientID(string(e.Item.Record))
		sr, err := tx.MPI().Record(e.Item.Record)
		if err != nil {
			sr = nil // the item is shown without the record's person and explanations
		}
		if sr != nil {
			out.CurrentEUID = sr.EUID
		}
		m := mpi.NewMatcher()
		for _, c := range e.Item.Candidates {
			cc := candidate{Candidate: c, Patient: model.PatientID(string(c.Record))}
			if sr != nil {
				if ex, err := m.ExplainCandidate(tx.MPI(), sr.Record, c); err == nil {
					cc.Explanation = &ex
				}
			}
			p, ok, err := tx.MPI().Person(c.EUID)
			if err != nil {
				return fmt.Errorf("review item %d: candidate person %s: %w", seq, c.EUID, err)
			}
			if ok {
				for _, key := range p.Records {
					cc.PersonRecords = append(cc.PersonRecords, model.PatientID(string(key)))
				}
			}
			out.Candidates = append(out.Candidates, cc)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The explanations show the record's and each candidate record's values: the entry
	// names them and their persons.
	euids, records := []string{out.CurrentEUID, out.Item.EUID}, []string{out.RecordPatient}
	for _, c := range out.Candidates {
		euids, records = append(euids, c.EUID), append(records, c.Patient)
	}
	rq.disclose(euids, records)
	return writeJSON(w, http.StatusOK, out)
}

// personHistory is GET /v1/persons/{euid}/history: every automatic decision and steward
// action that touched the person, oldest first.
func (s *Server) personHistory(w http.ResponseWriter, r *http.Request, rq *request) error {
	var events []model.LinkEvent
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		events, err = tx.LinkHistory(r.PathValue("euid"))
		return err
	})
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "no history for %s", r.PathValue("euid"))
	}
	return writeJSON(w, http.StatusOK, events)
}
