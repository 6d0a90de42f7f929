// Package mototest runs moto_server, the AWS API emulator the ECS and
// ELBv2 tests use, on a free 127.0.0.1 port.
//
// A port found free can be taken before moto binds it (other packages
// start their own moto_server at the same time), and then another
// process's server would answer this package's health check. So Start
// trusts only moto's own "Running on http://HOST:PORT" line, which it
// prints once it has bound the port, and tries another port when the
// process exits instead.
package mototest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Server is a running moto_server.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	stop func()
}

// Stop kills the server and waits for it.
func (s *Server) Stop() { s.stop() }

// Find looks for moto_server in PATH and in pyenv's shims.
func Find() (string, error) {
	if p, err := exec.LookPath("moto_server"); err == nil {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := home + "/.pyenv/shims/moto_server"
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("moto_server not found in PATH or ~/.pyenv/shims")
}

// Need starts a server that stops when t ends; without moto_server t is
// skipped, or fails when CI is set.
func Need(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err == nil {
		t.Cleanup(s.Stop)
		return s
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("moto_server: %v", err)
	}
	t.Skipf("moto_server: %v", err)
	return nil
}

// Start starts moto_server on a free port.
func Start() (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		s, err := start(bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return startOn(bin, port)
}

func startOn(bin string, port int) (*Server, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	bound := make(chan error, 1)
	go func() { bound <- watch(out, "Running on "+url) }()
	select {
	case err = <-bound:
	case <-time.After(2 * time.Minute):
		err = errors.New("no \"Running on\" line within 2 minutes")
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("moto_server on port %d: %w", port, err)
	}
	return &Server{URL: url, stop: stop}, nil
}

// watch reads moto's output until the line that says it serves on the
// port (nil) or the end of the output (the process exited: an error
// with its last lines); it then keeps draining the output so moto never
// blocks writing its request log.
func watch(out io.Reader, ready string) error {
	sc := bufio.NewScanner(out)
	var last []string
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, ready) {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return nil
		}
		if last = append(last, line); len(last) > 5 {
			last = last[1:]
		}
	}
	return fmt.Errorf("exited before serving: %s", strings.Join(last, " / "))
}
