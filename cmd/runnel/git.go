package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
)

// gitInfo is what `runnel run` learns about the working tree from git.
type gitInfo struct {
	Branch  string
	Commit  string
	Message string
	Author  string
}

// readGit asks the git binary about dir; fields stay empty where git is
// missing or dir is not a repository (or has no commit yet).
func readGit(ctx context.Context, dir string) gitInfo {
	var g gitInfo
	if b := gitOut(ctx, dir, "rev-parse", "--abbrev-ref", "HEAD"); b != "HEAD" {
		g.Branch = b // "HEAD" means detached: no branch
	}
	g.Commit = gitOut(ctx, dir, "rev-parse", "HEAD")
	if g.Commit != "" {
		g.Message = gitOut(ctx, dir, "log", "-1", "--format=%B")
		g.Author = gitOut(ctx, dir, "log", "-1", "--format=%an <%ae>")
	}
	return g
}

func gitOut(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return ""
	}
	return strings.TrimSpace(out.String())
}
