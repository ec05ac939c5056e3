package locator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/state"
	"github.com/rls-hie/rls/search"
)

// waitForIndex makes the document index reflect what this read must see: for default and
// strong reads everything the node's state holds, for stale reads nothing more.
func (s *Server) waitForIndex(ctx context.Context, rq *request) error {
	if rq.consistency == "stale" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.node.WaitIndexed(ctx, s.node.AppliedIndex())
}

// personRecords returns the records linked to a person.
func personRecords(tx *state.Tx, euid string) ([]string, error) {
	p, ok, err := tx.MPI().Person(euid)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	var out []string
	for _, k := range p.Records {
		out = append(out, string(k))
	}
	return out, nil
}

// patientScope turns the patient parameters of a document search into record keys and
// EUIDs: patient=Patient/ID (or ID), patient=Person/EUID, patient.identifier=system|value,
// and the :mdm modifier, which widens a record to every record of its person.
func patientScope(tx *state.Tx, q url.Values) (records, euids []string, err error) {
	addPerson := func(euid string) error {
		recs, err := personRecords(tx, euid)
		if err != nil {
			return err
		}
		euids = append(euids, euid)
		records = append(records, recs...)
		return nil
	}
	addRecord := func(key string, mdm bool) error {
		if !mdm {
			records = append(records, key)
			return nil
		}
		sr, err := tx.MPI().Record(mpi.RecordKey(key))
		if err != nil {
			return err
		}
		if sr == nil {
			records = append(records, key) // finds nothing, like any unknown patient
			return nil
		}
		return addPerson(sr.EUID)
	}
	for name, values := range q {
		base, modifier, _ := strings.Cut(name, ":")
		if base != "patient" && base != "patient.identifier" && base != "subject" {
			continue
		}
		if modifier != "" && modifier != "mdm" {
			return nil, nil, fhir.Errorf(http.StatusBadRequest, "not-supported", name, "modifier :%s is not supported on %s (use :mdm)", modifier, base)
		}
		for _, v := range values {
			for _, one := range strings.Split(v, ",") {
				switch {
				case base == "patient.identifier":
					sys, val, ok := strings.Cut(one, "|")
					if !ok || sys == "" || val == "" {
						return nil, nil, fhir.Invalid(name, "patient.identifier must be system|value")
					}
					if err := addRecord(string(mpi.KeyOf(sys, val)), modifier == "mdm"); err != nil {
						return nil, nil, err
					}
				case strings.HasPrefix(one, "Person/"):
					if err := addPerson(strings.TrimPrefix(one, "Person/")); err != nil {
						return nil, nil, err
					}
				default:
					id := strings.TrimPrefix(one, "Patient/")
					key, ok := tx.PatientKeyByID(id)
					if !ok {
						key = "unknown|" + id // matches nothing
					}
					if err := addRecord(key, modifier == "mdm"); err != nil {
						return nil, nil, err
					}
				}
			}
		}
	}
	slices.Sort(records)
	return slices.Compact(records), euids, nil
}

// searchDocuments is MHD Find Document References (ITI-67): GET /fhir/DocumentReference.
func (s *Server) searchDocuments(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	var sq search.Query
	tokens := map[string]*[]string{"type": &sq.Types, "category": &sq.Categories, "facility": &sq.FacilityTypes,
		"setting": &sq.PracticeSettings, "event": &sq.Events, "format": &sq.Formats, "security-label": &sq.SecurityLabels,
		"identifier": &sq.Identifiers, "author.given": &sq.AuthorGiven, "author.family": &sq.AuthorFamily,
		"related": &sq.Related}
	hasPatient, includeSubject := false, false
	for name, values := range q {
		base, modifier, _ := strings.Cut(name, ":")
		var err error
		switch {
		case base == "patient" || base == "patient.identifier" || base == "subject":
			hasPatient = true
		case base == "security-label" && modifier == "not":
			sq.ExcludeSecurityLabels = append(sq.ExcludeSecurityLabels, splitValues(values)...)
		case tokens[base] != nil && modifier == "":
			*tokens[base] = append(*tokens[base], splitValues(values)...)
		case base == "related" && modifier == "identifier":
			sq.RelatedIdentifiers = append(sq.RelatedIdentifiers, splitValues(values)...)
		case modifier != "":
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "modifier :%s is not supported on %s", modifier, base)
		case base == "status":
			for _, v := range splitValues(values) {
				if !search.Status(v).Valid() {
					return fhir.Invalid("status", "status %q must be current, superseded or entered-in-error", v)
				}
				sq.Statuses = append(sq.Statuses, search.Status(v))
			}
		case base == "date" || base == "creation" || base == "period":
			for _, v := range values {
				p, perr := search.ParseDateParam(v)
				if perr != nil {
					return fhir.Invalid(base, "%v", perr)
				}
				// The registry keeps one creation time: attachment.creation, else
				// DocumentReference.date. date and creation (MHD) both search it.
				if base == "date" || base == "creation" {
					sq.Created = append(sq.Created, p)
				} else {
					sq.Period = append(sq.Period, p)
				}
			}
		case base == "_text":
			sq.Text = q.Get("_text")
		case base == "_sort":
			switch q.Get("_sort") {
			case "-date", "":
				sq.Sort = search.NewestFirst
			case "date":
				sq.Sort = search.OldestFirst
			default:
				return fhir.Errorf(http.StatusBadRequest, "not-supported", "_sort", "_sort supports date and -date")
			}
		case base == "_count":
			sq.Limit, err = strconv.Atoi(q.Get("_count"))
			if err != nil || sq.Limit < 1 || sq.Limit > search.MaxLimit {
				return fhir.Invalid("_count", "_count must be 1 to %d", search.MaxLimit)
			}
		case base == "_cursor":
			sq.After = q.Get("_cursor")
		case base == "_summary":
			if q.Get("_summary") != "count" {
				return fhir.Errorf(http.StatusBadRequest, "not-supported", "_summary", "_summary supports count")
			}
			sq.CountOnly = true
		case base == "_include":
			for _, v := range values {
				if v != "DocumentReference:subject" && v != "DocumentReference:patient" {
					return fhir.Errorf(http.StatusBadRequest, "not-supported", "_include", "_include supports DocumentReference:subject and DocumentReference:patient")
				}
				includeSubject = true
			}
		case base == "consistency":
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "search parameter %q is not supported on DocumentReference", name)
		}
	}
	if !hasPatient {
		return fhir.Invalid("patient", "a DocumentReference search needs patient or patient.identifier (MHD ITI-67)")
	}
	if err := s.waitForIndex(r.Context(), rq); err != nil {
		return err
	}
	var entries []fhir.BundleEntry
	var included []string // record keys of the Patients to include
	var res *search.Results
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		records, euids, err := patientScope(tx, q)
		if err != nil {
			return err
		}
		var withhold []string
		if sq.PatientRecords, sq.PersonEUIDs, withhold, err = rq.guard.DocumentScope(guardState{tx}, records, euids); err != nil {
			return err
		}
		sq.ExcludeSecurityLabels = append(sq.ExcludeSecurityLabels, withhold...)
		rq.disclose(sq.PersonEUIDs, nil)
		discloseRecordKeysTx(tx, rq, sq.PatientRecords...)
		if res, err = s.node.Documents().Search(r.Context(), sq); err != nil {
			return err
		}
		size := 0
		for i, h := range res.Hits {
			sd, ok, err := tx.Document(h.ID)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			body, err := fhir.StoredDocument(sd.Resource, sd.Document, sd.Version, sd.Updated)
			if err != nil {
				return err
			}
			if size += len(body); size > s.pageBudget() && len(entries) > 0 {
				// The page would outgrow the answer's bound: end it here; the next page
				// starts after the last document sent.
				res.Next = res.Hits[i-1].Cursor
				break
			}
			entries = append(entries, fhir.BundleEntry{FullURL: "DocumentReference/" + h.ID, Resource: json.RawMessage(body), Search: &fhir.SearchInfo{Mode: "match"}})
			if includeSubject && !slices.Contains(included, sd.Document.PatientRecord) {
				included = append(included, sd.Document.PatientRecord)
			}
		}
		// _include: the Patients the page's documents are about (within the scope the
		// guard already allowed).
		for _, key := range included {
			p, err := loadPatientByKey(tx, rq.guard, key)
			if err != nil {
				return err
			}
			rq.disclosePatient(p)
			entries = append(entries, fhir.BundleEntry{FullURL: "Patient/" + p.ID, Resource: p, Search: &fhir.SearchInfo{Mode: "include"}})
		}
		return nil
	})
	if errors.Is(err, search.ErrInvalidQuery) {
		return fhir.Invalid("", "%v", err)
	}
	if err != nil {
		return err
	}
	b := fhir.Bundle{ResourceType: "Bundle", Type: "searchset", Total: int(res.Total), Entry: entries}
	b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: r.URL.RequestURI()})
	if res.Next != "" {
		next := r.URL.Query()
		next.Del("_offset")
		next.Set("_cursor", res.Next)
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: r.URL.Path + "?" + next.Encode()})
	}
	return writeFHIR(w, http.StatusOK, b)
}

func splitValues(values []string) []string {
	var out []string
	for _, v := range values {
		for _, one := range strings.Split(v, ",") {
			if one = strings.TrimSpace(one); one != "" {
				out = append(out, one)
			}
		}
	}
	return out
}

// Location is one participant in a locate answer.
type Location struct {
	Participant    LocationParticipant `json:"participant"`
	Identifiers    []fhir.Identifier   `json:"identifiers"`
	DocumentCount  int                 `json:"document_count"`
	NewestDocument string              `json:"newest_document,omitempty"`
	DocumentTypes  []string            `json:"document_types"`
}

// LocationParticipant names a participant holding records of the patient.
type LocationParticipant struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Kind     string `json:"kind,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
}

// LocateResult is the answer of GET /v1/locate.
type LocateResult struct {
	EUID      string     `json:"euid"`
	Grade     string     `json:"grade"`
	Score     *float64   `json:"score,omitempty"`
	Locations []Location `json:"locations"`
}

// locate answers "where does this patient have records?" in one round trip: the person
// (found by identifier, EUID, or demographics matched with a minimum grade), and for every
// participant holding records of it, the patient's identifiers there and a summary of the
// current documents it holds. A participant that knows the patient but holds no document
// is listed with a count of 0.
func (s *Server) locate(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	minGrade := q.Get("min_grade")
	if minGrade == "" {
		minGrade = mpi.GradeCertain
	}
	gradeRank := map[string]int{mpi.GradeCertain: 3, mpi.GradeProbable: 2, mpi.GradePossible: 1}
	if gradeRank[minGrade] == 0 {
		return fhir.Invalid("min_grade", "min_grade must be certain, probable or possible")
	}
	var demo mpi.Record
	for name := range q {
		switch name {
		case "identifier", "euid", "min_grade", "consistency":
		case "family":
			demo.Family = q.Get(name)
		case "given":
			demo.Given = strings.Fields(q.Get(name))
		case "birthdate":
			demo.BirthDate = q.Get(name)
		case "gender":
			demo.Sex = q.Get(name)
		case "postalcode", "address-postalcode":
			demo.PostalCode = q.Get(name)
		case "phone", "telecom":
			demo.Phones = []string{q.Get(name)}
		case "ssn":
			demo.SSN = q.Get(name)
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "locate parameter %q is not supported", name)
		}
	}
	if err := s.waitForIndex(r.Context(), rq); err != nil {
		return err
	}
	var res LocateResult
	err := s.node.State().View(func(tx *state.Tx) error {
		// missing is this query's answer for a patient that is not there; a patient the
		// caller may not see gets the very same answer.
		var missing error
		switch {
		case q.Get("identifier") != "":
			sys, val, ok := strings.Cut(q.Get("identifier"), "|")
			if !ok || sys == "" || val == "" {
				return fhir.Invalid("identifier", "identifier must be system|value")
			}
			sr, err := tx.MPI().Record(mpi.KeyOf(sys, val))
			if err != nil {
				return err
			}
			missing = fhir.Errorf(http.StatusNotFound, "not-found", "identifier", "no patient is registered with that identifier")
			if sr == nil {
				return missing
			}
			res.EUID, res.Grade = sr.EUID, mpi.GradeCertain
		case q.Get("euid") != "":
			missing = fhir.Errorf(http.StatusNotFound, "not-found", "euid", "Person/%s does not exist", q.Get("euid"))
			if _, ok, err := tx.MPI().Person(q.Get("euid")); err != nil {
				return err
			} else if !ok {
				return missing
			}
			res.EUID, res.Grade = q.Get("euid"), mpi.GradeCertain
		default:
			if demo.Family == "" && len(demo.Given) == 0 && demo.BirthDate == "" && demo.SSN == "" {
				return fhir.Invalid("identifier", "locate needs identifier, euid, or demographics (family, given, birthdate, …)")
			}
			cands, err := mpi.NewMatcher().Match(tx.MPI(), demo, 2)
			if err != nil {
				return err
			}
			missing = fhir.Errorf(http.StatusNotFound, "not-found", "", "no person matches with grade %s or better", minGrade)
			if len(cands) == 0 || gradeRank[cands[0].Grade] < gradeRank[minGrade] {
				return missing
			}
			score := cands[0].Score
			res.EUID, res.Grade, res.Score = cands[0].EUID, cands[0].Grade, &score
		}
		d, err := rq.guard.Person(guardState{tx}, res.EUID)
		if err != nil {
			return err
		}
		if !d.Disclose {
			// Not the next candidate: that would be another person, presented as this one.
			res = LocateResult{}
			return missing
		}
		res.Locations, err = s.locations(r.Context(), tx, res.EUID, d.WithholdLabels)
		return err
	})
	if err != nil {
		return err
	}
	rq.disclose([]string{res.EUID}, locatedRecords(res))
	return writeJSON(w, http.StatusOK, res)
}

// locations gathers, per participant, the person's identifiers there and the documents it
// holds.
func (s *Server) locations(ctx context.Context, tx *state.Tx, euid string, withhold []string) ([]Location, error) {
	records, err := personRecords(tx, euid)
	if err != nil {
		return nil, err
	}
	byParticipant := map[string]*Location{}
	var order []string
	location := func(id string) (*Location, error) {
		if l, ok := byParticipant[id]; ok {
			return l, nil
		}
		p, err := tx.Participant(id)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return nil, err
		}
		l := &Location{Participant: LocationParticipant{ID: id, Name: p.Name, Kind: string(p.Kind), Endpoint: p.Endpoint},
			Identifiers: []fhir.Identifier{}, DocumentTypes: []string{}}
		byParticipant[id] = l
		order = append(order, id)
		return l, nil
	}
	for _, key := range records {
		meta, ok, err := tx.PatientMeta(key)
		if err != nil {
			return nil, err
		}
		owner := meta.Owner
		if !ok || owner == "" {
			sys, _ := mpi.RecordKey(key).Split()
			owner, _ = tx.ParticipantIDBySystem(sys)
		}
		l, err := location(owner)
		if err != nil {
			return nil, err
		}
		sys, val := mpi.RecordKey(key).Split()
		l.Identifiers = append(l.Identifiers, fhir.Identifier{System: sys, Value: val})
	}
	holdings, err := s.node.Documents().Locate(ctx, search.LocateQuery{PatientRecords: records, PersonEUIDs: []string{euid}, ExcludeSecurityLabels: withhold})
	if err != nil {
		return nil, err
	}
	for _, h := range holdings {
		l, err := location(h.Holder)
		if err != nil {
			return nil, err
		}
		l.DocumentCount = h.CurrentDocuments
		if !h.Newest.IsZero() {
			l.NewestDocument = h.Newest.UTC().Format("2006-01-02")
		}
		l.DocumentTypes = append(l.DocumentTypes, h.Types...)
	}
	out := make([]Location, 0, len(order))
	for _, id := range order {
		out = append(out, *byParticipant[id])
	}
	slices.SortStableFunc(out, func(a, b Location) int { return strings.Compare(a.Participant.ID, b.Participant.ID) })
	return out, nil
}
