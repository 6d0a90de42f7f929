// Package workspace runs a stage on an agent: StageRunner checks the
// job's commit out into a fresh directory from a git mirror
// (internal/gitmirror), and plugs the stage executor and an engine into
// the agent loop (agents/agent).
package workspace
