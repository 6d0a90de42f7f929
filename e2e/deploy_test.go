package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// deployPipeline deploys the image tagged with the commit through the
// app's runnel proxy: 50 % for an interval, then all, baked 1 s; a new
// version must be healthy within the start timeout.
const deployPipeline = `version: 1
stages:
  production:
    environment: production
    concurrency: production
    deploy:
      provider: docker
      app: %[1]s
      image: %[2]s:${RUNNEL_COMMIT}
      port: 8080
      strategy: {type: linear, percent: 50, interval: %[6]s}
      health: {path: /health, interval: 200ms, start_timeout: %[7]s}
      bake: 1s
      docker: {network: %[3]s, proxy: "http://%[4]s"}
# %[5]s
`

// Kinds of app image: healthy; never healthy (no /health); healthy until
// the test removes its /health while it takes half the traffic (it still
// serves /), which holds that step for a minute.
const (
	appHealthy   = "healthy"
	appNever     = "never"
	appSickLater = "sick-later"
	// appSlow is healthy and holds 50 % for a minute.
	appSlow = "slow"
)

// deployEnv is one app: its proxy process, network and image name.
type deployEnv struct {
	t                    *testing.T
	dir, app, image, net string
	listen, control      string
	proxy                *exec.Cmd
	proxyDone            chan struct{}
	srv                  *server
	work                 string
	pushes               int
}

func newDeployEnv(t *testing.T) *deployEnv {
	t.Helper()
	needDocker(t)
	dir := t.TempDir()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	e := &deployEnv{t: t, dir: dir, app: "e2e" + id, image: "runnel-e2e-deploy-" + id, net: "runnel-e2e-deploy-" + id,
		listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), control: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	t.Cleanup(e.cleanup)
	e.startProxy()
	return e
}

// startProxy starts `runnel proxy` for the app, with its routes in a
// state file, and waits for its control API.
func (e *deployEnv) startProxy() {
	e.t.Helper()
	logf, err := os.OpenFile(filepath.Join(e.dir, "proxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proxy = exec.Command(binary, "proxy", "--listen", e.listen, "--control", e.control, "--state", filepath.Join(e.dir, "routes.json"))
	e.proxy.Stdout, e.proxy.Stderr = logf, logf
	if err := e.proxy.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.proxyDone = make(chan struct{})
	go func() { e.proxy.Wait(); logf.Close(); close(e.proxyDone) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + e.control + "/routes")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-e.proxyDone:
			e.t.Fatalf("runnel proxy exited:\n%s", readFile(filepath.Join(e.dir, "proxy.log")))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("runnel proxy control did not answer: %v", err)
		}
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func (e *deployEnv) cleanup() {
	if e.proxy != nil && e.proxy.Process != nil {
		stopProcess(e.proxy, e.proxyDone, syscall.SIGTERM)
	}
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=runnel.deploy.app="+e.app).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
	_ = exec.Command("docker", "network", "rm", e.net).Run()
	out, _ = exec.Command("docker", "images", "-q", e.image).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rmi", "-f"}, ids...)...).Run()
	}
}

// buildImage builds the app image of one version from local files: httpd
// serving the version at / and "ok" at /health.
func (e *deployEnv) buildImage(tag, version, kind string) {
	e.t.Helper()
	ctx := filepath.Join(e.dir, "image-"+tag)
	www := filepath.Join(ctx, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte(version+"\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if kind != appNever {
		if err := os.WriteFile(filepath.Join(www, "health"), []byte("ok\n"), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	df := "FROM runnel-test/busybox:latest\nCOPY www /www\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", e.image+":"+tag, ctx).CombinedOutput(); err != nil {
		e.t.Fatalf("docker build: %v\n%s", err, out)
	}
}

// commitApp commits a new pipeline revision and builds its image, tagged
// with the commit; it does not push.
func (e *deployEnv) commitApp(kind string) string {
	e.t.Helper()
	e.pushes++
	interval, start := "2s", "30s"
	switch kind {
	case appSickLater, appSlow:
		interval = "1m"
	case appNever:
		start = "3s" // it never will: do not wait long
	}
	sha := commit(e.t, e.work, fmt.Sprintf(deployPipeline, e.app, e.image, e.net, e.control, fmt.Sprintf("revision %d (%s)", e.pushes, kind), interval, start))
	e.buildImage(sha, sha, kind)
	return sha
}

// serving returns what the proxy answers at /.
func (e *deployEnv) serving() string {
	e.t.Helper()
	resp, err := http.Get("http://" + e.listen + "/")
	if err != nil {
		e.t.Fatalf("GET through the proxy: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// load sends requests through the proxy from a few clients until stopped
// and counts those that did not get a 200.
type load struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	firstErrors   []string
	stop          context.CancelFunc
	wg            sync.WaitGroup
}

func startLoad(url string, clients int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 30 * time.Second}
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := c.Do(req)
				if ctx.Err() != nil {
					return
				}
				l.total.Add(1)
				problem := ""
				if err != nil {
					problem = err.Error()
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						problem = resp.Status
					}
				}
				if problem != "" {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.firstErrors) < 5 {
						l.firstErrors = append(l.firstErrors, problem)
					}
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

func (l *load) end() (total, failed int64, errs []string) {
	l.stop()
	l.wg.Wait()
	return l.total.Load(), l.failed.Load(), l.firstErrors
}

type releaseView struct {
	Provider string `json:"provider"`
	Version  string `json:"version"`
	From     string `json:"from"`
	Phase    string `json:"phase"`
	Traffic  int    `json:"traffic"`
	Outcome  string `json:"outcome"`
}

type deployView struct {
	ID         int64        `json:"id"`
	RunID      int64        `json:"run_id"`
	Commit     string       `json:"commit"`
	Result     string       `json:"result"`
	RollsBack  int64        `json:"rolls_back"`
	StartedAt  time.Time    `json:"started_at"`
	FinishedAt time.Time    `json:"finished_at"`
	Release    *releaseView `json:"release"`
}

func (e *deployEnv) deployment(runID int64) deployView {
	e.t.Helper()
	code, b := e.srv.api("GET", "/api/v1/deployments?limit=1000")
	if code != 200 {
		e.t.Fatalf("list deployments: %d %s", code, b)
	}
	var out struct {
		Deployments []deployView `json:"deployments"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatal(err)
	}
	var found []deployView
	for _, d := range out.Deployments {
		if d.RunID == runID {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("run %d has deployments %+v, want one", runID, found)
	}
	return found[0]
}

// deploymentEnded waits until the deployment of a run has a result (a
// cancelled release's ends after its rollback) and returns it.
func (e *deployEnv) deploymentEnded(runID int64) deployView {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for d := e.deployment(runID); ; d = e.deployment(runID) {
		if d.Result != "" {
			return d
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("deployment of run %d still in progress after 2 minutes: %+v (release %+v)", runID, d, d.Release)
		}
		<-tick.C
	}
}

// sickenAtHalf waits until the release of sha sends it half the traffic
// (as the deployments API shows) and removes the new container's /health.
func (e *deployEnv) sickenAtHalf(sha string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		r := e.srv.waitRun(sha, 5*time.Minute, func(run) bool { return true })
		if r.ID != 0 {
			code, b := e.srv.api("GET", "/api/v1/deployments?limit=10")
			var out struct {
				Deployments []deployView `json:"deployments"`
			}
			if code == 200 && json.Unmarshal(b, &out) == nil {
				for _, d := range out.Deployments {
					if d.RunID == r.ID && d.Release != nil && d.Release.Traffic == 50 {
						ids, err := exec.Command("docker", "ps", "-q", "--filter", "label=runnel.deploy.app="+e.app,
							"--filter", "label=runnel.deploy.version="+sha).Output()
						if err != nil || len(strings.Fields(string(ids))) != 1 {
							e.t.Fatalf("green container of %s: %v %q", sha, err, ids)
						}
						if out, err := exec.Command("docker", "exec", strings.TrimSpace(string(ids)), "rm", "/www/health").CombinedOutput(); err != nil {
							e.t.Fatalf("remove green's /health: %v %s", err, out)
						}
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the release of %s never reached 50%%", sha)
		}
	}
}

// deployLog returns the log of the run's deploy step.
func (e *deployEnv) deployLog(r run) string {
	for _, st := range r.Stages {
		for _, sp := range st.Steps {
			if sp.Name == "deploy" {
				_, b := e.srv.api("GET", sp.Log)
				return string(b)
			}
		}
	}
	return ""
}

// TestDeployDockerPipeline pushes commits whose pipeline deploys the
// commit's locally built image with the docker provider through a
// `runnel proxy` process, under constant HTTP load: a first release, a
// blue/green switch, a green that never becomes healthy, a green that
// becomes unhealthy under traffic (rolled back), and two pushes in quick
// succession (released one after the other, in commit order), and a run
// cancelled while green takes half the traffic (switched back: rolled
// back once the agent has). No request through the proxy may fail; the
// deployments and /metrics show each outcome, the rollbacks as change
// failures.
func TestDeployDockerPipeline(t *testing.T) {
	e := newDeployEnv(t)
	e.srv = startServer(t, e.dir, "")
	bare, work := repoSetup(t, e.dir)
	e.work = work
	addHookedRepo(t, e.srv, bare)
	declareEnvironment(t, e.srv, "app", "production", []string{"main"})

	push := func(kind, wantRun, wantResult string) (string, run, deployView) {
		t.Helper()
		sha := e.commitApp(kind)
		git(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
		if kind == appSickLater {
			e.sickenAtHalf(sha)
		}
		r := e.srv.waitRun(sha, 5*time.Minute, terminal)
		log := e.deployLog(r)
		if r.Status != wantRun {
			t.Fatalf("run of %s (%s) = %s, want %s\ndeploy log:\n%s\nserver log:\n%s", sha[:8], kind, r.Status, wantRun, log, e.srv.log())
		}
		d := e.deployment(r.ID)
		if d.Result != wantResult || d.Release == nil || d.Release.Provider != "docker" || d.Release.Version != sha {
			t.Fatalf("deployment of %s = %+v (release %+v), want %s by docker of %s\ndeploy log:\n%s", sha[:8], d, d.Release, wantResult, sha, log)
		}
		return sha, r, d
	}

	v1, _, d1 := push(appHealthy, "success", "success")
	if got := e.serving(); got != v1 {
		t.Fatalf("proxy serves %q, want %s", got, v1)
	}
	if d1.Release.Traffic != 100 || d1.Release.Outcome != "succeeded" {
		t.Errorf("first release = %+v, want 100%% succeeded", d1.Release)
	}

	l := startLoad("http://"+e.listen+"/", 4)
	loadEnded := false
	defer func() {
		if !loadEnded {
			l.end()
		}
	}()
	t0 := time.Now()
	v2, r2, d2 := push(appHealthy, "success", "success")
	if d2.Release.From != v1 || d2.Release.Traffic != 100 {
		t.Errorf("switch release = %+v, want from %s, 100%%", d2.Release, v1)
	}
	if log := e.deployLog(r2); !strings.Contains(log, "[shift] 50%") || !strings.Contains(log, "[shift] 100%") || !strings.Contains(log, "succeeded") {
		t.Errorf("deploy log does not show 50%% then 100%% and success:\n%s", log)
	}
	switchTotal, switchFailed := l.total.Load(), l.failed.Load()
	switchTime := time.Since(t0)

	_, r3, _ := push(appNever, "failure", "failure")
	if log := e.deployLog(r3); !strings.Contains(log, "not healthy") {
		t.Errorf("never-healthy deploy log:\n%s", log)
	}
	if got := e.serving(); got != v2 {
		t.Errorf("after a never-healthy green the proxy serves %q, want %s", got, v2)
	}

	_, r4, d4 := push(appSickLater, "failure", "rolled_back")
	if d4.RollsBack != d2.ID || d4.Release.Outcome != "rolled_back" || d4.Release.Traffic != 0 {
		t.Errorf("rolled back deployment = %+v (release %+v), want rolls_back %d, outcome rolled_back, 0%%", d4, d4.Release, d2.ID)
	}
	if log := e.deployLog(r4); !strings.Contains(log, "[rollback]") {
		t.Errorf("rollback deploy log:\n%s", log)
	}
	if got := e.serving(); got != v2 {
		t.Errorf("after the rollback the proxy serves %q, want %s", got, v2)
	}

	// Two pushes in quick succession: both deploy, one after the other,
	// in commit order (concurrency: production).
	v5 := e.commitApp(appHealthy)
	git(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	v6 := e.commitApp(appHealthy)
	git(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	r5 := e.srv.waitRun(v5, 5*time.Minute, terminal)
	r6 := e.srv.waitRun(v6, 5*time.Minute, terminal)
	if r5.Status != "success" || r6.Status != "success" {
		t.Fatalf("quick pushes: runs %s and %s, want success", r5.Status, r6.Status)
	}
	d5, d6 := e.deployment(r5.ID), e.deployment(r6.ID)
	if !d5.FinishedAt.Before(d6.StartedAt) || d6.Release.From != v5 {
		t.Errorf("quick pushes overlapped or out of order: %s %s–%s, %s %s–%s from %s",
			v5[:8], d5.StartedAt, d5.FinishedAt, v6[:8], d6.StartedAt, d6.FinishedAt, d6.Release.From)
	}
	if got := e.serving(); got != v6 {
		t.Errorf("after the quick pushes the proxy serves %q, want %s", got, v6)
	}

	// Cancelled while the new version takes half the traffic: the agent
	// switches back; the deployment, in progress until then, ends
	// rolled_back, restoring v6 (docs/deploy.md#cancelling-a-release).
	v7 := e.commitApp(appSlow)
	git(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	e.waitTraffic(v7, 50)
	r7 := e.srv.waitRun(v7, time.Minute, func(run) bool { return true })
	if code, b := e.srv.api("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", r7.ID)); code != 200 {
		t.Fatalf("cancel run %d: %d %s", r7.ID, code, b)
	}
	d7 := e.deploymentEnded(r7.ID)
	if d7.Result != "rolled_back" || d7.RollsBack != d6.ID || d7.Release == nil || d7.Release.Outcome != "rolled_back" || d7.Release.Traffic != 0 {
		t.Errorf("cancelled release = %+v (release %+v), want rolled_back restoring %d at 0%%\ndeploy log:\n%s", d7, d7.Release, d6.ID, e.deployLog(r7))
	}
	if got := e.serving(); got != v6 {
		t.Errorf("after the cancelled release the proxy serves %q, want %s", got, v6)
	}

	total, failed, errs := l.end()
	loadEnded = true
	t.Logf("docker deploy under load: switch %d requests in %s, %d failed; whole test %d requests, %d failed %v",
		switchTotal, switchTime.Round(time.Millisecond), switchFailed, total, failed, errs)
	if failed != 0 || total == 0 {
		t.Errorf("%d of %d requests through the proxy failed (first: %v), want 0 of > 0", failed, total, errs)
	}

	code, b := e.srv.api("GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	want := map[string]string{"success": "4", "failure": "1", "rolled_back": "2"}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	got := map[string]string{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "runnel_deployments_total{") && strings.Contains(line, `environment="production"`) {
			for res := range want {
				if strings.Contains(line, `result="`+res+`"`) {
					got[res] = strings.Fields(line)[1]
				}
			}
		}
	}
	for res, n := range want {
		if got[res] != n {
			t.Errorf("runnel_deployments_total{result=%q} = %q, want %s", res, got[res], n)
		}
	}
}

// setSecret sets a secret of repo on the server with the CLI, the value
// on stdin.
func (s *server) setSecret(repo, name, value string) {
	s.t.Helper()
	cmd := exec.Command(binary, "secret", "set", name, "--repo", repo, "--server", s.url, "--token", s.token)
	cmd.Stdin = strings.NewReader(value)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("secret set %s: %v\n%s", name, err, out)
	}
}

// trigger pushes the work tree and starts a run of sha through the API.
func (e *deployEnv) trigger(repo, sha string) {
	e.t.Helper()
	git(e.t, e.work, "push", "-q", "origin", "HEAD:refs/heads/main")
	code, b := e.srv.do("POST", "/api/v1/repos/"+repo+"/trigger", strings.NewReader(`{"branch":"main","commit":"`+sha+`"}`),
		map[string]string{"Authorization": "Bearer " + e.srv.token})
	if code != http.StatusCreated {
		e.t.Fatalf("trigger: %d %s", code, b)
	}
}

// waitTraffic waits until the deployments API shows the release of sha
// with traffic percent on the new version.
func (e *deployEnv) waitTraffic(sha string, traffic int) deployView {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		code, b := e.srv.api("GET", "/api/v1/deployments?limit=10")
		var out struct {
			Deployments []deployView `json:"deployments"`
		}
		if code == 200 && json.Unmarshal(b, &out) == nil {
			for _, d := range out.Deployments {
				if d.Commit == sha && d.Release != nil && d.Release.Traffic == traffic && d.Result == "" {
					return d
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the release of %s never reached %d%%", sha, traffic)
		}
	}
	return deployView{}
}

// TestDeployDockerAgentKilled: the agent running a release is killed
// (SIGKILL) while the new version takes half the traffic. The app keeps
// serving through the runnel proxy (a separate process), the stage is
// re-delivered to another agent, which releases the same deployment to
// the end; no request through the proxy fails. A push made while the
// release is orphaned, with the other agent idle, deploys only after it
// ended (never two releases of production at once), from its version,
// and leaves one container of the app.
func TestDeployDockerAgentKilled(t *testing.T) {
	c := newCluster(t, []string{"deploy-a", "deploy-b"})
	e := newDeployEnv(t)
	e.srv = c.srv
	bare, work := repoSetup(t, e.dir)
	e.work = work
	c.addRepo("app", bare)
	declareEnvironment(t, e.srv, "app", "production", []string{"main"})
	a := c.startAgent("deploy-a", "", 1)
	c.waitAgents("deploy-a")

	v1 := e.commitApp(appHealthy)
	e.trigger("app", v1)
	if r := e.srv.waitRun(v1, 5*time.Minute, terminal); r.Status != "success" {
		t.Fatalf("first release: run %s\nagent log:\n%s", r.Status, a.log())
	}
	if got := e.serving(); got != v1 {
		t.Fatalf("proxy serves %q, want %s", got, v1)
	}

	l := startLoad("http://"+e.listen+"/", 4)
	loadEnded := false
	defer func() {
		if !loadEnded {
			l.end()
		}
	}()
	// A release that holds 50 % for a minute: the agent dies in it.
	v2 := e.commitApp(appSlow)
	e.trigger("app", v2)
	before := e.waitTraffic(v2, 50)
	a.stop(syscall.SIGKILL)
	killedAt := l.total.Load()
	c.startAgent("deploy-b", "", 1)
	c.waitAgents("deploy-b")
	v3 := e.commitApp(appHealthy)
	e.trigger("app", v3)

	r := e.srv.waitRun(v2, 10*time.Minute, terminal)
	r3 := e.srv.waitRun(v3, 5*time.Minute, terminal)
	total, failed, errs := l.end()
	loadEnded = true
	t.Logf("agent SIGKILLed at 50%%: %d requests, %d failed (%d after the kill) %v", total, failed, total-killedAt, errs)
	if r.Status != "success" || r.Stages[0].Attempt < 2 || r.Stages[0].Agent != "deploy-b" {
		t.Fatalf("run after the kill: %s, stage attempt %d on %q; want success, attempt ≥ 2 on deploy-b\n%s",
			r.Status, r.Stages[0].Attempt, r.Stages[0].Agent, e.srv.log())
	}
	d := e.deployment(r.ID)
	if d.ID != before.ID || d.Result != "success" || d.Release.Traffic != 100 || d.Release.Version != v2 {
		t.Errorf("deployment after the kill = %+v (release %+v), want the same deployment %d ended success at 100%%", d, d.Release, before.ID)
	}
	d3 := e.deployment(r3.ID)
	if r3.Status != "success" || d3.Release == nil || d3.Release.From != v2 || d3.StartedAt.Before(d.FinishedAt) {
		t.Errorf("push during the orphaned release: run %s, deployment %+v (release %+v); want success from %s, started after %s",
			r3.Status, d3, d3.Release, v2, d.FinishedAt)
	}
	if got := e.serving(); got != v3 {
		t.Errorf("proxy serves %q, want %s", got, v3)
	}
	out, err := exec.Command("docker", "ps", "-a", "--format", `{{.Label "runnel.deploy.version"}}`, "--filter", "label=runnel.deploy.app="+e.app).Output()
	if err != nil || strings.TrimSpace(string(out)) != v3 {
		t.Errorf("containers of the app by version: %q (%v), want only %s", out, err, v3)
	}
	if failed != 0 || total-killedAt == 0 {
		t.Errorf("%d of %d requests failed (first %v), %d after the kill; want 0 failed, > 0 after", failed, total, errs, total-killedAt)
	}
}
