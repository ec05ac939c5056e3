package search

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
)

// ErrTooManyToAggregate is returned by Locate when a patient has more
// current documents than one aggregate counts exactly (maxLocateTerms).
var ErrTooManyToAggregate = errors.New("search: too many documents to aggregate")

// maxLocateTerms bounds the facet of one Locate call. Each current document
// contributes at most one term; a patient with more documents than this is
// not a realistic record locator question, and an inexact count would be
// wrong rather than slow.
const maxLocateTerms = 200_000

// defaultLocateStoredCap is the largest set of a patient's documents Locate
// reads document by document (stored fields); above it, a facet over doc
// values is cheaper.
const defaultLocateStoredCap = 1000

// LocateQuery selects the documents the record locator summarises: those of
// any of the records and persons given (at least one), less those carrying
// an excluded security label (consent).
type LocateQuery struct {
	PatientRecords        []string
	PersonEUIDs           []string
	ExcludeSecurityLabels []string
}

// Holding summarises the current documents one participant holds for the
// patient.
type Holding struct {
	Holder           string
	CurrentDocuments int
	// Newest is the latest creation date among them (zero if none is dated).
	Newest time.Time
	// Types are the distinct document type tokens ("system|code"), sorted.
	Types []string
}

// Locate answers, in one index round trip, where a patient's current
// documents are: per holder participant, how many, the newest creation date
// and the distinct types. Holders are sorted by id. A participant that knows
// the patient but holds no current document does not appear: the caller adds
// it from its record list with a count of 0.
func (ix *Index) Locate(ctx context.Context, lq LocateQuery) ([]Holding, error) {
	if len(lq.PatientRecords) == 0 && len(lq.PersonEUIDs) == 0 {
		return nil, fmt.Errorf("%w: locate needs a record or a person", ErrInvalidQuery)
	}
	// Only current documents carry a locate term, so the facet counts
	// exactly them without a status clause in the query.
	q, err := ix.buildQuery(Query{
		PatientRecords:        lq.PatientRecords,
		PersonEUIDs:           lq.PersonEUIDs,
		ExcludeSecurityLabels: lq.ExcludeSecurityLabels,
	})
	if err != nil {
		return nil, err
	}
	byHolder := map[string]*Holding{}
	add := func(term string, count int) error {
		holder, created, typeToken, ok := splitLocateTerm(term)
		if !ok {
			return fmt.Errorf("search: locate: malformed aggregate term %q", term)
		}
		h := byHolder[holder]
		if h == nil {
			h = &Holding{Holder: holder}
			byHolder[holder] = h
		}
		h.CurrentDocuments += count
		if created.After(h.Newest) {
			h.Newest = created
		}
		if typeToken != "" {
			if i, found := slices.BinarySearch(h.Types, typeToken); !found {
				h.Types = slices.Insert(h.Types, i, typeToken)
			}
		}
		return nil
	}
	// A patient's documents are few: read their stored locate terms.
	hits, ok, err := ix.searchAllStored(ctx, q, fieldLocate, ix.locateStoredCap)
	if err != nil {
		return nil, err
	}
	if ok {
		for _, hit := range hits {
			// Documents that are not current have no locate term.
			if term, ok := hit.Fields[fieldLocate].(string); ok {
				if err := add(term, 1); err != nil {
					return nil, err
				}
			}
		}
		return sortedHoldings(byHolder), nil
	}
	// Many documents: count them from doc values with a terms facet.
	req := bleve.NewSearchRequestOptions(q, 0, 0, false)
	req.Score = bleve.ScoreNone
	req.AddFacet(fieldLocate, bleve.NewFacetRequest(fieldLocate, maxLocateTerms))
	res, err := ix.alias.SearchInContext(ctx, req)
	if err != nil {
		return nil, searchError(err)
	}
	facet := res.Facets[fieldLocate]
	if facet == nil {
		return nil, fmt.Errorf("search: locate: the index returned no facet")
	}
	if facet.Other > 0 {
		return nil, fmt.Errorf("%w: more than %d", ErrTooManyToAggregate, maxLocateTerms)
	}
	if facet.Terms != nil {
		for _, tf := range facet.Terms.Terms() {
			if err := add(tf.Term, tf.Count); err != nil {
				return nil, err
			}
		}
	}
	return sortedHoldings(byHolder), nil
}

func sortedHoldings(byHolder map[string]*Holding) []Holding {
	out := make([]Holding, 0, len(byHolder))
	for _, h := range byHolder {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b Holding) int { return strings.Compare(a.Holder, b.Holder) })
	return out
}

// splitLocateTerm reverses the locate term of toIndexed.
func splitLocateTerm(term string) (holder string, created time.Time, typeToken string, ok bool) {
	parts := strings.SplitN(term, locateSeparator, 3)
	if len(parts) != 3 || parts[0] == "" {
		return "", time.Time{}, "", false
	}
	if parts[1] != "" {
		t, err := time.Parse(sortableTimeLayout, parts[1])
		if err != nil {
			return "", time.Time{}, "", false
		}
		created = t
	}
	return parts[0], created, parts[2], true
}
