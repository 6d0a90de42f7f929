// Package gitrepo reads repositories: a file at a commit straight from a
// bare repository's objects (no checkout), a commit's message, time and
// author, the paths changed between two commits (all with go-git), and
// checks out an exact commit into a workspace from a per-repository cache
// (with the git CLI when installed, which measured faster than go-git; see
// docs/benchmarks.md, "## Checkout").
//
// URLs, refs and SHAs given to Checkout are untrusted: they are validated,
// never placed where git reads options, and credentials travel in the
// environment (GIT_CONFIG_COUNT/KEY/VALUE), never in argv.
package gitrepo
