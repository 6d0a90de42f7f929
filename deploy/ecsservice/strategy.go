package ecsservice

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/runnel-ci/runnel/deploy"
)

// strategy returns cur (the service's deployment configuration, whose
// lifecycle hooks, alarms and circuit breaker are kept) with the
// release's traffic steps as an ECS deployment strategy: [100] is
// BLUE_GREEN, [p 100] CANARY p % for Interval, [p 2p … 100] LINEAR p %
// every Interval; BakeTime is the bake time after the last shift. ECS
// counts these times in whole minutes.
func strategy(cur *ecstypes.DeploymentConfiguration, rel deploy.Release) (*ecstypes.DeploymentConfiguration, error) {
	steps, err := rel.Steps()
	if err != nil {
		return nil, err
	}
	bake, err := minutes(rel.BakeTime, "bake time")
	if err != nil {
		return nil, err
	}
	out := ecstypes.DeploymentConfiguration{}
	if cur != nil {
		out = *cur
	}
	out.BakeTimeInMinutes = aws.Int32(bake)
	out.CanaryConfiguration, out.LinearConfiguration = nil, nil
	if len(steps) == 1 {
		out.Strategy = ecstypes.DeploymentStrategyBlueGreen
		return &out, nil
	}
	step, err := minutes(rel.Interval, "interval")
	if err != nil {
		return nil, err
	}
	p := float64(steps[0])
	switch {
	case len(steps) == 2:
		out.Strategy = ecstypes.DeploymentStrategyCanary
		out.CanaryConfiguration = &ecstypes.CanaryConfiguration{CanaryPercent: aws.Float64(p), CanaryBakeTimeInMinutes: aws.Int32(step)}
	case deploy.Linear(steps):
		out.Strategy = ecstypes.DeploymentStrategyLinear
		out.LinearConfiguration = &ecstypes.LinearConfiguration{StepPercent: aws.Float64(p), StepBakeTimeInMinutes: aws.Int32(step)}
	default:
		return nil, fmt.Errorf("traffic steps %v: ECS shifts all at once, one canary step, or equal linear steps", steps)
	}
	return &out, nil
}

// minutes converts d to ECS's whole minutes, refusing fractions.
func minutes(d time.Duration, what string) (int32, error) {
	if d%time.Minute != 0 || d < 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("%s %s: ECS takes whole minutes up to 24h", what, d)
	}
	return int32(d / time.Minute), nil
}

// plannedTime is how long the strategy bakes and holds steps in total.
func plannedTime(c *ecstypes.DeploymentConfiguration) time.Duration {
	m := aws.ToInt32(c.BakeTimeInMinutes)
	switch {
	case c.CanaryConfiguration != nil:
		m += aws.ToInt32(c.CanaryConfiguration.CanaryBakeTimeInMinutes)
	case c.LinearConfiguration != nil:
		if p := aws.ToFloat64(c.LinearConfiguration.StepPercent); p > 0 {
			m += int32(100/p) * aws.ToInt32(c.LinearConfiguration.StepBakeTimeInMinutes)
		}
	}
	return time.Duration(m) * time.Minute
}
