package locator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

const (
	defaultPatientCount = 20
	maxPatientCount     = 200
	defaultMatchCount   = 10
	maxMatchCount       = 100
)

// searchPatients is the PDQm query (ITI-78): GET /fhir/Patient?family=&given=&birthdate=
// &gender=&address-postalcode=&address-city=&telecom=&email=&identifier=&_id=&_count=.
// Names are forgiving: a family or given name matches by prefix or sound (Double
// Metaphone), and a given name also by the formal names of a nickname; ":exact" turns that
// off. Results are ranked exact > prefix > phonetic, then by record.
func (s *Server) searchPatients(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	var pq state.PatientQuery
	var family, given, idSystem, idValue, id string
	var gender string
	var post patientFilter
	bounds := dateBounds{}
	for name, values := range q {
		base, modifier, _ := strings.Cut(name, ":")
		if modifier != "" && !(modifier == "exact" && (base == "family" || base == "given")) {
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "modifier :%s is not supported on %s", modifier, base)
		}
		v := values[0]
		if len(values) > 1 && base != "birthdate" {
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "parameter %s may be given once", name)
		}
		switch base {
		case "family":
			family, pq.ExactFamily = v, modifier == "exact"
		case "given":
			given, pq.ExactGiven = v, modifier == "exact"
		case "birthdate":
			for _, bv := range values {
				if err := bounds.add(bv); err != nil {
					return err
				}
			}
		case "gender":
			if gender = fhir.Gender(v); gender == "" {
				return fhir.Invalid("gender", "gender %q must be male, female, other or unknown", v)
			}
		case "address-postalcode":
			pq.Postal = v
		case "address-city":
			pq.City = v
		case "telecom":
			sys, val, ok := strings.Cut(v, "|")
			if !ok {
				sys, val = "phone", v
			}
			switch sys {
			case "phone", "sms", "":
				pq.Phone = val
			case "email":
				pq.Email = val
			default:
				return fhir.Invalid("telecom", "telecom system %q is not searchable (phone or email)", sys)
			}
		case "email":
			pq.Email = v
		case "address":
			post.address = v
		case "address-state":
			post.state = v
		case "mothersMaidenName":
			post.mothersMaidenName = v
		case "active":
			switch v {
			case "true", "false":
				post.active = v
			default:
				return fhir.Invalid("active", "active %q must be true or false", fhir.Clip(v))
			}
		case "identifier":
			if sys, val, ok := strings.Cut(v, "|"); ok {
				idSystem, idValue = sys, val
			} else {
				idValue = v
			}
			if idValue == "" {
				return fhir.Invalid("identifier", "identifier needs a value")
			}
		case "_id":
			id = v
		case "_count", "_offset", "consistency":
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "search parameter %q is not supported on Patient", name)
		}
	}
	count, offset, err := pageParams(q, defaultPatientCount, 0, maxPatientCount)
	if err != nil {
		return err
	}
	n := mpi.Normalize(mpi.Record{Family: family, Given: nonEmpty(given), PostalCode: pq.Postal, City: pq.City, Phones: nonEmpty(pq.Phone), Email: pq.Email, Sex: gender})
	pq.Family, pq.FamilyCode, pq.Given, pq.GivenCode, pq.FormalCodes = n.Family, n.FamilyCode, n.Given, n.GivenCode, n.FormalCodes
	pq.Postal, pq.City, pq.Email, pq.Sex = n.Postal, n.City, n.Email, n.Sex
	pq.Phone = ""
	if len(n.Phones) > 0 {
		pq.Phone = n.Phones[0]
	}
	pq.BirthFrom, pq.BirthTo = bounds.from, bounds.to
	pq.IdentifierValue = idValue
	if bounds.impossible() {
		return writeFHIR(w, http.StatusOK, searchset(r, nil, 0, 0, count))
	}
	criteria := pq.Family != "" || pq.Given != "" || pq.BirthFrom != "" || pq.BirthTo != "" || pq.Postal != "" ||
		pq.City != "" || pq.Phone != "" || pq.Email != "" || pq.IdentifierValue != "" || pq.Sex != ""
	if !rq.principal.IsSteward() {
		// The admin and the data stewards search broadly (finding duplicates is their work);
		// each search is audited.
		if err := minimumCriteria(pq, id, bounds); err != nil {
			return err
		}
	}

	var entries []fhir.BundleEntry
	total := 0
	err = s.node.State().View(func(tx *state.Tx) error {
		var hits []state.PatientHit
		if id != "" {
			key, ok := tx.PatientKeyByID(id)
			if !ok {
				return nil
			}
			hits = []state.PatientHit{{Key: mpi.RecordKey(key)}}
			if criteria {
				all, err := tx.SearchPatients(pq)
				if err != nil {
					return err
				}
				hits = keep(all, func(h state.PatientHit) bool { return string(h.Key) == key })
			}
		} else {
			if !criteria || (pq.Sex != "" && pq.Family == "" && pq.Given == "" && pq.BirthFrom == "" && pq.BirthTo == "" && pq.Postal == "" && pq.City == "" && pq.Phone == "" && pq.Email == "" && pq.IdentifierValue == "") {
				return fhir.Errorf(http.StatusBadRequest, "too-costly", "", "a patient search needs at least one of family, given, birthdate, address-postalcode, address-city, telecom, email, identifier or _id")
			}
			var err error
			if hits, err = tx.SearchPatients(pq); err != nil {
				return err
			}
		}
		if idSystem != "" {
			hits = keep(hits, func(h state.PatientHit) bool { sys, _ := h.Key.Split(); return sys == idSystem })
		}
		var err error
		if hits, err = visibleHits(rq.guard, tx, hits); err != nil {
			return err
		}
		if !post.empty() {
			var kept []state.PatientHit
			for _, h := range hits {
				p, err := loadPatientByKey(tx, rq.guard, string(h.Key))
				if err != nil {
					return err
				}
				if post.matches(p) {
					kept = append(kept, h)
				}
			}
			hits = kept
		}
		if len(hits) > MaxParticipantMatches && !rq.principal.IsSteward() {
			// A demographic search is for finding a patient, not for listing many: as PDQ
			// suppliers do, a search that matches more is refused, not paged.
			return fhir.Errorf(http.StatusBadRequest, "too-costly", "", "more than %d patients match; add criteria (given name, full birth date, postal code, identifier)", MaxParticipantMatches)
		}
		total = len(hits)
		end := min(offset+count, len(hits))
		size := 0
		for i := offset; i < end; i++ {
			p, err := loadPatientByKey(tx, rq.guard, string(hits[i].Key))
			if err != nil {
				return err
			}
			if size += len(mustJSON(p)); size > s.pageBudget() && len(entries) > 0 {
				break // the answer's bound: the next link continues from here
			}
			rq.disclosePatient(p)
			entries = append(entries, fhir.BundleEntry{FullURL: "Patient/" + p.ID, Resource: p, Search: &fhir.SearchInfo{Mode: "match"}})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeFHIR(w, http.StatusOK, searchsetPage(r, entries, total, offset, count))
}

// patientFilter holds the PDQm parameters the patient index does not key (active, address,
// address-state, mothersMaidenName): they narrow what the indexed criteria found, so that
// they never widen a search past the minimum criteria.
type patientFilter struct {
	active, address, state, mothersMaidenName string
}

func (f patientFilter) empty() bool {
	return f.active == "" && f.address == "" && f.state == "" && f.mothersMaidenName == ""
}

// MothersMaidenNameURL is the R4 extension PDQm's mothersMaidenName searches.
const MothersMaidenNameURL = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"

// matches applies the filter as FHIR string search does (case- and accent-insensitive,
// starts with); a record that does not say it is inactive counts as active.
func (f patientFilter) matches(p fhir.Patient) bool {
	if f.active != "" {
		active := p.Active == nil || *p.Active
		if (f.active == "true") != active {
			return false
		}
	}
	if f.address != "" && !slices.ContainsFunc(p.Address, func(a fhir.Address) bool {
		parts := append(slices.Clone(a.Line), a.City, a.District, a.State, a.PostalCode, a.Country, a.Text)
		return slices.ContainsFunc(parts, func(v string) bool { return startsWith(v, f.address) })
	}) {
		return false
	}
	if f.state != "" && !slices.ContainsFunc(p.Address, func(a fhir.Address) bool { return startsWith(a.State, f.state) }) {
		return false
	}
	if f.mothersMaidenName != "" {
		found := false
		for _, raw := range p.Extension {
			var ext struct {
				URL         string `json:"url"`
				ValueString string `json:"valueString"`
			}
			if json.Unmarshal(raw, &ext) == nil && ext.URL == MothersMaidenNameURL && startsWith(ext.ValueString, f.mothersMaidenName) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// startsWith is FHIR string matching: v starts with the searched text, ignoring case and
// accents.
func startsWith(v, search string) bool {
	return v != "" && strings.HasPrefix(foldText(v), foldText(search))
}

// foldText lower-cases s and drops its accents (é → e).
func foldText(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// MaxParticipantMatches is the most patients a participant's PDQm search may match (the
// admin is not limited): beyond it the search is refused and the caller asked to narrow it.
const MaxParticipantMatches = 100

// minNameCriterion is the shortest name that counts towards the minimum criteria: name
// criteria match by prefix, and a letter or two matches a large part of any population.
const minNameCriterion = 2

// maxBirthSpanDays is the widest birth date range that counts towards the minimum criteria.
const maxBirthSpanDays = 366

// minimumCriteria is what a participant's PDQm search must carry, as PDQ suppliers require
// before they answer (README, "Minimum search criteria"): an identifier or _id; or a
// telephone number or e-mail address; or a family name with a given name, a birth date
// range of at most a year or a postal code; or a given name with a full birth date. Names
// count from two characters. Anything broader could page out the index.
func minimumCriteria(pq state.PatientQuery, id string, b dateBounds) error {
	nameLen := func(s string, exact bool) bool { return s != "" && (exact || len([]rune(s)) >= minNameCriterion) }
	family, given := nameLen(pq.Family, pq.ExactFamily), nameLen(pq.Given, pq.ExactGiven)
	birth, birthDay := false, false
	if b.from != "" && b.to != "" {
		from, err1 := time.Parse("20060102", b.from)
		to, err2 := time.Parse("20060102", b.to)
		birth = err1 == nil && err2 == nil && to.Sub(from) <= maxBirthSpanDays*24*time.Hour
		birthDay = birth && b.from == b.to
	}
	switch {
	case pq.IdentifierValue != "" || id != "":
	case pq.Phone != "" || pq.Email != "":
	case family && (given || birth || pq.Postal != ""):
	case given && birthDay:
	default:
		return fhir.Errorf(http.StatusBadRequest, "too-costly", "", "a patient search needs identifier or _id; or telecom or email; or family with given, birthdate (a day, month or year) or address-postalcode; or given with a full birthdate (names of at least %d characters)", minNameCriterion)
	}
	return nil
}

func keep(hits []state.PatientHit, ok func(state.PatientHit) bool) []state.PatientHit {
	var out []state.PatientHit
	for _, h := range hits {
		if ok(h) {
			out = append(out, h)
		}
	}
	return out
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// searchsetPage is searchset for a page that may have ended before count entries (to
// bound the answer): the next page starts after the last entry sent.
func searchsetPage(r *http.Request, entries []fhir.BundleEntry, total, offset, count int) fhir.Bundle {
	b := fhir.Bundle{ResourceType: "Bundle", Type: "searchset", Total: total, Entry: entries}
	b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: r.URL.RequestURI()})
	if sent := offset + len(entries); len(entries) > 0 && sent < total {
		next := r.URL.Query()
		next.Set("_offset", strconv.Itoa(sent))
		next.Set("_count", strconv.Itoa(count))
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: r.URL.Path + "?" + next.Encode()})
	}
	return b
}

// searchset wraps a page of entries in a Bundle with self and next links.
func searchset(r *http.Request, entries []fhir.BundleEntry, total, offset, count int) fhir.Bundle {
	b := fhir.Bundle{ResourceType: "Bundle", Type: "searchset", Total: total, Entry: entries}
	b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: r.URL.RequestURI()})
	if offset+count < total {
		next := r.URL.Query()
		next.Set("_offset", strconv.Itoa(offset+count))
		next.Set("_count", strconv.Itoa(count))
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: r.URL.Path + "?" + next.Encode()})
	}
	return b
}

// dateBounds intersects FHIR date search values into an inclusive YYYYMMDD range.
type dateBounds struct {
	from, to string
	never    bool
}

func (d *dateBounds) impossible() bool { return d.never }

// add applies one birthdate value: an optional prefix (eq, ge, gt, le, lt) and a date of
// year, month or day precision.
func (d *dateBounds) add(v string) error {
	prefix := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, err := dateRange(v)
	if err != nil {
		return fhir.Invalid("birthdate", "birthdate %q: %v", v, err)
	}
	switch prefix {
	case "eq":
	case "ge":
		hi = ""
	case "gt":
		lo, hi = nextDay(hi), ""
	case "le":
		lo = ""
	case "lt":
		lo, hi = "", prevDay(lo)
	default:
		return fhir.Errorf(http.StatusBadRequest, "not-supported", "birthdate", "birthdate prefix %q is not supported (eq, ge, gt, le, lt)", prefix)
	}
	if lo != "" && (d.from == "" || lo > d.from) {
		d.from = lo
	}
	if hi != "" && (d.to == "" || hi < d.to) {
		d.to = hi
	}
	if d.from != "" && d.to != "" && d.from > d.to {
		d.never = true
	}
	return nil
}

// dateRange returns the first and last day (YYYYMMDD) a FHIR date covers.
func dateRange(v string) (string, string, error) {
	switch len(v) {
	case 4:
		if _, err := time.Parse("2006", v); err != nil {
			return "", "", fmt.Errorf("not a year")
		}
		return v + "0101", v + "1231", nil
	case 7:
		t, err := time.Parse("2006-01", v)
		if err != nil {
			return "", "", fmt.Errorf("not a month")
		}
		return t.Format("20060102"), t.AddDate(0, 1, -1).Format("20060102"), nil
	case 10:
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			return "", "", fmt.Errorf("not a date")
		}
		return t.Format("20060102"), t.Format("20060102"), nil
	}
	return "", "", fmt.Errorf("use YYYY, YYYY-MM or YYYY-MM-DD")
}

func nextDay(d string) string {
	t, _ := time.Parse("20060102", d)
	return t.AddDate(0, 0, 1).Format("20060102")
}

func prevDay(d string) string {
	t, _ := time.Parse("20060102", d)
	return t.AddDate(0, 0, -1).Format("20060102")
}

// matchScore maps a Fellegi–Sunter total (log2 likelihood ratio) to 0..1 for
// Bundle.entry.search.score: a logistic curve centred on the lower threshold, so that the
// lower threshold scores 0.5 and the default upper threshold (6 bits higher) about 0.98.
func matchScore(w, lower float64) float64 {
	return math.Round(1/(1+math.Exp2(lower-w))*1e4) / 1e4
}

// matchPatient is POST /fhir/Patient/$match: the persons that could be the given Patient,
// best first, each as a Patient (fhir.GoldenPatient: the golden view, linked to its source
// records and its Person) with its score, match grade and the agreement of every field.
func (s *Server) matchPatient(w http.ResponseWriter, r *http.Request, rq *request) error {
	var params fhir.Parameters
	if err := fhir.Decode(bytes.NewReader(rq.body), "Parameters", &params); err != nil {
		return err
	}
	var resource []byte
	onlyCertain := false
	count := defaultMatchCount
	for i, p := range params.Parameter {
		switch p.Name {
		case "resource":
			resource = p.Resource
		case "onlyCertainMatches":
			if p.ValueBoolean == nil {
				return fhir.Invalid(fmt.Sprintf("Parameters.parameter[%d]", i), "onlyCertainMatches needs valueBoolean")
			}
			onlyCertain = *p.ValueBoolean
		case "count":
			if p.ValueInteger == nil || *p.ValueInteger < 1 || *p.ValueInteger > maxMatchCount {
				return fhir.Invalid(fmt.Sprintf("Parameters.parameter[%d]", i), "count needs a valueInteger from 1 to %d", maxMatchCount)
			}
			count = *p.ValueInteger
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", fmt.Sprintf("Parameters.parameter[%d]", i), "$match parameter %q is not supported", p.Name)
		}
	}
	if resource == nil {
		return fhir.Invalid("Parameters.parameter", "$match needs a resource parameter holding a Patient")
	}
	var patient fhir.Patient
	if err := fhir.Decode(bytes.NewReader(resource), "Patient", &patient); err != nil {
		return err
	}
	rec, err := fhir.RecordOf(patient, func([]string) (string, error) { return "", nil })
	if err != nil {
		return err
	}
	query := rec.MPIRecord()
	query.System, query.Value = "", "" // a query is not a record: do not exclude any

	var entries []fhir.BundleEntry
	err = s.node.State().View(func(tx *state.Tx) error {
		store := tx.MPI()
		cfg, ok, err := store.Config()
		if err != nil {
			return err
		}
		if !ok {
			cfg = mpi.DefaultConfig()
		}
		m := mpi.NewMatcher()
		cands, err := m.Match(store, query, count)
		if err != nil {
			return err
		}
		for _, c := range cands {
			if onlyCertain && c.Grade != mpi.GradeCertain {
				continue
			}
			if d, err := rq.guard.Person(guardState{tx}, c.EUID); err != nil {
				return err
			} else if !d.Disclose {
				continue
			}
			person, err := loadPerson(tx, c.EUID)
			if err != nil {
				return err
			}
			ex, err := m.ExplainCandidate(store, query, c)
			if err != nil {
				return fmt.Errorf("candidate record %s: %w", c.Record, err)
			}
			score := matchScore(c.Score, cfg.Lower)
			search := &fhir.SearchInfo{Mode: "match", Score: &score, Extension: []fhir.Extension{{URL: fhir.MatchGradeURL, ValueCode: c.Grade}}}
			for _, f := range ex.Fields {
				weight := math.Round(f.Weight*100) / 100
				search.Extension = append(search.Extension, fhir.Extension{URL: fhir.MatchFieldURL, Extension: []fhir.Extension{
					{URL: "field", ValueCode: f.Field}, {URL: "level", ValueCode: f.Level}, {URL: "weight", ValueDecimal: &weight},
				}})
			}
			rq.disclosePerson(person)
			entries = append(entries, fhir.BundleEntry{FullURL: "Patient/" + c.EUID, Resource: fhir.GoldenPatient(person), Search: search})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeFHIR(w, http.StatusOK, fhir.Bundle{ResourceType: "Bundle", Type: "searchset", Total: len(entries), Entry: entries})
}

// pix is the PIXm query (ITI-83): GET /fhir/Patient/$ihe-pix?sourceIdentifier=system|value
// [&targetSystem=uri…]: the other identifiers of the same person (and the Patient
// resources carrying them). Errors follow ITI-83: an unknown source domain is 400, an
// unknown identifier 404, an unknown target system 403.
func (s *Server) pix(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	for name := range q {
		if name != "sourceIdentifier" && name != "targetSystem" && name != "consistency" && name != "_format" {
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "$ihe-pix parameter %q is not supported", name)
		}
	}
	system, value, ok := strings.Cut(q.Get("sourceIdentifier"), "|")
	if !ok || system == "" || value == "" {
		return fhir.Invalid("sourceIdentifier", "sourceIdentifier must be system|value")
	}
	var targets []string
	for _, t := range q["targetSystem"] {
		for _, one := range strings.Split(t, ",") {
			if one = strings.TrimSpace(one); one != "" {
				targets = append(targets, one)
			}
		}
	}
	var out fhir.Parameters
	out.ResourceType = "Parameters"
	err := s.node.State().View(func(tx *state.Tx) error {
		if _, known := tx.ParticipantIDBySystem(system); !known {
			return fhir.Errorf(http.StatusBadRequest, "code-invalid", "sourceIdentifier", "sourceIdentifier Assigning Authority not found")
		}
		for _, t := range targets {
			if _, known := tx.ParticipantIDBySystem(t); !known && t != fhir.EUIDSystem {
				return fhir.Errorf(http.StatusForbidden, "code-invalid", "targetSystem", "targetSystem not found")
			}
		}
		source := mpi.KeyOf(system, value)
		sr, err := tx.MPI().Record(source)
		if err != nil {
			return err
		}
		missing := fhir.Errorf(http.StatusNotFound, "not-found", "sourceIdentifier", "sourceIdentifier Patient Identifier not found")
		if sr == nil {
			return missing
		}
		// Cross-references reveal the person, so the person's directives decide, even
		// when the source record is the caller's own.
		if d, err := rq.guard.Person(guardState{tx}, sr.EUID); err != nil {
			return err
		} else if !d.Disclose {
			return missing
		}
		person, ok, err := tx.MPI().Person(sr.EUID)
		if err != nil || !ok {
			return fmt.Errorf("person %s of %s: %w", sr.EUID, source, errOr(err, state.ErrNotFound))
		}
		rq.disclose([]string{sr.EUID}, []string{model.PatientID(string(source))})
		wanted := func(sys string) bool { return len(targets) == 0 || slices.Contains(targets, sys) }
		if wanted(fhir.EUIDSystem) {
			out.Parameter = append(out.Parameter, fhir.Parameter{Name: "targetIdentifier", ValueIdentifier: &fhir.Identifier{System: fhir.EUIDSystem, Value: sr.EUID}})
		}
		for _, key := range person.Records {
			sys, val := key.Split()
			if key == source || !wanted(sys) {
				continue
			}
			out.Parameter = append(out.Parameter,
				fhir.Parameter{Name: "targetIdentifier", ValueIdentifier: &fhir.Identifier{System: sys, Value: val}},
				fhir.Parameter{Name: "targetId", ValueReference: &fhir.Reference{Reference: "Patient/" + model.PatientID(string(key))}})
			rq.disclose(nil, []string{model.PatientID(string(key))})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeFHIR(w, http.StatusOK, out)
}

func errOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// searchPatientsPost is POST /fhir/Patient/_search (FHIR's search by POST): the parameters
// of a PDQm search as an application/x-www-form-urlencoded body, beside any in the URL, so
// that names and birth dates stay out of URLs (the web console searches this way). It is
// the same search, through the same policy point, audited with its query.
func (s *Server) searchPatientsPost(w http.ResponseWriter, r *http.Request, rq *request) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return fhir.Errorf(http.StatusUnsupportedMediaType, "not-supported", "", "a search by POST sends its parameters as application/x-www-form-urlencoded")
	}
	body, err := url.ParseQuery(string(rq.body))
	if err != nil {
		return fhir.Invalid("", "the search parameters in the body are not form-encoded: %v", err)
	}
	q := r.URL.Query()
	for name, values := range body {
		q[name] = append(q[name], values...)
	}
	// Answered as the GET search of the same parameters, whose links page it on.
	r.URL.Path, r.URL.RawQuery = "/fhir/Patient", q.Encode()
	return s.searchPatients(w, r, rq)
}
