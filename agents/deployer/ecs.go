package deployer

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecs"
	"github.com/runnel-ci/runnel/pipeline"
)

// ecsProvider makes the ecs provider of a deploy block. Credentials come
// from the stage's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN), the region from the block or AWS_REGION; never
// from the agent's own environment, so that a pipeline deploys only with
// what it was given.
func (d *Deployer) ecsProvider(pd *pipeline.Deploy, env map[string]string) (deploy.Provider, error) {
	t := pd.ECS
	if t == nil {
		return nil, errors.New("provider ecs: no ecs settings")
	}
	region := pd.Region
	if region == "" {
		region = env["AWS_REGION"]
	}
	if region == "" {
		return nil, errors.New("provider ecs: no region (deploy.region or AWS_REGION in the stage env)")
	}
	key, secret := env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
	if key == "" || secret == "" {
		return nil, errors.New("provider ecs: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be in the stage env")
	}
	cfg := aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider(key, secret, env["AWS_SESSION_TOKEN"])}
	ecsClient := awsecs.NewFromConfig(cfg, func(o *awsecs.Options) {
		if ep := pd.Endpoints["ecs"]; ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
	elbClient := elb.NewFromConfig(cfg, func(o *elb.Options) {
		if ep := pd.Endpoints["elbv2"]; ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
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
