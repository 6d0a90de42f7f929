// Package ecstask makes the task definition of a release for the
// ECS-based deploy providers (deploy/ecsservice, deploy/codedeploy): a
// copy of the one the service serves whose container runs the release's
// image, command and environment, labelled with its version.
package ecstask

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

// LabelVersion is the Docker label set on the released container of the
// task definitions Register registers.
const LabelVersion = "runnel.deploy.version"

// API is the part of the ECS API this package uses; *ecs.Client has it.
type API interface {
	DescribeTaskDefinition(context.Context, *awsecs.DescribeTaskDefinitionInput, ...func(*awsecs.Options)) (*awsecs.DescribeTaskDefinitionOutput, error)
	RegisterTaskDefinition(context.Context, *awsecs.RegisterTaskDefinitionInput, ...func(*awsecs.Options)) (*awsecs.RegisterTaskDefinitionOutput, error)
}

// Describe describes the task definition arn with its tags.
func Describe(ctx context.Context, api API, arn string) (*awsecs.DescribeTaskDefinitionOutput, error) {
	out, err := api.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{
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

// Container returns the container of td that runs the released image:
// the one named name, else the only one, else the one named app. With
// neither name nor app it is the one labelled with a version (an empty
// one when none is), the container a registered revision runs the
// release in.
func Container(td *ecstypes.TaskDefinition, name, app string) (*ecstypes.ContainerDefinition, error) {
	cs := td.ContainerDefinitions
	if name == "" && len(cs) == 1 {
		return &cs[0], nil
	}
	if name == "" {
		name = app
	}
	if name == "" {
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

// Register registers a copy of blue (with its tags) whose container (see
// Container: name, or rel.App) runs rel's image, command and environment,
// with the Docker labels of labels set (removed where a value is empty)
// and LabelVersion set to rel.Version. It returns the new task definition
// and the container's name.
func Register(ctx context.Context, api API, blue *awsecs.DescribeTaskDefinitionOutput, name string, rel deploy.Release, labels map[string]string) (*ecstypes.TaskDefinition, string, error) {
	td := *blue.TaskDefinition
	td.ContainerDefinitions = slices.Clone(td.ContainerDefinitions)
	c, err := Container(&td, name, rel.App)
	if err != nil {
		return nil, "", err
	}
	c.Image = aws.String(rel.Image)
	if len(rel.Command) > 0 {
		c.Command = rel.Command
	}
	c.Environment = MergeEnv(c.Environment, rel.Env)
	c.DockerLabels = maps.Clone(c.DockerLabels)
	if c.DockerLabels == nil {
		c.DockerLabels = map[string]string{}
	}
	for k, v := range labels {
		if v == "" {
			delete(c.DockerLabels, k)
		} else {
			c.DockerLabels[k] = v
		}
	}
	c.DockerLabels[LabelVersion] = rel.Version
	out, err := api.RegisterTaskDefinition(ctx, &awsecs.RegisterTaskDefinitionInput{
		Family: td.Family, ContainerDefinitions: td.ContainerDefinitions, Cpu: td.Cpu, Memory: td.Memory,
		ExecutionRoleArn: td.ExecutionRoleArn, TaskRoleArn: td.TaskRoleArn, NetworkMode: td.NetworkMode,
		RequiresCompatibilities: td.RequiresCompatibilities, Volumes: td.Volumes, PlacementConstraints: td.PlacementConstraints,
		RuntimePlatform: td.RuntimePlatform, EphemeralStorage: td.EphemeralStorage, IpcMode: td.IpcMode, PidMode: td.PidMode,
		ProxyConfiguration: td.ProxyConfiguration, InferenceAccelerators: td.InferenceAccelerators,
		EnableFaultInjection: td.EnableFaultInjection, Tags: blue.Tags,
	})
	if err != nil {
		return nil, "", err
	}
	if out.TaskDefinition == nil {
		return nil, "", errors.New("no task definition in the answer")
	}
	return out.TaskDefinition, aws.ToString(c.Name), nil
}

// MergeEnv returns env with the values of set replacing or added, those
// of set sorted by name after the others.
func MergeEnv(env []ecstypes.KeyValuePair, set map[string]string) []ecstypes.KeyValuePair {
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
