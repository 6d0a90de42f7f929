// Package natsbus is the agent's side of the NATS bus: connecting with an
// agent's credentials (ParseAgentToken, Connect) and the Intake (pull the
// jobs matching its labels up to its capacity, with leases). The server's
// side (the embedded NATS server, agent permissions, the Dispatcher) is
// runner/natsserver; the protocol itself is written down in package wire.
package natsbus
