// Package runnertest starts, for the tests of the server's packages, the
// message path `runnel server` runs: an embedded NATS server with
// JetStream in a temporary directory and the server's
// natsserver.Dispatcher (the runner's Bus), assembled by
// internal/serverbus as `runnel server` assembles them, and a built-in
// agent running the real agent loop (agents/agent) with the workspace
// StageRunner on the local shell engine. There is no other path between
// the runner and its agents, so tests use this one.
package runnertest
