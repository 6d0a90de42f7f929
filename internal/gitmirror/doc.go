// Package gitmirror fetches commits of git repositories into per-URL bare
// mirrors below a directory and checks trees out of them: a shallow fetch
// of exactly the wanted SHA (the ref as a fallback), a file lock that
// serialises fetches into one mirror, also across processes, and the git
// CLI, which measured several times faster than go-git
// (docs/benchmarks.md, "Checkout"). Source strings never become git
// options, command-running transports (ext::, fd::) are refused, and
// credentials reach git through GIT_CONFIG_* environment variables, never
// argv.
//
// Both sides use it: agents check a job's commit out of a mirror
// (agents/workspace), and the server reads a forge repository's pipeline
// file from one (runner, with scm/gitrepo). It lives apart from both so
// that the server links no agent code and agents no server or scm code
// (layering_test.go).
package gitmirror
