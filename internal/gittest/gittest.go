// Package gittest runs the real git CLI for tests: a fixed identity, no
// user or system configuration, and a test failure (with git's output)
// when a command fails. It is shared by every package whose tests build
// repositories, so they all see git the same way.
package gittest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Author is the identity of every commit the helpers make.
const (
	AuthorName  = "Ann Author"
	AuthorEmail = "ann@example.com"
)

// FixedTime pins author and committer dates (2024-05-01T10:00:00Z), for
// tests that assert commit times or exact SHAs; pass it to RunEnv.
var FixedTime = []string{"GIT_AUTHOR_DATE=2024-05-01T10:00:00Z", "GIT_COMMITTER_DATE=2024-05-01T10:00:00Z"}

// Run runs git args in dir and returns its trimmed combined output.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return RunEnv(t, dir, nil, args...)
}

// RunEnv is Run with env added to the environment (after the process's
// own, so a t.Setenv still applies unless env overrides it).
func RunEnv(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME="+AuthorName, "GIT_AUTHOR_EMAIL="+AuthorEmail,
		"GIT_COMMITTER_NAME="+AuthorName, "GIT_COMMITTER_EMAIL="+AuthorEmail)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
