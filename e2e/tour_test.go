package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tourScript returns the shell blocks of README.md between <!-- tour -->
// and <!-- /tour -->, in order, each with the indentation of its list
// item removed.
func tourScript(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- tour -->")
	tour, _, ok2 := strings.Cut(rest, "<!-- /tour -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no <!-- tour --> ... <!-- /tour --> section")
	}
	var script strings.Builder
	blocks := regexp.MustCompile("(?ms)^( *)```sh\n(.*?)^ *```").FindAllStringSubmatch(tour, -1)
	if len(blocks) < 5 {
		t.Fatalf("the tour has %d sh blocks, want its steps", len(blocks))
	}
	for _, b := range blocks {
		indent := b[1]
		for l := range strings.Lines(b[2]) {
			script.WriteString(strings.TrimPrefix(l, indent))
		}
	}
	return script.String()
}

// TestReadmeTour follows the README's server tour literally: its shell
// blocks run in order in one bash, from a fresh "checkout" (a directory
// with bin/runnel) with an empty HOME (no git identity, no git default
// branch setting). Only the ports (8080, 4222) and the scratch directory
// are replaced, so parallel tests do not collide. It ends with two green
// runs, the second on the agent added in the "More agents" step.
func TestReadmeTour(t *testing.T) {
	needDocker(t)
	script := tourScript(t)
	dir := t.TempDir()
	checkout, home, scratch, tmp := filepath.Join(dir, "checkout"), filepath.Join(dir, "home"), filepath.Join(dir, "tour"), filepath.Join(dir, "tmp")
	for _, d := range []string{filepath.Join(checkout, "bin"), home, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(binary, filepath.Join(checkout, "bin", "runnel")); err != nil {
		t.Fatal(err)
	}
	httpPort, natsPort := freePort(t), freePort(t)
	script = strings.NewReplacer("127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"127.0.0.1:4222", fmt.Sprintf("127.0.0.1:%d", natsPort), "/tmp/runnel-tour", scratch).Replace(script)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = checkout
	// A fresh machine: the system's PATH, an empty HOME, no RUNNEL_* or
	// GIT_* settings; the server's embedded NATS on the free port.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp, "LANG=C.UTF-8",
		fmt.Sprintf("RUNNEL_NATS_PORT=%d", natsPort)}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so whatever the tour left running is
	// stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Run()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	logs := func() string {
		var b strings.Builder
		for _, f := range []string{"server.log", "agent.log"} {
			data, _ := os.ReadFile(filepath.Join(scratch, f))
			fmt.Fprintf(&b, "--- %s\n%s", f, data)
		}
		return b.String()
	}
	if err != nil {
		t.Fatalf("the tour failed: %v\n%s\n%s", err, out.String(), logs())
	}
	got := out.String()
	for _, want := range []string{
		"hello from main at ",
		"only an agent with pool=second runs this",
		"-F __start_runnel runnel", // complete -p runnel: the completion is loaded
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the tour's output lacks %q:\n%s", want, got)
		}
	}
	// runnel runs --status success lists both runs.
	if n := len(regexp.MustCompile(`(?m)^\d+\s+web\s+\d+\s+success\s`).FindAllString(got, -1)); n < 3 {
		t.Errorf("want run 1 listed green after step 3 and runs 1 and 2 after step 4 (3 lines), got %d:\n%s", n, got)
	}
	if strings.Contains(logs(), "Authorization Violation") && !strings.Contains(logs(), "agent started") {
		t.Errorf("the second agent was refused:\n%s", logs())
	}
}
