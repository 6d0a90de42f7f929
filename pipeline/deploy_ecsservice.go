package pipeline

import (
	"time"

	"gopkg.in/yaml.v3"
)

// ECSServiceTarget is the service the ecs-service provider releases
// with ECS's own deployments (deploymentController ECS, strategy
// BLUE_GREEN, CANARY or LINEAR).
type ECSServiceTarget struct {
	Cluster string `json:"cluster"`
	Service string `json:"service"`
	// Container is the container of the service's task definition that
	// runs the new image; "" means its only container, or the one named
	// after the app.
	Container string `json:"container,omitempty"`
}

var ecsServiceKeys = []string{"cluster", "service", "container"}

func (ps *parser) ecsServiceTarget(n *yaml.Node) *ECSServiceTarget {
	t := &ECSServiceTarget{}
	if n = ps.stringMapping(n, "deploy.ecs_service", ecsServiceKeys, &t.Cluster, &t.Service, &t.Container); n == nil {
		return nil
	}
	if t.Cluster == "" {
		ps.errorf(n, CodeMissingField, "deploy.ecs_service needs a cluster")
	}
	if t.Service == "" {
		ps.errorf(n, CodeMissingField, "deploy.ecs_service needs a service")
	}
	return t
}

// checkECSService reports what the ecs-service provider needs or cannot
// do: ECS checks health itself (health.interval is how often Runnel
// looks at the deployment, health.start_timeout how long it may take
// beyond the strategy's times), counts its times in whole minutes, and
// shifts at least 3 % per linear step.
func (ps *parser) checkECSService(key *yaml.Node, dd *deployDef) {
	d := dd.d
	if d.ECSService == nil {
		ps.errorf(key, CodeMissingField, "deploy with provider ecs-service needs ecs_service: {cluster, service}")
	}
	if d.Docker != nil || d.ECS != nil {
		ps.errorf(key, CodeBadValue, "deploy with provider ecs-service takes no docker or ecs settings")
	}
	ps.refuseHealthKeys(dd, []string{"path", "command", "timeout", "failures"}, ProviderECSService,
		"ECS checks health (target group health checks, circuit breaker, alarms, lifecycle hooks of the service); only health.interval and health.start_timeout do")
	if !wholeMinutes(d.Bake) {
		ps.errorf(dd.vals["bake"], CodeBadValue, "deploy.bake %s: ECS bakes for whole minutes, up to 24h (e.g. 5m)", d.Bake.D())
	}
	if !wholeMinutes(d.Strategy.Interval) {
		ps.errorf(intervalNode(dd), CodeBadValue, "deploy.strategy.interval %s: ECS holds traffic steps for whole minutes, up to 24h (e.g. 5m)", d.Strategy.Interval.D())
	}
	if d.Strategy.Type == StrategyLinear && d.Strategy.Percent > 0 && d.Strategy.Percent < 3 {
		n := dd.vals["strategy"]
		if v := mapValue(n, "percent"); v != nil {
			n = v
		}
		ps.errorf(n, CodeBadValue, "deploy.strategy.percent %d: ECS shifts at least 3%% per linear step", d.Strategy.Percent)
	}
}

func wholeMinutes(d Duration) bool {
	return d%Duration(time.Minute) == 0 && d <= Duration(24*time.Hour)
}

// mapValue returns the value of key in mapping n, nil when n is no
// mapping or has no such key.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
