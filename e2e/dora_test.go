package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The pipelines of TestDORADashboard. Steps run in the local shell engine.
const (
	doraDeploy = `version: 1
stages:
  build:
    steps:
      - name: compile
        run: echo build
  deploy:
    needs: [build]
    environment: production
    steps:
      - name: release
        run: echo deploy; exit %d
`
	doraTestFails = `version: 1
stages:
  test:
    steps:
      - name: unit
        run: echo FAIL; exit 1
  deploy:
    needs: [test]
    environment: production
    steps:
      - name: release
        run: echo deploy
`
	doraMatrix = `version: 1
stages:
  build:
    steps:
      - name: compile
        run: echo build
  deploy:
    needs: [build]
    environment: production
    matrix:
      region: [eu, us]
    steps:
      - name: release
        run: echo "deploy $MATRIX_REGION"; test "$MATRIX_REGION" != %q
`
)

// doraTruth is what the scripted sequence did, as the test knows it.
type doraTruth struct {
	success, failure, rolledBack int       // deployments
	lead                         []float64 // lead time of each successful deployment
	restore                      []float64 // time to restore samples
	runs                         map[string]int
	stages                       int // stages that started
	stagesFailed                 int // of them, failed or errored
	pushes                       int
	lastFailure                  time.Time // first change failure not yet restored
}

// observe adds a pushed run that ended to the truth: its run and stage
// results, and the deployment the server recorded for it, which must be
// one with result deployed ("": none). commitTime is the committer date
// of its commit, known to the second.
func (tr *doraTruth) observe(t *testing.T, srv *server, r run, commitTime time.Time, deployed string) {
	t.Helper()
	tr.runs[r.Status]++
	tr.pushes++
	for _, st := range r.Stages {
		switch st.Status {
		case "success":
			tr.stages++
		case "failure", "error":
			tr.stages++
			tr.stagesFailed++
		}
	}
	ds := deploymentsOf(t, srv, r.ID)
	if deployed == "" {
		if len(ds) != 0 {
			t.Errorf("run %d recorded deployments %+v, want none", r.ID, ds)
		}
		return
	}
	if len(ds) != 1 || ds[0].Result != deployed {
		t.Fatalf("run %d recorded deployments %+v, want one %s", r.ID, ds, deployed)
	}
	fin := ds[0].FinishedAt
	switch deployed {
	case "success":
		tr.success++
		tr.lead = append(tr.lead, fin.Sub(commitTime).Seconds())
		if !tr.lastFailure.IsZero() {
			tr.restore = append(tr.restore, fin.Sub(tr.lastFailure).Seconds())
			tr.lastFailure = time.Time{}
		}
		return
	case "failure":
		tr.failure++
	case "rolled_back":
		tr.rolledBack++
	}
	if tr.lastFailure.IsZero() {
		tr.lastFailure = fin
	}
}

// addHookedRepo adds the repository app (bare) to the server with its
// git hook installed, so that pushes to bare start runs.
func addHookedRepo(t *testing.T, srv *server, bare string) {
	t.Helper()
	out := runnel(t, "repo", "add", "app", "--bare", bare, "--server", srv.url, "--token", srv.token)
	hookToken := strings.Fields(out[strings.Index(out, "hook token (shown once):")+len("hook token (shown once):"):])[0]
	runnel(t, "hook", "install", bare, "--server", srv.url, "--repo", "app", "--token", hookToken)
}

// doraPanel is one query of the dashboard with the panel it belongs to.
type doraPanel struct{ title, legend, expr string }

// dashboardQueries reads every panel query of docs/grafana/runnel.json.
func dashboardQueries(t *testing.T) []doraPanel {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "grafana", "runnel.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr   string `json:"expr"`
			Legend string `json:"legendFormat"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var out []doraPanel
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, doraPanel{p.Title, tg.Legend, tg.Expr})
			}
			var sub []panel
			for _, raw := range p.Panels {
				var s panel
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatal(err)
				}
				sub = append(sub, s)
			}
			walk(sub)
		}
	}
	walk(dash.Panels)
	return out
}

// substitute fills the dashboard variables the way Grafana does for one
// repository and environment; range variables become window (it covers
// the whole test).
func substitute(expr, repo, env, window string) string {
	return strings.NewReplacer("$repo", repo, "$environment", env, "$__rate_interval", window,
		"$__range", window, "$__interval", "1s").Replace(expr)
}

// histQuantile is Prometheus's histogram_quantile over cumulative bucket
// counts of samples (bounds without +Inf).
func histQuantile(q float64, bounds []float64, samples []float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	cum := make([]float64, len(bounds)+1)
	for _, s := range samples {
		for i := range cum {
			if i == len(bounds) || s <= bounds[i] {
				cum[i]++
			}
		}
	}
	total := cum[len(bounds)]
	rank := q * total
	b := sort.Search(len(bounds), func(i int) bool { return cum[i] >= rank })
	if b == len(bounds) {
		return bounds[len(bounds)-1]
	}
	start, prev := 0.0, 0.0
	if b > 0 {
		start, prev = bounds[b-1], cum[b-1]
	}
	return start + (bounds[b]-start)*((rank-prev)/(cum[b]-prev))
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

var (
	leadBounds    = []float64{300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 259200, 604800, 1209600, 2592000}
	restoreBounds = []float64{60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800}
)

// TestDORADashboard drives a scripted sequence of pushes through a real
// server while a real Prometheus scrapes it every second, then evaluates
// every query of the shipped Grafana dashboard through Prometheus's HTTP
// API and compares each panel with what the sequence did.
func TestDORADashboard(t *testing.T) {
	bin := needPrometheus(t)
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	extra := []string{"--backend", "local", "--addr", addr}
	srv := startServer(t, dir, "", extra...)
	bare, work := repoSetup(t, dir)
	addHookedRepo(t, srv, bare)
	declareEnvironment(t, srv, "app", "production", []string{"main"})
	prom := startPrometheus(t, bin, filepath.Join(dir, "prom"), addr)
	prom.scrapedAfter(time.Now())

	truth := doraTruth{runs: map[string]int{}}
	// push commits pipeline dated age ago, pushes branch and waits for its
	// run; deployed is the deployment result the run must record ("").
	push := func(branch, pipeline string, age time.Duration, wantRun, deployed string) {
		t.Helper()
		commitTime := time.Now().Add(-age).Truncate(time.Second)
		t.Setenv("GIT_COMMITTER_DATE", commitTime.UTC().Format(time.RFC3339))
		sha := commit(t, work, pipeline+fmt.Sprintf("# push %d\n", truth.pushes))
		git(t, work, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
		r := srv.waitRun(sha, 60*time.Second, terminal)
		if r.Status != wantRun {
			t.Fatalf("run of %s on %s = %s, want %s: %+v\n%s", sha[:8], branch, r.Status, wantRun, r, srv.log())
		}
		truth.observe(t, srv, r, commitTime, deployed)
	}
	git(t, work, "checkout", "-q", "-B", "main")
	push("main", fmt.Sprintf(doraDeploy, 0), 3*time.Hour, "success", "success")
	push("main", fmt.Sprintf(doraDeploy, 0), 40*time.Minute, "success", "success")
	push("main", fmt.Sprintf(doraDeploy, 1), 5*time.Minute, "failure", "failure")

	// The very first failed deployment shows at once.
	at := prom.scrapedAfter(time.Now())
	checkDORAPanels(t, prom, at, truth, map[string]bool{"Change failure rate": true, "Deployments by result": true})

	push("main", fmt.Sprintf(doraDeploy, 0), 10*time.Minute, "success", "success")
	push("main", doraTestFails, 0, "failure", "")
	push("main", fmt.Sprintf(doraMatrix, "us"), 0, "failure", "failure")
	push("main", fmt.Sprintf(doraMatrix, "none"), 2*time.Minute, "success", "success")
	git(t, work, "checkout", "-q", "-b", "feature/x")
	push("feature/x", fmt.Sprintf(doraDeploy, 0), 0, "success", "")
	git(t, work, "checkout", "-q", "main")

	srv.stop(syscall.SIGINT)
	srv = startServer(t, dir, srv.token, extra...)
	push("main", fmt.Sprintf(doraDeploy, 0), 90*time.Minute, "success", "success")

	at = prom.scrapedAfter(time.Now())
	checkDORAPanels(t, prom, at, truth, nil)

	if got := prom.labelValues(`runnel_runs_finished_total`, "repo"); !slices.Equal(got, []string{"app"}) {
		t.Errorf("repo variable = %v, want [app]", got)
	}
	if got := prom.labelValues(`runnel_deployments_total{repo=~"app"}`, "environment"); !slices.Equal(got, []string{"production"}) {
		t.Errorf("environment variable = %v, want [production]", got)
	}
	if got := prom.labelValues(`runnel_webhook_deliveries_total`, "forge"); !slices.Contains(got, "git") {
		t.Errorf("forge values = %v, want git hook pushes under forge=\"git\"", got)
	}
}

// TestDORADockerDeploys: git pushes whose pipeline deploys the commit's
// locally built image with the docker provider, while a real Prometheus
// scrapes the server: a good deploy, a green that never becomes healthy
// (failure), a green that turns unhealthy under half the traffic (rolled
// back), then a good deploy. Every panel of the shipped dashboard shows
// what they did: two deployments, a change failure rate of 2/4 with the
// rollback counted, and the time from the first failure to the good
// deploy as time to restore.
func TestDORADockerDeploys(t *testing.T) {
	bin := needPrometheus(t)
	e := newDeployEnv(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.srv = startServer(t, e.dir, "", "--backend", "local", "--addr", addr)
	bare, work := repoSetup(t, e.dir)
	e.work = work
	addHookedRepo(t, e.srv, bare)
	declareEnvironment(t, e.srv, "app", "production", []string{"main"})
	prom := startPrometheus(t, bin, filepath.Join(e.dir, "prom"), addr)
	prom.scrapedAfter(time.Now())

	truth := doraTruth{runs: map[string]int{}}
	for _, p := range []struct {
		kind, run, deployed string
		age                 time.Duration
	}{
		{appHealthy, "success", "success", 3 * time.Hour},
		{appNever, "failure", "failure", 0},
		{appSickLater, "failure", "rolled_back", 0},
		{appHealthy, "success", "success", 20 * time.Minute},
	} {
		commitTime := time.Now().Add(-p.age).Truncate(time.Second)
		t.Setenv("GIT_COMMITTER_DATE", commitTime.UTC().Format(time.RFC3339))
		sha := e.commitApp(p.kind)
		git(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
		if p.kind == appSickLater {
			e.sickenAtHalf(sha)
		}
		r := e.srv.waitRun(sha, 5*time.Minute, terminal)
		if r.Status != p.run {
			t.Fatalf("run of %s (%s) = %s, want %s\ndeploy log:\n%s", sha[:8], p.kind, r.Status, p.run, e.deployLog(r))
		}
		truth.observe(t, e.srv, r, commitTime, p.deployed)
	}
	checkDORAPanels(t, prom, prom.scrapedAfter(time.Now()), truth, nil)
}

// declareEnvironment declares an environment of repo on the server.
func declareEnvironment(t *testing.T, srv *server, repo, name string, branches []string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"branches": branches})
	code, b := srv.do("PUT", "/api/v1/repos/"+repo+"/environments/"+name, strings.NewReader(string(body)),
		map[string]string{"Authorization": "Bearer " + srv.token})
	if code != 200 && code != 201 {
		t.Fatalf("declare environment %s of %s: %d %s", name, repo, code, b)
	}
}

type deploymentView struct {
	RunID      int64     `json:"run_id"`
	Result     string    `json:"result"`
	FinishedAt time.Time `json:"finished_at"`
}

// deploymentsOf lists the deployments the server recorded for a run.
func deploymentsOf(t *testing.T, srv *server, runID int64) []deploymentView {
	t.Helper()
	code, b := srv.api("GET", "/api/v1/deployments?limit=1000")
	if code != 200 {
		t.Fatalf("list deployments: %d %s", code, b)
	}
	var out struct {
		Deployments []deploymentView `json:"deployments"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	var ds []deploymentView
	for _, d := range out.Deployments {
		if d.RunID == runID {
			ds = append(ds, d)
		}
	}
	return ds
}

// near reports whether got is want within tol, NaN matching NaN.
func near(got, want, tol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= tol
}

// checkDORAPanels evaluates the dashboard's DORA and run panels at time at
// (a scrape's timestamp) for repo app and environment production, and for
// "All", and compares them with truth. only, when set, limits the check to
// those panel titles.
func checkDORAPanels(t *testing.T, prom *prometheus, at float64, truth doraTruth, only map[string]bool) {
	t.Helper()
	total := float64(truth.success + truth.failure + truth.rolledBack)
	runsTotal := 0
	for _, n := range truth.runs {
		runsTotal += n
	}
	failedRuns := float64(truth.runs["failure"] + truth.runs["error"])
	// want maps a panel title and legend to the series it must show:
	// legend values to numbers (key "" for a single series).
	want := map[string]map[string]float64{
		"Lead time for changes|p50":                                   {"": histQuantile(0.5, leadBounds, truth.lead)},
		"Lead time for changes|p90":                                   {"": histQuantile(0.9, leadBounds, truth.lead)},
		"Lead time for changes|mean (exact)":                          {"": mean(truth.lead)},
		"Lead time p50 (30d)|p50":                                     {"": histQuantile(0.5, leadBounds, truth.lead)},
		"Lead time p50 (30d)|mean (exact)":                            {"": mean(truth.lead)},
		"Deployment frequency (per day)|{{environment}}":              {"production": float64(truth.success)},
		"Change failure rate|failed or rolled back / all deployments": {"": float64(truth.failure+truth.rolledBack) / total},
		"Time to restore|p50":                                         {"": histQuantile(0.5, restoreBounds, truth.restore)},
		"Time to restore|mean (exact)":                                {"": mean(truth.restore)},
		"Deployments by result|{{result}}": {"success": float64(truth.success), "failure": float64(truth.failure),
			"rolled_back": float64(truth.rolledBack)},
		"Run failure rate|failed / finished runs (24h)": {"": failedRuns / float64(runsTotal)},
		"Runs finished by result|{{result}}": {"success": float64(truth.runs["success"]), "failure": float64(truth.runs["failure"]),
			"error": 0, "canceled": 0, "skipped": 0},
		"Stage failure rate|failed / finished stages (24h)": {"": float64(truth.stagesFailed) / float64(truth.stages)},
		"Agent utilisation|busy / capacity":                 {"": 0},
		"Agents and stages|agents connected":                {"": 1},
		"Agents and stages|stages running":                  {"": 0},
		"Agents and stages|slots":                           {"": 2},
		"Webhook deliveries|{{forge}} {{result}}": {"git accepted": float64(truth.pushes), "git rejected_signature": 0,
			"github accepted": 0},
		"Commit status report failures|{{forge}}": {"git": 0, "github": 0},
	}
	// Tolerances: lead time and restore samples are known to the second
	// (commit dates); everything else is a count, exact because every
	// series starts at 0 and the query time is a scrape's timestamp.
	tol := map[string]float64{"Lead time for changes|mean (exact)": 1, "Lead time p50 (30d)|mean (exact)": 1,
		"Time to restore|mean (exact)": 1}
	seen := map[string]bool{}
	for _, env := range []string{"production", ".*"} {
		for _, p := range dashboardQueries(t) {
			key := p.title + "|" + p.legend
			seen[key] = true
			if only != nil && !only[p.title] {
				continue
			}
			expr := substitute(p.expr, "app", env, "1h")
			res, err := prom.query(expr, at)
			if err != nil {
				t.Errorf("%s: %v", key, err)
				continue
			}
			w, ok := want[key]
			if !ok {
				// Latency quantiles: the samples' times are the server's;
				// the panel must at least show a value.
				if len(res) == 0 || math.IsNaN(res[0].Value) || res[0].Value < 0 {
					t.Errorf("panel %q (environment %s): %v, want a value\n  %s", key, env, res, expr)
				}
				continue
			}
			got := map[string]float64{}
			for _, s := range res {
				k := ""
				if strings.HasPrefix(p.legend, "{{") {
					k = s.Labels[strings.Trim(p.legend, "{} ")]
				}
				if p.legend == "{{forge}} {{result}}" {
					k = s.Labels["forge"] + " " + s.Labels["result"]
				}
				got[k] = s.Value
			}
			if strings.Contains(p.expr, "rate(") && !strings.Contains(p.expr, "increase(") {
				for k := range got {
					got[k] *= 3600 // rate over the 1h window times its length: the count
				}
			}
			for k, v := range w {
				g, ok := got[k]
				if !ok {
					t.Errorf("panel %q (environment %s) series %q: no data, want %v\n  %s", key, env, k, v, expr)
					continue
				}
				if !near(g, v, tol[key]+1e-6*math.Max(1, math.Abs(v))) {
					t.Errorf("panel %q (environment %s) series %q = %v, want %v\n  %s", key, env, k, g, v, expr)
				}
			}
		}
	}
	for key := range want {
		if title, _, _ := strings.Cut(key, "|"); !seen[key] && (only == nil || only[title]) {
			t.Errorf("the dashboard has no panel query %q", key)
		}
	}
}
