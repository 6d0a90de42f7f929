package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cluster is a `runnel server --no-agent` with its embedded NATS on a
// fixed port (so a restarted server keeps it) and `runnel agent`
// processes joined to it.
type cluster struct {
	t        *testing.T
	dir      string
	natsPort int
	extra    []string
	srv      *server
	tokens   map[string]string
	// tokenLabels are the labels each token allows (startAgent remakes a
	// token for other labels: a credential fixes them).
	tokenLabels map[string]string
	agents      map[string]*agentProc
}

// newCluster makes agent tokens for names (the embedded NATS loads them
// at start) and starts the server.
func newCluster(t *testing.T, names []string, extra ...string) *cluster {
	t.Helper()
	needDocker(t)
	c := &cluster{t: t, dir: t.TempDir(), natsPort: freePort(t), extra: extra,
		tokens: map[string]string{}, tokenLabels: map[string]string{}, agents: map[string]*agentProc{}}
	for _, n := range names {
		c.makeToken(n, "")
	}
	c.startServer("")
	return c
}

// makeToken makes agent name's credential allowing labels ("k=v,...").
func (c *cluster) makeToken(name, labels string) {
	c.t.Helper()
	out := runnel(c.t, "agent", "token", name, "--labels", labels, "--data", filepath.Join(c.dir, "data"))
	m := regexp.MustCompile(`agent token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		c.t.Fatalf("no agent token in %q", out)
	}
	c.tokens[name], c.tokenLabels[name] = m[1], labels
}

func (c *cluster) startServer(token string) {
	c.t.Helper()
	args := append([]string{"--no-agent", "--nats-port", fmt.Sprint(c.natsPort)}, c.extra...)
	c.srv = startServer(c.t, c.dir, token, args...)
}

// agentProc is a `runnel agent` process.
type agentProc struct {
	name string
	cmd  *exec.Cmd
	logf string
	done chan struct{}
}

// startAgent starts agent name with labels ("k=v,...") and capacity.
func (c *cluster) startAgent(name, labels string, capacity int) *agentProc {
	c.t.Helper()
	if c.tokenLabels[name] != labels || c.tokens[name] == "" {
		c.makeToken(name, labels)
	}
	logf := filepath.Join(c.dir, "agent-"+name+".log")
	f, err := os.Create(logf)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(binary, "agent", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", c.natsPort),
		"--token", c.tokens[name], "--labels", labels, "--capacity", fmt.Sprint(capacity),
		"--work-dir", filepath.Join(c.dir, "agent-"+name), "--drain-timeout", "5s")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	a := &agentProc{name: name, cmd: cmd, logf: logf, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(a.done)
	}()
	c.t.Cleanup(func() { a.stop(syscall.SIGINT) })
	c.agents[name] = a
	return a
}

func (a *agentProc) stop(sig syscall.Signal) { stopProcess(a.cmd, a.done, sig) }

func (a *agentProc) log() string {
	b, _ := os.ReadFile(a.logf)
	return string(b)
}

// agentInfo is an entry of GET /api/v1/agents.
type agentInfo struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Running  int               `json:"running"`
}

func (c *cluster) listAgents() []agentInfo {
	c.t.Helper()
	code, b := c.srv.api("GET", "/api/v1/agents")
	if code != 200 {
		c.t.Fatalf("GET /api/v1/agents = %d %s", code, b)
	}
	var out struct {
		Agents []agentInfo `json:"agents"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		c.t.Fatalf("decode agents %s: %v", b, err)
	}
	return out.Agents
}

// waitAgents polls until the API lists every agent in names.
func (c *cluster) waitAgents(names ...string) []agentInfo {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	var got []agentInfo
	for time.Now().Before(deadline) {
		got = c.listAgents()
		have := map[string]bool{}
		for _, a := range got {
			have[a.Name] = true
		}
		all := true
		for _, n := range names {
			all = all && have[n]
		}
		if all {
			return got
		}
		<-poll.C
	}
	c.t.Fatalf("agents = %+v, want %v within 30s", got, names)
	return nil
}

// addRepo registers the bare repository at path as a plain git repo.
func (c *cluster) addRepo(name, bare string) {
	c.t.Helper()
	c.srv.createRepo(map[string]any{"name": name, "forge": "git", "clone_url": bare})
}

// pushAndTrigger commits pipeline, pushes it and triggers a run by API.
func (c *cluster) pushAndTrigger(repo, work, pipeline string) string {
	c.t.Helper()
	return c.srv.pushAndTrigger(repo, work, pipeline)
}

// pushAndTrigger commits pipeline, pushes it and triggers a run by API.
func (s *server) pushAndTrigger(repo, work, pipeline string) string {
	s.t.Helper()
	sha := commit(s.t, work, pipeline)
	git(s.t, work, "push", "-q", "origin", "main")
	code, b := s.do("POST", "/api/v1/repos/"+repo+"/trigger", strings.NewReader(`{"branch":"main","commit":"`+sha+`"}`),
		map[string]string{"Authorization": "Bearer " + s.token})
	if code != http.StatusCreated {
		s.t.Fatalf("trigger: %d %s", code, b)
	}
	return sha
}

// stageDetail and runDetail decode the fields of GET /api/v1/runs/{id}
// the agent tests look at beyond the shared run type.
type stageDetail struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason"`
	PendingReason string    `json:"pending_reason"`
	Attempt       int       `json:"attempt"`
	Agent         string    `json:"agent"`
	Concurrency   string    `json:"concurrency"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	Steps         []step    `json:"steps"`
}

type runDetail struct {
	ID     int64         `json:"id"`
	Commit string        `json:"commit"`
	Status string        `json:"status"`
	Reason string        `json:"reason"`
	Stages []stageDetail `json:"stages"`
}

func (c *cluster) runDetail(id int64) runDetail {
	c.t.Helper()
	code, b := c.srv.api("GET", fmt.Sprintf("/api/v1/runs/%d", id))
	if code != 200 {
		c.t.Fatalf("get run %d: %d %s", id, code, b)
	}
	var r runDetail
	if err := json.Unmarshal(b, &r); err != nil {
		c.t.Fatal(err)
	}
	return r
}

func (r runDetail) stage(id string) stageDetail {
	for _, s := range r.Stages {
		if s.ID == id {
			return s
		}
	}
	return stageDetail{}
}

// marker is a TCP server on the host that steps report to with busybox
// nc through their network's gateway: one line per connection ("start
// ID", "tick ID N", "end ID"), answered with one line. It records when
// each line arrived, so the test sees when a container really ran,
// independently of what the agents and the server report.
type marker struct {
	ln     net.Listener
	mu     sync.Mutex
	events []markEvent
	starts int
	reply  func(starts int) string // answer to the n-th start (1-based)
	wg     sync.WaitGroup
}

type markEvent struct {
	at   time.Time
	kind string
	id   string
}

func newMarker(t *testing.T, reply func(starts int) string) *marker {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &marker{ln: ln, reply: reply}
	m.wg.Add(1)
	go m.serve()
	t.Cleanup(func() {
		ln.Close()
		m.wg.Wait()
	})
	return m
}

func (m *marker) port() int { return m.ln.Addr().(*net.TCPAddr).Port }

func (m *marker) serve() {
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) < 2 {
				return
			}
			m.mu.Lock()
			m.events = append(m.events, markEvent{at: time.Now(), kind: f[0], id: f[1]})
			ans := "ok"
			if f[0] == "start" {
				m.starts++
				ans = m.reply(m.starts)
			}
			m.mu.Unlock()
			fmt.Fprintln(conn, ans)
		}()
	}
}

func (m *marker) snapshot() []markEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]markEvent(nil), m.events...)
}

// markerScript is the shell of a step that reports to the marker and
// ticks as many seconds as the marker answers to its start.
func markerScript(port int) string {
	return fmt.Sprintf(`gw=$(ip route | awk '/default/ {print $3}')
id=$(hostname)
n=$(echo "start $id" | nc -w 3 $gw %[1]d)
echo "start $id ticks=$n"
i=0
while [ "$i" -lt "$n" ]; do echo "tick $id $i" | nc -w 3 $gw %[1]d >/dev/null; sleep 1; i=$((i+1)); done
echo "end $id" | nc -w 3 $gw %[1]d >/dev/null
echo "end $id"`, port)
}
