package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// history is an in-memory HistorySource for tests.
type history struct {
	known       map[string][]string // repo -> environments
	runs        []RunRecord
	deployments []Deployment
}

func (h *history) Known(ctx context.Context, fn func(string, []string) error) error {
	repos := make([]string, 0, len(h.known))
	for r := range h.known {
		repos = append(repos, r)
	}
	sort.Strings(repos)
	for _, r := range repos {
		if err := fn(r, h.known[r]); err != nil {
			return err
		}
	}
	return nil
}

func (h *history) FinishedRuns(ctx context.Context, fn func(RunRecord) error) error {
	for _, r := range h.runs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (h *history) Deployments(ctx context.Context, fn func(Deployment) error) error {
	for _, d := range h.deployments {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

var _ HistorySource = (*history)(nil)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// script is the sequence used by the tests: a successful run, a failed
// run, then deployments to prod: ok, failed, rolled back, ok again, and
// one ok deployment to staging.
func script() *history {
	return &history{
		known: map[string][]string{"acme/web": {"prod", "staging"}, "acme/api": {"prod"}},
		runs: []RunRecord{
			{Repo: "acme/web", Result: "success", Queued: at(0), Started: at(2), Finished: at(62), Stages: []StageRecord{
				{Result: "success", Started: at(2), Finished: at(32)},
				{Result: "success", Started: at(32), Finished: at(62)},
			}},
			{Repo: "acme/web", Result: "failure", Queued: at(100), Started: at(105), Finished: at(125), Stages: []StageRecord{
				{Result: "failure", Started: at(105), Finished: at(125)},
			}},
		},
		deployments: []Deployment{
			{Repo: "acme/web", Environment: "prod", CommitTime: at(-3600), Started: at(200), Finished: at(260), Result: "success"},
			{Repo: "acme/web", Environment: "staging", CommitTime: at(0), Started: at(300), Finished: at(360), Result: "success"},
			{Repo: "acme/web", Environment: "prod", CommitTime: at(50), Started: at(400), Finished: at(500), Result: "failure"},
			{Repo: "acme/web", Environment: "prod", CommitTime: at(60), Started: at(700), Finished: at(800), Result: "rolled_back"},
			{Repo: "acme/web", Environment: "prod", CommitTime: at(700), Started: at(1300), Finished: at(1400), Result: "success"},
		},
	}
}

// playLive sends the script through the live methods, in the order the
// server would.
func playLive(m *Metrics, h *history) {
	for repo, envs := range h.known {
		m.RepoKnown(repo)
		for _, e := range envs {
			m.EnvironmentKnown(repo, e)
		}
	}
	for _, r := range h.runs {
		m.QueueWait(r.Started.Sub(r.Queued))
		for _, s := range r.Stages {
			m.StageStarted()
			m.StageFinished(r.Repo, s.Result, s.Started, s.Finished)
		}
		m.RunFinished(r.Repo, r.Result, r.Queued, r.Started, r.Finished)
	}
	for _, d := range h.deployments {
		m.DeploymentFinished(d)
	}
}

// scrape serves reg with promhttp and returns the exposition text.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read scrape: %v", err)
	}
	return string(b)
}

func parseText(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, text)
	}
	return fams
}

// find returns the metric of family name whose labels are exactly want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s not exported", name)
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	t.Fatalf("metric %s%v not found", name, want)
	return nil
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func checkScript(t *testing.T, text string) {
	t.Helper()
	fams := parseText(t, text)
	counters := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"runnel_runs_finished_total", lbl("repo", "acme/web", "result", "success"), 1},
		{"runnel_runs_finished_total", lbl("repo", "acme/web", "result", "failure"), 1},
		{"runnel_stages_finished_total", lbl("repo", "acme/web", "result", "success"), 2},
		{"runnel_stages_finished_total", lbl("repo", "acme/web", "result", "failure"), 1},
		{"runnel_deployments_total", lbl("repo", "acme/web", "environment", "prod", "result", "success"), 2},
		{"runnel_deployments_total", lbl("repo", "acme/web", "environment", "prod", "result", "failure"), 1},
		{"runnel_deployments_total", lbl("repo", "acme/web", "environment", "prod", "result", "rolled_back"), 1},
		{"runnel_deployments_total", lbl("repo", "acme/web", "environment", "staging", "result", "success"), 1},
		{"runnel_change_failures_total", lbl("repo", "acme/web", "environment", "prod"), 2},
		// Known series without events exist at 0.
		{"runnel_change_failures_total", lbl("repo", "acme/web", "environment", "staging"), 0},
		{"runnel_deployments_total", lbl("repo", "acme/web", "environment", "staging", "result", "failure"), 0},
		{"runnel_deployments_total", lbl("repo", "acme/api", "environment", "prod", "result", "rolled_back"), 0},
		{"runnel_runs_finished_total", lbl("repo", "acme/api", "result", "canceled"), 0},
		{"runnel_webhook_deliveries_total", lbl("forge", "git", "result", "rejected_signature"), 0},
		{"runnel_status_report_failures_total", lbl("forge", "gitlab"), 0},
	}
	for _, c := range counters {
		if got := find(t, fams, c.name, c.labels).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(fams["runnel_change_failures_total"].GetMetric()); n != 3 {
		t.Errorf("runnel_change_failures_total: got %d series, want 3 (one per known repository and environment)", n)
	}

	hists := []struct {
		name   string
		labels map[string]string
		count  uint64
		sum    float64
		// buckets holds cumulative counts for some upper bounds.
		buckets map[float64]uint64
	}{
		{"runnel_run_duration_seconds", lbl("repo", "acme/web"), 2, 80, map[float64]uint64{30: 1, 60: 2}},
		{"runnel_stage_duration_seconds", lbl("repo", "acme/web"), 3, 80, map[float64]uint64{10: 0, 30: 3}},
		{"runnel_queue_wait_seconds", nil, 2, 7, map[float64]uint64{2: 1, 5: 2}},
		// prod lead times: 260+3600 = 3860 s and 1400-700 = 700 s.
		{"runnel_lead_time_seconds", lbl("repo", "acme/web", "environment", "prod"), 2, 4560, map[float64]uint64{300: 0, 900: 1, 3600: 1, 7200: 2}},
		{"runnel_lead_time_seconds", lbl("repo", "acme/web", "environment", "staging"), 1, 360, map[float64]uint64{300: 0, 900: 1}},
		// restore: first failure finished at 500, next success at 1400.
		{"runnel_time_to_restore_seconds", lbl("repo", "acme/web", "environment", "prod"), 1, 900, map[float64]uint64{300: 0, 900: 1}},
	}
	for _, h := range hists {
		got := find(t, fams, h.name, h.labels).GetHistogram()
		if got.GetSampleCount() != h.count || got.GetSampleSum() != h.sum {
			t.Errorf("%s%v: got count %d sum %v, want count %d sum %v", h.name, h.labels, got.GetSampleCount(), got.GetSampleSum(), h.count, h.sum)
		}
		for le, want := range h.buckets {
			found := false
			for _, b := range got.GetBucket() {
				if b.GetUpperBound() == le {
					found = true
					if b.GetCumulativeCount() != want {
						t.Errorf("%s%v le=%v: got %d, want %d", h.name, h.labels, le, b.GetCumulativeCount(), want)
					}
				}
			}
			if !found {
				t.Errorf("%s: no bucket le=%v", h.name, le)
			}
		}
	}
	if n := len(fams["runnel_time_to_restore_seconds"].GetMetric()); n != 3 {
		t.Errorf("runnel_time_to_restore_seconds: got %d series, want 3", n)
	}
	if c := find(t, fams, "runnel_time_to_restore_seconds", lbl("repo", "acme/api", "environment", "prod")).GetHistogram().GetSampleCount(); c != 0 {
		t.Errorf("time to restore of acme/api prod: %d samples, want 0", c)
	}
	if got := find(t, fams, "runnel_stages_running", nil).GetGauge().GetValue(); got != 0 {
		t.Errorf("runnel_stages_running: got %v, want 0", got)
	}
}

func TestScriptedSequence(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	playLive(m, script())
	checkScript(t, scrape(t, reg))
}

func TestRebuildMatchesLive(t *testing.T) {
	live := prometheus.NewRegistry()
	ml, err := New(live)
	if err != nil {
		t.Fatal(err)
	}
	playLive(ml, script())

	rebuilt := prometheus.NewRegistry()
	mr, err := New(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if err := mr.Rebuild(context.Background(), script()); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	got, want := scrape(t, rebuilt), scrape(t, live)
	checkScript(t, got)
	if got != want {
		t.Errorf("rebuilt exposition differs from live:\n--- rebuilt\n%s\n--- live\n%s", got, want)
	}

	// The failure-not-yet-restored state comes back too: a failure
	// replayed from history followed by a live success gives a restore.
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := &history{deployments: []Deployment{
		{Repo: "r", Environment: "prod", Finished: at(100), Result: "failure"},
	}}
	if err := m.Rebuild(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	m.DeploymentFinished(Deployment{Repo: "r", Environment: "prod", Finished: at(160), Result: "success"})
	ttr := find(t, parseText(t, scrape(t, reg)), "runnel_time_to_restore_seconds", lbl("repo", "r", "environment", "prod")).GetHistogram()
	if ttr.GetSampleCount() != 1 || ttr.GetSampleSum() != 60 {
		t.Errorf("time to restore after rebuild: got count %d sum %v, want 1 and 60", ttr.GetSampleCount(), ttr.GetSampleSum())
	}
}

// TestSeriesStartAtZero: every series a panel reads exists at 0 once its
// repository and environment are known, before any event, so the first
// event is a step Prometheus's increase() can see.
func TestSeriesStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.RepoKnown("acme/web")
	m.EnvironmentKnown("acme/web", "prod")
	fams := parseText(t, scrape(t, reg))
	for _, r := range []string{"success", "failure", "error", "canceled", "skipped"} {
		for _, name := range []string{"runnel_runs_finished_total", "runnel_stages_finished_total"} {
			if v := find(t, fams, name, lbl("repo", "acme/web", "result", r)).GetCounter().GetValue(); v != 0 {
				t.Errorf("%s{result=%s} = %v, want 0", name, r, v)
			}
		}
	}
	for _, r := range []string{"success", "failure", "rolled_back"} {
		find(t, fams, "runnel_deployments_total", lbl("repo", "acme/web", "environment", "prod", "result", r))
	}
	find(t, fams, "runnel_change_failures_total", lbl("repo", "acme/web", "environment", "prod"))
	find(t, fams, "runnel_lead_time_seconds", lbl("repo", "acme/web", "environment", "prod"))
	find(t, fams, "runnel_time_to_restore_seconds", lbl("repo", "acme/web", "environment", "prod"))
	find(t, fams, "runnel_run_duration_seconds", lbl("repo", "acme/web"))
	for _, f := range Forges {
		find(t, fams, "runnel_status_report_failures_total", lbl("forge", f))
		find(t, fams, "runnel_webhook_deliveries_total", lbl("forge", f, "result", "accepted"))
	}
	// The first failure is then a step from 0 to 1.
	m.DeploymentFinished(Deployment{Repo: "acme/web", Environment: "prod", Finished: at(10), Result: "failure"})
	fams = parseText(t, scrape(t, reg))
	if v := find(t, fams, "runnel_change_failures_total", lbl("repo", "acme/web", "environment", "prod")).GetCounter().GetValue(); v != 1 {
		t.Errorf("change failures after the first failure = %v, want 1", v)
	}
}

// TestBusySlotsFollowStages: utilisation moves with stage starts and ends,
// not with agent heartbeats; agents and capacity are read at scrape time.
func TestBusySlotsFollowStages(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	agents, capacity := 1, 2
	m.AgentsFrom(func() (int, int) { return agents, capacity })
	gauge := func(name string) float64 {
		return find(t, parseText(t, scrape(t, reg)), name, nil).GetGauge().GetValue()
	}
	steps := []struct {
		do        func()
		busy, cap float64
	}{
		{func() {}, 0, 2},
		{m.StageStarted, 1, 2},
		{m.StageStarted, 2, 2},
		{func() { m.StageFinished("r", "success", at(0), at(1)) }, 1, 2},
		{func() { agents, capacity = 2, 6 }, 1, 6},
		{func() { m.StagesRunning(3) }, 3, 6},
	}
	for i, s := range steps {
		s.do()
		if b, c := gauge("runnel_agent_busy_slots"), gauge("runnel_agent_capacity_slots"); b != s.busy || c != s.cap {
			t.Errorf("step %d: busy %v of %v slots, want %v of %v", i, b, c, s.busy, s.cap)
		}
	}
	if a := gauge("runnel_agents_connected"); a != 2 {
		t.Errorf("agents connected = %v, want 2", a)
	}
}

func TestLogDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	counter := func() float64 {
		return find(t, parseText(t, scrape(t, reg)), "runnel_step_log_dropped_bytes_total", nil).GetCounter().GetValue()
	}
	if got := counter(); got != 0 {
		t.Errorf("dropped before LogDroppedFrom = %v, want 0", got)
	}
	dropped := int64(0)
	m.LogDroppedFrom(func() int64 { return dropped })
	dropped = 1 << 20
	if got := counter(); got != 1<<20 {
		t.Errorf("dropped = %v, want %d", got, 1<<20)
	}
}

func TestRebuildErrors(t *testing.T) {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.RunFinished("r", "success", at(0), at(1), at(2))
	if err := m.Rebuild(context.Background(), script()); !errors.Is(err, ErrNotFresh) {
		t.Errorf("Rebuild after live events: got %v, want ErrNotFresh", err)
	}

	m, _ = New(prometheus.NewRegistry())
	h := &history{deployments: []Deployment{
		{Repo: "r", Environment: "prod", Finished: at(100), Result: "success"},
		{Repo: "r", Environment: "prod", Finished: at(50), Result: "success"},
	}}
	if err := m.Rebuild(context.Background(), h); err == nil || !strings.Contains(err.Error(), "ascending") {
		t.Errorf("Rebuild out of order: got %v, want an ordering error", err)
	}

	if _, err := New(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	_, _ = New(reg)
	if _, err := New(reg); err == nil {
		t.Error("second New on one registry: got nil error, want a registration error")
	}
}

func TestLabelsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := New(reg)
	m.RunFinished("r", "weird-"+strings.Repeat("x", 10), time.Time{}, at(0), at(1))
	m.WebhookDelivery("github", "something-new")
	m.WebhookDelivery("github", WebhookDuplicate)
	m.WebhookRejected("no-such-reason")
	m.WebhookRejected(RejectedSlowBody)
	m.DeploymentFinished(Deployment{Repo: "r", Environment: "prod", Finished: at(1), Result: "exploded"})
	fams := parseText(t, scrape(t, reg))
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{"runnel_runs_finished_total", lbl("repo", "r", "result", "error")},
		{"runnel_webhook_deliveries_total", lbl("forge", "github", "result", "error")},
		{"runnel_webhook_deliveries_total", lbl("forge", "github", "result", "duplicate")},
		{"runnel_webhook_rejected_total", lbl("reason", "bad_request")},
		{"runnel_webhook_rejected_total", lbl("reason", "slow_body")},
		{"runnel_deployments_total", lbl("repo", "r", "environment", "prod", "result", "failure")},
	}
	for _, tt := range tests {
		if got := find(t, fams, tt.name, tt.labels).GetCounter().GetValue(); got != 1 {
			t.Errorf("%s%v: got %v, want 1", tt.name, tt.labels, got)
		}
	}
	// Every label name used by any metric must be one of the bounded ones.
	allowed := map[string]bool{"repo": true, "result": true, "environment": true, "forge": true, "reason": true, "le": true}
	var bad []string
	for name, f := range fams {
		for _, mm := range f.GetMetric() {
			for _, l := range mm.GetLabel() {
				if !allowed[l.GetName()] {
					bad = append(bad, name+"/"+l.GetName())
				}
			}
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Errorf("unbounded label names: %v", bad)
	}
}
