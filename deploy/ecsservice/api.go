package ecsservice

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/runnel-ci/runnel/deploy"
)

// service describes the service and checks that ECS deploys it.
func (p *Provider) service(ctx context.Context) (*ecstypes.Service, error) {
	out, err := p.c.ECS.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: aws.String(p.c.Cluster), Services: []string{p.c.Service}})
	if err != nil {
		return nil, err
	}
	if len(out.Services) != 1 {
		return nil, fmt.Errorf("service %s of cluster %s not found", p.c.Service, p.c.Cluster)
	}
	svc := &out.Services[0]
	if c := svc.DeploymentController; c != nil && c.Type != ecstypes.DeploymentControllerTypeEcs {
		return nil, fmt.Errorf("service %s has deployment controller %s, want ECS (provider ecs drives EXTERNAL services)", p.c.Service, c.Type)
	}
	return svc, nil
}

// deployment describes one service deployment.
func (p *Provider) deployment(ctx context.Context, arn string) (*ecstypes.ServiceDeployment, error) {
	out, err := p.c.ECS.DescribeServiceDeployments(ctx, &awsecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{arn}})
	if err != nil {
		return nil, fmt.Errorf("describe service deployment %s: %w", arn, err)
	}
	if len(out.ServiceDeployments) != 1 {
		return nil, fmt.Errorf("service deployment %s not found", arn)
	}
	return &out.ServiceDeployments[0], nil
}

// revisionLabels returns the Docker labels of the released container of
// a service revision's task definition (none for a nil revision).
func (p *Provider) revisionLabels(ctx context.Context, rev *ecstypes.ServiceRevisionSummary) (map[string]string, error) {
	if rev == nil || aws.ToString(rev.Arn) == "" {
		return nil, nil
	}
	out, err := p.c.ECS.DescribeServiceRevisions(ctx, &awsecs.DescribeServiceRevisionsInput{ServiceRevisionArns: []string{aws.ToString(rev.Arn)}})
	if err != nil {
		return nil, fmt.Errorf("describe service revision %s: %w", aws.ToString(rev.Arn), err)
	}
	if len(out.ServiceRevisions) != 1 {
		return nil, fmt.Errorf("service revision %s not found", aws.ToString(rev.Arn))
	}
	td, err := p.taskDefinition(ctx, aws.ToString(out.ServiceRevisions[0].TaskDefinition))
	if err != nil {
		return nil, err
	}
	c, err := p.container(td.TaskDefinition, "")
	if err != nil {
		return nil, err
	}
	return c.DockerLabels, nil
}

// sourceVersion is the version a service deployment replaces.
func (p *Provider) sourceVersion(ctx context.Context, sd *ecstypes.ServiceDeployment) (string, error) {
	if len(sd.SourceServiceRevisions) == 0 {
		return "", nil
	}
	l, err := p.revisionLabels(ctx, &sd.SourceServiceRevisions[0])
	return l[LabelVersion], err
}

func (p *Provider) taskDefinition(ctx context.Context, arn string) (*awsecs.DescribeTaskDefinitionOutput, error) {
	out, err := p.c.ECS.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{
		TaskDefinition: aws.String(arn), Include: []ecstypes.TaskDefinitionField{ecstypes.TaskDefinitionFieldTags},
	})
	if err != nil {
		return nil, fmt.Errorf("describe task definition %s: %w", arn, err)
	}
	if out.TaskDefinition == nil {
		return nil, fmt.Errorf("task definition %s not found", arn)
	}
	return out, nil
}

// container returns the container that runs the released image: the
// configured one, the only one, or the one named app.
func (p *Provider) container(td *ecstypes.TaskDefinition, app string) (*ecstypes.ContainerDefinition, error) {
	cs := td.ContainerDefinitions
	name := p.c.Container
	if name == "" && len(cs) == 1 {
		return &cs[0], nil
	}
	if name == "" {
		name = app
	}
	if name == "" {
		// The container a labelled revision runs the release in.
		if i := slices.IndexFunc(cs, func(c ecstypes.ContainerDefinition) bool { return c.DockerLabels[LabelVersion] != "" }); i >= 0 {
			return &cs[i], nil
		}
		return &ecstypes.ContainerDefinition{}, nil
	}
	i := slices.IndexFunc(cs, func(c ecstypes.ContainerDefinition) bool { return aws.ToString(c.Name) == name })
	if i < 0 {
		return nil, fmt.Errorf("task definition %s has no container %q", aws.ToString(td.TaskDefinitionArn), name)
	}
	return &cs[i], nil
}

// register registers a copy of the serving task definition whose
// container runs rel: its image, command and environment, labelled with
// the version and the release's ID.
func (p *Provider) register(ctx context.Context, blue *awsecs.DescribeTaskDefinitionOutput, rel deploy.Release) (*ecstypes.TaskDefinition, error) {
	td := *blue.TaskDefinition
	td.ContainerDefinitions = slices.Clone(td.ContainerDefinitions)
	c, err := p.container(&td, rel.App)
	if err != nil {
		return nil, err
	}
	c.Image = aws.String(rel.Image)
	if len(rel.Command) > 0 {
		c.Command = rel.Command
	}
	c.Environment = mergeEnv(c.Environment, rel.Env)
	c.DockerLabels = maps.Clone(c.DockerLabels)
	if c.DockerLabels == nil {
		c.DockerLabels = map[string]string{}
	}
	c.DockerLabels[LabelVersion] = rel.Version
	if rel.ID != "" {
		c.DockerLabels[LabelID] = rel.ID
	} else {
		delete(c.DockerLabels, LabelID)
	}
	out, err := p.c.ECS.RegisterTaskDefinition(ctx, &awsecs.RegisterTaskDefinitionInput{
		Family: td.Family, ContainerDefinitions: td.ContainerDefinitions, Cpu: td.Cpu, Memory: td.Memory,
		ExecutionRoleArn: td.ExecutionRoleArn, TaskRoleArn: td.TaskRoleArn, NetworkMode: td.NetworkMode,
		RequiresCompatibilities: td.RequiresCompatibilities, Volumes: td.Volumes, PlacementConstraints: td.PlacementConstraints,
		RuntimePlatform: td.RuntimePlatform, EphemeralStorage: td.EphemeralStorage, IpcMode: td.IpcMode, PidMode: td.PidMode,
		ProxyConfiguration: td.ProxyConfiguration, InferenceAccelerators: td.InferenceAccelerators,
		EnableFaultInjection: td.EnableFaultInjection, Tags: blue.Tags,
	})
	if err != nil {
		return nil, err
	}
	if out.TaskDefinition == nil {
		return nil, errors.New("no task definition in the answer")
	}
	return out.TaskDefinition, nil
}

// mergeEnv returns env with the values of set replacing or added, in a
// stable order.
func mergeEnv(env []ecstypes.KeyValuePair, set map[string]string) []ecstypes.KeyValuePair {
	out := make([]ecstypes.KeyValuePair, 0, len(env)+len(set))
	for _, kv := range env {
		if _, ok := set[aws.ToString(kv.Name)]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		out = append(out, ecstypes.KeyValuePair{Name: aws.String(k), Value: aws.String(set[k])})
	}
	return out
}

// active reports whether a service deployment has not ended.
func active(s ecstypes.ServiceDeploymentStatus) bool {
	switch s {
	case ecstypes.ServiceDeploymentStatusSuccessful, ecstypes.ServiceDeploymentStatusStopped,
		ecstypes.ServiceDeploymentStatusRollbackSuccessful, ecstypes.ServiceDeploymentStatusRollbackFailed:
		return false
	}
	return true
}

// stop asks ECS to roll a service deployment back, unless it is already
// stopping or rolling back.
func (p *Provider) stop(ctx context.Context, sd *ecstypes.ServiceDeployment) error {
	if sd.Status != ecstypes.ServiceDeploymentStatusPending && sd.Status != ecstypes.ServiceDeploymentStatusInProgress {
		return nil
	}
	_, err := p.c.ECS.StopServiceDeployment(ctx, &awsecs.StopServiceDeploymentInput{
		ServiceDeploymentArn: sd.ServiceDeploymentArn, StopType: ecstypes.StopServiceDeploymentStopTypeRollback,
	})
	if err != nil {
		return fmt.Errorf("stop service deployment %s: %w", aws.ToString(sd.ServiceDeploymentArn), err)
	}
	return nil
}
