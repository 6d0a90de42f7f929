package codedeploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cd "github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecstask"
)

// LabelVersion is the Docker label the Provider sets on the released
// container of the task definitions it registers.
const LabelVersion = ecstask.LabelVersion

// historyLimit bounds how many of the group's latest deployments a
// release reads to find its own and the serving version.
const historyLimit = 100

// group returns the ECS service of the deployment group.
func (p *Provider) group(ctx context.Context) (cluster, service string, err error) {
	out, err := p.c.CodeDeploy.GetDeploymentGroup(ctx, &cd.GetDeploymentGroupInput{
		ApplicationName: aws.String(p.c.Application), DeploymentGroupName: aws.String(p.c.DeploymentGroup)})
	if err != nil {
		return "", "", err
	}
	g := out.DeploymentGroupInfo
	if g == nil || g.ComputePlatform != cdtypes.ComputePlatformEcs || len(g.EcsServices) != 1 {
		return "", "", fmt.Errorf("%s/%s is not an ECS deployment group of one service", p.c.Application, p.c.DeploymentGroup)
	}
	return aws.ToString(g.EcsServices[0].ClusterName), aws.ToString(g.EcsServices[0].ServiceName), nil
}

// past is what the group's latest deployments say about a release.
type past struct {
	// mine is the deployment of this release (same ID and version).
	mine *cdtypes.DeploymentInfo
	// active is another deployment still running.
	active *cdtypes.DeploymentInfo
	// serving is the version of the latest succeeded Runnel release.
	serving string
}

// history reads the group's latest deployments, newest first.
func (p *Provider) history(ctx context.Context, rel deploy.Release) (past, error) {
	var res past
	out, err := p.c.CodeDeploy.ListDeployments(ctx, &cd.ListDeploymentsInput{
		ApplicationName: aws.String(p.c.Application), DeploymentGroupName: aws.String(p.c.DeploymentGroup)})
	if err != nil {
		return res, err
	}
	ids := out.Deployments[:min(len(out.Deployments), historyLimit)]
	var infos []cdtypes.DeploymentInfo
	for chunk := range slices.Chunk(ids, 25) {
		b, err := p.c.CodeDeploy.BatchGetDeployments(ctx, &cd.BatchGetDeploymentsInput{DeploymentIds: chunk})
		if err != nil {
			return res, err
		}
		infos = append(infos, b.DeploymentsInfo...)
	}
	// BatchGetDeployments does not keep the order; CreateTime does.
	slices.SortStableFunc(infos, func(a, b cdtypes.DeploymentInfo) int {
		return aws.ToTime(b.CreateTime).Compare(aws.ToTime(a.CreateTime))
	})
	for i := range infos {
		d := &infos[i]
		version, id, ok := parseDescription(aws.ToString(d.Description))
		switch {
		case ok && rel.ID != "" && id == rel.ID && version == rel.Version && res.mine == nil:
			res.mine = d
		case !terminal(d.Status) && res.active == nil:
			res.active = d
		case ok && d.Status == cdtypes.DeploymentStatusSucceeded && res.serving == "" && d.Creator != cdtypes.DeploymentCreatorCodeDeployRollback:
			res.serving = version
		}
	}
	return res, nil
}

func terminal(s cdtypes.DeploymentStatus) bool {
	return s == cdtypes.DeploymentStatusSucceeded || s == cdtypes.DeploymentStatusFailed || s == cdtypes.DeploymentStatusStopped
}

// deploymentConfig returns the name of the deployment config of rel,
// creating Runnel's own when no predefined one fits.
func (p *Provider) deploymentConfig(ctx context.Context, rel deploy.Release) (string, error) {
	if p.c.DeploymentConfig != "" {
		return p.c.DeploymentConfig, nil
	}
	name, tr, err := routing(rel)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(name, "Runnel.") {
		return name, nil
	}
	_, err = p.c.CodeDeploy.CreateDeploymentConfig(ctx, &cd.CreateDeploymentConfigInput{
		DeploymentConfigName: aws.String(name), ComputePlatform: cdtypes.ComputePlatformEcs, TrafficRoutingConfig: tr})
	var exists *cdtypes.DeploymentConfigAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return "", err
	}
	return name, nil
}

// register registers a copy of the service's task definition that runs
// rel's image in the container, labelled with rel's version; it returns
// the new task definition's ARN and the container's name and port.
func (p *Provider) register(ctx context.Context, cluster, service string, rel deploy.Release) (arn, container string, port int, err error) {
	svcs, err := p.c.ECS.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{service}})
	if err != nil {
		return "", "", 0, err
	}
	if len(svcs.Services) != 1 || svcs.Services[0].TaskDefinition == nil {
		return "", "", 0, fmt.Errorf("service %s of cluster %s not found", service, cluster)
	}
	blue, err := ecstask.Describe(ctx, p.c.ECS, aws.ToString(svcs.Services[0].TaskDefinition))
	if err != nil {
		return "", "", 0, err
	}
	td, container, err := ecstask.Register(ctx, p.c.ECS, blue, p.c.Container, rel, nil)
	if err != nil {
		return "", "", 0, err
	}
	return aws.ToString(td.TaskDefinitionArn), container, rel.Port, nil
}

// deployment reads a deployment.
func (p *Provider) deployment(ctx context.Context, id string) (*cdtypes.DeploymentInfo, error) {
	out, err := p.c.CodeDeploy.GetDeployment(ctx, &cd.GetDeploymentInput{DeploymentId: aws.String(id)})
	if err != nil {
		return nil, err
	}
	if out.DeploymentInfo == nil {
		return nil, fmt.Errorf("deployment %s: no deployment info in the answer", id)
	}
	return out.DeploymentInfo, nil
}

// stop stops deployment id, rolling it back when rollback is set, and
// returns it as it is then (a deployment already completed is returned
// as it ended).
func (p *Provider) stop(ctx context.Context, id string, rollback bool) (*cdtypes.DeploymentInfo, error) {
	_, err := p.c.CodeDeploy.StopDeployment(ctx, &cd.StopDeploymentInput{DeploymentId: aws.String(id), AutoRollbackEnabled: aws.Bool(rollback)})
	var done *cdtypes.DeploymentAlreadyCompletedException
	if err != nil && !errors.As(err, &done) {
		return nil, fmt.Errorf("stop deployment %s: %w", id, err)
	}
	return p.waitEnd(ctx, id)
}

// waitEnd polls deployment id until it has ended.
func (p *Provider) waitEnd(ctx context.Context, id string) (*cdtypes.DeploymentInfo, error) {
	t := time.NewTicker(p.c.PollInterval)
	defer t.Stop()
	for {
		d, err := p.deployment(ctx, id)
		if err != nil {
			return nil, err
		}
		if terminal(d.Status) {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("deployment %s still %s: %w", id, d.Status, ctx.Err())
		case <-t.C:
		}
	}
}

func rollbackID(d *cdtypes.DeploymentInfo) string {
	if d == nil || d.RollbackInfo == nil {
		return ""
	}
	return aws.ToString(d.RollbackInfo.RollbackDeploymentId)
}
