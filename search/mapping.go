package search

import (
	"fmt"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/char/asciifolding"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/single"
	"github.com/blevesearch/bleve/v2/mapping"
)

// mappingVersion names the shape of the index: the mapping below and the way
// indexedDocument is derived from a Document. Change it whenever either
// changes; Open then refuses an index of another version with ErrUnusable so
// the caller rebuilds it instead of querying fields that are not there.
const mappingVersion = "rls-documents-3"

// sortableTimeLayout writes UTC times at fixed width, so that byte order is
// time order for every date Validate accepts (four-digit years).
const sortableTimeLayout = "2006-01-02T15:04:05.000000000Z"

func sortableTime(t time.Time) string { return t.UTC().Format(sortableTimeLayout) }

// Field names in the index. They are short because every term stores its
// field; they are not part of any wire format.
const (
	fieldStatus       = "status"
	fieldPatient      = "patient"
	fieldPerson       = "person"
	fieldIdentifier   = "identifier"
	fieldType         = "type"
	fieldCategory     = "category"
	fieldFormat       = "format"
	fieldFacility     = "facility"
	fieldSetting      = "setting"
	fieldEvent        = "event"
	fieldRelated      = "related"
	fieldRelatedID    = "related_identifier"
	fieldSecurity     = "security"
	fieldHolder       = "holder"
	fieldAuthorGiven  = "author_given"
	fieldAuthorFamily = "author_family"
	fieldCreated      = "created"
	fieldCreatedSort  = "created_sort"
	fieldPeriodStart  = "period_start"
	fieldPeriodEnd    = "period_end"
	fieldText         = "text"
	fieldLocate       = "locate"
)

// nameAnalyzer implements FHIR string search on author names: the whole
// value is one term, compared without case or accents, so a prefix query on
// the normalised search value is FHIR's default "starts with" match.
const nameAnalyzer = "rls_name"

// textAnalyzer is used for title and description: Unicode word boundaries,
// lower case, English stop words and Snowball stemming, so "fractures" finds
// "fracture".
const textAnalyzer = en.AnalyzerName

// The open bounds of a service period are indexed as these dates, beyond any
// date Validate accepts, so that range queries treat a missing start as "since
// always" and a missing end as "still running".
var (
	openPeriodStart = time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)
	openPeriodEnd   = time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)
)

// locateSeparator joins the parts of a locate term; Validate refuses control
// characters in holders and codes, so it cannot occur inside a part.
const locateSeparator = "\x1f"

// indexedDocument is what Bleve indexes for a Document: only searched fields,
// already in the form queries use (tokens, bounds, composite terms). Only the
// sort key and the locate term are stored: results are document IDs, and the
// caller reads documents from its own state. Optional single values are slices so that an
// absent value indexes nothing rather than an empty term.
type indexedDocument struct {
	Status       string     `json:"status"`
	Patient      string     `json:"patient"`
	Person       []string   `json:"person"`
	Identifier   []string   `json:"identifier"`
	Type         []string   `json:"type"`
	Category     []string   `json:"category"`
	Format       []string   `json:"format"`
	Facility     []string   `json:"facility"`
	Setting      []string   `json:"setting"`
	Event        []string   `json:"event"`
	Related      []string   `json:"related"`
	RelatedID    []string   `json:"related_identifier"`
	Security     []string   `json:"security"`
	Holder       string     `json:"holder"`
	AuthorGiven  []string   `json:"author_given"`
	AuthorFamily []string   `json:"author_family"`
	Created      *time.Time `json:"created"`
	// CreatedSort is the sort key: a keyword rather than the date field's
	// doc values, because Bleve's search-after cannot express "after an
	// undated document" on a date sort but can on a string one.
	CreatedSort []string   `json:"created_sort"`
	PeriodStart *time.Time `json:"period_start"`
	PeriodEnd   *time.Time `json:"period_end"`
	Text        []string   `json:"text"`
	// Locate is holder, creation time and type token joined, one term per
	// current document, so the locate aggregate is a single terms facet.
	Locate []string `json:"locate"`
}

// toIndexed derives the indexed form of a validated document.
func toIndexed(d *Document) *indexedDocument {
	x := &indexedDocument{
		Status:   string(d.Status),
		Patient:  d.PatientRecord,
		Holder:   d.Holder,
		Type:     codeTerms(nil, d.Type),
		Format:   codeTerms(nil, d.Format),
		Facility: codeTerms(nil, d.FacilityType),
		Setting:  codeTerms(nil, d.PracticeSetting),
	}
	if d.PersonEUID != "" {
		x.Person = []string{d.PersonEUID}
	}
	if !d.MasterIdentifier.IsZero() {
		x.Identifier = []string{d.MasterIdentifier.Token(), d.MasterIdentifier.Value}
	}
	for _, c := range d.Category {
		x.Category = codeTerms(x.Category, c)
	}
	for _, c := range d.Events {
		x.Event = codeTerms(x.Event, c)
	}
	for _, r := range d.Related {
		if r.Reference != "" {
			x.Related = append(x.Related, r.Reference)
		}
		if !r.Identifier.IsZero() {
			x.RelatedID = append(x.RelatedID, r.Identifier.Token(), r.Identifier.Value)
		}
	}
	for _, c := range d.SecurityLabels {
		x.Security = codeTerms(x.Security, c)
	}
	for _, a := range d.Authors {
		for _, g := range a.Given {
			if g != "" {
				x.AuthorGiven = append(x.AuthorGiven, g)
			}
		}
		if a.Family != "" {
			x.AuthorFamily = append(x.AuthorFamily, a.Family)
		}
	}
	created := ""
	if !d.Created.IsZero() {
		t := d.Created.UTC()
		x.Created = &t
		created = sortableTime(t)
		x.CreatedSort = []string{created}
	}
	if p := d.ServicePeriod; !p.IsZero() {
		start, end := openPeriodStart, openPeriodEnd
		if !p.Start.IsZero() {
			start = p.Start.UTC()
		}
		if !p.End.IsZero() {
			end = p.End.UTC()
		}
		x.PeriodStart, x.PeriodEnd = &start, &end
	}
	if d.Title != "" {
		x.Text = append(x.Text, d.Title)
	}
	if d.Description != "" {
		x.Text = append(x.Text, d.Description)
	}
	typeToken := ""
	if !d.Type.IsZero() {
		typeToken = d.Type.Token()
	}
	// Only current documents are summarised by Locate, so only they carry
	// the term: the aggregate then needs no status filter.
	if d.Status == StatusCurrent {
		x.Locate = []string{d.Holder + locateSeparator + created + locateSeparator + typeToken}
	}
	return x
}

// codeTerms appends the terms of one coding: "system|code" and the bare code,
// which is what FHIR token searches "system|code", "|code" and "code" look up.
func codeTerms(terms []string, c Code) []string {
	if c.IsZero() {
		return terms
	}
	return append(terms, c.Token(), c.Code)
}

// newMapping builds the explicit index mapping: no dynamic fields, nothing
// stored, nothing in _all, doc values only where a sort or facet reads them.
func newMapping() (*mapping.IndexMappingImpl, error) {
	im := bleve.NewIndexMapping()
	err := im.AddCustomAnalyzer(nameAnalyzer, map[string]any{
		"type":          custom.Name,
		"char_filters":  []any{asciifolding.Name},
		"tokenizer":     single.Name,
		"token_filters": []any{lowercase.Name},
	})
	if err != nil {
		return nil, fmt.Errorf("search: name analyzer: %w", err)
	}
	im.DefaultAnalyzer = keyword.Name
	im.IndexDynamic = false
	im.StoreDynamic = false
	im.DocValuesDynamic = false

	keywordField := func(store, docValues bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Store = store
		f.IncludeInAll = false
		f.IncludeTermVectors = false
		f.DocValues = docValues
		return f
	}
	dateField := func() *mapping.FieldMapping {
		f := bleve.NewDateTimeFieldMapping()
		f.Store = false
		f.IncludeInAll = false
		f.DocValues = false
		return f
	}
	nameField := func() *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = nameAnalyzer
		f.Store = false
		f.IncludeInAll = false
		f.IncludeTermVectors = false
		f.DocValues = false
		return f
	}

	textField := bleve.NewTextFieldMapping()
	textField.Analyzer = textAnalyzer
	textField.Store = false
	textField.IncludeInAll = false
	// Term vectors (positions) are what quoted phrases in _text need.
	textField.IncludeTermVectors = true
	textField.DocValues = false

	doc := bleve.NewDocumentStaticMapping()
	for _, name := range []string{
		fieldStatus, fieldPatient, fieldPerson, fieldIdentifier, fieldType, fieldCategory,
		fieldFormat, fieldFacility, fieldSetting, fieldEvent, fieldSecurity, fieldHolder,
		fieldRelated, fieldRelatedID,
	} {
		doc.AddFieldMappingsAt(name, keywordField(false, false))
	}
	// The locate term and the sort key are both stored and doc values.
	// Reading doc values for a hit decompresses a chunk of 1024 documents,
	// which a patient's few hits, scattered over the index, each pay; a
	// stored field is compressed per document. So patient-sized result
	// sets read the stored copies, and big ones (Bleve's sort, the facet)
	// the doc values.
	doc.AddFieldMappingsAt(fieldLocate, keywordField(true, true))
	doc.AddFieldMappingsAt(fieldCreatedSort, keywordField(true, true))
	// The dates are only filtered on.
	doc.AddFieldMappingsAt(fieldCreated, dateField())
	doc.AddFieldMappingsAt(fieldPeriodStart, dateField())
	doc.AddFieldMappingsAt(fieldPeriodEnd, dateField())
	doc.AddFieldMappingsAt(fieldAuthorGiven, nameField())
	doc.AddFieldMappingsAt(fieldAuthorFamily, nameField())
	doc.AddFieldMappingsAt(fieldText, textField)
	// No _all field: nothing searches it, and building it costs a pass over
	// every field of every document.
	doc.AddSubDocumentMapping("_all", bleve.NewDocumentDisabledMapping())
	im.DefaultMapping = doc
	if err := im.Validate(); err != nil {
		return nil, fmt.Errorf("search: mapping: %w", err)
	}
	return im, nil
}
