package e2e

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/internal/gittest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runnel-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "runnel")
	build := exec.Command("go", "build", "-o", binary, "github.com/runnel-ci/runnel/cmd/runnel")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build runnel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needDocker fails under CI and skips elsewhere when no Docker engine or
// test image is available.
func needDocker(t *testing.T) {
	t.Helper()
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", "runnel-test/busybox:latest").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("Docker engine or image runnel-test/busybox:latest unavailable (run scripts/test-images.sh): %v: %s", err, out)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// server is a runnel server process.
type server struct {
	t     *testing.T
	cmd   *exec.Cmd
	url   string
	token string
	logf  *os.File
	done  chan struct{}
}

var (
	listenRE = regexp.MustCompile(`listening on (\S+)`)
	tokenRE  = regexp.MustCompile(`admin API token \(shown once, only its hash is stored\): (\S+)`)
)

// startServer starts `runnel server` on an ephemeral port with data in
// dir. token is the admin token of an earlier start of the same dir.
func startServer(t *testing.T, dir, token string, extra ...string) *server {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"server", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--backend", "docker",
		"--drain-timeout", "5s", "--nats-url", "embedded", "--nats-port", "-1"}
	args = append(args, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "RUNNEL_LOG_LEVEL=debug")
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, token: token, logf: logf, done: make(chan struct{})}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for s.url == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("server exited before listening; log:\n%s", s.log())
			}
			if m := tokenRE.FindStringSubmatch(line); m != nil {
				s.token = m[1]
			}
			if m := listenRE.FindStringSubmatch(line); m != nil {
				s.url = "http://" + m[1]
			}
		case <-timeout:
			t.Fatalf("server did not listen within 30s; log:\n%s", s.log())
		}
	}
	go func() {
		for range lines {
		}
	}()
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop(syscall.SIGINT) })
	if s.token == "" {
		t.Fatal("no admin token printed and none given")
	}
	return s
}

func (s *server) log() string {
	b, _ := os.ReadFile(s.logf.Name())
	return string(b)
}

// stop signals the server and waits for it to exit.
func (s *server) stop(sig syscall.Signal) {
	stopProcess(s.cmd, s.done, sig)
	s.logf.Close()
}

// stopProcess signals a started process (done closes when it has exited)
// and waits, killing it after 20 s. A process that already exited is left.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}, sig syscall.Signal) {
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// createRepo registers a repository through the API (fields are the JSON
// body) and returns the answer; anything but 201 fails the test.
func (s *server) createRepo(fields map[string]any) []byte {
	s.t.Helper()
	body, err := json.Marshal(fields)
	if err != nil {
		s.t.Fatal(err)
	}
	code, b := s.do("POST", "/api/v1/repos", bytes.NewReader(body), map[string]string{"Authorization": "Bearer " + s.token})
	if code != http.StatusCreated {
		s.t.Fatalf("create repo %v: %d %s", fields["name"], code, b)
	}
	return b
}

func (s *server) do(method, path string, body io.Reader, hdr map[string]string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *server) api(method, path string) (int, []byte) {
	return s.do(method, path, nil, map[string]string{"Authorization": "Bearer " + s.token})
}

type step struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	ExitCode *int   `json:"exit_code"`
	Log      string `json:"log"`
}

type stage struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Attempt int    `json:"attempt"`
	Agent   string `json:"agent"`
	Steps   []step `json:"steps"`
}

type run struct {
	ID      int64   `json:"id"`
	Repo    string  `json:"repo"`
	Commit  string  `json:"commit"`
	Status  string  `json:"status"`
	Reason  string  `json:"reason"`
	Trigger string  `json:"trigger"`
	Stages  []stage `json:"stages"`
}

func (s *server) runs(query string) []run {
	s.t.Helper()
	code, b := s.api("GET", "/api/v1/runs?"+query)
	if code != 200 {
		s.t.Fatalf("list runs: %d %s", code, b)
	}
	var out struct {
		Runs []run `json:"runs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		s.t.Fatal(err)
	}
	return out.Runs
}

func (s *server) run(id int64) run {
	s.t.Helper()
	code, b := s.api("GET", fmt.Sprintf("/api/v1/runs/%d", id))
	if code != 200 {
		s.t.Fatalf("get run %d: %d %s", id, code, b)
	}
	var r run
	if err := json.Unmarshal(b, &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// waitRun polls until a run of commit exists and cond holds.
func (s *server) waitRun(commit string, d time.Duration, cond func(run) bool) run {
	s.t.Helper()
	deadline := time.Now().Add(d)
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	var last run
	for time.Now().Before(deadline) {
		for _, r := range s.runs("limit=50") {
			if r.Commit == commit {
				last = s.run(r.ID)
				if cond(last) {
					return last
				}
			}
		}
		<-poll.C
	}
	s.t.Fatalf("run of %s: condition not met within %s; last %+v\nserver log:\n%s", commit, d, last, s.log())
	return run{}
}

func terminal(r run) bool {
	switch r.Status {
	case "success", "failure", "canceled", "error", "skipped":
		return true
	}
	return false
}

// git runs git in dir (internal/gittest).
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.Run(t, dir, args...)
}

func runnel(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("runnel %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// repoSetup makes a bare repo and a working clone.
func repoSetup(t *testing.T, dir string) (bare, work string) {
	bare = filepath.Join(dir, "app.git")
	git(t, dir, "init", "-q", "--bare", "--initial-branch=main", bare)
	work = filepath.Join(dir, "work")
	git(t, dir, "clone", "-q", bare, work)
	git(t, work, "checkout", "-q", "-b", "main")
	return bare, work
}

func commit(t *testing.T, work, pipeline string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(work, ".pipeline.yml"), []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "add", ".")
	git(t, work, "commit", "-qm", "e2e change")
	return git(t, work, "rev-parse", "HEAD")
}

const okPipeline = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: compile
        run: echo "built $RUNNEL_COMMIT" > out.txt && cat out.txt
  test:
    image: runnel-test/busybox:latest
    needs: [build]
    steps:
      - name: unit
        run: test -f .pipeline.yml && echo tests passed
`

const failPipeline = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: compile
        run: |
          echo "compiler says: syntax error on line 42"
          exit 3
`

func TestGitPush(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	out := runnel(t, "repo", "add", "app", "--bare", bare, "--server", srv.url, "--token", srv.token)
	m := regexp.MustCompile(`hook token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no hook token in %q", out)
	}
	runnel(t, "hook", "install", bare, "--server", srv.url, "--repo", "app", "--token", m[1])

	sha := commit(t, work, okPipeline)
	git(t, work, "push", "-q", "origin", "main")
	r := srv.waitRun(sha, 90*time.Second, terminal)
	if r.Status != "success" || r.Trigger != "githook" {
		t.Fatalf("run = %s (trigger %s), want success (githook): %+v", r.Status, r.Trigger, r)
	}
	if len(r.Stages) != 2 || r.Stages[0].Agent == "" {
		t.Errorf("stages = %+v, want 2 with an agent", r.Stages)
	}
	code, b := srv.api("GET", r.Stages[0].Steps[0].Log)
	if code != 200 || !strings.Contains(string(b), "built "+sha) {
		t.Errorf("build log = %d %q, want it to contain %q", code, b, "built "+sha)
	}

	sha2 := commit(t, work, failPipeline)
	git(t, work, "push", "-q", "origin", "main")
	r = srv.waitRun(sha2, 90*time.Second, terminal)
	if r.Status != "failure" {
		t.Fatalf("run = %s, want failure: %+v", r.Status, r)
	}
	st := r.Stages[0].Steps[0]
	if st.Status != "failure" || st.ExitCode == nil || *st.ExitCode != 3 {
		t.Errorf("failing step = %+v, want failure with exit code 3", st)
	}
	code, b = srv.api("GET", st.Log)
	if code != 200 || !strings.Contains(string(b), "syntax error on line 42") {
		t.Errorf("failing step log = %d %q, want the compiler output", code, b)
	}
	// The same log by step name, and as SSE.
	code, b = srv.do("GET", fmt.Sprintf("/api/v1/runs/%d/stages/build/steps/compile/log", r.ID), nil,
		map[string]string{"Authorization": "Bearer " + srv.token, "Accept": "text/event-stream"})
	if code != 200 || !strings.Contains(string(b), `"compiler says: syntax error on line 42"`) || !strings.Contains(string(b), "event: end") {
		t.Errorf("SSE log = %d %q", code, b)
	}
	// No token, no API.
	if code, _ := srv.do("GET", "/api/v1/runs", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/runs without token = %d, want 401", code)
	}
	// The badge reflects the last run of main.
	code, b = srv.do("GET", "/badges/app/status.svg", nil, nil)
	if code != 200 || !bytes.Contains(b, []byte("failure")) && !bytes.Contains(b, []byte("failing")) {
		t.Errorf("badge = %d %.200s, want a failure badge", code, b)
	}
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// fixture loads a GitHub fixture and rewrites it for our repository.
func fixture(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	// The real GitHub payloads, as kept beside the GitHub hook's own tests.
	b, err := os.ReadFile(filepath.Join("..", "scm", "github", "testdata", name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGitHubWebhook(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	const secret = "It's a Secret to Everybody"
	const name = "Codertocat/Hello-World"
	srv.createRepo(map[string]any{"name": name, "forge": "github", "clone_url": bare, "secret": secret})
	sha := commit(t, work, okPipeline)
	git(t, work, "push", "-q", "origin", "main")

	push := fixture(t, "push.with-new-branch.json", func(m map[string]any) {
		m["after"] = sha
		m["ref"] = "refs/heads/main"
		repo := m["repository"].(map[string]any)
		repo["full_name"] = name
		repo["clone_url"] = bare
		if hc, ok := m["head_commit"].(map[string]any); ok {
			hc["id"] = sha
		}
	})
	post := func(event, delivery string, body []byte, sig string) (int, string) {
		hdr := map[string]string{"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
		if sig != "" {
			hdr["X-Hub-Signature-256"] = sig
		}
		code, b := srv.do("POST", "/hooks/github", bytes.NewReader(body), hdr)
		return code, string(b)
	}

	bad := []struct {
		name string
		body []byte
		sig  string
	}{
		{"missing signature", push, ""},
		{"wrong secret", push, sign("not the secret", push)},
		{"body altered", append(bytes.Clone(push[:len(push)-1]), []byte(`,"x":1}`)...), sign(secret, push)},
	}
	for _, tt := range bad {
		if code, body := post("push", "bad-"+strings.ReplaceAll(tt.name, " ", "-"), tt.body, tt.sig); code != http.StatusUnauthorized {
			t.Errorf("%s: got %d %s, want 401", tt.name, code, body)
		}
	}
	if runs := srv.runs(""); len(runs) != 0 {
		t.Fatalf("runs after rejected deliveries = %d, want 0", len(runs))
	}

	for i := 0; i < 2; i++ {
		code, body := post("push", "delivery-1", push, sign(secret, push))
		want := http.StatusAccepted
		if i == 1 {
			want = http.StatusOK
		}
		if code != want || (i == 1 && !strings.Contains(body, "duplicate")) {
			t.Errorf("delivery %d: got %d %s, want %d", i+1, code, body, want)
		}
	}
	r := srv.waitRun(sha, 90*time.Second, terminal)
	if r.Status != "success" || r.Repo != name || r.Trigger != "webhook" {
		t.Errorf("run = %+v, want success of %s by webhook", r, name)
	}

	ping := fixture(t, "ping.json", func(m map[string]any) {
		if repo, ok := m["repository"].(map[string]any); ok {
			repo["full_name"] = name
		}
	})
	if code, body := post("ping", "delivery-ping", ping, sign(secret, ping)); code/100 != 2 || !strings.Contains(body, "ignored") {
		t.Errorf("ping: got %d %s, want 2xx ignored", code, body)
	}
	deleted := fixture(t, "push.with-new-branch.json", func(m map[string]any) {
		m["before"], m["after"], m["deleted"], m["created"] = sha, strings.Repeat("0", 40), true, false
		m["head_commit"] = nil
		m["ref"] = "refs/heads/feature"
		m["repository"].(map[string]any)["full_name"] = name
	})
	if code, body := post("push", "delivery-del", deleted, sign(secret, deleted)); code/100 != 2 || !strings.Contains(body, "ignored") {
		t.Errorf("branch deletion: got %d %s, want 2xx ignored", code, body)
	}
	// The duplicate, the ping and the deletion were answered without being
	// queued (200 duplicate, 202 ignored): nothing is left that could start
	// a run, and the first delivery's run has ended.
	if runs := srv.runs(""); len(runs) != 1 {
		t.Errorf("runs = %d, want exactly 1 (duplicates, ping and deletion start nothing)", len(runs))
	}
	code, b := srv.do("GET", "/metrics", nil, nil)
	if code != 200 || !bytes.Contains(b, []byte(`duplicate`)) {
		t.Errorf("metrics = %d, want webhook delivery counters including duplicate", code)
	}
}

func TestServerKilledMidRun(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	var lease []string
	if l := os.Getenv("RUNNEL_E2E_LEASE"); l != "" {
		lease = []string{"--lease-timeout", l}
	}
	srv := startServer(t, dir, "", lease...)
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": "slow", "forge": "git", "clone_url": bare})
	sha := commit(t, work, `version: 1
stages:
  slow:
    image: runnel-test/busybox:latest
    steps:
      - name: nap
        run: echo start; sleep 6; echo woke
`)
	git(t, work, "push", "-q", "origin", "main")
	// Trigger by API (the repo has no hook installed).
	code, b := srv.do("POST", "/api/v1/repos/slow/trigger", strings.NewReader(`{"branch":"main"}`),
		map[string]string{"Authorization": "Bearer " + srv.token})
	if code != http.StatusCreated {
		t.Fatalf("trigger: %d %s", code, b)
	}
	srv.waitRun(sha, 60*time.Second, func(r run) bool { return len(r.Stages) == 1 && r.Stages[0].Status == "running" })
	srv.stop(syscall.SIGKILL)

	srv2 := startServer(t, dir, srv.token, lease...)
	r := srv2.waitRun(sha, 90*time.Second, terminal)
	st := r.Stages[0]
	t.Logf("after restart: run %s, stage %s attempt %d reason %q", r.Status, st.Status, st.Attempt, st.Reason)
	switch {
	case r.Status == "success" && st.Attempt >= 2:
		// Re-queued after the lease ran out and ran again.
	case r.Status != "success" && st.Reason != "":
		// Ended with a recorded reason.
	default:
		t.Errorf("after restart run = %s, stage %+v; want success on a new attempt or an end with a reason", r.Status, st)
	}
}

// TestRemoteAgent runs a server without its built-in agent and one
// `runnel agent` process joined over the embedded NATS: a stage that
// needs a label no agent has waits with a pending reason; the agent's
// labels take the other one.
func TestRemoteAgent(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	out := runnel(t, "agent", "token", "remote-e2e", "--labels", "arch=amd64,e2e=yes", "--data", data)
	m := regexp.MustCompile(`agent token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no agent token in %q", out)
	}
	natsPort := freePort(t)
	srv := startServer(t, dir, "", "--no-agent", "--nats-port", fmt.Sprint(natsPort))
	agentLog, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	ag := exec.Command(binary, "agent", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", natsPort), "--token", m[1],
		"--labels", "arch=amd64,e2e=yes", "--capacity", "2", "--work-dir", filepath.Join(dir, "agent"), "--drain-timeout", "5s")
	ag.Stdout, ag.Stderr = agentLog, agentLog
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ag.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { ag.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = ag.Process.Kill()
			<-done
		}
	})

	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": "remote", "forge": "git", "clone_url": bare})
	sha := commit(t, work, `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    labels: {arch: amd64}
    steps:
      - name: hello
        run: echo "remote build of $RUNNEL_COMMIT"
  gpu:
    image: runnel-test/busybox:latest
    labels: {gpu: "true"}
    steps:
      - name: never
        run: echo unreachable
`)
	git(t, work, "push", "-q", "origin", "main")
	code, b := srv.do("POST", "/api/v1/repos/remote/trigger", strings.NewReader(`{"branch":"main"}`),
		map[string]string{"Authorization": "Bearer " + srv.token})
	if code != http.StatusCreated {
		t.Fatalf("trigger: %d %s", code, b)
	}
	r := srv.waitRun(sha, 90*time.Second, func(r run) bool {
		return len(r.Stages) == 2 && r.Stages[0].Status == "success"
	})
	if r.Stages[0].Agent != "remote-e2e" {
		t.Errorf("build ran on %q, want remote-e2e", r.Stages[0].Agent)
	}
	code, b = srv.api("GET", fmt.Sprintf("/api/v1/runs/%d", r.ID))
	if code != 200 || !strings.Contains(string(b), "no agent with labels gpu=true") {
		t.Errorf("run = %d %s, want the gpu stage pending with reason %q", code, b, "no agent with labels gpu=true")
	}
	code, b = srv.api("GET", r.Stages[0].Steps[0].Log)
	if code != 200 || !strings.Contains(string(b), "remote build of "+sha) {
		t.Errorf("log = %d %q", code, b)
	}
	if code, _ := srv.api("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", r.ID)); code != 200 {
		t.Errorf("cancel = %d, want 200", code)
	}
	if r := srv.run(r.ID); r.Status != "canceled" {
		t.Errorf("after cancel run = %s, want canceled", r.Status)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
