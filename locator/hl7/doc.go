// Package hl7 reads and writes HL7 version 2 messages in their traditional encoding (ER7:
// segments, fields, repetitions, components and subcomponents, with the escape sequences
// \F\ \S\ \T\ \R\ \E\ \P\ \Xhh…\ and the character sets MSH-18 names), builds the
// acknowledgements and ERR segments of the standard's original and enhanced modes, and
// carries messages over MLLP release 2 (start block 0x0B, end block 0x1C 0x0D): a framing
// reader and writer, a server with bounded messages, timeouts, a connection limit and a
// graceful shutdown, and a client.
//
// It owns the wire format only. What a message means to rls (who sent it, what it may do,
// what it changes) is decided by its caller, the locator package. It must never import
// locator, raft, mpi or search.
//
// No Go library was adopted: those found were not served by the Go module proxy this
// project builds with (kardianos/hl7, google/simhospital's pkg/hl7, lenaten/hl7), and
// none decodes \X..\ hex data in the message's character set or MSH-18 character sets at
// all (see docs/design.md, "HL7 v2 over MLLP").
package hl7
