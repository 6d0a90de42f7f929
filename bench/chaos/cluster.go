package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a started runnel process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) pid() string { return strconv.Itoa(p.cmd.Process.Pid) }

// stop signals p and waits for it to exit (SIGKILL after 30 s).
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// cluster is the server and its agents, restarted in place after kills.
type cluster struct {
	bin, dir  string
	httpAddr  string
	natsPort  int
	agents    int
	capacity  int
	lease     time.Duration // the server's --lease-timeout; 0: its default
	token     string        // admin API token
	install   string        // the server's install id
	agentToks []string

	mu        sync.Mutex // serialises kills and restarts
	server    *proc
	agentProc []*proc
	deaths    map[string]time.Time // agent pid -> SIGKILL time
	kills     []kill               // agent kills
	srvKills  int
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func newCluster(bin, dir string, agents, capacity int, lease time.Duration) (*cluster, error) {
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	np, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, httpAddr: fmt.Sprintf("127.0.0.1:%d", hp), natsPort: np,
		agents: agents, capacity: capacity, lease: lease, deaths: map[string]time.Time{}}
	tokRE := regexp.MustCompile(`agent token \(shown once\): (\S+)`)
	for i := range agents {
		out, err := exec.Command(bin, "agent", "token", agentName(i), "--data", c.data()).CombinedOutput()
		m := tokRE.FindSubmatch(out)
		if err != nil || m == nil {
			return nil, fmt.Errorf("agent token: %v: %s", err, out)
		}
		c.agentToks = append(c.agentToks, string(m[1]))
	}
	return c, nil
}

func agentName(i int) string { return fmt.Sprintf("chaos-%d", i+1) }

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }
func (c *cluster) url() string  { return "http://" + c.httpAddr }

func (c *cluster) logFile(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// startServer starts the server and waits until it listens.
func (c *cluster) startServer() error {
	logf, err := c.logFile("server")
	if err != nil {
		return err
	}
	args := []string{"server", "--addr", c.httpAddr, "--data", c.data(), "--no-agent",
		"--nats-port", strconv.Itoa(c.natsPort), "--drain-timeout", "5s", "--log-level", "debug"}
	if c.lease > 0 {
		args = append(args, "--lease-timeout", c.lease.String())
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		tokRE := regexp.MustCompile(`admin API token \(shown once, only its hash is stored\): (\S+)`)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			if m := tokRE.FindStringSubmatch(line); m != nil {
				c.token = m[1]
			}
			if strings.Contains(line, "listening on") {
				once.Do(func() { close(listening) })
			}
		}
	}()
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	select {
	case <-listening:
	case <-p.done:
		return fmt.Errorf("server exited before listening (see %s)", logf.Name())
	case <-time.After(2 * time.Minute):
		p.stop(syscall.SIGKILL)
		return fmt.Errorf("server did not listen within 2 minutes (see %s)", logf.Name())
	}
	c.server = p
	if c.install == "" {
		b, err := os.ReadFile(filepath.Join(c.data(), "install-id"))
		if err != nil {
			return err
		}
		c.install = strings.TrimSpace(string(b))
	}
	return nil
}

func (c *cluster) startAgent(i int) error {
	logf, err := c.logFile(agentName(i))
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "agent", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", c.natsPort),
		"--token", c.agentToks[i], "--capacity", strconv.Itoa(c.capacity),
		"--work-dir", filepath.Join(c.dir, agentName(i)), "--drain-timeout", "5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	if i < len(c.agentProc) {
		c.agentProc[i] = p
	} else {
		c.agentProc = append(c.agentProc, p)
	}
	return nil
}

// killAgent SIGKILLs agent i and starts it again (same work directory).
func (c *cluster) killAgent(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.agentProc[i]
	p.stop(syscall.SIGKILL)
	now := time.Now()
	c.deaths[p.pid()] = now
	c.kills = append(c.kills, kill{pid: p.pid(), at: now})
	return c.startAgent(i)
}

// killServer SIGKILLs the server, then starts it again.
func (c *cluster) killServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.server.stop(syscall.SIGKILL)
	c.srvKills++
	return c.startServer()
}

// stopAll stops the server and the agents gracefully.
func (c *cluster) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.agentProc {
		p.stop(syscall.SIGTERM)
	}
	if c.server != nil {
		c.server.stop(syscall.SIGTERM)
	}
}

// api GETs path with the admin token and decodes the JSON answer.
func (c *cluster) api(ctx context.Context, path string, v any) error {
	b, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (c *cluster) get(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url()+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}

// getRetry is get, retried while the server restarts.
func (c *cluster) getRetry(ctx context.Context, path string, v any) error {
	var err error
	for range 60 {
		if err = c.api(ctx, path, v); err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

// waitAgents waits until the server lists every agent.
func (c *cluster) waitAgents(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var out struct {
			Agents []struct{ Name string } `json:"agents"`
		}
		if err := c.api(ctx, "/api/v1/agents", &out); err == nil && len(out.Agents) >= c.agents {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("agents did not join within a minute")
}
