// Package logs holds the live-log benchmark: from a step's print to the
// Server-Sent Event that carries the line to a follower, first line
// included, through the whole server path (local shell engine, agent,
// NATS JetStream, runner, log store, HTTP API). See docs/benchmarks.md,
// "Live logs".
package logs
