package deployer

import (
	"errors"
	"fmt"

	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecsservice"
	"github.com/runnel-ci/runnel/pipeline"
)

// ecsServiceProvider makes the ecs-service provider of a deploy block,
// with the stage's AWS configuration (awsConfig).
func (d *Deployer) ecsServiceProvider(pd *pipeline.Deploy, spec *engine.Spec) (deploy.Provider, error) {
	t := pd.ECSService
	if t == nil {
		return nil, errors.New("provider ecs-service: no ecs_service settings")
	}
	cfg, err := awsConfig(pd, spec)
	if err != nil {
		return nil, fmt.Errorf("provider ecs-service: %w", err)
	}
	client := awsecs.NewFromConfig(cfg, func(o *awsecs.Options) { o.BaseEndpoint = endpoint(pd, "ecs") })
	p, err := ecsservice.New(ecsservice.Config{ECS: client, Cluster: t.Cluster, Service: t.Service, Container: t.Container, Logger: d.Logger})
	if err != nil {
		return nil, fmt.Errorf("provider ecs-service: %w", err)
	}
	return p, nil
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
