// Package rules holds the run lifecycle's decisions as functions over
// plain values, so the server (runner) and `runnel run` (agents/stage)
// make them the same way and say them with the same words: what a stage
// that has not started does next (its needs, `when.status`, approval),
// whether its concurrency group is free, why it waits (PendingReason),
// and the outcome of a stage as the stages that need it see it. It reads
// no store and no bus; it imports only pipeline.
package rules
