package deployer

import (
	"errors"
	"fmt"

	cd "github.com/aws/aws-sdk-go-v2/service/codedeploy"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/codedeploy"
	"github.com/runnel-ci/runnel/pipeline"
)

// codeDeployProvider makes the codedeploy provider of a deploy block,
// with the stage's AWS configuration (awsConfig); health.interval is how
// often it reads the deployment.
func (d *Deployer) codeDeployProvider(pd *pipeline.Deploy, spec *engine.Spec) (deploy.Provider, error) {
	t := pd.CodeDeploy
	if t == nil {
		return nil, errors.New("provider codedeploy: no codedeploy settings")
	}
	cfg, err := awsConfig(pd, spec)
	if err != nil {
		return nil, fmt.Errorf("provider codedeploy: %w", err)
	}
	p, err := codedeploy.New(codedeploy.Config{
		CodeDeploy:  cd.NewFromConfig(cfg, func(o *cd.Options) { o.BaseEndpoint = endpoint(pd, "codedeploy") }),
		ECS:         awsecs.NewFromConfig(cfg, func(o *awsecs.Options) { o.BaseEndpoint = endpoint(pd, "ecs") }),
		Application: t.Application, DeploymentGroup: t.DeploymentGroup, DeploymentConfig: t.DeploymentConfig, Container: t.Container,
		PollInterval: pd.Health.Interval.D(), Logger: d.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("provider codedeploy: %w", err)
	}
	return p, nil
}
