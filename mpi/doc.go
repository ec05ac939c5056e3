// Package mpi is the master patient index of rls: it decides which source
// records (a participant's patient, keyed by assigning authority and MRN)
// describe the same person, and gives each person an enterprise ID (EUID).
//
// It owns, in order of the pipeline:
//
//   - normalisation of a [Record] into its comparison form ([Normalize]):
//     case, Unicode accents, punctuation, multi-part and hyphenated names,
//     nickname equivalence (a shipped table of English given names),
//     generational suffixes, phone digits, 5-digit postal codes, street
//     suffix abbreviations;
//   - blocking: several passes of blocking keys ([BlockingKeys]) so that a true
//     match survives any one field being wrong, read from a sorted index in the
//     [Store] (an oversized block through a window around the record's own
//     sort value) rather than by scanning every person;
//   - comparison of each field into agreement levels (address, ZIP, city and
//     state as one nested location comparison) and scoring as posterior log2
//     odds: Fellegi–Sunter evidence from the replicated [Config] with
//     term-frequency adjustment, the prior of one person among those indexed,
//     and for records that share a home the household reading weighed
//     against it; missing values neutral; household rules (twins,
//     junior/senior) that forbid a link;
//   - the decision on the posterior of the best candidate against the others
//     and nobody, with identifying evidence required for a link
//     ([Matcher.Register], [Matcher.Match], [Matcher.Explain]);
//   - EM estimation of m, u and the household distribution from unlabelled
//     records ([Train]).
//
// All state lives behind the small key/value-shaped [Store] interface so that
// the same code runs inside the Raft FSM over a bbolt transaction and over
// [NewMemStore] for evaluation and benchmarks. Register and Match are
// deterministic: the same sequence of calls against the same store contents
// gives the same result on every node (no clock, no randomness, no map-order
// iteration, fixed floating-point summation order; the configuration comes
// from the store).
//
// Libraries: accent folding uses golang.org/x/text/unicode/norm. The string
// metrics (Jaro–Winkler, the one-edit test) are written here, allocation-free
// because they run on every candidate, and the phonetic code is rls's own
// Double Metaphone in mpi/metaphone, written from Philips's published rules:
// the Go library that has both, github.com/antzucaro/matchr, is GPL-2.0 and
// cannot be linked into rls (Apache-2.0). Its Jaro–Winkler values are pinned
// bit for bit by a test, and its primary Double Metaphone codes equal
// mpi/metaphone's on every name of the evaluation data, so decisions did not
// change when it was dropped.
//
// This package is a pure library: it must never import HTTP, Raft, bbolt or
// any other rls package. Loaders for labelled files live in mpi/dataset and
// the evaluation harness in mpi/eval.
package mpi
