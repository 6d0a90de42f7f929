package pipeline

import (
	"time"

	"gopkg.in/yaml.v3"
)

// CodeDeployTarget is the CodeDeploy deployment group (an ECS service
// with deploymentController CODE_DEPLOY) the codedeploy provider
// releases through.
type CodeDeployTarget struct {
	Application     string `json:"application"`
	DeploymentGroup string `json:"deployment_group"`
	// Container is the container of the service's task definition that
	// runs the new image and takes the load balancer's traffic; "" means
	// its only container, or the one named after the app.
	Container string `json:"container,omitempty"`
	// DeploymentConfig, when set, names the deployment config to use
	// instead of the one the strategy maps to.
	DeploymentConfig string `json:"deployment_config,omitempty"`
}

var codeDeployKeys = []string{"application", "deployment_group", "container", "deployment_config"}

func (ps *parser) codeDeployTarget(n *yaml.Node) *CodeDeployTarget {
	t := &CodeDeployTarget{}
	n = ps.stringMapping(n, "deploy.codedeploy", codeDeployKeys, &t.Application, &t.DeploymentGroup, &t.Container, &t.DeploymentConfig)
	if n == nil {
		return nil
	}
	if t.Application == "" {
		ps.errorf(n, CodeMissingField, "deploy.codedeploy needs an application")
	}
	if t.DeploymentGroup == "" {
		ps.errorf(n, CodeMissingField, "deploy.codedeploy needs a deployment_group")
	}
	return t
}

// checkCodeDeploy reports a codedeploy block under another provider, and
// what the codedeploy provider needs or cannot do: CodeDeploy checks
// health and holds blue itself (health.interval is how often Runnel
// reads the deployment; bake is the deployment group's), and counts
// traffic intervals in whole minutes.
func (ps *parser) checkCodeDeploy(key *yaml.Node, dd *deployDef) {
	d := dd.d
	if d.Provider != ProviderCodeDeploy {
		if v := dd.vals["codedeploy"]; v != nil && d.Provider != "" {
			ps.errorf(v, CodeBadValue, "deploy.codedeploy applies to provider codedeploy only, not %s", d.Provider)
		}
		return
	}
	if d.CodeDeploy == nil {
		ps.errorf(key, CodeMissingField, "deploy with provider codedeploy needs codedeploy: {application, deployment_group}")
	}
	if d.Docker != nil || d.ECS != nil || d.ECSService != nil {
		ps.errorf(key, CodeBadValue, "deploy with provider codedeploy takes no docker, ecs or ecs_service settings")
	}
	ps.refuseHealthKeys(dd, []string{"path", "command", "timeout", "start_timeout", "failures"}, ProviderCodeDeploy,
		"CodeDeploy checks health (target groups, alarms, lifecycle hooks); only health.interval does")
	if v := dd.vals["bake"]; v != nil {
		ps.errorf(v, CodeBadValue, "deploy.bake does not apply to provider codedeploy: the deployment group's termination wait keeps blue after the traffic moved")
	}
	if d.Strategy.Type != StrategyAllAtOnce && (!wholeMinutes(d.Strategy.Interval) || d.Strategy.Interval < Duration(time.Minute)) {
		ps.errorf(intervalNode(dd), CodeBadValue, "deploy.strategy.interval %s: CodeDeploy holds traffic steps for whole minutes, from 1m to 24h (e.g. 5m)", d.Strategy.Interval.D())
	}
	if d.CodeDeploy != nil && d.CodeDeploy.DeploymentConfig != "" && dd.vals["strategy"] != nil {
		ps.errorf(dd.vals["strategy"], CodeBadValue, "deploy takes a strategy or codedeploy.deployment_config, not both")
	}
}
