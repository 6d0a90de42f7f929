// Package gitrepo reads repositories with go-git, straight from their
// objects (no checkout): a file at a commit (the server reads
// .pipeline.yml this way from a git-hook repository or from the bare
// mirror of a forge repository), a commit's message, time and author,
// and the paths changed between two commits.
//
// Checking a commit out into a stage workspace is the agent's job and
// lives in internal/gitmirror.
package gitrepo
