// Package transfer moves a stage's files into its workspace before the
// first step and out of it after the last: the artifacts of the stages it
// receives from, its fetches (by URL and SHA-256) and its caches. It is
// the stage.Transfer of the agent and of `runnel run`; where things are
// kept is a Remote: a local artifact.Store (Local) for `runnel run`, the
// server's store for an agent.
//
// Everything moves as tar streams through the engine's Files capability,
// checked on both sides: entries read from a store pass an
// artifact.EntryChecker before they reach the engine, and entries read
// from the workspace pass the same rules before they are uploaded (no
// path out of the workspace, no link leading out of it, no hard links).
// Every action is written to the step log as a line starting "runnel: ".
package transfer
