package deployer

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecs"
	"github.com/runnel-ci/runnel/pipeline"
)

// ecsProvider makes the ecs provider of a deploy block, with the
// stage's AWS configuration (awsConfig).
func (d *Deployer) ecsProvider(pd *pipeline.Deploy, spec *engine.Spec) (deploy.Provider, error) {
	return awsProvider(pipeline.ProviderECS, "ecs", pd.ECS, pd, spec, func(t *pipeline.ECSTarget, cfg aws.Config) (deploy.Provider, error) {
		return ecs.New(ecs.Config{
			ECS:     awsecs.NewFromConfig(cfg, func(o *awsecs.Options) { o.BaseEndpoint = endpoint(pd, "ecs") }),
			ELB:     elb.NewFromConfig(cfg, func(o *elb.Options) { o.BaseEndpoint = endpoint(pd, "elbv2") }),
			Cluster: t.Cluster, Service: t.Service, ListenerARN: t.Listener, RuleARN: t.Rule,
			TargetGroups: t.TargetGroups, Subnets: t.Subnets, SecurityGroups: t.SecurityGroups, AssignPublicIP: t.AssignPublicIP,
			CPU: int32(t.CPU), Memory: int32(t.Memory), Logger: d.Logger,
		})
	})
}
