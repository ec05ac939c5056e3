package locator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// hl7Routes are the internal routes of HL7 v2 messages (see hl7.go). Each carries the
// audit action of the FHIR call it is equivalent to.
func (s *Server) hl7Routes() []route {
	return append(s.endpointRoutes(), []route{
		// ITI-8 Patient Identity Feed: A01, A04, A05, A28 register; A08, A31 update; A40 merges.
		{method: "POST", pattern: "/v1/hl7/adt/register", access: participant, place: onLeader, audit: "patient-create", handle: s.hl7Feed},
		{method: "POST", pattern: "/v1/hl7/adt/update", access: participant, place: onLeader, audit: "patient-update", handle: s.hl7Feed},
		{method: "POST", pattern: "/v1/hl7/adt/merge", access: participant, place: onLeader, audit: "patient-update", handle: s.hl7Merge},
		// ITI-9 PIX Query and ITI-21 PDQ Query: the PIXm and PDQm reads, with their purpose of
		// use and consent guard.
		{method: "POST", pattern: "/v1/hl7/qbp/pix", access: participant, place: byConsistency, patientData: true, audit: "patient-pix", handle: s.hl7PIX},
		{method: "POST", pattern: "/v1/hl7/qbp/pdq", access: participant, place: byConsistency, patientData: true, audit: "patient-search", handle: s.hl7PDQ},
	}...)
}

// Statuses the routes answer with: what the audit entry records of an HL7 answer.
const (
	hl7Accepted = http.StatusOK
	hl7Invalid  = http.StatusBadRequest
	hl7Refused  = http.StatusForbidden
)

// ackFor answers an ADT message: AA, or the error (AR when the cluster could not take it,
// AE when the message is at fault).
func ackFor(x *hl7Exchange, status int, herr *hl7.Error) *hl7.Message {
	if herr == nil {
		return hl7.Ack(x.h, x.from, hl7.AA, newControlID(), time.Now(), "")
	}
	code := hl7.AE
	if status >= 500 || status == hl7Refused || herr.Location.Segment == "MSH" {
		code = hl7.AR
	}
	return hl7.Ack(x.h, x.from, code, newControlID(), time.Now(), "", herr)
}

// open is the common start of a route: the exchange, or the answer already written (a
// message that does not parse, or whose MSH-4 names another participant).
func (s *Server) openHL7(w http.ResponseWriter, r *http.Request, rq *request) (*hl7Exchange, bool, error) {
	x, err := s.hl7Request(r, rq)
	if err != nil {
		return nil, true, err
	}
	refuse := func(status int, herr *hl7.Error) (*hl7Exchange, bool, error) {
		if strings.HasPrefix(r.URL.Path, "/v1/hl7/qbp/") {
			code := hl7.AE
			if status == hl7Refused || herr.Location.Segment == "MSH" {
				code = hl7.AR
			}
			return x, true, writeHL7(w, status, queryResponse(x.h, x.m, x.from, code, herr, queryResult{status: code}))
		}
		return x, true, writeHL7(w, status, ackFor(x, status, herr))
	}
	if x.perr != nil {
		return refuse(hl7Invalid, x.perr)
	}
	if herr := s.senderMismatch(x, rq.principal); herr != nil {
		return refuse(hl7Refused, herr)
	}
	return x, false, nil
}

// hl7Feed is ITI-8's registration and update (ADT A01, A04, A05, A08, A28, A31): the PID
// as a FHIR Patient, through the conditional update of ITI-104, committed before the ACK.
func (s *Server) hl7Feed(w http.ResponseWriter, r *http.Request, rq *request) error {
	x, done, err := s.openHL7(w, r, rq)
	if done {
		return err
	}
	pid := x.m.Segment("PID")
	if pid == nil {
		return writeHL7(w, hl7Invalid, ackFor(x, hl7Invalid, hl7.Errorf(hl7.At("PID"), hl7.CodeSegmentSequence, "%s^%s needs a PID segment", x.h.Type, x.h.Trigger)))
	}
	reg, status, herr := s.hl7Register(r, rq, pid, 1)
	if herr != nil {
		return writeHL7(w, status, ackFor(x, status, herr))
	}
	s.logger.Info("hl7 patient registered", "patient", model.PatientID(reg.key), "euid", reg.euid, "by", rq.principal.ID,
		"event", x.h.Trigger, "control_id", model.BoundText(x.h.ControlID, 64), "request_id", rq.id)
	return writeHL7(w, hl7Accepted, ackFor(x, hl7Accepted, nil))
}

// hl7Registered is a record an ADT message registered.
type hl7Registered struct {
	key, euid string
}

// hl7Register registers the patient of one PID: the sender's own identifier is the
// record's key, and the rest goes through createPatient's checks exactly as a FHIR
// Patient would. A refusal is located at the PID field the refused element came from.
func (s *Server) hl7Register(r *http.Request, rq *request, pid *hl7.Segment, seq int) (hl7Registered, int, *hl7.Error) {
	at := hl7.At("PID", 3)
	at.Sequence = seq
	pp, herr := patientFromPID(pid, seq, s.hl7Domain())
	if herr != nil {
		return hl7Registered{}, hl7Invalid, herr
	}
	system, value, herr := s.ownIdentifier(rq.principal, pp, at)
	if herr != nil {
		return hl7Registered{}, hl7Invalid, herr
	}
	body, err := json.Marshal(pp.patient)
	if err != nil {
		return hl7Registered{}, http.StatusInternalServerError, hl7.Errorf(hl7.Location{}, hl7.CodeInternal, "encode the patient: %v", err)
	}
	saved := rq.body
	rq.body = body
	defer func() { rq.body = saved }()
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: "/fhir/Patient", RawQuery: url.Values{"identifier": {system + "|" + value}}.Encode()}
	r2.Header.Del("If-Match")
	rec := newMemoryResponse()
	if err := s.conditionalUpdatePatient(rec, r2, rq); err != nil {
		fe := apiError(err)
		return hl7Registered{}, fe.Status, hl7ErrorOf(fe, &pp.prov, hl7.Location{Segment: "PID", Sequence: seq})
	}
	var stored fhir.Patient
	_ = json.Unmarshal(rec.body.Bytes(), &stored)
	reg := hl7Registered{key: string(mpi.KeyOf(system, value))}
	for _, id := range stored.Identifier {
		if id.System == fhir.EUIDSystem {
			reg.euid = id.Value
		}
	}
	return reg, hl7Accepted, nil
}

// ownIdentifier finds, in a PID, the identifier in the sender's own domain (for the
// admin, the one identifier in some participant's domain): the record's key.
func (s *Server) ownIdentifier(p model.Participant, pp pidPatient, at hl7.Location) (string, string, *hl7.Error) {
	var found []fhir.Identifier
	_ = s.node.State().View(func(tx *state.Tx) error {
		for _, id := range pp.patient.Identifier {
			if id.System == fhir.SSNSystem || id.System == fhir.EUIDSystem {
				continue
			}
			if p.IsAdmin() {
				if _, ok := tx.ParticipantIDBySystem(id.System); ok {
					found = append(found, id)
				}
			} else if id.System == p.IdentifierSystem {
				found = append(found, id)
			}
		}
		return nil
	})
	switch {
	case len(found) == 1:
		return found[0].System, found[0].Value, nil
	case len(found) > 1:
		return "", "", hl7.Errorf(at, hl7.CodeDuplicateKey, "PID-3 holds %d identifiers in the sender's domain; a record has one", len(found))
	case p.IsAdmin():
		return "", "", hl7.Errorf(at, hl7.CodeRequiredFieldMissing, "PID-3 holds no identifier in a participant's domain")
	}
	return "", "", hl7.Errorf(at, hl7.CodeRequiredFieldMissing,
		"PID-3 holds no identifier in the sender's domain %s: give the MRN with assigning authority %s (namespace) or &%s&%s",
		p.IdentifierSystem, p.ID, strings.TrimPrefix(p.IdentifierSystem, "urn:oid:"), map[bool]string{true: "ISO", false: "URI"}[strings.HasPrefix(p.IdentifierSystem, "urn:oid:")])
}

// hl7Merge is ITI-8's merge (ADT^A40): for each PID and MRG pair, the record MRG-1 names
// (the sender's, in its own domain) is merged into the record PID-3 names, which is
// registered (or updated) with the PID's demographics first: the persons of the two
// records become one. Both are committed before the ACK.
func (s *Server) hl7Merge(w http.ResponseWriter, r *http.Request, rq *request) error {
	x, done, err := s.openHL7(w, r, rq)
	if done {
		return err
	}
	type pair struct {
		pid, mrg *hl7.Segment
		seq      int
	}
	var pairs []pair
	for _, seg := range x.m.Segments {
		switch seg.Name {
		case "PID":
			pairs = append(pairs, pair{pid: seg, seq: len(pairs) + 1})
		case "MRG":
			if len(pairs) > 0 && pairs[len(pairs)-1].mrg == nil {
				pairs[len(pairs)-1].mrg = seg
			}
		}
	}
	if len(pairs) == 0 {
		return writeHL7(w, hl7Invalid, ackFor(x, hl7Invalid, hl7.Errorf(hl7.At("PID"), hl7.CodeSegmentSequence, "ADT^A40 needs a PID segment and an MRG segment")))
	}
	for _, p := range pairs {
		if p.mrg == nil {
			loc := hl7.At("MRG")
			loc.Sequence = p.seq
			return writeHL7(w, hl7Invalid, ackFor(x, hl7Invalid, hl7.Errorf(loc, hl7.CodeSegmentSequence, "PID %d of ADT^A40 has no MRG segment after it", p.seq)))
		}
		if status, herr := s.hl7MergeOne(r, rq, p.pid, p.mrg, p.seq); herr != nil {
			return writeHL7(w, status, ackFor(x, status, herr))
		}
	}
	return writeHL7(w, hl7Accepted, ackFor(x, hl7Accepted, nil))
}

func (s *Server) hl7MergeOne(r *http.Request, rq *request, pid, mrg *hl7.Segment, seq int) (int, *hl7.Error) {
	at := hl7.At("MRG", 1)
	at.Sequence = seq
	pidAt := hl7.At("PID", 3)
	pidAt.Sequence = seq
	pp, herr := patientFromPID(pid, seq, s.hl7Domain())
	if herr != nil {
		return hl7Invalid, herr
	}
	system, mrn, herr := s.ownIdentifier(rq.principal, pp, pidAt)
	if herr != nil {
		return hl7Invalid, herr
	}
	resolve := s.hl7Domain()
	prior := ""
	for i, cx := range mrg.Field(1) {
		if v := value(cx.Comp(1)); v != "" && resolve(cx.Comp(4)) == system {
			if prior != "" {
				loc := at
				loc.Rep = i + 1
				return hl7Invalid, hl7.Errorf(loc, hl7.CodeDuplicateKey, "MRG-1 holds two identifiers in the sender's domain: a merge retires one record")
			}
			prior = string(mpi.KeyOf(system, v))
		}
	}
	surviving := string(mpi.KeyOf(system, mrn))
	switch {
	case prior == "":
		return hl7Invalid, hl7.Errorf(at, hl7.CodeRequiredFieldMissing, "MRG-1 holds no identifier in the sender's domain %s (a merge is within one domain)", system)
	case prior == surviving:
		return hl7Invalid, hl7.Errorf(at, hl7.CodeDuplicateKey, "MRG-1 and PID-3 name the same record")
	}
	if err := s.node.SyncLocal(r.Context()); err != nil {
		fe := apiError(err)
		return fe.Status, hl7ErrorOf(fe, nil, hl7.Location{})
	}
	known := false
	_ = s.node.State().View(func(tx *state.Tx) error {
		sr, err := tx.MPI().Record(mpi.RecordKey(prior))
		known = err == nil && sr != nil
		return nil
	})
	if !known {
		return hl7Invalid, hl7.Errorf(at, hl7.CodeUnknownKey, "MRG-1 names a record that is not registered; nothing was merged")
	}
	if _, status, herr := s.hl7Register(r, rq, pid, seq); herr != nil {
		return status, herr
	}
	if err := s.node.SyncLocal(r.Context()); err != nil {
		fe := apiError(err)
		return fe.Status, hl7ErrorOf(fe, nil, hl7.Location{})
	}
	var from, into string
	_ = s.node.State().View(func(tx *state.Tx) error {
		if a, err := tx.MPI().Record(mpi.RecordKey(prior)); err == nil && a != nil {
			from = a.EUID
		}
		if b, err := tx.MPI().Record(mpi.RecordKey(surviving)); err == nil && b != nil {
			into = b.EUID
		}
		return nil
	})
	rq.disclose([]string{from, into}, recordIDs([]string{prior, surviving}))
	if from == "" || into == "" || from == into {
		return hl7Accepted, nil
	}
	_, err := s.node.Apply(r.Context(), command.TypePersonMerge, header(rq), &command.PersonMerge{From: from, Into: into,
		Reason: fmt.Sprintf("ITI-8 A40 from %s: record %s merged into record %s", rq.principal.ID, model.PatientID(prior), model.PatientID(surviving))})
	if err != nil {
		fe := apiError(err)
		return fe.Status, hl7ErrorOf(fe, nil, hl7.Location{})
	}
	s.logger.Info("hl7 merge", "from", from, "into", into, "by", rq.principal.ID, "request_id", rq.id)
	return hl7Accepted, nil
}

// pixQuery is an ITI-9 query (QBP^Q23) as PIXm parameters.
type pixQuery struct {
	system, value string
	targets       []string
	targetReps    []int
}

func (q pixQuery) values() url.Values {
	v := url.Values{"sourceIdentifier": {q.system + "|" + q.value}}
	for _, t := range q.targets {
		v.Add("targetSystem", t)
	}
	return v
}

// queryName checks QPD-1 (message query name): the IHE name, or the HL7 query code.
func queryName(qpd *hl7.Segment, ihe, code string) *hl7.Error {
	n := value(qpd.Field(1).Rep(1).Comp(1))
	if strings.EqualFold(n, ihe) || strings.EqualFold(n, code) {
		return nil
	}
	return hl7.Errorf(hl7.At("QPD", 1), hl7.CodeTableValueNotFound, "QPD-1 (message query name) must be %q (or %s), not %q", ihe, code, fhir.Clip(n))
}

// pixQueryOf reads QPD-3 (the identifier: value and assigning authority) and QPD-4 (the
// domains wanted, each a CX with only its assigning authority).
func pixQueryOf(m *hl7.Message, resolve domainResolver) (pixQuery, *hl7.Error) {
	var q pixQuery
	qpd := m.Segment("QPD")
	if qpd == nil {
		return q, hl7.Errorf(hl7.At("QPD"), hl7.CodeSegmentSequence, "QBP^Q23 needs a QPD segment")
	}
	if herr := queryName(qpd, "IHE PIX Query", "Q23"); herr != nil {
		return q, herr
	}
	cx := qpd.Field(3).Rep(1)
	q.value = value(cx.Comp(1))
	if q.value == "" {
		return q, hl7.Errorf(hl7.At("QPD", 3, 1, 1), hl7.CodeRequiredFieldMissing, "QPD-3 needs the identifier (CX-1)")
	}
	if q.system = resolve(cx.Comp(4)); q.system == "" {
		return q, hl7.Errorf(hl7.At("QPD", 3, 1, 4), hl7.CodeUnknownKey, "QPD-3's assigning authority is not a domain of the exchange")
	}
	for i, d := range qpd.Field(4) {
		if d.Empty() {
			continue
		}
		system := resolve(d.Comp(4))
		if system == "" {
			return q, hl7.Errorf(hl7.At("QPD", 4, i+1, 4), hl7.CodeUnknownKey, "QPD-4 repetition %d names an assigning authority that is not a domain of the exchange", i+1)
		}
		if !slices.Contains(q.targets, system) {
			q.targets = append(q.targets, system)
			q.targetReps = append(q.targetReps, i+1)
		}
	}
	return q, nil
}

// queryResult is what a query response carries besides its acknowledgement.
type queryResult struct {
	// status is QAK-2: OK, NF, AE or AR.
	status string
	// total, payload and remaining are QAK-4, -5 and -6 (PDQ only).
	counts                  bool
	total, payload, remains int
	pids                    []*hl7.Segment
	// pointer is DSC-1, the continuation pointer of the next increment.
	pointer string
}

// queryResponse builds RSP^K23 (ITI-9) or RSP^K22 (ITI-21): MSH, MSA, ERR, QAK, the query
// echoed in QPD, the PIDs and, when more remain, DSC.
func queryResponse(h hl7.Header, m *hl7.Message, from hl7.Responder, code string, herr *hl7.Error, res queryResult) *hl7.Message {
	typ := hl7.Comps("RSP", "K23", "RSP_K23")
	if h.Trigger == "Q22" {
		typ = hl7.Comps("RSP", "K22", "RSP_K21")
	}
	out := hl7.Reply(h, from, typ, newControlID(), time.Now())
	text := ""
	if herr != nil {
		text = herr.Message
	}
	out.Add(hl7.MSA(h, code, text))
	if herr != nil {
		out.Add(hl7.ERR(h, herr))
	}
	var qpd *hl7.Segment
	if m != nil {
		qpd = m.Segment("QPD")
	}
	qak := hl7.NewSegment("QAK", hl7.Text(qpd.Value(2, 1)), hl7.Text(res.status))
	if qpd != nil {
		qak.Set(3, hl7.Reps(qpd.Field(1).Rep(1)))
	}
	if res.counts {
		qak.SetText(4, strconv.Itoa(res.total))
		qak.SetText(5, strconv.Itoa(res.payload))
		qak.SetText(6, strconv.Itoa(res.remains))
	}
	out.Add(qak)
	if qpd != nil {
		out.Add(qpd)
	}
	out.Add(res.pids...)
	if res.pointer != "" {
		out.Add(hl7.NewSegment("DSC", hl7.Text(res.pointer), hl7.Text("I")))
	}
	return out
}

// hl7PIX is ITI-9 (QBP^Q23 → RSP^K23), through PIXm: the other identifiers of the person
// in the requested domains, the same consent rules (a hidden patient is an unknown one).
func (s *Server) hl7PIX(w http.ResponseWriter, r *http.Request, rq *request) error {
	x, done, err := s.openHL7(w, r, rq)
	if done {
		return err
	}
	answer := func(status int, code string, herr *hl7.Error, res queryResult) error {
		return writeHL7(w, status, queryResponse(x.h, x.m, x.from, code, herr, res))
	}
	q, herr := pixQueryOf(x.m, s.hl7Domain())
	if herr != nil {
		return answer(hl7Invalid, hl7.AE, herr, queryResult{status: "AE"})
	}
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: "/fhir/Patient/$ihe-pix", RawQuery: q.values().Encode()}
	rec := newMemoryResponse()
	if err := s.pix(rec, r2, rq); err != nil {
		fe := apiError(err)
		switch {
		case fe.Status == http.StatusNotFound:
			// ITI-9 case 4: the domain is known, the identifier (or what may be disclosed
			// of it) is not.
			return answer(fe.Status, hl7.AE, hl7.Errorf(hl7.At("QPD", 3, 1, 1), hl7.CodeUnknownKey, "no patient is known by this identifier in this domain"), queryResult{status: "AE"})
		case fe.Status == http.StatusBadRequest && slices.Contains(fe.Issue.Expression, "sourceIdentifier"):
			return answer(fe.Status, hl7.AE, hl7.Errorf(hl7.At("QPD", 3, 1, 4), hl7.CodeUnknownKey, "QPD-3's assigning authority is not a domain of the exchange"), queryResult{status: "AE"})
		case fe.Status == http.StatusForbidden && slices.Contains(fe.Issue.Expression, "targetSystem"):
			rep := 1
			_ = s.node.State().View(func(tx *state.Tx) error {
				for i, t := range q.targets {
					if _, ok := tx.ParticipantIDBySystem(t); !ok && t != fhir.EUIDSystem {
						rep = q.targetReps[i]
						break
					}
				}
				return nil
			})
			return answer(fe.Status, hl7.AE, hl7.Errorf(hl7.At("QPD", 4, rep, 4), hl7.CodeUnknownKey, "QPD-4 repetition %d is not a domain of the exchange", rep), queryResult{status: "AE"})
		}
		code := hl7.AE
		if fe.Status >= 500 {
			code = hl7.AR
		}
		return answer(fe.Status, code, hl7ErrorOf(fe, nil, hl7.Location{}), queryResult{status: code})
	}
	var params fhir.Parameters
	if err := json.Unmarshal(rec.body.Bytes(), &params); err != nil {
		return fmt.Errorf("read the PIXm answer: %w", err)
	}
	var ids hl7.Field
	_ = s.node.State().View(func(tx *state.Tx) error {
		for _, p := range params.Parameter {
			if p.Name == "targetIdentifier" && p.ValueIdentifier != nil {
				ids = append(ids, cxOf(tx, p.ValueIdentifier.System, p.ValueIdentifier.Value))
			}
		}
		return nil
	})
	if len(ids) == 0 {
		return answer(hl7Accepted, hl7.AA, nil, queryResult{status: "NF"})
	}
	pid := hl7.NewSegment("PID")
	pid.Set(3, ids)
	pid.Set(5, pseudoName)
	return answer(hl7Accepted, hl7.AA, nil, queryResult{status: "OK", pids: []*hl7.Segment{pid}})
}

// pdqQuery is an ITI-21 query (QBP^Q22) as PDQm parameters.
type pdqQuery struct {
	params url.Values
	// paramRep is the QPD-3 repetition each PDQm parameter came from.
	paramRep   map[string]int
	domains    []string
	domainReps []int
	count      int
	offset     int
}

// pdqFields maps QPD-3's segment field names to PDQm parameters.
var pdqFields = map[string]string{
	"PID.3": "identifier", "PID.3.1": "identifier",
	"PID.3.4": "ns", "PID.3.4.1": "ns", "PID.3.4.2": "uid", "PID.3.4.3": "uidtype",
	"PID.5": "family", "PID.5.1": "family", "PID.5.1.1": "family",
	"PID.5.2": "given",
	"PID.7":   "birthdate", "PID.7.1": "birthdate",
	"PID.8":    "gender",
	"PID.11.3": "address-city", "PID.11.5": "address-postalcode",
	"PID.13": "telecom", "PID.13.1": "telecom", "PID.13.4": "email",
}

// pdqQueryOf reads QPD-3 (@PID.x^value parameters), QPD-8 (domains wanted), RCP-2 (how
// many at most) and DSC-1 (the continuation pointer of a later increment).
func pdqQueryOf(m *hl7.Message, resolve domainResolver) (pdqQuery, *hl7.Error) {
	q := pdqQuery{params: url.Values{}, paramRep: map[string]int{}, count: maxPatientCount}
	qpd := m.Segment("QPD")
	if qpd == nil {
		return q, hl7.Errorf(hl7.At("QPD"), hl7.CodeSegmentSequence, "QBP^Q22 needs a QPD segment")
	}
	if herr := queryName(qpd, "IHE PDQ Query", "Q22"); herr != nil {
		return q, herr
	}
	var idValue, ns, uid, uidType string
	idRep := 0
	for i, qip := range qpd.Field(3) {
		rep := i + 1
		name := strings.TrimPrefix(strings.ToUpper(value(qip.Comp(1))), "@")
		v := strings.TrimSpace(qip.Comp(2).Sub(1))
		if name == "" && v == "" {
			continue
		}
		param, ok := pdqFields[name]
		if !ok {
			return q, hl7.Errorf(hl7.At("QPD", 3, rep, 1), hl7.CodeTableValueNotFound,
				"QPD-3 field %q is not a supported PDQ parameter (@PID.3.1, @PID.3.4.x, @PID.5.1.1, @PID.5.2, @PID.7, @PID.8, @PID.11.3, @PID.11.5, @PID.13.1, @PID.13.4)", fhir.Clip(name))
		}
		if v == "" {
			return q, hl7.Errorf(hl7.At("QPD", 3, rep, 2), hl7.CodeRequiredFieldMissing, "QPD-3 field %s has no value", name)
		}
		switch param {
		case "identifier":
			idValue, idRep = v, rep
			continue
		case "ns":
			ns = v
			continue
		case "uid":
			uid = v
			continue
		case "uidtype":
			uidType = v
			continue
		case "family", "given":
			v = strings.TrimRight(v, "*") // names match by prefix already
		case "birthdate":
			d, err := hl7Date(v)
			if err != nil {
				return q, hl7.Errorf(hl7.At("QPD", 3, rep, 2), hl7.CodeDataType, "@PID.7 %q %v", fhir.Clip(v), err)
			}
			v = d
		case "gender":
			g, ok := administrativeSex[strings.ToUpper(v)]
			if !ok {
				return q, hl7.Errorf(hl7.At("QPD", 3, rep, 2), hl7.CodeTableValueNotFound, "@PID.8 %q is not in HL7 table 0001", fhir.Clip(v))
			}
			v = g
		}
		if q.params.Has(param) {
			return q, hl7.Errorf(hl7.At("QPD", 3, rep, 1), hl7.CodeDuplicateKey, "QPD-3 gives %s twice", name)
		}
		q.params.Set(param, v)
		q.paramRep[param] = rep
	}
	if ns != "" || uid != "" {
		if idValue == "" {
			return q, hl7.Errorf(hl7.At("QPD", 3), hl7.CodeRequiredFieldMissing, "an assigning authority (@PID.3.4) needs the identifier (@PID.3.1)")
		}
		system := resolve(hl7.Subs(ns, uid, uidType))
		if system == "" {
			return q, hl7.Errorf(hl7.At("QPD", 3, idRep, 2), hl7.CodeUnknownKey, "@PID.3.4 names an assigning authority that is not a domain of the exchange")
		}
		idValue = system + "|" + idValue
	}
	if idValue != "" {
		q.params.Set("identifier", idValue)
		q.paramRep["identifier"] = idRep
	}
	for i, d := range qpd.Field(8) {
		if d.Empty() {
			continue
		}
		system := resolve(d.Comp(4))
		if system == "" {
			return q, hl7.Errorf(hl7.At("QPD", 8, i+1, 4), hl7.CodeUnknownKey, "QPD-8 repetition %d names an assigning authority that is not a domain of the exchange", i+1)
		}
		if !slices.Contains(q.domains, system) {
			q.domains, q.domainReps = append(q.domains, system), append(q.domainReps, i+1)
		}
	}
	if rcp := m.Segment("RCP"); rcp != nil {
		if n, units := value(rcp.Field(2).Rep(1).Comp(1)), strings.ToUpper(value(rcp.Field(2).Rep(1).Comp(2))); n != "" {
			count, err := strconv.Atoi(n)
			if err != nil || count < 1 || (units != "" && units != "RD") {
				return q, hl7.Errorf(hl7.At("RCP", 2), hl7.CodeDataType, "RCP-2 (quantity limited request) must be a number of records: 10^RD")
			}
			q.count = min(count, maxPatientCount)
		}
	}
	if dsc := m.Segment("DSC"); dsc != nil {
		if p := value(dsc.Field(1).Rep(1).Comp(1)); p != "" {
			off, hash, ok := strings.Cut(p, ".")
			n, err := strconv.Atoi(off)
			if !ok || err != nil || n < 0 || hash != q.fingerprint() {
				return q, hl7.Errorf(hl7.At("DSC", 1), hl7.CodeDataType, "DSC-1 is not a continuation pointer of this query: send the query again as it was, with the pointer rls returned")
			}
			q.offset = n
		}
	}
	q.params.Set("_count", strconv.Itoa(q.count))
	q.params.Set("_offset", strconv.Itoa(q.offset))
	return q, nil
}

// fingerprint ties a continuation pointer to its query: the parameters, domains and
// increment size (not the offset), so that a pointer cannot be replayed onto another query.
func (q pdqQuery) fingerprint() string {
	p := url.Values{}
	for k, v := range q.params {
		if k != "_offset" && k != "_count" {
			p[k] = v
		}
	}
	h := sha256.Sum256([]byte(p.Encode() + "|" + strings.Join(q.domains, ",") + "|" + strconv.Itoa(q.count)))
	return hex.EncodeToString(h[:6])
}

// hl7PDQ is ITI-21 (QBP^Q22 → RSP^K22), through PDQm: the same parameters, minimum
// criteria, purpose of use and consent guard (a hidden patient is never returned), in
// increments of RCP-2 records continued by DSC pointers. With QPD-8, each matching
// person is returned once with its identifiers in the domains asked for (a person with
// none there is left out).
func (s *Server) hl7PDQ(w http.ResponseWriter, r *http.Request, rq *request) error {
	x, done, err := s.openHL7(w, r, rq)
	if done {
		return err
	}
	answer := func(status int, code string, herr *hl7.Error, res queryResult) error {
		return writeHL7(w, status, queryResponse(x.h, x.m, x.from, code, herr, res))
	}
	q, herr := pdqQueryOf(x.m, s.hl7Domain())
	if herr != nil {
		return answer(hl7Invalid, hl7.AE, herr, queryResult{status: "AE"})
	}
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: "/fhir/Patient", RawQuery: q.params.Encode()}
	rec := newMemoryResponse()
	if err := s.searchPatients(rec, r2, rq); err != nil {
		fe := apiError(err)
		loc := hl7.At("QPD", 3)
		for _, expr := range fe.Issue.Expression {
			if rep, ok := q.paramRep[expr]; ok {
				loc = hl7.At("QPD", 3, rep)
			}
		}
		code := hl7.AE
		if fe.Status >= 500 {
			code = hl7.AR
		}
		return answer(fe.Status, code, hl7ErrorOf(fe, nil, loc), queryResult{status: code})
	}
	var bundle struct {
		Total int `json:"total"`
		Entry []struct {
			Resource fhir.Patient `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &bundle); err != nil {
		return fmt.Errorf("read the PDQm answer: %w", err)
	}
	res := queryResult{status: "OK", counts: true, total: bundle.Total}
	if bundle.Total == 0 {
		res.status = "NF"
	}
	seen := map[string]bool{}
	for _, e := range bundle.Entry {
		p := e.Resource
		var ids hl7.Field
		if len(q.domains) == 0 {
			_ = s.node.State().View(func(tx *state.Tx) error {
				for _, id := range p.Identifier {
					if id.System != fhir.SSNSystem && id.System != fhir.EUIDSystem {
						ids = append(ids, cxOf(tx, id.System, id.Value))
					}
				}
				return nil
			})
		} else {
			euid := ""
			for _, id := range p.Identifier {
				if id.System == fhir.EUIDSystem {
					euid = id.Value
				}
			}
			if euid == "" || seen[euid] {
				continue
			}
			seen[euid] = true
			ids = s.personIdentifiers(r, rq, p, q.domains)
		}
		if len(ids) == 0 {
			continue
		}
		res.pids = append(res.pids, pidFromPatient(len(res.pids)+1, ids, p))
	}
	res.payload = len(bundle.Entry)
	res.remains = max(0, bundle.Total-q.offset-res.payload)
	if res.remains > 0 && res.payload > 0 {
		res.pointer = strconv.Itoa(q.offset+res.payload) + "." + q.fingerprint()
	}
	return answer(hl7Accepted, hl7.AA, nil, res)
}

// personIdentifiers asks PIXm for the identifiers, in the given domains, of the person of
// a Patient a PDQ query found: the same cross-reference and consent rule as ITI-9.
func (s *Server) personIdentifiers(r *http.Request, rq *request, p fhir.Patient, domains []string) hl7.Field {
	var source fhir.Identifier
	for _, id := range p.Identifier {
		if model.PatientID(string(mpi.KeyOf(id.System, id.Value))) == p.ID {
			source = id
		}
	}
	if source.System == "" {
		return nil
	}
	var ids hl7.Field
	_ = s.node.State().View(func(tx *state.Tx) error {
		if slices.Contains(domains, source.System) {
			ids = append(ids, cxOf(tx, source.System, source.Value))
		}
		return nil
	})
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: "/fhir/Patient/$ihe-pix", RawQuery: pixQuery{system: source.System, value: source.Value, targets: domains}.values().Encode()}
	rec := newMemoryResponse()
	if err := s.pix(rec, r2, rq); err != nil {
		return ids
	}
	var params fhir.Parameters
	if json.Unmarshal(rec.body.Bytes(), &params) != nil {
		return ids
	}
	_ = s.node.State().View(func(tx *state.Tx) error {
		for _, par := range params.Parameter {
			if par.Name == "targetIdentifier" && par.ValueIdentifier != nil {
				ids = append(ids, cxOf(tx, par.ValueIdentifier.System, par.ValueIdentifier.Value))
			}
		}
		return nil
	})
	return ids
}
