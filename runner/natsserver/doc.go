// Package natsserver is the server's side of the NATS bus: the embedded
// NATS server with JetStream and per-agent credentials and permissions
// (StartEmbedded, NewAgentCredential, AgentPermissions) and the
// Dispatcher (publish jobs, cancel, consume updates and logs, track agent
// presence). cmd/runnel wires the Dispatcher in as runner.Bus; the agent's
// side is agents/natsbus, the protocol package wire.
package natsserver
