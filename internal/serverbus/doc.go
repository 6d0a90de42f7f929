// Package serverbus assembles the server's side of the bus the one way
// `runnel server` and the tests run it: an embedded NATS server with
// JetStream (or an external NATS), the agent credentials it accepts and
// the labels each allows (the runner's check of claims), the built-in
// agent's credential, and the natsserver.Dispatcher the runner takes as
// its Bus.
//
// It links nothing of runner/: runner's own tests start it through
// runner/runnertest. The goroutines that consume agents' events and run
// the built-in agent belong to the caller (cmd/runnel, runnertest),
// which stops them before Close.
package serverbus
