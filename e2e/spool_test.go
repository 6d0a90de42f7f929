package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGitPushWhileServerDown: a `git push` while the server is stopped
// says its run is delayed, not lost, and exits 0; the server drains the
// spooled push at start and it becomes exactly one run. Sending the same
// spooled push again (a flush that died before removing the file) makes
// no second run.
func TestGitPushWhileServerDown(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	// The hook keeps the server's URL: the restarted server needs the
	// same port.
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := startServer(t, dir, "", "--addr", addr)
	bare, work := repoSetup(t, dir)
	out := runnel(t, "repo", "add", "app", "--bare", bare, "--server", srv.url, "--token", srv.token)
	m := regexp.MustCompile(`hook token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no hook token in %q", out)
	}
	runnel(t, "hook", "install", bare, "--server", srv.url, "--repo", "app", "--token", m[1])
	token := srv.token
	srv.stop(syscall.SIGKILL)

	sha := commit(t, work, okPipeline)
	out = git(t, work, "push", "origin", "main")
	spoolDir := filepath.Join(bare, "runnel-spool")
	if !strings.Contains(out, "remote: runnel: the run for refs/heads/main is delayed, not lost: the push is spooled in "+spoolDir) {
		t.Fatalf("push output does not say the run is spooled:\n%s", out)
	}
	spooled, err := filepath.Glob(filepath.Join(spoolDir, "*.json"))
	if err != nil || len(spooled) != 1 {
		t.Fatalf("spool holds %v (%v), want one push", spooled, err)
	}
	saved, err := os.ReadFile(spooled[0])
	if err != nil {
		t.Fatal(err)
	}

	srv = startServer(t, dir, token, "--addr", addr)
	r := srv.waitRun(sha, 2*time.Minute, terminal)
	if r.Status != "success" || r.Trigger != "githook" {
		t.Fatalf("run = %s (trigger %s), want success (githook): %+v", r.Status, r.Trigger, r)
	}
	waitFor(t, 30*time.Second, "the spool emptied", func() bool {
		left, _ := filepath.Glob(filepath.Join(spoolDir, "*.json"))
		return len(left) == 0
	})

	// A flush that died after the server took the push but before the
	// file was removed: the push is sent again with its delivery id.
	if err := os.WriteFile(spooled[0], saved, 0o640); err != nil {
		t.Fatal(err)
	}
	out = runnel(t, "hook", "flush", bare)
	if !strings.Contains(out, "the run for refs/heads/main was queued before") || !strings.Contains(out, "1 sent, 0 still spooled") {
		t.Errorf("flush of an already received push: %q, want it to say the run was queued before", out)
	}
	n := 0
	for _, r := range srv.runs("limit=50") {
		if r.Commit == sha {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d runs of the spooled push, want exactly 1", n)
	}
}
