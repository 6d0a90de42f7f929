package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gate is a TCP server a step asks "open?" until the test opens it: the
// step can wait for the test without the test sleeping.
type gate struct {
	ln   net.Listener
	open atomic.Bool
}

func newGate(t *testing.T) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			bufio.NewReader(c).ReadString('\n')
			if g.open.Load() {
				io.WriteString(c, "go\n")
			} else {
				io.WriteString(c, "wait\n")
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return g
}

// script waits (inside a step's container) until the gate opens.
func (g *gate) script() string {
	return fmt.Sprintf(`gw=$(ip route | awk '/default/ {print $3}'); `+
		`until [ "$(echo open | nc -w 3 $gw %d)" = go ]; do sleep 0.2; done`, g.ln.Addr().(*net.TCPAddr).Port)
}

// runnelEnv runs the CLI with RUNNEL_SERVER and RUNNEL_TOKEN set and
// returns its combined output and exit code.
func runnelEnv(t *testing.T, server, token string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "RUNNEL_SERVER="+server, "RUNNEL_TOKEN="+token, "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errorsAs(err, &ee) {
		t.Fatalf("runnel %v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func errorsAs(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

var runStartedRE = regexp.MustCompile(`run (\d+) started`)

// TestCLIDayToDay: trigger with an input, follow the live log of a
// running step until it ends, read-only and revoked tokens, a config
// file, repo list/update/rm.
func TestCLIDayToDay(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	out, code := runnelEnv(t, srv.url, srv.token, "repo", "add", "app", "--bare", bare)
	if code != 0 {
		t.Fatalf("repo add: %d %s", code, out)
	}
	g := newGate(t)
	sha := commit(t, work, `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: print
        run: |
          echo "first version=$RUNNEL_INPUT_VERSION"
          `+g.script()+`
          echo "last line"
`)
	git(t, work, "push", "-q", "origin", "main")

	out, code = runnelEnv(t, srv.url, srv.token, "trigger", "app", "--input", "version=1.2")
	m := runStartedRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("trigger: %d %s", code, out)
	}
	id := m[1]

	// logs -f prints the first line while the step still waits for the
	// gate, and exits on its own once the step has ended.
	cmd := exec.Command(binary, "logs", "-f", id, "build", "print")
	cmd.Env = append(os.Environ(), "RUNNEL_SERVER="+srv.url, "RUNNEL_TOKEN="+srv.token)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		done <- cmd.Wait()
	}()
	waitLine := func(want string) {
		t.Helper()
		timeout := time.After(90 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("logs -f ended before %q; stderr %s", want, stderr.String())
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timeout:
				cmd.Process.Kill()
				t.Fatalf("logs -f: no %q within 90s; server log:\n%s", want, srv.log())
			}
		}
	}
	waitLine("first version=1.2")
	if r := srv.run(atoi(t, id)); terminal(r) {
		t.Fatalf("run ended before the gate opened: %+v", r)
	}
	g.open.Store(true)
	waitLine("last line")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("logs -f: %v; stderr %s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("logs -f did not exit after the step ended")
	}
	if r := srv.waitRun(sha, 60*time.Second, terminal); r.Status != "success" {
		t.Errorf("run = %+v, want success", r)
	}
	if !strings.Contains(stderr.String(), "build / print: success") {
		t.Errorf("logs -f stderr = %q, want the step's end", stderr.String())
	}

	out, code = runnelEnv(t, srv.url, srv.token, "runs", "--repo", "app", "--status", "success")
	if code != 0 || !strings.Contains(out, "app") || !strings.Contains(out, sha[:7]) {
		t.Errorf("runs: %d %s", code, out)
	}

	// A read-only token reads but may not act; revoked, it is refused.
	out, code = runnelEnv(t, srv.url, srv.token, "token", "create", "viewer", "--role", "read")
	tm := regexp.MustCompile(`(?m)^(rnl_\S+)$`).FindStringSubmatch(out)
	if code != 0 || tm == nil {
		t.Fatalf("token create: %d %s", code, out)
	}
	viewer := tm[1]
	if out, code := runnelEnv(t, srv.url, viewer, "runs"); code != 0 {
		t.Errorf("runs as viewer: %d %s", code, out)
	}
	for _, args := range [][]string{{"cancel", id}, {"trigger", "app"}, {"rerun", id}, {"token", "create", "x"}} {
		if out, code := runnelEnv(t, srv.url, viewer, args...); code == 0 || !strings.Contains(out, "403") {
			t.Errorf("%v as viewer: %d %s, want a 403", args, code, out)
		}
	}
	out, _ = runnelEnv(t, srv.url, srv.token, "token", "list")
	idm := regexp.MustCompile(`(?m)^(\d+)\s+viewer\s+read`).FindStringSubmatch(out)
	if idm == nil {
		t.Fatalf("token list: %s", out)
	}
	if out, code := runnelEnv(t, srv.url, srv.token, "token", "rm", idm[1]); code != 0 {
		t.Fatalf("token rm: %d %s", code, out)
	}
	if out, code := runnelEnv(t, srv.url, viewer, "runs"); code == 0 || !strings.Contains(out, "401") {
		t.Errorf("runs with a revoked token: %d %s, want a 401", code, out)
	}

	// A config file instead of the environment; one readable by others
	// is refused.
	conf := filepath.Join(dir, "runnel.conf")
	os.WriteFile(conf, []byte("# test\nserver = "+srv.url+"\ntoken = "+srv.token+"\n"), 0o600)
	c := exec.Command(binary, "repo", "list", "--config", conf)
	if b, err := c.CombinedOutput(); err != nil || !strings.Contains(string(b), "app") {
		t.Errorf("repo list --config: %v %s", err, b)
	}
	os.Chmod(conf, 0o644)
	if b, err := exec.Command(binary, "repo", "list", "--config", conf).CombinedOutput(); err == nil || !strings.Contains(string(b), "chmod 600") {
		t.Errorf("repo list with a world-readable config: %v %s", err, b)
	}

	out, code = runnelEnv(t, srv.url, srv.token, "repo", "update", "app", "--default-branch", "trunk", "--new-hook-token")
	if code != 0 || !strings.Contains(out, "new hook token of app (shown once): ") {
		t.Errorf("repo update: %d %s", code, out)
	}
	if out, _ := runnelEnv(t, srv.url, srv.token, "repo", "list"); !strings.Contains(out, "trunk") {
		t.Errorf("repo list after update: %s", out)
	}
	if out, code := runnelEnv(t, srv.url, srv.token, "repo", "rm", "app"); code != 0 {
		t.Errorf("repo rm: %d %s", code, out)
	}
	if out, _ := runnelEnv(t, srv.url, srv.token, "runs"); strings.Contains(out, sha[:7]) {
		t.Errorf("runs after repo rm still list its run: %s", out)
	}
}

// TestTokenCreateOnServerHost: with --data an admin token is made without
// the API (and works at once).
func TestTokenCreateOnServerHost(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "", "--backend", "local", "--no-agent")
	out := runnel(t, "token", "create", "rescue", "--role", "admin", "--data", filepath.Join(dir, "data"))
	m := regexp.MustCompile(`(?m)^(rnl_\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("token create --data: %s", out)
	}
	if out, code := runnelEnv(t, srv.url, m[1], "token", "list"); code != 0 || !strings.Contains(out, "rescue") {
		t.Errorf("token list with the new admin token: %d %s", code, out)
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
