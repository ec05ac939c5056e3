// Package synth owns synthetic labelled populations: persons of a US state
// health information exchange and the records its facilities register
// about them, with the truth label of every record, written in the csv
// format of package dataset for `rls mpi eval` (`rls mpi synth`).
//
// A population is a pure function of its size, seed and Knobs. Names
// follow US frequencies (Census surnames, SSA given names by sex and birth
// decade, a generated tail of rare surnames); geography nests state ⊃ town
// ⊃ ZIP ⊃ street and grows with the population; persons live in
// households, some are twins or juniors; over the ten years the records
// span they move, change phones and marry; each record goes through data
// entry (typos, nicknames, swaps, formats, missing values) at the rates of
// Knobs. README.md gives the rates, how they were measured and the curves
// the matcher shows on these populations.
//
// It must never import HTTP, Raft or storage code: it is a data generator,
// used by the CLI and by tests and evaluations.
package synth
