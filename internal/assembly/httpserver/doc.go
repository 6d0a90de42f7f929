// Package httpserver serves the web UI in front of the API the one way
// `runnel server` serves them, for cmd/runnel and the benchmarks that
// stand for it (bench/webhook, bench/logs): the forge hooks, /metrics,
// the transfer endpoints and the bounds on every request.
package httpserver
