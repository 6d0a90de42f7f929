// Package webhook holds the webhook ingestion benchmark: signed GitHub
// push hooks against the real server stack (SQLite or PostgreSQL store,
// httpapi handler, runner with its asynchronous trigger reading the
// pipeline from a local bare repository) over loopback TCP, with a
// closed-loop and an open-loop (constant-rate) load generator and a raw
// net/http baseline measured in the same run (see docs/benchmarks.md,
// "Webhook ingestion").
//
// `go test ./bench/webhook` runs only a small smoke test; the full
// measurement runs with RUNNEL_BENCH_WEBHOOK=1 and -run TestIngest.
package webhook
