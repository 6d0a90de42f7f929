package deployer

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecsservice"
	"github.com/runnel-ci/runnel/pipeline"
)

// ecsServiceProvider makes the ecs-service provider of a deploy block,
// with the stage's AWS configuration (awsConfig).
func (d *Deployer) ecsServiceProvider(pd *pipeline.Deploy, spec *engine.Spec) (deploy.Provider, error) {
	return awsProvider(pipeline.ProviderECSService, "ecs_service", pd.ECSService, pd, spec, func(t *pipeline.ECSServiceTarget, cfg aws.Config) (deploy.Provider, error) {
		client := awsecs.NewFromConfig(cfg, func(o *awsecs.Options) { o.BaseEndpoint = endpoint(pd, "ecs") })
		return ecsservice.New(ecsservice.Config{ECS: client, Cluster: t.Cluster, Service: t.Service, Container: t.Container, Logger: d.Logger})
	})
}

// releaseID is the identity of a stage's release: its install, run and
// stage, the same for every attempt of the stage.
func releaseID(spec *engine.Spec) string {
	id := spec.RunID + "/" + spec.Stage.ID
	if spec.Install != "" {
		id = spec.Install + "/" + id
	}
	return id
}
