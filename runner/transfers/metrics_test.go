package transfers_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestMetricsDoc checks the "Artifact store metrics" table of
// docs/metrics.md against what the service registers: names, types,
// labels and label values, all present from zero.
func TestMetricsDoc(t *testing.T) {
	r := newRig(t)
	fams, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	rowRE := regexp.MustCompile("^\\| `(runnel_[a-z_]+)` \\| ([a-z]+) \\| `([a-z]+)` \\| .*`[a-z]+`: ((?:`[a-z_]+`(?:, )?)+)")
	doc := map[string][]string{} // name -> type, label, values...
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = line == "## Artifact store metrics"
		}
		if m := rowRE.FindStringSubmatch(line); in && m != nil {
			doc[m[1]] = append([]string{m[2], m[3]}, strings.Split(strings.ReplaceAll(m[4], "`", ""), ", ")...)
		}
	}
	types := map[dto.MetricType]string{dto.MetricType_COUNTER: "counter", dto.MetricType_GAUGE: "gauge"}
	for _, f := range fams {
		d, ok := doc[f.GetName()]
		if !ok {
			t.Errorf("%s is exported but not in the table", f.GetName())
			continue
		}
		delete(doc, f.GetName())
		var values []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != d[1] {
					t.Errorf("%s has label %s, the table says %s", f.GetName(), l.GetName(), d[1])
				}
				values = append(values, l.GetValue())
			}
		}
		slices.Sort(values)
		want := slices.Sorted(slices.Values(d[2:]))
		if types[f.GetType()] != d[0] || !slices.Equal(values, want) {
			t.Errorf("%s: %s %v, the table says %s %v", f.GetName(), types[f.GetType()], values, d[0], want)
		}
	}
	for name := range doc {
		t.Errorf("the table lists %s, which is not exported", name)
	}
}
