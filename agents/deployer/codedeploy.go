package deployer

import (
	"github.com/aws/aws-sdk-go-v2/aws"
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
	return awsProvider(pipeline.ProviderCodeDeploy, "codedeploy", pd.CodeDeploy, pd, spec, func(t *pipeline.CodeDeployTarget, cfg aws.Config) (deploy.Provider, error) {
		return codedeploy.New(codedeploy.Config{
			CodeDeploy:  cd.NewFromConfig(cfg, func(o *cd.Options) { o.BaseEndpoint = endpoint(pd, "codedeploy") }),
			ECS:         awsecs.NewFromConfig(cfg, func(o *awsecs.Options) { o.BaseEndpoint = endpoint(pd, "ecs") }),
			Application: t.Application, DeploymentGroup: t.DeploymentGroup, DeploymentConfig: t.DeploymentConfig, Container: t.Container,
			PollInterval: pd.Health.Interval.D(), Logger: d.Logger,
		})
	})
}
