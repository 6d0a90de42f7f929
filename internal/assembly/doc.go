// Package assembly starts the server's core the one way `runnel server`
// starts it, for cmd/runnel and the tests and benchmarks that stand for
// it (runner/httpapi's, bench/webhook, bench/logs): StartCore makes the
// runner behind the bus and the delivery queue in front of it, in the
// server's order. The web UI and the API in front of them are
// internal/assembly/httpserver.
//
// It imports neither runner/httpapi nor runner/ui, so that their own
// in-package tests can use it (layering_test.go); the bus is
// internal/serverbus, which runner's tests reach through
// runner/runnertest.
package assembly
