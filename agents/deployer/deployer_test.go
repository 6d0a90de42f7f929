package deployer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
)

// TestRelease: a deploy block becomes the release its docs promise.
func TestRelease(t *testing.T) {
	tests := []struct {
		strategy pipeline.Strategy
		onFail   string
		steps    string
		stop     bool
	}{
		{pipeline.Strategy{Type: pipeline.StrategyAllAtOnce}, pipeline.OnFailureRollback, "[100]", false},
		{pipeline.Strategy{Type: pipeline.StrategyCanary, Percent: 10, Interval: pipeline.Duration(5 * time.Minute)}, pipeline.OnFailureStop, "[10 100]", true},
		{pipeline.Strategy{Type: pipeline.StrategyLinear, Percent: 30, Interval: pipeline.Duration(time.Minute)}, pipeline.OnFailureRollback, "[30 60 90 100]", false},
		{pipeline.Strategy{Type: pipeline.StrategyLinear, Percent: 50, Interval: pipeline.Duration(time.Minute)}, pipeline.OnFailureRollback, "[50 100]", false},
	}
	for _, tt := range tests {
		pd := &pipeline.Deploy{Provider: "docker", App: "web", Version: "v2", Image: "web:v2", Port: 8080, Strategy: tt.strategy,
			Health: pipeline.DeployHealth{Path: "/healthz", Failures: 3}, Bake: pipeline.Duration(time.Minute), OnFailure: tt.onFail}
		rel := Release(pd)
		if got := fmt.Sprint(rel.TrafficSteps); got != tt.steps || rel.StopOnFailure != tt.stop || rel.Interval != tt.strategy.Interval.D() ||
			rel.BakeTime != time.Minute || rel.Health.Path != "/healthz" || rel.Health.Failures != 3 {
			t.Errorf("%+v: release %+v, want steps %s, stop %v", tt.strategy, rel, tt.steps, tt.stop)
		}
		if err := rel.Validate(); err != nil {
			t.Errorf("%+v: %v", tt.strategy, err)
		}
	}
}

// TestECSProviderNeedsStageCredentials: the ecs provider takes its
// region and credentials from the block and the stage's env only.
func TestECSProviderNeedsStageCredentials(t *testing.T) {
	pd := &pipeline.Deploy{Provider: "ecs", ECS: &pipeline.ECSTarget{Cluster: "c", Service: "s", Listener: "l", TargetGroups: [2]string{"a", "b"}}}
	d := &Deployer{}
	for _, tt := range []struct {
		region string
		env    map[string]string
		want   string
	}{
		{"", map[string]string{"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, "no region"},
		{"eu-west-1", map[string]string{"AWS_ACCESS_KEY_ID": "k"}, "AWS_SECRET_ACCESS_KEY must be in the stage env"},
		{"", map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, ""},
	} {
		pd.Region = tt.region
		_, err := d.ecsProvider(pd, tt.env)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("region %q env %v: %v, want %q", tt.region, tt.env, err, tt.want)
		}
	}
}
