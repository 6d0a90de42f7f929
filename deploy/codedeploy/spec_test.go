package codedeploy

import (
	"testing"
	"time"

	"github.com/runnel-ci/runnel/deploy"
)

// TestRouting: traffic steps map to CodeDeploy's predefined configs where
// one exists, else to Runnel's; CodeDeploy takes whole minutes.
func TestRouting(t *testing.T) {
	for _, tt := range []struct {
		steps    []int
		interval time.Duration
		want     string
	}{
		{nil, 0, "CodeDeployDefault.ECSAllAtOnce"},
		{[]int{10}, 5 * time.Minute, "CodeDeployDefault.ECSCanary10Percent5Minutes"},
		{[]int{10, 100}, 15 * time.Minute, "CodeDeployDefault.ECSCanary10Percent15Minutes"},
		{[]int{10, 20, 30, 40, 50, 60, 70, 80, 90}, 3 * time.Minute, "CodeDeployDefault.ECSLinear10PercentEvery3Minutes"},
		{[]int{20}, time.Minute, "Runnel.ECSCanary20Percent1Minutes"},
		{[]int{30, 60, 90}, 2 * time.Minute, "Runnel.ECSLinear30PercentEvery2Minutes"},
		{[]int{10}, 90 * time.Second, "error"},
		{[]int{10, 50}, time.Minute, "error"},
	} {
		name, tr, err := routing(deploy.Release{TrafficSteps: tt.steps, Interval: tt.interval})
		got := name
		if err != nil {
			got = "error"
		} else if tr == nil {
			got = "no routing"
		}
		if got != tt.want {
			t.Errorf("steps %v every %s: got %s (%v), want %s", tt.steps, tt.interval, got, err, tt.want)
		}
	}
}

// TestDescription: the description round-trips a release's version and
// identity; other descriptions are not Runnel's.
func TestDescription(t *testing.T) {
	v, id, ok := parseDescription(description(deploy.Release{Version: "abc123", ID: "run-7/production"}))
	if !ok || v != "abc123" || id != "run-7/production" {
		t.Errorf("got %q %q %v, want abc123 run-7/production true", v, id, ok)
	}
	if _, _, ok := parseDescription("deployed by hand"); ok {
		t.Error("a foreign description parsed as runnel's")
	}
}
