package ecsservice

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/runnel-ci/runnel/deploy/ecstask"
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
	td, err := ecstask.Describe(ctx, p.c.ECS, aws.ToString(out.ServiceRevisions[0].TaskDefinition))
	if err != nil {
		return nil, err
	}
	c, err := ecstask.Container(td.TaskDefinition, p.c.Container, "")
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
