package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// statusCall is one request the fake GitHub API received.
type statusCall struct {
	Commit      string
	Auth        string
	State       string `json:"state"`
	Context     string `json:"context"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url"`
	Answer      int
}

// fakeGitHub answers POST /api/v3/repos/{owner}/{repo}/statuses/{sha} the
// way GitHub Enterprise does, records every request, and can answer 500
// a given number of times for one (commit, context, state).
type fakeGitHub struct {
	t    *testing.T
	srv  *httptest.Server
	repo string // owner/name the statuses must be for

	mu    sync.Mutex
	calls []statusCall
	fail  map[string]int
	bad   []string // requests that were not status creations
}

var statusPathRE = regexp.MustCompile(`^/api/v3/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})$`)

func newFakeGitHub(t *testing.T, repo string) *fakeGitHub {
	f := &fakeGitHub{t: t, repo: repo, fail: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func failKey(commit, context, state string) string { return commit + "|" + context + "|" + state }

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	m := statusPathRE.FindStringSubmatch(r.URL.Path)
	var c statusCall
	err := json.NewDecoder(r.Body).Decode(&c)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodPost || m == nil || m[1] != f.repo || err != nil {
		f.bad = append(f.bad, fmt.Sprintf("%s %s (decode: %v)", r.Method, r.URL.Path, err))
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		return
	}
	c.Commit, c.Auth, c.Answer = m[2], r.Header.Get("Authorization"), http.StatusCreated
	k := failKey(c.Commit, c.Context, c.State)
	if f.fail[k] > 0 {
		f.fail[k]--
		c.Answer = http.StatusInternalServerError
	}
	f.calls = append(f.calls, c)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(c.Answer)
	if c.Answer != http.StatusCreated {
		fmt.Fprint(w, `{"message":"Server Error"}`)
		return
	}
	fmt.Fprintf(w, `{"id":%d,"state":%q,"context":%q,"target_url":%q,"description":%q}`,
		len(f.calls), c.State, c.Context, c.TargetURL, c.Description)
}

// failTimes makes the next n requests for (commit, context, state) answer 500.
func (f *fakeGitHub) failTimes(commit, context, state string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[failKey(commit, context, state)] = n
}

// of returns the recorded requests for commit and context, in arrival order.
func (f *fakeGitHub) of(commit, context string) []statusCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []statusCall
	for _, c := range f.calls {
		if c.Commit == commit && c.Context == context {
			out = append(out, c)
		}
	}
	return out
}

// waitFinal polls until a final state for commit and context was accepted.
func (f *fakeGitHub) waitFinal(commit, context string, d time.Duration) []statusCall {
	f.t.Helper()
	deadline := time.Now().Add(d)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		calls := f.of(commit, context)
		for _, c := range calls {
			if c.Answer == http.StatusCreated && c.State != "pending" {
				return calls
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no final status for %s of %s within %s; got %+v", context, commit, d, calls)
		}
		<-poll.C
	}
}

// scrape fetches /metrics and parses the text exposition format.
func scrape(t *testing.T, srv *server) map[string]*dto.MetricFamily {
	t.Helper()
	code, b := srv.do("GET", "/metrics", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample finds the metric of family name whose labels include want; nil
// when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

func counterValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	if m := sample(fams, name, labels); m != nil {
		return m.GetCounter().GetValue()
	}
	return 0
}

func histCount(fams map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	if m := sample(fams, name, labels); m != nil {
		return m.GetHistogram().GetSampleCount()
	}
	return 0
}

func histSum(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	if m := sample(fams, name, labels); m != nil {
		return m.GetHistogram().GetSampleSum()
	}
	return 0
}

// bucket returns the cumulative count of the bucket with upper bound le.
func bucket(fams map[string]*dto.MetricFamily, name string, labels map[string]string, le float64) uint64 {
	if m := sample(fams, name, labels); m != nil {
		for _, b := range m.GetHistogram().GetBucket() {
			if b.GetUpperBound() == le {
				return b.GetCumulativeCount()
			}
		}
	}
	return math.MaxUint64
}

// badgeSVG is the part of a badge the test reads.
type badgeSVG struct {
	XMLName   xml.Name `xml:"svg"`
	AriaLabel string   `xml:"aria-label,attr"`
	Title     string   `xml:"title"`
	Texts     []string `xml:"g>text"`
}

// getBadge fetches a badge and returns its status text (the last text
// element), the response and the body.
func getBadge(t *testing.T, srv *server, path string, hdr map[string]string) (string, *http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", srv.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", resp, buf.Bytes()
	}
	var svg badgeSVG
	if err := xml.Unmarshal(buf.Bytes(), &svg); err != nil {
		t.Fatalf("GET %s: badge is not XML: %v\n%s", path, err, buf.Bytes())
	}
	if len(svg.Texts) != 4 {
		t.Fatalf("GET %s: badge has %d texts, want 4 (label and status, each with a shadow)", path, len(svg.Texts))
	}
	status := svg.Texts[3]
	if want := svg.Texts[1] + ": " + status; svg.AriaLabel != want || svg.Title != want {
		t.Errorf("GET %s: aria-label %q, title %q, want both %q", path, svg.AriaLabel, svg.Title, want)
	}
	return status, resp, buf.Bytes()
}

// checkBadge asserts a public badge's status and caching headers.
func checkBadge(t *testing.T, srv *server, path, want string) {
	t.Helper()
	status, resp, body := getBadge(t, srv, path, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s, want 200", path, resp.StatusCode, body)
	}
	if status != want {
		t.Errorf("GET %s: status %q, want %q", path, status, want)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "image/svg+xml") {
		t.Errorf("GET %s: Content-Type %q, want image/svg+xml", path, ct)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") {
		t.Errorf("GET %s: Cache-Control %q, want no-cache", path, cc)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatalf("GET %s: no ETag", path)
	}
	_, resp, body = getBadge(t, srv, path, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("GET %s with If-None-Match %s: %d (%d bytes), want 304 without body", path, etag, resp.StatusCode, len(body))
	}
	_, resp, _ = getBadge(t, srv, path, map[string]string{"If-None-Match": `"not-it"`})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s with a stale If-None-Match: %d, want 200", path, resp.StatusCode)
	}
}

const buildOnly = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: compile
        run: echo build %d; exit %d
`

const buildAndDeploy = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: compile
        run: echo build %d
  deploy:
    image: runnel-test/busybox:latest
    needs: [build]
    environment: production
    steps:
      - name: release
        run: echo deploy %d; exit %d
`

// TestReporting drives five runs through a real server (success, failure,
// deploy ok, deploy failed, deploy ok) and checks what they report:
// /metrics, commit statuses at a fake GitHub API, badges and the
// deployments API; then it restarts the server and checks that the
// history metrics come back from the store.
func TestReporting(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	const (
		name        = "acme/web"
		secret      = "reporting-secret"
		statusToken = "ghs_reporting-status-token"
	)
	// Commits are dated 90 minutes back so that every lead time sample
	// falls in the (3600, 7200] bucket.
	t.Setenv("GIT_COMMITTER_DATE", time.Now().Add(-90*time.Minute).UTC().Format(time.RFC3339))
	gh := newFakeGitHub(t, name)
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": name, "forge": "github", "clone_url": bare, "secret": secret,
		"status_token": statusToken, "status_api_url": gh.srv.URL + "/"})
	declareEnvironment(t, srv, name, "production", []string{"main"})
	badgePath := "/badges/" + name + "/status.svg?branch=main"
	checkBadge(t, srv, badgePath, "unknown")

	type step struct {
		pipeline   string
		want       string // run result
		stages     []string
		stageState map[string]string // final commit status per stage context
		badges     map[string]string // badge query suffix → status
	}
	steps := []step{
		{fmt.Sprintf(buildOnly, 1, 0), "success", []string{"build"}, map[string]string{"build": "success"},
			map[string]string{"": "passing", "&stage=build": "passing"}},
		{fmt.Sprintf(buildOnly, 2, 1), "failure", []string{"build"}, map[string]string{"build": "failure"},
			map[string]string{"": "failing", "&stage=build": "failing"}},
		{fmt.Sprintf(buildAndDeploy, 3, 3, 0), "success", []string{"build", "deploy"}, map[string]string{"build": "success", "deploy": "success"},
			map[string]string{"": "passing", "&stage=deploy": "passing"}},
		{fmt.Sprintf(buildAndDeploy, 4, 4, 1), "failure", []string{"build", "deploy"}, map[string]string{"build": "success", "deploy": "failure"},
			map[string]string{"": "failing", "&stage=build": "passing", "&stage=deploy": "failing"}},
		{fmt.Sprintf(buildAndDeploy, 5, 5, 0), "success", []string{"build", "deploy"}, map[string]string{"build": "success", "deploy": "success"},
			map[string]string{"": "passing", "&stage=deploy": "passing"}},
	}
	var runs []run
	for i, s := range steps {
		start := time.Now()
		sha := commit(t, work, s.pipeline)
		if i == 0 {
			// The first run's final status is refused twice before it
			// is accepted.
			gh.failTimes(sha, "runnel", "success", 2)
		}
		git(t, work, "push", "-q", "origin", "main")
		ts := git(t, work, "show", "-s", "--format=%cI", sha)
		body := fixture(t, "push.with-new-branch.json", func(m map[string]any) {
			m["after"] = sha
			m["ref"] = "refs/heads/main"
			repo := m["repository"].(map[string]any)
			repo["full_name"] = name
			repo["clone_url"] = bare
			hc := m["head_commit"].(map[string]any)
			hc["id"] = sha
			hc["timestamp"] = ts
		})
		code, b := srv.do("POST", "/hooks/github", bytes.NewReader(body), map[string]string{
			"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": fmt.Sprintf("reporting-%d", i),
			"X-Hub-Signature-256": sign(secret, body)})
		if code != http.StatusAccepted {
			t.Fatalf("run %d: push webhook: %d %s, want 202", i+1, code, b)
		}
		r := srv.waitRun(sha, 90*time.Second, terminal)
		runs = append(runs, r)
		if r.Status != s.want {
			t.Fatalf("run %d = %s, want %s: %+v", i+1, r.Status, s.want, r)
		}
		// Statuses are delivered asynchronously: wait for every context's
		// final state before checking the badge and moving on.
		for _, st := range s.stages {
			gh.waitFinal(sha, "runnel/"+st, 30*time.Second)
		}
		gh.waitFinal(sha, "runnel", 30*time.Second)
		for q, want := range s.badges {
			checkBadge(t, srv, badgePath+q, want)
		}
		t.Logf("run %d (%s) finished %s in %s", i+1, sha[:8], r.Status, time.Since(start).Round(time.Millisecond))
	}

	t.Run("statuses", func(t *testing.T) {
		gh.mu.Lock()
		bad := gh.bad
		gh.mu.Unlock()
		if len(bad) != 0 {
			t.Errorf("unexpected requests at the fake GitHub API: %v", bad)
		}
		for i, s := range steps {
			r := runs[i]
			wantURL := fmt.Sprintf("%s/runs/%d", srv.url, r.ID)
			contexts := map[string]string{"runnel": s.want}
			for _, st := range s.stages {
				contexts["runnel/"+st] = s.stageState[st]
			}
			for ctx, final := range contexts {
				calls := gh.of(r.Commit, ctx)
				var states []string
				for _, c := range calls {
					if c.Auth != "Bearer "+statusToken {
						t.Errorf("run %d %s: Authorization %q, want %q", i+1, ctx, c.Auth, "Bearer "+statusToken)
					}
					if c.TargetURL != wantURL {
						t.Errorf("run %d %s: target_url %q, want %q", i+1, ctx, c.TargetURL, wantURL)
					}
					if c.Answer != http.StatusCreated {
						continue
					}
					states = append(states, c.State+"("+c.Description+")")
				}
				// The queue coalesces: a status still waiting when a newer
				// one of its context arrives is replaced (with the in-process
				// agent "Queued" is often overtaken by "Running"). So the
				// delivered states must be the lifecycle in order, possibly
				// without the intermediate ones, and end in the final state.
				queued, running := "pending(Queued)", "pending(Running on "
				if ctx == "runnel" {
					queued, running = "pending(Run queued)", "pending(Running)"
				}
				lifecycle := []string{queued, running, final + "("}
				inOrder, next := true, 0
				for _, st := range states {
					j := next
					for j < len(lifecycle) && !strings.HasPrefix(st, lifecycle[j]) {
						j++
					}
					if j == len(lifecycle) {
						inOrder = false // unexpected, repeated or out of order
						break
					}
					next = j + 1
				}
				got := strings.Join(states, " → ")
				if !inOrder || next != len(lifecycle) {
					t.Errorf("run %d %s: delivered %s, want in order %s → %s… → %s(…), the first two possibly coalesced away",
						i+1, ctx, got, queued, running, final)
				} else if len(states) < 3 {
					t.Logf("run %d %s: delivered %s (coalesced)", i+1, ctx, got)
				}
			}
		}
		// The target URL is the run's page: log in to the UI with the
		// API token and open it.
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Jar: jar}
		resp, err := client.PostForm(srv.url+"/login", url.Values{"token": {srv.token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		target := gh.of(runs[2].Commit, "runnel")[0].TargetURL
		resp, err = client.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != target || !bytes.Contains(page, []byte(runs[2].Commit[:7])) {
			t.Errorf("GET %s after login = %d at %s, want 200 with the run's page (commit %s)", target, resp.StatusCode, resp.Request.URL, runs[2].Commit[:7])
		}

		// The first run's final status was refused twice: three attempts,
		// the last accepted, and the run's result is untouched.
		var answers []int
		for _, c := range gh.of(runs[0].Commit, "runnel") {
			if c.State == "success" {
				answers = append(answers, c.Answer)
			}
		}
		if fmt.Sprint(answers) != "[500 500 201]" {
			t.Errorf("answers to run 1's final status = %v, want [500 500 201]", answers)
		}
		if r := srv.run(runs[0].ID); r.Status != "success" {
			t.Errorf("run 1 after retried status = %s, want success", r.Status)
		}
		// runnel_status_report_failures_total counts statuses given up
		// on, not failed attempts: a retry that succeeded leaves it alone.
		fams := scrape(t, srv)
		if got := counterValue(fams, "runnel_status_report_failures_total", map[string]string{"forge": "github"}); got != 0 {
			t.Errorf("runnel_status_report_failures_total{forge=github} = %v, want 0 (retries succeeded)", got)
		}
	})

	repo := map[string]string{"repo": name}
	prod := func(result string) map[string]string {
		m := map[string]string{"repo": name, "environment": "production"}
		if result != "" {
			m["result"] = result
		}
		return m
	}
	withResult := func(r string) map[string]string { return map[string]string{"repo": name, "result": r} }
	type check struct {
		what string
		got  func(map[string]*dto.MetricFamily) float64
		want float64
	}
	cnt := func(name string, l map[string]string) func(map[string]*dto.MetricFamily) float64 {
		return func(f map[string]*dto.MetricFamily) float64 { return counterValue(f, name, l) }
	}
	hc := func(name string, l map[string]string) func(map[string]*dto.MetricFamily) float64 {
		return func(f map[string]*dto.MetricFamily) float64 { return float64(histCount(f, name, l)) }
	}
	bk := func(name string, l map[string]string, le float64) func(map[string]*dto.MetricFamily) float64 {
		return func(f map[string]*dto.MetricFamily) float64 { return float64(bucket(f, name, l, le)) }
	}
	history := []check{
		{"runs_finished_total{result=success}", cnt("runnel_runs_finished_total", withResult("success")), 3},
		{"runs_finished_total{result=failure}", cnt("runnel_runs_finished_total", withResult("failure")), 2},
		{"runs_finished_total{result=error}", cnt("runnel_runs_finished_total", withResult("error")), 0},
		{"stages_finished_total{result=success}", cnt("runnel_stages_finished_total", withResult("success")), 6},
		{"stages_finished_total{result=failure}", cnt("runnel_stages_finished_total", withResult("failure")), 2},
		{"run_duration_seconds count", hc("runnel_run_duration_seconds", repo), 5},
		{"stage_duration_seconds count", hc("runnel_stage_duration_seconds", repo), 8},
		{"queue_wait_seconds count (one per run)", hc("runnel_queue_wait_seconds", nil), 5},
		{"deployments_total{production,success}", cnt("runnel_deployments_total", prod("success")), 2},
		{"deployments_total{production,failure}", cnt("runnel_deployments_total", prod("failure")), 1},
		{"deployments_total{production,rolled_back}", cnt("runnel_deployments_total", prod("rolled_back")), 0},
		{"change_failures_total{production}", cnt("runnel_change_failures_total", prod("")), 1},
		{"lead_time_seconds count", hc("runnel_lead_time_seconds", prod("")), 2},
		{"lead_time_seconds le=3600", bk("runnel_lead_time_seconds", prod(""), 3600), 0},
		{"lead_time_seconds le=7200", bk("runnel_lead_time_seconds", prod(""), 7200), 2},
		{"time_to_restore_seconds count", hc("runnel_time_to_restore_seconds", prod("")), 1},
		{"time_to_restore_seconds le=60", bk("runnel_time_to_restore_seconds", prod(""), 60), 1},
	}
	before := scrape(t, srv)
	t.Run("metrics", func(t *testing.T) {
		for _, c := range history {
			if got := c.got(before); got != c.want {
				t.Errorf("%s = %v, want %v", c.what, got, c.want)
			}
		}
		// Nothing is running any more.
		if m := sample(before, "runnel_stages_running", nil); m == nil || m.GetGauge().GetValue() != 0 {
			t.Errorf("runnel_stages_running = %v, want 0", m)
		}
	})

	type deployment struct {
		ID          int64     `json:"id"`
		Repo        string    `json:"repo"`
		Environment string    `json:"environment"`
		RunID       int64     `json:"run_id"`
		Commit      string    `json:"commit"`
		StartedAt   time.Time `json:"started_at"`
		FinishedAt  time.Time `json:"finished_at"`
		Result      string    `json:"result"`
	}
	checkDeployments := func(t *testing.T, srv *server) {
		code, b := srv.api("GET", "/api/v1/deployments?repo="+name)
		if code != http.StatusOK {
			t.Fatalf("GET /api/v1/deployments: %d %s", code, b)
		}
		var out struct {
			Deployments []deployment `json:"deployments"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("decode deployments: %v\n%s", err, b)
		}
		// Newest first: runs 5, 4 and 3.
		want := []struct {
			run    run
			result string
		}{{runs[4], "success"}, {runs[3], "failure"}, {runs[2], "success"}}
		if len(out.Deployments) != len(want) {
			t.Fatalf("deployments = %d, want %d: %s", len(out.Deployments), len(want), b)
		}
		for i, w := range want {
			d := out.Deployments[i]
			if d.Repo != name || d.Environment != "production" || d.Commit != w.run.Commit || d.RunID != w.run.ID || d.Result != w.result {
				t.Errorf("deployment %d = %+v, want %s production commit %s run %d result %s", i, d, name, w.run.Commit, w.run.ID, w.result)
			}
			if d.StartedAt.IsZero() || d.FinishedAt.Before(d.StartedAt) {
				t.Errorf("deployment %d: started %s, finished %s; want both set, finish not before start", i, d.StartedAt, d.FinishedAt)
			}
			if i > 0 && !out.Deployments[i-1].StartedAt.After(d.FinishedAt) {
				t.Errorf("deployment %d finished %s, not before the next one started (%s)", i, d.FinishedAt, out.Deployments[i-1].StartedAt)
			}
		}
		code, b = srv.api("GET", "/api/v1/deployments?repo="+name+"&environment=staging")
		out.Deployments = nil
		if err := json.Unmarshal(b, &out); code != http.StatusOK || err != nil || out.Deployments == nil || len(out.Deployments) != 0 {
			t.Errorf("deployments to staging = %d %s, want an empty list", code, b)
		}
	}
	t.Run("deployments", func(t *testing.T) { checkDeployments(t, srv) })

	t.Run("badges", func(t *testing.T) {
		checkBadge(t, srv, badgePath, "passing")
		checkBadge(t, srv, "/badges/"+name+"/status.svg?branch=no-runs-here", "unknown")
		checkBadge(t, srv, badgePath+"&stage=no-such-stage", "unknown")
		for _, p := range []string{"/badges/acme/missing/status.svg", "/badges/" + name + "/other.svg"} {
			if code, _ := srv.do("GET", p, nil, nil); code != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", p, code)
			}
		}
		// A private repository's badge needs its badge token.
		b := srv.createRepo(map[string]any{"name": "acme/secret", "forge": "git", "clone_url": bare, "private": true})
		var created struct {
			BadgeToken string `json:"badge_token"`
		}
		if err := json.Unmarshal(b, &created); err != nil || created.BadgeToken == "" {
			t.Fatalf("private repo created without badge token: %v %s", err, b)
		}
		priv := "/badges/acme/secret/status.svg?branch=main"
		for _, p := range []string{priv, priv + "&token=wrong", priv + "&token=" + created.BadgeToken + "x"} {
			if code, body := srv.do("GET", p, nil, nil); code != http.StatusNotFound {
				t.Errorf("GET %s = %d %.100s, want 404 (same as an unknown repo)", p, code, body)
			}
		}
		status, resp, body := getBadge(t, srv, priv+"&token="+created.BadgeToken, nil)
		if resp.StatusCode != http.StatusOK || status != "unknown" {
			t.Errorf("private badge with token = %d %q %.100s, want 200 unknown", resp.StatusCode, status, body)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "private") || !strings.Contains(cc, "no-cache") {
			t.Errorf("private badge Cache-Control %q, want private and no-cache (shared caches must not keep it)", cc)
		}
	})

	// Restart on the same data directory: the history metrics are rebuilt
	// from the store.
	srv.stop(syscall.SIGINT)
	start := time.Now()
	srv2 := startServer(t, dir, srv.token)
	t.Logf("restart took %s", time.Since(start).Round(time.Millisecond))
	after := scrape(t, srv2)
	t.Run("rebuild", func(t *testing.T) {
		for _, c := range history {
			if got := c.got(after); got != c.want {
				t.Errorf("after restart %s = %v, want %v", c.what, got, c.want)
			}
		}
		// Sums come back too, up to the time between a live observation
		// and the store's stamp of the same event (one or two writes,
		// milliseconds; allow 0.25 s per sample on a loaded machine).
		for _, h := range []struct {
			name   string
			labels map[string]string
		}{
			{"runnel_run_duration_seconds", repo},
			{"runnel_stage_duration_seconds", repo},
			{"runnel_queue_wait_seconds", nil},
			{"runnel_lead_time_seconds", prod("")},
			{"runnel_time_to_restore_seconds", prod("")},
		} {
			b, a := histSum(before, h.name, h.labels), histSum(after, h.name, h.labels)
			tol := 0.25 * float64(histCount(before, h.name, h.labels))
			if math.Abs(a-b) > tol {
				t.Errorf("%s sum: %v before restart, %v after, want equal within %.2fs", h.name, b, a, tol)
			}
			t.Logf("%s sum: %.4f before restart, %.4f after", h.name, b, a)
		}
		checkDeployments(t, srv2)
		checkBadge(t, srv2, badgePath, "passing")
	})
}

// TestReportingSkippedStage checks that a stage skipped by design (a
// `when: {status: failure}` stage of a green run) does not turn the
// commit's combined GitHub status red, and that a status GitHub refuses
// on every attempt is given up on, counted once in
// runnel_status_report_failures_total, and leaves the run's result alone.
func TestReportingSkippedStage(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	const name, secret, token = "acme/skip", "skip-secret", "ghs_skip-token"
	gh := newFakeGitHub(t, name)
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": name, "forge": "github", "clone_url": bare, "secret": secret,
		"status_token": token, "status_api_url": gh.srv.URL + "/"})
	sha := commit(t, work, `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: compile
        run: echo ok
  notify:
    image: runnel-test/busybox:latest
    needs: [build]
    when: {status: failure}
    steps:
      - name: page
        run: echo build broke
`)
	// GitHub refuses the build stage's final status on every attempt:
	// the queue gives up after its 6 attempts (about 15 s of backoff) and
	// counts one failure.
	gh.failTimes(sha, "runnel/build", "success", 1000)
	git(t, work, "push", "-q", "origin", "main")
	body := fixture(t, "push.with-new-branch.json", func(m map[string]any) {
		m["after"], m["ref"] = sha, "refs/heads/main"
		repo := m["repository"].(map[string]any)
		repo["full_name"], repo["clone_url"] = name, bare
		m["head_commit"].(map[string]any)["id"] = sha
	})
	code, b := srv.do("POST", "/hooks/github", bytes.NewReader(body), map[string]string{
		"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "skip-1",
		"X-Hub-Signature-256": sign(secret, body)})
	if code != http.StatusAccepted {
		t.Fatalf("push webhook: %d %s, want 202", code, b)
	}
	r := srv.waitRun(sha, 90*time.Second, terminal)
	if r.Status != "success" {
		t.Fatalf("run = %s, want success: %+v", r.Status, r)
	}
	gh.waitFinal(sha, "runnel", 30*time.Second)
	calls := gh.waitFinal(sha, "runnel/notify", 30*time.Second)
	last := calls[len(calls)-1]
	if last.State != "success" || !strings.HasPrefix(last.Description, "Skipped") {
		t.Errorf("runnel/notify final status = %s (%q), want success (\"Skipped…\"): GitHub counts error as failed", last.State, last.Description)
	}

	waitFor(t, 60*time.Second, "one status given up on", func() bool {
		got := counterValue(scrape(t, srv), "runnel_status_report_failures_total", map[string]string{"forge": "github"})
		if got > 1 {
			t.Fatalf("runnel_status_report_failures_total{forge=github} = %v, want 1 (one status given up on)", got)
		}
		return got == 1
	})
	var answers []int
	for _, c := range gh.of(sha, "runnel/build") {
		if c.State == "success" {
			answers = append(answers, c.Answer)
		}
	}
	if fmt.Sprint(answers) != "[500 500 500 500 500 500]" {
		t.Errorf("attempts at the build's final status = %v, want six answered 500", answers)
	}
	if r := srv.run(r.ID); r.Status != "success" {
		t.Errorf("run after an undeliverable status = %s, want success", r.Status)
	}
}
