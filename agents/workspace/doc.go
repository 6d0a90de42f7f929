// Package workspace prepares a stage's source tree on an agent: Cache
// fetches the job's commit from a clone URL or a local bare repository
// into a per-repository bare mirror (shallow fetch of exactly that SHA,
// the ref as a fallback; a file lock serialises fetches, also across
// processes) and checks the tree out into a fresh directory with the git
// CLI, which measured several times faster than go-git (docs/benchmarks.md,
// "## Checkout"). Job-supplied strings never become git options,
// command-running transports (ext::, fd::) are refused, and credentials
// reach git through GIT_CONFIG_* environment variables, never argv.
// The server uses Cache.Fetch to read a forge repository's pipeline file
// from the mirror (with scm/gitrepo). StageRunner plugs checkout, the
// stage executor and an engine into the agent loop (agents/agent). The
// package lives apart from scm because agents must not import scm (see
// layering_test.go).
package workspace
