// Package workspace prepares a stage's source tree on an agent: it fetches
// the job's commit from a clone URL or a local bare repository into a
// per-repository cache (a bare mirror, shallow fetch of exactly that SHA)
// and checks the tree out into a fresh directory. It uses the git CLI and
// never lets a job-supplied string become a git option. StageRunner plugs
// checkout, the stage executor and an engine into the agent loop
// (agents/agent). The package lives apart
// from scm because agents must not import scm (see layering_test.go).
package workspace
