package ecs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecstask"
)

// ECS is the part of the ECS API the Provider uses; *ecs.Client has it.
type ECS interface {
	RegisterTaskDefinition(context.Context, *awsecs.RegisterTaskDefinitionInput, ...func(*awsecs.Options)) (*awsecs.RegisterTaskDefinitionOutput, error)
	CreateTaskSet(context.Context, *awsecs.CreateTaskSetInput, ...func(*awsecs.Options)) (*awsecs.CreateTaskSetOutput, error)
	DescribeTaskSets(context.Context, *awsecs.DescribeTaskSetsInput, ...func(*awsecs.Options)) (*awsecs.DescribeTaskSetsOutput, error)
	UpdateServicePrimaryTaskSet(context.Context, *awsecs.UpdateServicePrimaryTaskSetInput, ...func(*awsecs.Options)) (*awsecs.UpdateServicePrimaryTaskSetOutput, error)
	DeleteTaskSet(context.Context, *awsecs.DeleteTaskSetInput, ...func(*awsecs.Options)) (*awsecs.DeleteTaskSetOutput, error)
}

// ELB is the part of the ELBv2 API the Provider uses; *elasticloadbalancingv2.Client has it.
type ELB interface {
	ModifyListener(context.Context, *elb.ModifyListenerInput, ...func(*elb.Options)) (*elb.ModifyListenerOutput, error)
	ModifyRule(context.Context, *elb.ModifyRuleInput, ...func(*elb.Options)) (*elb.ModifyRuleOutput, error)
	DescribeTargetHealth(context.Context, *elb.DescribeTargetHealthInput, ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error)
}

// Check is what a HealthFunc is asked about.
type Check struct {
	App, Version string
	// TaskSetARN and TargetGroupARN are green's ("" before creation).
	TaskSetARN, TargetGroupARN string
	// Weight is the percentage of traffic green receives now (0 while
	// waiting for it to become healthy).
	Weight int
}

// HealthFunc reports whether green is healthy; nil means healthy.
type HealthFunc func(ctx context.Context, c Check) error

// Config configures a Provider for one ECS service.
type Config struct {
	ECS ECS
	ELB ELB
	// Cluster and Service name the service (created with
	// deploymentController EXTERNAL).
	Cluster, Service string
	// ListenerARN is the listener whose default action is the weighted
	// forward between the two target groups. Ignored when RuleARN is set.
	ListenerARN string
	// RuleARN, when set, is the listener rule whose forward action is
	// shifted instead of the listener's default action.
	RuleARN string
	// TargetGroups are the two target groups blue and green alternate
	// between: a release registers green in the one blue does not use.
	TargetGroups [2]string
	// ContainerName is the name of the container in the registered task
	// definition and the one registered in the target group (default: the
	// release's App).
	ContainerName string
	// Memory (MiB) of the container (default 512); CPU units (default 256).
	Memory, CPU int32
	// Subnets and SecurityGroups of the awsvpc network configuration.
	Subnets, SecurityGroups []string
	AssignPublicIP          bool
	// LaunchType of the task sets (default FARGATE).
	LaunchType ecstypes.LaunchType
	// Health checks green (default: TargetHealth).
	Health HealthFunc
	// PollInterval is how often a task set is polled for steady state
	// (default 2 s); SteadyTimeout bounds the wait (default 10 min).
	PollInterval, SteadyTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Provider is the deploy.Provider of one ECS service. Its state lives in
// ECS and ELBv2: blue is the service's PRIMARY task set, whose
// externalId is the serving version. Deploy is serialised per Provider.
type Provider struct {
	c    Config
	log  *slog.Logger
	lock chan struct{}
}

var _ deploy.Provider = (*Provider)(nil)

// New checks c and returns a Provider.
func New(c Config) (*Provider, error) {
	var errs []error
	if c.ECS == nil || c.ELB == nil {
		errs = append(errs, errors.New("ECS and ELB clients are required"))
	}
	if c.Cluster == "" || c.Service == "" {
		errs = append(errs, errors.New("cluster and service are required"))
	}
	if c.ListenerARN == "" && c.RuleARN == "" {
		errs = append(errs, errors.New("a listener or rule ARN is required"))
	}
	if c.TargetGroups[0] == "" || c.TargetGroups[1] == "" || c.TargetGroups[0] == c.TargetGroups[1] {
		errs = append(errs, errors.New("two distinct target groups are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ecs deploy provider: %w", err)
	}
	if c.Memory <= 0 {
		c.Memory = 512
	}
	if c.CPU <= 0 {
		c.CPU = 256
	}
	if c.LaunchType == "" {
		c.LaunchType = ecstypes.LaunchTypeFargate
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.SteadyTimeout <= 0 {
		c.SteadyTimeout = 10 * time.Minute
	}
	if c.Health == nil {
		c.Health = TargetHealth(c.ELB)
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{c: c, log: log.With("cluster", c.Cluster, "service", c.Service), lock: make(chan struct{}, 1)}, nil
}

// TargetHealth is the default HealthFunc: green's target group has at
// least one target and every target is healthy.
func TargetHealth(api ELB) HealthFunc {
	return func(ctx context.Context, c Check) error {
		out, err := api.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(c.TargetGroupARN)})
		if err != nil {
			return fmt.Errorf("describe target health of %s: %w", c.TargetGroupARN, err)
		}
		if len(out.TargetHealthDescriptions) == 0 {
			return fmt.Errorf("target group %s has no targets", c.TargetGroupARN)
		}
		for _, d := range out.TargetHealthDescriptions {
			if d.TargetHealth == nil || d.TargetHealth.State != elbtypes.TargetHealthStateEnumHealthy {
				id := ""
				if d.Target != nil {
					id = aws.ToString(d.Target.Id)
				}
				state := elbtypes.TargetHealthStateEnum("unknown")
				if d.TargetHealth != nil {
					state = d.TargetHealth.State
				}
				return fmt.Errorf("target %s of %s is %s", id, c.TargetGroupARN, state)
			}
		}
		return nil
	}
}

// Deploy performs a blue/green release of rel (see deploy.Provider):
// rel.Image, Command, Env and Port become a new revision of the task
// definition family rel.App. rel.Health is not used: Config.Health is.
func (p *Provider) Deploy(ctx context.Context, rel deploy.Release, progress func(deploy.Event)) (deploy.Result, error) {
	select {
	case p.lock <- struct{}{}:
		defer func() { <-p.lock }()
	case <-ctx.Done():
		now := time.Now()
		err := fmt.Errorf("deploy %s %s: wait for the previous release: %w: %w", rel.App, rel.Version, deploy.ErrFailed, ctx.Err())
		return deploy.Result{Outcome: deploy.Failed, To: rel.Version, Reason: err.Error(), Started: now, Finished: now}, err
	}
	b := &backend{p: p}
	return deploy.BlueGreen(ctx, b, rel, func(e deploy.Event) {
		p.log.Info("deploy", "app", e.App, "phase", e.Phase, "green_weight", e.Weight, "msg", e.Message)
		if progress != nil {
			progress(e)
		}
	})
}

// backend holds the state of one release.
type backend struct {
	p               *Provider
	blueSet, blueTG string // "" on a first release
	greenSet        string
	greenTG         string
}

var _ deploy.Backend = (*backend)(nil)

func (b *backend) taskSets(ctx context.Context) ([]ecstypes.TaskSet, error) {
	out, err := b.p.c.ECS.DescribeTaskSets(ctx, &awsecs.DescribeTaskSetsInput{Cluster: aws.String(b.p.c.Cluster), Service: aws.String(b.p.c.Service)})
	if err != nil {
		return nil, fmt.Errorf("describe task sets of %s/%s: %w", b.p.c.Cluster, b.p.c.Service, err)
	}
	return out.TaskSets, nil
}

func (b *backend) deleteTaskSet(ctx context.Context, arn string) error {
	_, err := b.p.c.ECS.DeleteTaskSet(ctx, &awsecs.DeleteTaskSetInput{Cluster: aws.String(b.p.c.Cluster), Service: aws.String(b.p.c.Service), TaskSet: aws.String(arn), Force: aws.Bool(true)})
	var nf *ecstypes.TaskSetNotFoundException
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete task set %s: %w", arn, err)
	}
	return nil
}

func (b *backend) Prepare(ctx context.Context, rel deploy.Release) (string, error) {
	if rel.Port <= 0 || rel.Port > 65535 {
		return "", fmt.Errorf("port %d: want 1..65535", rel.Port)
	}
	sets, err := b.taskSets(ctx)
	if err != nil {
		return "", err
	}
	var blue *ecstypes.TaskSet // a copy: sets is sorted below
	for _, s := range sets {
		if aws.ToString(s.Status) == "PRIMARY" {
			blue = &s
		}
	}
	b.greenTG = b.p.c.TargetGroups[0]
	if blue != nil {
		b.blueSet = aws.ToString(blue.TaskSetArn)
		for _, lb := range blue.LoadBalancers {
			if tg := aws.ToString(lb.TargetGroupArn); tg == b.p.c.TargetGroups[0] || tg == b.p.c.TargetGroups[1] {
				b.blueTG = tg
			}
		}
		if b.blueTG == "" {
			return "", fmt.Errorf("primary task set %s is in neither target group %v", b.blueSet, b.p.c.TargetGroups)
		}
		if b.blueTG == b.p.c.TargetGroups[0] {
			b.greenTG = b.p.c.TargetGroups[1]
		}
		// Blue takes everything before anything is deleted: an
		// interrupted release (its agent died) may have left a green
		// taking part of the traffic.
		if err := b.Shift(ctx, rel, 0); err != nil {
			return "", err
		}
	}
	// Leftovers of an interrupted release: every task set but the primary.
	sort.Slice(sets, func(i, j int) bool { return aws.ToString(sets[i].TaskSetArn) < aws.ToString(sets[j].TaskSetArn) })
	for _, s := range sets {
		if aws.ToString(s.TaskSetArn) == b.blueSet {
			continue
		}
		b.p.log.Info("deploy: deleting leftover task set", "task_set", aws.ToString(s.TaskSetArn), "version", aws.ToString(s.ExternalId))
		if err := b.deleteTaskSet(ctx, aws.ToString(s.TaskSetArn)); err != nil {
			return "", err
		}
	}
	if blue == nil {
		return "", nil
	}
	return aws.ToString(blue.ExternalId), nil
}

func (b *backend) CreateGreen(ctx context.Context, rel deploy.Release) error {
	c := b.p.c
	name := c.ContainerName
	if name == "" {
		name = rel.App
	}
	td, err := c.ECS.RegisterTaskDefinition(ctx, &awsecs.RegisterTaskDefinitionInput{
		Family:      aws.String(rel.App),
		NetworkMode: ecstypes.NetworkModeAwsvpc,
		Cpu:         aws.String(fmt.Sprint(c.CPU)),
		Memory:      aws.String(fmt.Sprint(c.Memory)),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name:         aws.String(name),
			Image:        aws.String(rel.Image),
			Command:      rel.Command,
			Environment:  ecstask.MergeEnv(nil, rel.Env),
			Memory:       aws.Int32(c.Memory),
			Essential:    aws.Bool(true),
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(int32(rel.Port)), Protocol: ecstypes.TransportProtocolTcp}},
		}},
		Tags: []ecstypes.Tag{{Key: aws.String(ecstask.LabelVersion), Value: aws.String(rel.Version)}},
	})
	if err != nil {
		return fmt.Errorf("register task definition %s: %w", rel.App, err)
	}
	assign := ecstypes.AssignPublicIpDisabled
	if c.AssignPublicIP {
		assign = ecstypes.AssignPublicIpEnabled
	}
	out, err := c.ECS.CreateTaskSet(ctx, &awsecs.CreateTaskSetInput{
		Cluster:        aws.String(c.Cluster),
		Service:        aws.String(c.Service),
		TaskDefinition: td.TaskDefinition.TaskDefinitionArn,
		ExternalId:     aws.String(rel.Version),
		LaunchType:     c.LaunchType,
		LoadBalancers:  []ecstypes.LoadBalancer{{TargetGroupArn: aws.String(b.greenTG), ContainerName: aws.String(name), ContainerPort: aws.Int32(int32(rel.Port))}},
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: c.Subnets, SecurityGroups: c.SecurityGroups, AssignPublicIp: assign,
		}},
		Scale: &ecstypes.Scale{Unit: ecstypes.ScaleUnitPercent, Value: 100},
	})
	if err != nil {
		return fmt.Errorf("create task set for %s %s: %w", rel.App, rel.Version, err)
	}
	b.greenSet = aws.ToString(out.TaskSet.TaskSetArn)
	return b.waitSteady(ctx)
}

// waitSteady polls green's task set until ECS reports it steady.
func (b *backend) waitSteady(ctx context.Context) error {
	deadline := time.Now().Add(b.p.c.SteadyTimeout)
	for {
		out, err := b.p.c.ECS.DescribeTaskSets(ctx, &awsecs.DescribeTaskSetsInput{Cluster: aws.String(b.p.c.Cluster), Service: aws.String(b.p.c.Service), TaskSets: []string{b.greenSet}})
		if err != nil {
			return fmt.Errorf("describe task set %s: %w", b.greenSet, err)
		}
		if len(out.TaskSets) == 1 && out.TaskSets[0].StabilityStatus == ecstypes.StabilityStatusSteadyState {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("task set %s not steady after %s", b.greenSet, b.p.c.SteadyTimeout)
		}
		t := time.NewTimer(b.p.c.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for task set %s: %w", b.greenSet, ctx.Err())
		case <-t.C:
		}
	}
}

// ErrSuperseded ends a release whose green task set is gone: the next
// attempt of its stage (its agent was frozen or cut off, not dead), or a
// later release, has taken over and removed it in Prepare. Such a
// release changes nothing more: no weights, no task sets.
var ErrSuperseded = errors.New("superseded: this release's green task set is gone (a later attempt took over)")

// owned checks, before a change of weights or task sets, that green still
// exists: the fence against a stale attempt acting under a later one.
// Prepare of the later attempt routes everything to blue before it
// removes green, so the window left is that between this check and the
// change.
func (b *backend) owned(ctx context.Context) error {
	if b.greenSet == "" {
		return nil
	}
	out, err := b.p.c.ECS.DescribeTaskSets(ctx, &awsecs.DescribeTaskSetsInput{Cluster: aws.String(b.p.c.Cluster), Service: aws.String(b.p.c.Service), TaskSets: []string{b.greenSet}})
	if err != nil {
		return fmt.Errorf("describe task set %s: %w", b.greenSet, err)
	}
	if len(out.TaskSets) != 1 || (aws.ToString(out.TaskSets[0].Status) != "ACTIVE" && aws.ToString(out.TaskSets[0].Status) != "PRIMARY") {
		return fmt.Errorf("task set %s: %w", b.greenSet, ErrSuperseded)
	}
	return nil
}

func (b *backend) Probe(ctx context.Context, rel deploy.Release, weight int) error {
	return b.p.c.Health(ctx, Check{App: rel.App, Version: rel.Version, TaskSetARN: b.greenSet, TargetGroupARN: b.greenTG, Weight: weight})
}

// Shift writes the forward weights: green gets weight, blue the rest. On
// a first release (no blue) green gets everything once weight > 0.
func (b *backend) Shift(ctx context.Context, _ deploy.Release, weight int) error {
	if err := b.owned(ctx); err != nil {
		return err
	}
	other := b.p.c.TargetGroups[0]
	if other == b.greenTG {
		other = b.p.c.TargetGroups[1]
	}
	gw, ow := int32(weight), int32(100-weight)
	if b.blueTG == "" && weight > 0 {
		gw, ow = 100, 0
	}
	fwd := []elbtypes.Action{{
		Type: elbtypes.ActionTypeEnumForward,
		ForwardConfig: &elbtypes.ForwardActionConfig{TargetGroups: []elbtypes.TargetGroupTuple{
			{TargetGroupArn: aws.String(other), Weight: aws.Int32(ow)},
			{TargetGroupArn: aws.String(b.greenTG), Weight: aws.Int32(gw)},
		}},
	}}
	if b.p.c.RuleARN != "" {
		if _, err := b.p.c.ELB.ModifyRule(ctx, &elb.ModifyRuleInput{RuleArn: aws.String(b.p.c.RuleARN), Actions: fwd}); err != nil {
			return fmt.Errorf("set weights %d/%d on rule %s: %w", ow, gw, b.p.c.RuleARN, err)
		}
		return nil
	}
	if _, err := b.p.c.ELB.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: aws.String(b.p.c.ListenerARN), DefaultActions: fwd}); err != nil {
		return fmt.Errorf("set weights %d/%d on listener %s: %w", ow, gw, b.p.c.ListenerARN, err)
	}
	return nil
}

func (b *backend) Promote(ctx context.Context, _ deploy.Release) error {
	if err := b.owned(ctx); err != nil {
		return err
	}
	_, err := b.p.c.ECS.UpdateServicePrimaryTaskSet(ctx, &awsecs.UpdateServicePrimaryTaskSetInput{
		Cluster: aws.String(b.p.c.Cluster), Service: aws.String(b.p.c.Service), PrimaryTaskSet: aws.String(b.greenSet),
	})
	if err != nil {
		return fmt.Errorf("make task set %s primary: %w", b.greenSet, err)
	}
	if b.blueSet == "" {
		return nil
	}
	return b.deleteTaskSet(ctx, b.blueSet)
}

func (b *backend) Rollback(ctx context.Context, rel deploy.Release) error {
	if err := b.owned(ctx); err != nil {
		return err
	}
	if b.blueTG != "" {
		if err := b.Shift(ctx, rel, 0); err != nil {
			return err
		}
	}
	// Delete every task set but blue: also a green whose creation failed
	// after ECS accepted it.
	sets, err := b.taskSets(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range sets {
		if arn := aws.ToString(s.TaskSetArn); arn != b.blueSet {
			errs = append(errs, b.deleteTaskSet(ctx, arn))
		}
	}
	return errors.Join(errs...)
}
