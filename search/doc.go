// Package search owns the document registry index of rls: the Bleve mapping
// of document metadata (IHE XDS DocumentEntry / FHIR DocumentReference as in
// IHE MHD), indexing of applied document changes in batches that also record
// the Raft index they came from, rebuilding the index from the source of truth
// into a new directory that is swapped in whole, the Find Document References
// queries, and the per-holder aggregate behind the record locator.
//
// The index is derived state. The replicated bbolt state is the source of
// truth; this package only ever sees documents handed to it by its caller
// ([Index.Apply], [Index.Rebuild]) and answers with document IDs, so a lost or
// corrupt index costs a rebuild, never data.
//
// It is a library with no knowledge of HTTP or Raft: it must never import
// net/http, hashicorp/raft or any other rls package. The caller translates
// FHIR search parameters into a [Query] (with [ParseDateParam] for FHIR date
// prefixes) and applied log entries into [Change] batches.
//
// On-disk layout: the directory given to [Open] holds one or more
// generations (gen-NNNNNNNN, each a Bleve index) and a CURRENT file naming the
// live one. A rebuild writes the next generation and then replaces CURRENT
// atomically, so a crash at any point leaves either the old or the new index
// complete, never a half-built one in use.
package search
