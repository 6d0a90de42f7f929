package codedeploy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"

	"github.com/runnel-ci/runnel/deploy"
)

// appSpec returns the inline ECS AppSpec (JSON) that deploys task
// definition td with the load balancer sending traffic to container's
// port, and its SHA-256.
func appSpec(td, container string, port int) (string, string) {
	doc := map[string]any{
		"version": 0.0,
		"Resources": []any{map[string]any{"TargetService": map[string]any{
			"Type": "AWS::ECS::Service",
			"Properties": map[string]any{
				"TaskDefinition":   td,
				"LoadBalancerInfo": map[string]any{"ContainerName": container, "ContainerPort": port},
			},
		}}},
	}
	b, _ := json.Marshal(doc) // a map of strings and numbers always marshals
	sum := sha256.Sum256(b)
	return string(b), hex.EncodeToString(sum[:])
}

// descPrefix starts the description of every deployment Runnel creates.
const descPrefix = "runnel release "

// description records the release's version and identity in its
// deployment: "runnel release <version> id <id>".
func description(rel deploy.Release) string {
	return descPrefix + rel.Version + " id " + rel.ID
}

// parseDescription returns the version and identity a description
// records; ok is false for a deployment Runnel did not create.
func parseDescription(s string) (version, id string, ok bool) {
	rest, ok := strings.CutPrefix(s, descPrefix)
	if !ok {
		return "", "", false
	}
	version, id, ok = strings.Cut(rest, " id ")
	return version, id, ok && version != ""
}

// routing is the CodeDeploy deployment config a release's traffic steps
// map to: [100] is all at once, [p 100] a canary of p % for Interval,
// [p 2p … 100] linear steps of p % every Interval. CodeDeploy counts the
// interval in whole minutes. name is the predefined config of that
// routing, or the name of the one Runnel creates.
func routing(rel deploy.Release) (name string, tr *cdtypes.TrafficRoutingConfig, err error) {
	steps, err := rel.Steps()
	if err != nil {
		return "", nil, err
	}
	if len(steps) == 1 {
		return "CodeDeployDefault.ECSAllAtOnce", &cdtypes.TrafficRoutingConfig{Type: cdtypes.TrafficRoutingTypeAllAtOnce}, nil
	}
	if rel.Interval%time.Minute != 0 || rel.Interval < time.Minute || rel.Interval > 24*time.Hour {
		return "", nil, fmt.Errorf("interval %s: CodeDeploy takes whole minutes from 1m to 24h", rel.Interval)
	}
	p, m := int32(steps[0]), int32(rel.Interval/time.Minute)
	switch {
	case len(steps) == 2:
		name = fmt.Sprintf("Canary%dPercent%dMinutes", p, m)
		tr = &cdtypes.TrafficRoutingConfig{Type: cdtypes.TrafficRoutingTypeTimeBasedCanary,
			TimeBasedCanary: &cdtypes.TimeBasedCanary{CanaryPercentage: p, CanaryInterval: m}}
	case deploy.Linear(steps):
		name = fmt.Sprintf("Linear%dPercentEvery%dMinutes", p, m)
		tr = &cdtypes.TrafficRoutingConfig{Type: cdtypes.TrafficRoutingTypeTimeBasedLinear,
			TimeBasedLinear: &cdtypes.TimeBasedLinear{LinearPercentage: p, LinearInterval: m}}
	default:
		return "", nil, fmt.Errorf("traffic steps %v: CodeDeploy shifts all at once, one canary step, or equal linear steps", steps)
	}
	switch name {
	case "Canary10Percent5Minutes", "Canary10Percent15Minutes", "Linear10PercentEvery1Minutes", "Linear10PercentEvery3Minutes":
		return "CodeDeployDefault.ECS" + name, tr, nil
	}
	return "Runnel.ECS" + name, tr, nil
}
