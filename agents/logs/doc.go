// Package logs owns the writer chain a step's output passes through on its
// way to storage: secret masking, line prefixes and a size cap. Step output
// is an untrusted byte stream whose chunks split lines (and secrets)
// anywhere; every stage here is correct for any chunking.
//
// The writers are not safe for concurrent use: one goroutine writes a
// step's output (the engines guarantee that).
package logs
