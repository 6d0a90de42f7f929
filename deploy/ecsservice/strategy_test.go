package ecsservice

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/runnel-ci/runnel/deploy"
)

// TestStrategy: traffic steps become ECS's strategies, in whole minutes,
// keeping the service's hooks and circuit breaker.
func TestStrategy(t *testing.T) {
	cur := &ecstypes.DeploymentConfiguration{Strategy: ecstypes.DeploymentStrategyRolling,
		DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: true},
		LifecycleHooks:           []ecstypes.DeploymentLifecycleHook{{HookTargetArn: aws.String("arn:hook")}}}
	for _, tt := range []struct {
		steps          []int
		interval, bake time.Duration
		want           string // strategy percent stepMinutes bakeMinutes, or the error
	}{
		{nil, 0, 5 * time.Minute, "BLUE_GREEN 0 0 5"},
		{[]int{10}, 5 * time.Minute, 0, "CANARY 10 5 0"},
		{[]int{10, 100}, time.Minute, time.Minute, "CANARY 10 1 1"},
		{[]int{30, 60, 90}, 2 * time.Minute, 0, "LINEAR 30 2 0"},
		{[]int{25, 50, 75, 100}, time.Minute, 0, "LINEAR 25 1 0"},
		{[]int{10, 50}, time.Minute, 0, "traffic steps [10 50 100]: ECS shifts all at once, one canary step, or equal linear steps"},
		{[]int{10}, 90 * time.Second, 0, "interval 1m30s: ECS takes whole minutes up to 24h"},
		{nil, 0, 30 * time.Second, "bake time 30s: ECS takes whole minutes up to 24h"},
	} {
		rel := deploy.Release{TrafficSteps: tt.steps, Interval: tt.interval, BakeTime: tt.bake}
		c, err := strategy(cur, rel)
		var got string
		switch {
		case err != nil:
			got = err.Error()
		case c.CanaryConfiguration != nil:
			got = fmt.Sprint(c.Strategy, " ", *c.CanaryConfiguration.CanaryPercent, " ", *c.CanaryConfiguration.CanaryBakeTimeInMinutes, " ", *c.BakeTimeInMinutes)
		case c.LinearConfiguration != nil:
			got = fmt.Sprint(c.Strategy, " ", *c.LinearConfiguration.StepPercent, " ", *c.LinearConfiguration.StepBakeTimeInMinutes, " ", *c.BakeTimeInMinutes)
		default:
			got = fmt.Sprint(c.Strategy, " 0 0 ", *c.BakeTimeInMinutes)
		}
		if got != tt.want {
			t.Errorf("steps %v interval %s bake %s: got %q, want %q", tt.steps, tt.interval, tt.bake, got, tt.want)
		}
		if err == nil && (len(c.LifecycleHooks) != 1 || c.DeploymentCircuitBreaker == nil) {
			t.Errorf("steps %v: hooks or circuit breaker lost: %+v", tt.steps, c)
		}
	}
	if cur.Strategy != ecstypes.DeploymentStrategyRolling {
		t.Errorf("the service's configuration was changed: %+v", cur)
	}
}
