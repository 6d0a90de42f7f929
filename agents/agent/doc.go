// Package agent is the agent loop: it announces itself and heartbeats,
// takes the jobs its labels and capacity allow (natsbus.Intake), keeps
// each job's lease, runs it with a StageRunner under a context that ends
// on a Cancel, on lease loss or at the drain deadline, and streams the
// stage's updates and log chunks back. The stage executor plugs in as the
// StageRunner (agents/workspace).
package agent
