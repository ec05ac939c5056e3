package locator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
)

// MaxBatchRecords caps the records of one batch request (one Raft entry).
const MaxBatchRecords = 2000

// BatchRequest is the body of POST /v1/patients/batch: flat records (from CSV or FEBRL
// files) and/or FHIR Patients, registered in order as one replicated command.
type BatchRequest struct {
	Records  []command.PatientRecord `json:"records,omitempty"`
	Patients []json.RawMessage       `json:"patients,omitempty"`
	// Sequence, when set, has the leader propose the batch after the batches before it in
	// its import stream (see BatchSequence).
	Sequence *BatchSequence `json:"sequence,omitempty"`
}

// BatchResult is one record's outcome in a BatchResponse.
type BatchResult struct {
	Record  string  `json:"record,omitempty"`
	Patient string  `json:"patient,omitempty"`
	Outcome string  `json:"outcome,omitempty"`
	EUID    string  `json:"euid,omitempty"`
	Score   float64 `json:"score,omitempty"`
	// Status and Error report a refused record (HTTP status it would have had alone).
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// OutcomeWithheld is a registered record's outcome when the caller may not be told of the
// person it joined (a consent directive of that person denies the caller, or the person
// opted out): the record is registered, and its EUID, score and match outcome are left out.
const OutcomeWithheld = "withheld"

// BatchResponse lists the outcomes in request order: records first, then patients.
type BatchResponse struct {
	Index   uint64        `json:"index"`
	Results []BatchResult `json:"results"`
}

// registerBatch is the bulk registration endpoint behind `rls import patients`. Each
// record is checked alone: a refused one is reported with its reason and does not stop the
// others. The same ownership rule as for a single Patient applies to every record.
func (s *Server) registerBatch(w http.ResponseWriter, r *http.Request, rq *request) error {
	var req BatchRequest
	if err := decodeJSON(rq.body, &req); err != nil {
		return err
	}
	n := len(req.Records) + len(req.Patients)
	if n == 0 {
		return fhir.Invalid("records", "the batch holds no records")
	}
	if n > MaxBatchRecords {
		return fhir.Errorf(http.StatusRequestEntityTooLarge, "too-costly", "records", "a batch holds at most %d records; this one holds %d", MaxBatchRecords, n)
	}
	if req.Sequence != nil {
		if err := req.Sequence.check(); err != nil {
			return err
		}
	}
	results := make([]BatchResult, n)
	var regs []command.PatientRegistration
	var slots []int // result index of each proposed registration
	own := s.ownSystem(r.Context(), rq.principal)
	propose := func(i int, rec command.PatientRecord, resource []byte) {
		if _, err := own([]string{rec.System}); err != nil {
			results[i] = refused(rec, err)
			return
		}
		euid, err := newEUID()
		if err != nil {
			results[i] = refused(rec, err)
			return
		}
		regs = append(regs, command.PatientRegistration{Record: rec, NewEUID: euid, Resource: resource})
		slots = append(slots, i)
	}
	now := time.Now().UTC()
	for i, rec := range req.Records {
		if rec.Check("", now) != nil {
			// Named only once it fails: a prefix formatted for every record cost an
			// allocation per record.
			err := rec.Check(fmt.Sprintf("records[%d].", i), now)
			results[i] = refused(rec, fhir.LimitError("", err))
			continue
		}
		propose(i, rec, nil)
	}
	for j, raw := range req.Patients {
		i := len(req.Records) + j
		var p fhir.Patient
		if err := fhir.Decode(bytes.NewReader(raw), "Patient", &p); err != nil {
			results[i] = refused(command.PatientRecord{}, err)
			continue
		}
		rec, err := fhir.RecordOf(p, own)
		if err != nil {
			results[i] = refused(rec, err)
			continue
		}
		resource, err := fhir.CanonicalPatient(p)
		if err != nil {
			return err
		}
		propose(i, rec, resource)
	}
	var handed func()
	if req.Sequence != nil {
		var err error
		if handed, err = s.sequencer.await(r.Context(), *req.Sequence); err != nil {
			return fmt.Errorf("wait for the batch before this one in its import stream: %w", err)
		}
		if len(regs) == 0 {
			handed() // nothing to propose, but the next batch's turn has come all the same
		}
	}
	var index uint64
	if len(regs) > 0 {
		a, err := s.node.ApplyInTurn(r.Context(), command.TypePatientRegister, header(rq), &command.PatientRegister{Registrations: regs}, handed)
		if err != nil {
			return err
		}
		index = a.Index
		for k, out := range a.Value.([]raft.Registered) {
			i := slots[k]
			if out.Err != nil {
				results[i] = refused(regs[k].Record, out.Err)
				continue
			}
			results[i] = BatchResult{Record: string(out.Decision.Record), Patient: out.Patient.ID}
			if !rq.answerGuard().PersonWith(out.Decision.EUID, out.Directives).Disclose {
				// Registered, but the person it joined is not for the caller to know.
				results[i].Outcome = OutcomeWithheld
				rq.disclose(nil, []string{out.Patient.ID})
				continue
			}
			rq.disclose([]string{out.Decision.EUID}, []string{out.Patient.ID})
			results[i].Outcome, results[i].EUID, results[i].Score = string(out.Decision.Outcome), out.Decision.EUID, out.Decision.Score
		}
		w.Header().Set(HeaderRaftIndex, strconv.FormatUint(index, 10))
	}
	return writeJSON(w, http.StatusOK, BatchResponse{Index: index, Results: results})
}

func refused(rec command.PatientRecord, err error) BatchResult {
	fe := apiError(err)
	res := BatchResult{Status: fe.Status, Error: fe.Error()}
	if rec.System != "" || rec.Value != "" {
		res.Record = fhir.Clip(string(mpi.KeyOf(rec.System, rec.Value)))
	}
	return res
}

// DocumentBatchRequest is the body of POST /v1/documents/batch: DocumentReferences
// registered in order as one replicated command.
type DocumentBatchRequest struct {
	Documents []json.RawMessage `json:"documents"`
}

// DocumentBatchResult is one document's outcome.
type DocumentBatchResult struct {
	ID         string   `json:"id,omitempty"`
	Version    uint64   `json:"version,omitempty"`
	Superseded []string `json:"superseded,omitempty"`
	Status     int      `json:"status,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// registerDocumentBatch is the bulk document endpoint behind `rls import documents`.
func (s *Server) registerDocumentBatch(w http.ResponseWriter, r *http.Request, rq *request) error {
	var req DocumentBatchRequest
	if err := decodeJSON(rq.body, &req); err != nil {
		return err
	}
	if len(req.Documents) == 0 {
		return fhir.Invalid("documents", "the batch holds no documents")
	}
	if len(req.Documents) > MaxBatchRecords {
		return fhir.Errorf(http.StatusRequestEntityTooLarge, "too-costly", "documents", "a batch holds at most %d documents", MaxBatchRecords)
	}
	raws := make([][]byte, len(req.Documents))
	for i, d := range req.Documents {
		raws[i] = d
	}
	out, errs, index, err := s.registerDocuments(r.Context(), rq, raws)
	if err != nil {
		return err
	}
	results := make([]DocumentBatchResult, len(raws))
	for i := range raws {
		if errs[i] != nil {
			fe := apiError(errs[i])
			results[i] = DocumentBatchResult{Status: fe.Status, Error: fe.Error()}
			continue
		}
		s.discloseRecordKeys(rq, out[i].Document.Document.PatientRecord)
		results[i] = DocumentBatchResult{ID: out[i].Document.Document.ID, Version: out[i].Document.Version, Superseded: out[i].Superseded}
	}
	if index > 0 {
		w.Header().Set(HeaderRaftIndex, strconv.FormatUint(index, 10))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"index": index, "results": results})
}
