// Package enginebench measures the executor engines against the raw
// operations they wrap: per-step overhead of the Docker engine versus bare
// SDK calls, of the local engine versus a plain sh, and log throughput.
// Results and commands are in docs/benchmarks.md, section Engines.
package enginebench
