package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const dashboardPath = "../../docs/grafana/runnel.json"

type dashPanel struct {
	ID      int         `json:"id"`
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	Panels  []dashPanel `json:"panels"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int         `json:"schemaVersion"`
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Panels        []dashPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

var (
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promIdent  = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
)

// metricNames returns the runnel_ metric names an expression refers to.
// String literals (label values) are removed first so that a value that
// happens to start with runnel_ is not taken for a metric.
func metricNames(expr string) []string {
	expr = promString.ReplaceAllString(expr, `""`)
	var out []string
	for _, id := range promIdent.FindAllString(expr, -1) {
		if strings.HasPrefix(id, "runnel_") {
			out = append(out, id)
		}
	}
	return out
}

// exported returns every series name the registry exposes, expanding
// histograms and summaries into their _bucket, _sum and _count series.
func exported(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		n := f.GetName()
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n], names[n+"_sum"], names[n+"_count"] = true, true, true
		default:
			names[n] = true
		}
	}
	return names
}

// touchAll registers the metrics and records at least one event on each,
// so every vector has a series to gather.
func touchAll(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	playLive(m, script())
	m.AgentsFrom(func() (int, int) { return 2, 8 })
	m.StageStarted()
	m.WebhookDelivery("github", WebhookAccepted)
	m.StatusReportFailed("github")
	return reg
}

// unknownMetrics returns the metric names used by exprs that reg does not
// export.
func unknownMetrics(exprs []string, have map[string]bool) []string {
	var bad []string
	for _, e := range exprs {
		for _, n := range metricNames(e) {
			if !have[n] {
				bad = append(bad, n)
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func TestDashboardUsesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatalf("read dashboard: %v", err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("dashboard header: schemaVersion %d uid %q title %q", d.SchemaVersion, d.UID, d.Title)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs: got %+v, want one DS_PROMETHEUS prometheus input", d.Inputs)
	}
	vars := map[string]bool{}
	var exprs []string
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		exprs = append(exprs, v.Definition)
	}
	if !vars["repo"] || !vars["environment"] {
		t.Errorf("template variables: got %v, want repo and environment", vars)
	}

	ids := map[int]string{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no targets", p.Title)
			}
			for _, tg := range p.Targets {
				if len(metricNames(tg.Expr)) == 0 {
					t.Errorf("panel %q target %s uses no runnel_ metric: %q", p.Title, tg.RefID, tg.Expr)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	have := exported(t, touchAll(t))
	if bad := unknownMetrics(exprs, have); len(bad) > 0 {
		t.Errorf("dashboard uses metrics runner/metrics does not export: %v", bad)
	}

	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricNames(e) {
			used[n] = true
		}
	}
	for _, want := range []string{
		"runnel_lead_time_seconds_bucket", "runnel_deployments_total", "runnel_change_failures_total",
		"runnel_time_to_restore_seconds_bucket", "runnel_runs_finished_total", "runnel_queue_wait_seconds_bucket",
		"runnel_agent_busy_slots", "runnel_agent_capacity_slots",
	} {
		if !used[want] {
			t.Errorf("dashboard does not chart %s", want)
		}
	}
}

// TestUnknownMetricsDetects shows the dashboard check fails on names the
// registry does not export.
func TestUnknownMetricsDetects(t *testing.T) {
	have := exported(t, touchAll(t))
	tests := []struct {
		expr string
		want []string
	}{
		{`sum(rate(runnel_runs_finished_total{result="runnel_fake"}[5m]))`, nil},
		{`histogram_quantile(0.9, sum by (le) (rate(runnel_lead_time_seconds_bucket[1d])))`, nil},
		{`runnel_lead_time_seconds`, []string{"runnel_lead_time_seconds"}},
		{`runnel_runs_total / runnel_deploys_total`, []string{"runnel_deploys_total", "runnel_runs_total"}},
		{`rate(runnel_queue_wait_seconds_buckets[5m])`, []string{"runnel_queue_wait_seconds_buckets"}},
	}
	for _, tt := range tests {
		got := unknownMetrics([]string{tt.expr}, have)
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("unknownMetrics(%q): got %v, want %v", tt.expr, got, tt.want)
		}
	}
}
