package deployer

import (
	"errors"
	"fmt"

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
	t := pd.ECS
	if t == nil {
		return nil, errors.New("provider ecs: no ecs settings")
	}
	cfg, err := awsConfig(pd, spec)
	if err != nil {
		return nil, fmt.Errorf("provider ecs: %w", err)
	}
	ecsClient := awsecs.NewFromConfig(cfg, func(o *awsecs.Options) { o.BaseEndpoint = endpoint(pd, "ecs") })
	elbClient := elb.NewFromConfig(cfg, func(o *elb.Options) { o.BaseEndpoint = endpoint(pd, "elbv2") })
	p, err := ecs.New(ecs.Config{
		ECS: ecsClient, ELB: elbClient, Cluster: t.Cluster, Service: t.Service, ListenerARN: t.Listener, RuleARN: t.Rule,
		TargetGroups: t.TargetGroups, Subnets: t.Subnets, SecurityGroups: t.SecurityGroups, AssignPublicIP: t.AssignPublicIP,
		CPU: int32(t.CPU), Memory: int32(t.Memory), Logger: d.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("provider ecs: %w", err)
	}
	return p, nil
}
