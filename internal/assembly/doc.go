// Package assembly puts the server's parts together the one way `runnel
// server` runs them, so that cmd/runnel and the benchmarks that stand
// for it (bench/webhook, bench/logs) run the same thing: StartCore
// starts the runner behind the bus and the delivery queue in front of
// it, in the server's order; NewHTTP serves the web UI in front of the
// API, with the forge hooks, /metrics, the transfer endpoints and the
// bounds on every request.
//
// It imports runner, runner/httpapi and runner/ui, so their own
// in-package tests cannot use it (an import cycle); the bus is
// internal/serverbus, which runner's tests reach through
// runner/runnertest.
package assembly
