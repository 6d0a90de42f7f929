// Package dispatch holds the dispatch benchmarks: job publish → agent
// StageRunner latency and end-to-end stage throughput over an embedded
// NATS JetStream server (see docs/benchmarks.md, "Dispatch").
package dispatch
