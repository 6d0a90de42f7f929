// Package natsbus is the NATS side of Runnel: an embedded NATS server with
// JetStream and per-agent credentials (StartEmbedded, Connect), the
// server's Dispatcher (publish jobs, cancel, consume updates and logs,
// track agent presence) and the agent's Intake (pull the jobs matching its
// labels up to its capacity, with leases). The protocol itself is written
// down in package wire.
package natsbus
