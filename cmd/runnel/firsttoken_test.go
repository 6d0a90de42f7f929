package main

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var firstTokenRE = regexp.MustCompile(`admin API token \(shown once, only its hash is stored\): (rn\S+)`)

// TestFirstTokenAfterStart (issue 11, item 9): a start that fails because
// the NATS port is taken says "address already in use" and stores no
// admin token, so the next start, which succeeds, prints one.
func TestFirstTokenAfterStart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	r := runnel(t, t.TempDir(), "server", "--data", data, "--addr", "127.0.0.1:0", "--backend", "local", "--nats-port", port)
	if r.code == 0 || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("start with the NATS port taken: exit %d, stderr:\n%s\nwant a failure saying address already in use", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "admin API token") {
		t.Errorf("a failed start printed the admin token:\n%s", r.stdout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "server", "--data", data, "--addr", "127.0.0.1:0", "--backend", "local", "--nats-port", "-1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}()
	var token string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := firstTokenRE.FindStringSubmatch(sc.Text()); m != nil {
			token = m[1]
		}
		if strings.Contains(sc.Text(), "listening on") {
			break
		}
	}
	if token == "" {
		t.Fatalf("the first successful start printed no admin token")
	}
}
