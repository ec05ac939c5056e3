package search

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// ErrInvalidQuery is wrapped by every error that comes from the query rather
// than from the index: the message names the parameter, so the caller can
// answer 400 with it.
var ErrInvalidQuery = errors.New("search: invalid query")

// Paging limits. Deep paging is cheaper with After than with Offset, which
// makes Bleve collect and sort every skipped hit.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
	MaxOffset    = 10000
)

// SortOrder orders results by creation date; ties (and undated documents,
// which come last) are broken by id, so paging is stable.
type SortOrder int

const (
	NewestFirst SortOrder = iota // FHIR _sort=-date, the default
	OldestFirst                  // FHIR _sort=date
)

// Query is a Find Document References search. Each list holds alternatives
// (any of them matches, FHIR's comma); the lists and conditions combine with
// AND. Token lists take FHIR token syntax: "system|code", "code" (any
// system), "|code" (no system) or "system|" (any code of the system). An
// empty Query matches every document.
type Query struct {
	// PatientRecords are record keys "system|value"; PersonEUIDs widen the
	// search to every record linked to the person. A document matches if it
	// belongs to any of them.
	PatientRecords []string
	PersonEUIDs    []string
	// Identifiers are master identifier tokens ("system|value" or "value").
	Identifiers []string
	Statuses    []Status

	// Created conditions all hold on the creation date (FHIR date); Period
	// conditions all hold on the service period (FHIR period).
	Created []DateParam
	Period  []DateParam

	Types            []string
	Categories       []string
	FacilityTypes    []string
	PracticeSettings []string
	Events           []string
	// Related matches a related record's reference (Encounter/123) exactly;
	// RelatedIdentifiers its identifier as a token (system|value, or value).
	Related            []string
	RelatedIdentifiers []string
	Formats            []string
	// SecurityLabels: the document has one of them. ExcludeSecurityLabels:
	// it has none of them (FHIR security-label:not; consent filtering).
	SecurityLabels        []string
	ExcludeSecurityLabels []string
	// Holders are participant ids.
	Holders []string
	// AuthorGiven and AuthorFamily match an author name that starts with the
	// value, ignoring case and accents (FHIR string search).
	AuthorGiven  []string
	AuthorFamily []string
	// Text is free text over title and description (FHIR _text): words that
	// must all occur (stemmed), "quoted phrases", -excluded words.
	Text string

	Sort SortOrder
	// Limit is the page size (0: DefaultLimit). Offset skips hits; After
	// continues from a page's Next cursor instead (not both).
	Limit  int
	Offset int
	After  string
	// CountOnly returns only Total (FHIR _summary=count).
	CountOnly bool
}

// Hit is one matching document. Read the document itself from the source of
// truth; a hit whose document is gone there was deleted after the index
// answered.
type Hit struct {
	ID      string
	Created time.Time // zero when the document has no creation date
	// Cursor continues the search after this hit (Query.After): a caller that sends only
	// part of a page (to bound its answer) pages on from the last hit it sent.
	Cursor string
}

// Results is one page of a search.
type Results struct {
	Total uint64 // matches of the whole query, not of this page
	Hits  []Hit
	// Next is the cursor of the next page (Query.After), empty on the last.
	Next string
}

// Search runs a query.
func (ix *Index) Search(ctx context.Context, q Query) (*Results, error) {
	limit := q.Limit
	switch {
	case limit < 0 || limit > MaxLimit:
		return nil, fmt.Errorf("%w: limit %d is outside 0–%d", ErrInvalidQuery, limit, MaxLimit)
	case limit == 0:
		limit = DefaultLimit
	}
	if q.Offset < 0 || q.Offset > MaxOffset {
		return nil, fmt.Errorf("%w: offset %d is outside 0–%d (page with After instead)", ErrInvalidQuery, q.Offset, MaxOffset)
	}
	if q.Offset > 0 && q.After != "" {
		return nil, fmt.Errorf("%w: offset and after cannot be combined", ErrInvalidQuery)
	}
	if q.Sort != NewestFirst && q.Sort != OldestFirst {
		return nil, fmt.Errorf("%w: sort order %d", ErrInvalidQuery, q.Sort)
	}
	var after []string
	if q.After != "" {
		var err error
		if after, err = decodeCursor(q.After, q.Sort); err != nil {
			return nil, err
		}
	}
	if len(q.Created) > 0 && (len(q.PatientRecords) > 0 || len(q.PersonEUIDs) > 0) && ix.patientDateCap > 0 {
		res, ok, err := ix.searchPatientFilteringDates(ctx, q, limit, after)
		if err != nil || ok {
			return res, err
		}
	}
	bq, err := ix.buildQuery(q)
	if err != nil {
		return nil, err
	}
	if q.CountOnly {
		req := bleve.NewSearchRequestOptions(bq, 0, 0, false)
		req.Score = bleve.ScoreNone
		res, err := ix.alias.SearchInContext(ctx, req)
		if err != nil {
			return nil, searchError(err)
		}
		return &Results{Total: res.Total}, nil
	}
	// One hit more than the page tells whether there is a next page.
	req := bleve.NewSearchRequestOptions(bq, limit+1, q.Offset, false)
	req.Score = bleve.ScoreNone
	req.SortByCustom(sortOrder(q.Sort))
	req.SearchAfter = after
	res, err := ix.alias.SearchInContext(ctx, req)
	if err != nil {
		return nil, searchError(err)
	}
	out := &Results{Total: res.Total, Hits: make([]Hit, 0, min(len(res.Hits), limit))}
	for i, h := range res.Hits {
		if i == limit {
			out.Next = encodeCursor(q.Sort, res.Hits[i-1].Sort)
			break
		}
		out.Hits = append(out.Hits, Hit{ID: h.ID, Created: sortValueTime(h.Sort), Cursor: encodeCursor(q.Sort, h.Sort)})
	}
	return out, nil
}

// defaultPatientDateCap is how many documents a patient may have for
// searchPatientFilteringDates to apply creation-date conditions itself.
const defaultPatientDateCap = 1000

// searchPatientFilteringDates answers a patient search with creation-date
// conditions by asking Bleve for all of the patient's matching documents
// without the dates, sorted, and applying the dates and the paging here. A
// Bleve date range expands into hundreds of numeric terms, each looked up
// in every segment, which costs milliseconds whatever the patient; a
// patient's documents are few, and their sort values carry the date. When
// the patient has more than the cap, ok is false and the caller runs the
// query in Bleve. Results, totals and cursors are the same either way.
func (ix *Index) searchPatientFilteringDates(ctx context.Context, q Query, limit int, after []string) (_ *Results, ok bool, _ error) {
	for _, p := range q.Created {
		if _, err := dateCondition("date", fieldCreated, fieldCreated, p); err != nil {
			return nil, false, err
		}
	}
	rest := q
	rest.Created = nil
	bq, err := ix.buildQuery(rest)
	if err != nil {
		return nil, false, err
	}
	// Unsorted, reading the stored sort key: doc values would cost a chunk
	// decompression per scattered hit (see newMapping).
	hits, ok, err := ix.searchAllStored(ctx, bq, fieldCreatedSort, ix.patientDateCap)
	if err != nil || !ok {
		return nil, false, err
	}
	kept := hits[:0]
	for _, h := range hits {
		key, _ := h.Fields[fieldCreatedSort].(string)
		created := sortValueTime([]string{key})
		if !created.IsZero() && datesHold(created, q.Created) {
			// The same sort values Bleve's sort gives (an undated document
			// never gets here, so no missing-value marker is needed).
			h.Sort = []string{key, h.ID}
			kept = append(kept, h)
		}
	}
	slices.SortFunc(kept, func(a, b *search.DocumentMatch) int { return compareSortValues(a.Sort, b.Sort, q.Sort) })
	out := &Results{Total: uint64(len(kept))}
	if q.CountOnly {
		return out, true, nil
	}
	start := min(q.Offset, len(kept))
	if after != nil {
		start = len(kept)
		for i, h := range kept {
			if compareSortValues(h.Sort, after, q.Sort) > 0 {
				start = i
				break
			}
		}
	}
	end := min(start+limit, len(kept))
	for _, h := range kept[start:end] {
		out.Hits = append(out.Hits, Hit{ID: h.ID, Created: sortValueTime(h.Sort), Cursor: encodeCursor(q.Sort, h.Sort)})
	}
	if end < len(kept) {
		out.Next = encodeCursor(q.Sort, kept[end-1].Sort)
	}
	return out, true, nil
}

// defaultFirstPage is how many hits searchAllStored asks for first. Bleve
// allocates a hit (232 bytes, zeroed) for every place of the page requested,
// before it finds any, so asking every patient search for the whole cap
// (1,001 places, about a quarter of a megabyte) costs more than the search
// itself at the median, and the garbage costs collections; most patients
// have a few documents.
const defaultFirstPage = 100

// searchAllStored returns, unscored and unsorted, every document bq matches
// with the stored field given, when there are at most limit of them; ok is
// false when there are more. It asks for a small page first and only
// repeats the search, with a page sized by the total, when that was short.
func (ix *Index) searchAllStored(ctx context.Context, bq query.Query, field string, limit int) (_ search.DocumentMatchCollection, ok bool, _ error) {
	size := min(limit, max(1, ix.firstPage))
	for {
		// One place more than needed tells a short page from a full one.
		req := bleve.NewSearchRequestOptions(bq, size+1, 0, false)
		req.Score = bleve.ScoreNone
		req.Fields = []string{field}
		res, err := ix.alias.SearchInContext(ctx, req)
		if err != nil {
			return nil, false, searchError(err)
		}
		if len(res.Hits) <= size && res.Total <= uint64(size) {
			return res.Hits, true, nil
		}
		if size >= limit || res.Total > uint64(limit) {
			return nil, false, nil
		}
		// Documents indexed in between can make this short again; the
		// page grows each time and stops at the limit.
		size = min(limit, max(2*size, int(res.Total)+int(res.Total)/4))
	}
}

// datesHold evaluates date conditions on an instant, as dateCondition does
// in the index (an instant is a range whose start and end coincide).
func datesHold(t time.Time, params []DateParam) bool {
	for _, p := range params {
		from, to := p.Range.From, p.Range.To
		atLeast := func(bound time.Time) bool { return bound.IsZero() || !t.Before(bound) }
		before := func(bound time.Time) bool { return bound.IsZero() || t.Before(bound) }
		var holds bool
		switch p.Prefix {
		case DateEq, "":
			holds = atLeast(from) && before(to)
		case DateNe:
			holds = !(atLeast(from) && before(to))
		case DateGt, DateSa:
			holds = atLeast(to)
		case DateLt, DateEb:
			holds = before(from)
		case DateGe:
			holds = atLeast(from)
		case DateLe:
			holds = before(to)
		}
		if !holds {
			return false
		}
	}
	return true
}

// compareSortValues orders two hits' sort values (creation key, id) as
// sortOrder does: the key in the query's direction (Bleve's missing-value
// marker already sorts last either way), then the id ascending.
func compareSortValues(a, b []string, order SortOrder) int {
	if len(a) != 2 || len(b) != 2 {
		return 0
	}
	c := strings.Compare(a[0], b[0])
	if order == NewestFirst {
		c = -c
	}
	if c != 0 {
		return c
	}
	return strings.Compare(a[1], b[1])
}

func searchError(err error) error {
	if errors.Is(err, bleve.ErrorIndexClosed) {
		return ErrClosed
	}
	return fmt.Errorf("search: %w", err)
}

func sortOrder(s SortOrder) search.SortOrder {
	return search.SortOrder{
		&search.SortField{
			Field:   fieldCreatedSort,
			Desc:    s == NewestFirst,
			Type:    search.SortFieldAsString,
			Missing: search.SortFieldMissingLast,
		},
		&search.SortDocID{},
	}
}

// sortValueTime decodes the creation date from a hit's sort values, zero
// when the document has none (its sort value is Bleve's missing marker).
func sortValueTime(values []string) time.Time {
	if len(values) == 0 {
		return time.Time{}
	}
	t, err := time.Parse(sortableTimeLayout, values[0])
	if err != nil {
		return time.Time{}
	}
	return t
}

// A cursor is the sort values of the last hit of a page, with the sort
// order it belongs to: "n" or "o", then each value base64url-encoded, all
// joined by '.'. The missing-date marker is not text, hence the encoding.
const cursorSeparator = "."

func encodeCursor(s SortOrder, values []string) string {
	parts := make([]string, 0, len(values)+1)
	parts = append(parts, cursorTag(s))
	for _, v := range values {
		parts = append(parts, base64.RawURLEncoding.EncodeToString([]byte(v)))
	}
	return strings.Join(parts, cursorSeparator)
}

func cursorTag(s SortOrder) string {
	if s == OldestFirst {
		return "o"
	}
	return "n"
}

// decodeCursor checks that a cursor came from a page of the same sort order
// and returns its sort values. Errors wrap ErrInvalidQuery.
func decodeCursor(cursor string, s SortOrder) ([]string, error) {
	parts := strings.Split(cursor, cursorSeparator)
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: after: malformed cursor", ErrInvalidQuery)
	}
	if parts[0] != cursorTag(s) {
		return nil, fmt.Errorf("%w: after: cursor belongs to another sort order", ErrInvalidQuery)
	}
	values := make([]string, 0, 2)
	for _, p := range parts[1:] {
		v, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return nil, fmt.Errorf("%w: after: malformed cursor", ErrInvalidQuery)
		}
		values = append(values, string(v))
	}
	return values, nil
}

// buildQuery turns a Query into one Bleve query: a conjunction of filters
// and exclusions. Scores are never computed; order is by date.
func (ix *Index) buildQuery(q Query) (query.Query, error) {
	var must, mustNot []query.Query
	add := func(qs query.Query, err error) error {
		if err != nil {
			return err
		}
		if qs != nil {
			must = append(must, qs)
		}
		return nil
	}

	var patients []query.Query
	for _, r := range q.PatientRecords {
		if err := checkKey(r); err != "" {
			return nil, fmt.Errorf("%w: patient: %s", ErrInvalidQuery, err)
		}
		patients = append(patients, termQuery(fieldPatient, r))
	}
	for _, e := range q.PersonEUIDs {
		if e == "" {
			return nil, fmt.Errorf("%w: person: empty EUID", ErrInvalidQuery)
		}
		patients = append(patients, termQuery(fieldPerson, e))
	}
	if len(patients) > 0 {
		must = append(must, anyOf(patients))
	}

	var statuses []query.Query
	for _, s := range q.Statuses {
		if !s.Valid() {
			return nil, fmt.Errorf("%w: status %q", ErrInvalidQuery, s)
		}
		statuses = append(statuses, termQuery(fieldStatus, string(s)))
	}
	if len(statuses) > 0 {
		must = append(must, anyOf(statuses))
	}

	tokenLists := []struct {
		param, field string
		tokens       []string
	}{
		{"identifier", fieldIdentifier, q.Identifiers},
		{"type", fieldType, q.Types},
		{"category", fieldCategory, q.Categories},
		{"facility", fieldFacility, q.FacilityTypes},
		{"setting", fieldSetting, q.PracticeSettings},
		{"event", fieldEvent, q.Events},
		{"related", fieldRelated, q.Related},
		{"related:identifier", fieldRelatedID, q.RelatedIdentifiers},
		{"format", fieldFormat, q.Formats},
		{"security-label", fieldSecurity, q.SecurityLabels},
	}
	for _, l := range tokenLists {
		if err := add(tokensQuery(l.param, l.field, l.tokens)); err != nil {
			return nil, err
		}
	}
	if len(q.ExcludeSecurityLabels) > 0 {
		excluded, err := tokensQuery("security-label:not", fieldSecurity, q.ExcludeSecurityLabels)
		if err != nil {
			return nil, err
		}
		mustNot = append(mustNot, excluded)
	}

	var holders []query.Query
	for _, h := range q.Holders {
		if h == "" {
			return nil, fmt.Errorf("%w: holder: empty participant id", ErrInvalidQuery)
		}
		holders = append(holders, termQuery(fieldHolder, h))
	}
	if len(holders) > 0 {
		must = append(must, anyOf(holders))
	}

	if err := add(ix.namesQuery("author.given", fieldAuthorGiven, q.AuthorGiven)); err != nil {
		return nil, err
	}
	if err := add(ix.namesQuery("author.family", fieldAuthorFamily, q.AuthorFamily)); err != nil {
		return nil, err
	}

	for _, p := range q.Created {
		c, err := dateCondition("date", fieldCreated, fieldCreated, p)
		if err != nil {
			return nil, err
		}
		must = append(must, c)
	}
	for _, p := range q.Period {
		c, err := dateCondition("period", fieldPeriodStart, fieldPeriodEnd, p)
		if err != nil {
			return nil, err
		}
		must = append(must, c)
	}

	if q.Text != "" {
		positive, negative, err := ix.textQueries(q.Text)
		if err != nil {
			return nil, err
		}
		must = append(must, positive...)
		mustNot = append(mustNot, negative...)
	}

	if len(must) == 0 {
		must = append(must, bleve.NewMatchAllQuery())
	}
	if len(mustNot) == 0 {
		if len(must) == 1 {
			return must[0], nil
		}
		return bleve.NewConjunctionQuery(must...), nil
	}
	b := bleve.NewBooleanQuery()
	b.AddMust(must...)
	b.AddMustNot(mustNot...)
	return b, nil
}

func termQuery(field, term string) query.Query {
	t := bleve.NewTermQuery(term)
	t.SetField(field)
	return t
}

func anyOf(qs []query.Query) query.Query {
	if len(qs) == 1 {
		return qs[0]
	}
	return bleve.NewDisjunctionQuery(qs...)
}

// tokensQuery matches any of the FHIR tokens in field (nil when there are
// none). Codes are indexed as "system|code" and as the bare code, so every
// form but "system|" is one term; "system|" is a prefix.
func tokensQuery(param, field string, tokens []string) (query.Query, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	qs := make([]query.Query, 0, len(tokens))
	for _, tok := range tokens {
		system, code, hasSystem := strings.Cut(tok, "|")
		switch {
		case tok == "" || tok == "|":
			return nil, fmt.Errorf("%w: %s: empty token", ErrInvalidQuery, param)
		case strings.Contains(code, "|"):
			return nil, fmt.Errorf("%w: %s: %q has more than one '|'", ErrInvalidQuery, param, tok)
		case hasSystem && code == "":
			p := bleve.NewPrefixQuery(system + "|")
			p.SetField(field)
			qs = append(qs, p)
		default:
			qs = append(qs, termQuery(field, tok))
		}
	}
	return anyOf(qs), nil
}

// namesQuery matches author names starting with any of the values, compared
// as the index stores them (lower case, accents folded).
func (ix *Index) namesQuery(param, field string, values []string) (query.Query, error) {
	if len(values) == 0 {
		return nil, nil
	}
	qs := make([]query.Query, 0, len(values))
	for _, v := range values {
		norm := ix.names(strings.TrimSpace(v))
		if norm == "" {
			return nil, fmt.Errorf("%w: %s: empty name", ErrInvalidQuery, param)
		}
		p := bleve.NewPrefixQuery(norm)
		p.SetField(field)
		qs = append(qs, p)
	}
	return anyOf(qs), nil
}

// Query bounds are clamped into the range where the indexed open-period
// sentinels keep their meaning: nothing real is indexed outside
// [earliestDate, latestDate), and the sentinels lie just outside it.
var (
	minQueryDate = openPeriodStart.Add(time.Hour)
	maxQueryDate = openPeriodEnd.Add(-time.Hour)
)

func clampQueryDate(t time.Time) time.Time {
	switch {
	case t.Before(minQueryDate):
		return minQueryDate
	case t.After(maxQueryDate):
		return maxQueryDate
	}
	return t
}

// dateCondition evaluates a FHIR date comparator against a target range
// [startField, endField] (the same field for an instant). With the
// parameter's range [from, to):
//
//	eq: start ≥ from and end < to     ne: not eq
//	gt: end ≥ to                      lt: start < from
//	ge: end ≥ from                    le: start < to
//	sa: start ≥ to                    eb: end < from
func dateCondition(param, startField, endField string, p DateParam) (query.Query, error) {
	from, to := p.Range.From, p.Range.To
	need := func(bound time.Time, which string) error {
		if bound.IsZero() {
			return fmt.Errorf("%w: %s: %s needs a range %s", ErrInvalidQuery, param, p.Prefix, which)
		}
		return nil
	}
	atLeast := func(field string, t time.Time) query.Query {
		incl := true
		q := bleve.NewDateRangeInclusiveQuery(clampQueryDate(t), time.Time{}, &incl, nil)
		q.SetField(field)
		return q
	}
	before := func(field string, t time.Time) query.Query {
		excl := false
		q := bleve.NewDateRangeInclusiveQuery(time.Time{}, clampQueryDate(t), nil, &excl)
		q.SetField(field)
		return q
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, fmt.Errorf("%w: %s: empty range %s", ErrInvalidQuery, param, p)
	}
	switch p.Prefix {
	case DateEq, DateNe, "":
		var parts []query.Query
		if !from.IsZero() {
			parts = append(parts, atLeast(startField, from))
		}
		if !to.IsZero() {
			parts = append(parts, before(endField, to))
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("%w: %s: %s needs a range", ErrInvalidQuery, param, p.Prefix)
		}
		eq := query.Query(bleve.NewConjunctionQuery(parts...))
		if p.Prefix != DateNe {
			return eq, nil
		}
		// Only documents that have the date can differ from it.
		has := atLeast(startField, minQueryDate)
		b := bleve.NewBooleanQuery()
		b.AddMust(has)
		b.AddMustNot(eq)
		return b, nil
	case DateGt:
		return atLeast(endField, to), need(to, "end")
	case DateLt:
		return before(startField, from), need(from, "start")
	case DateGe:
		return atLeast(endField, from), need(from, "start")
	case DateLe:
		return before(startField, to), need(to, "end")
	case DateSa:
		return atLeast(startField, to), need(to, "end")
	case DateEb:
		return before(endField, from), need(from, "start")
	}
	return nil, fmt.Errorf("%w: %s: unknown prefix %q", ErrInvalidQuery, param, p.Prefix)
}

// textQueries turns _text into match and phrase queries over the text field
// and the queries of its exclusions.
func (ix *Index) textQueries(s string) (positive, negative []query.Query, err error) {
	tq, err := parseText(s)
	if err != nil {
		return nil, nil, err
	}
	if len(tq.words) > 0 {
		words := strings.Join(tq.words, " ")
		// A word list of stop words only ("the") analyses to nothing and
		// would match nothing; without phrases that is a useless query.
		if ix.textTerms(words) > 0 {
			m := bleve.NewMatchQuery(words)
			m.SetField(fieldText)
			m.SetOperator(query.MatchQueryOperatorAnd)
			positive = append(positive, m)
		}
	}
	for _, ph := range tq.phrases {
		if ix.textTerms(ph) == 0 {
			continue
		}
		m := bleve.NewMatchPhraseQuery(ph)
		m.SetField(fieldText)
		positive = append(positive, m)
	}
	if len(positive) == 0 {
		return nil, nil, fmt.Errorf("%w: _text: %q has no searchable word (only stop words or punctuation)", ErrInvalidQuery, s)
	}
	for _, c := range tq.excluded {
		if ix.textTerms(c.text) == 0 {
			continue
		}
		if c.phrase {
			m := bleve.NewMatchPhraseQuery(c.text)
			m.SetField(fieldText)
			negative = append(negative, m)
		} else {
			m := bleve.NewMatchQuery(c.text)
			m.SetField(fieldText)
			m.SetOperator(query.MatchQueryOperatorAnd)
			negative = append(negative, m)
		}
	}
	return positive, negative, nil
}
