package metrics

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// docMetric is one row of the reference table in docs/metrics.md.
type docMetric struct {
	typ    string
	labels []string
	values map[string][]string // label -> values listed as "`label`: `a`, `b`"
}

var (
	docRowRE    = regexp.MustCompile("^\\| `(runnel_[a-z_]+)` \\| ([a-z]+) \\| ([^|]+) \\| (.+) \\|$")
	docValuesRE = regexp.MustCompile("`([a-z_]+)`: ((?:`[a-z_]+`(?:, )?)+)")
	backtickRE  = regexp.MustCompile("`([^`]+)`")
)

// readDocMetrics reads the rows of the "## Metric reference" section;
// other packages' metrics have sections (and tests) of their own.
func readDocMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = line == "## Metric reference"
		}
		if !in {
			continue
		}
		m := docRowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d := docMetric{typ: m[2], values: map[string][]string{}}
		for _, l := range backtickRE.FindAllStringSubmatch(m[3], -1) {
			d.labels = append(d.labels, l[1])
		}
		for _, v := range docValuesRE.FindAllStringSubmatch(m[4], -1) {
			for _, x := range backtickRE.FindAllStringSubmatch(v[2], -1) {
				d.values[v[1]] = append(d.values[v[1]], x[1])
			}
		}
		out[m[1]] = d
	}
	return out
}

// TestMetricsDocMatchesExposition checks docs/metrics.md's reference table
// against what a registry exports once a repository and an environment
// are known: every metric, its type, its label names, and, where the
// table lists them, the label values (all of which exist at 0).
func TestMetricsDocMatchesExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.RepoKnown("acme/web")
	m.EnvironmentKnown("acme/web", "prod")
	m.QueueWait(0)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	doc := readDocMetrics(t)
	types := map[dto.MetricType]string{dto.MetricType_COUNTER: "counter", dto.MetricType_GAUGE: "gauge", dto.MetricType_HISTOGRAM: "histogram"}
	seen := map[string]bool{}
	for _, f := range fams {
		name := f.GetName()
		seen[name] = true
		d, ok := doc[name]
		if !ok {
			t.Errorf("%s is exported but not in docs/metrics.md", name)
			continue
		}
		if got := types[f.GetType()]; got != d.typ {
			t.Errorf("%s: type %s, docs say %s", name, got, d.typ)
		}
		values := map[string]map[string]bool{}
		var labels []string
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if values[l.GetName()] == nil {
					values[l.GetName()] = map[string]bool{}
					labels = append(labels, l.GetName())
				}
				values[l.GetName()][l.GetValue()] = true
			}
		}
		sort.Strings(labels)
		want := slices.Clone(d.labels)
		sort.Strings(want)
		if !slices.Equal(labels, want) {
			t.Errorf("%s: labels %v, docs say %v", name, labels, want)
		}
		for label, listed := range d.values {
			var got []string
			for v := range values[label] {
				got = append(got, v)
			}
			sort.Strings(got)
			listed = slices.Clone(listed)
			sort.Strings(listed)
			if !slices.Equal(got, listed) {
				t.Errorf("%s: %s values %v, docs list %v", name, label, got, listed)
			}
		}
	}
	for name := range doc {
		if !seen[name] {
			t.Errorf("docs/metrics.md lists %s, which is not exported", name)
		}
	}
	if len(doc) < 15 {
		t.Errorf("read %d rows from docs/metrics.md, want the whole reference table", len(doc))
	}
}
