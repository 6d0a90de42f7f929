package ecsservice

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecstask"
)

// API is the part of the ECS API the Provider uses; *ecs.Client has it.
type API interface {
	DescribeServices(context.Context, *awsecs.DescribeServicesInput, ...func(*awsecs.Options)) (*awsecs.DescribeServicesOutput, error)
	ecstask.API // describing and registering task definitions
	UpdateService(context.Context, *awsecs.UpdateServiceInput, ...func(*awsecs.Options)) (*awsecs.UpdateServiceOutput, error)
	DescribeServiceDeployments(context.Context, *awsecs.DescribeServiceDeploymentsInput, ...func(*awsecs.Options)) (*awsecs.DescribeServiceDeploymentsOutput, error)
	DescribeServiceRevisions(context.Context, *awsecs.DescribeServiceRevisionsInput, ...func(*awsecs.Options)) (*awsecs.DescribeServiceRevisionsOutput, error)
	StopServiceDeployment(context.Context, *awsecs.StopServiceDeploymentInput, ...func(*awsecs.Options)) (*awsecs.StopServiceDeploymentOutput, error)
	TagResource(context.Context, *awsecs.TagResourceInput, ...func(*awsecs.Options)) (*awsecs.TagResourceOutput, error)
	ListTagsForResource(context.Context, *awsecs.ListTagsForResourceInput, ...func(*awsecs.Options)) (*awsecs.ListTagsForResourceOutput, error)
}

// Docker labels the Provider sets on the released container: the version,
// and the release's identity (deploy.Release.ID) by which a re-delivered
// stage finds the service deployment it started.
const (
	LabelVersion = ecstask.LabelVersion
	LabelID      = "runnel.deploy.id"
)

// Config configures a Provider for one ECS service.
type Config struct {
	ECS API
	// Cluster and Service name the service (deploymentController ECS).
	Cluster, Service string
	// Container is the container of the service's task definition that
	// runs the release's image (default: the only one, else the one named
	// after the release's App).
	Container string
	// PollInterval is how often the service deployment is described
	// (default 5 s; a release's Health.Interval overrides it).
	PollInterval time.Duration
	// Timeout bounds a service deployment beyond the times its strategy
	// holds traffic steps and bakes (default 30 min; a release's
	// Health.StartTimeout overrides it); past it the deployment is
	// stopped with a rollback.
	Timeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Provider is the deploy.Provider of one ECS service. Its state lives in
// ECS: the serving version is the label of the service's task
// definition; a release is a service deployment. Deploy is serialised
// per Provider.
type Provider struct {
	c    Config
	log  *slog.Logger
	lock chan struct{}
}

var _ deploy.Provider = (*Provider)(nil)

// New checks c and returns a Provider.
func New(c Config) (*Provider, error) {
	if c.ECS == nil || c.Cluster == "" || c.Service == "" {
		return nil, errors.New("ecs-service deploy provider: an ECS client, a cluster and a service are required")
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Minute
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{c: c, log: log.With("cluster", c.Cluster, "service", c.Service), lock: make(chan struct{}, 1)}, nil
}

// Deploy implements deploy.Provider: it registers a task definition with
// rel's image (a copy of the service's, labelled), updates the service
// to it with the strategy rel's steps map to, and follows the service
// deployment ECS runs until it ends. ECS shifts the traffic, runs the
// lifecycle hooks and rolls back on its own (circuit breaker, alarms,
// hooks); Deploy asks for a rollback when ctx ends or Timeout passes.
// A release with the ID of the service's current deployment is
// followed, not started again.
func (p *Provider) Deploy(ctx context.Context, rel deploy.Release, progress func(deploy.Event)) (deploy.Result, error) {
	r := &release{p: p, rel: rel, progress: progress, res: deploy.Result{To: rel.Version, Started: time.Now()},
		every: cmp.Or(rel.Health.Interval, p.c.PollInterval), timeout: cmp.Or(rel.Health.StartTimeout, p.c.Timeout)}
	select {
	case p.lock <- struct{}{}:
		defer func() { <-p.lock }()
		r.run(ctx)
	case <-ctx.Done():
		r.fail("wait for the release before", ctx.Err())
	}
	r.res.Finished = time.Now()
	msg := string(r.res.Outcome)
	if r.res.Reason != "" {
		msg += ": " + r.res.Reason
	}
	r.emit(deploy.PhaseDone, msg)
	return r.res, r.err
}

// release is one Deploy call.
type release struct {
	p        *Provider
	rel      deploy.Release
	progress func(deploy.Event)
	res      deploy.Result
	err      error
	weight   int // production traffic on the new version, percent
	// every is how often the service deployment is described; timeout
	// how long it may run beyond its strategy's times.
	every, timeout time.Duration
	svcARN         string
}

func (r *release) emit(ph deploy.Phase, msg string) {
	if r.progress != nil {
		r.progress(deploy.Event{Time: time.Now(), App: r.rel.App, Phase: ph, Weight: r.weight, Message: msg})
	}
}

// fail ends the release as Failed.
func (r *release) fail(what string, cause error) {
	r.res.Outcome = deploy.Failed
	r.res.Reason = fmt.Sprintf("%s: %v", what, cause)
	r.err = fmt.Errorf("deploy %s %s: %s: %w: %w", r.rel.App, r.rel.Version, what, deploy.ErrFailed, cause)
}

func (r *release) run(ctx context.Context) {
	if err := r.rel.Validate(); err != nil {
		r.fail("validate", err)
		return
	}
	svc, err := r.p.service(ctx)
	if err != nil {
		r.fail("describe service", err)
		return
	}
	r.svcARN = aws.ToString(svc.ServiceArn)
	if arn := aws.ToString(svc.CurrentServiceDeployment); arn != "" {
		done, err := r.current(ctx, arn)
		if err != nil {
			r.fail("current service deployment", err)
			return
		}
		if done {
			return
		}
		if svc, err = r.p.service(ctx); err != nil {
			r.fail("describe service", err)
			return
		}
	}
	r.start(ctx, svc)
}

// current looks at the service's current deployment: one this release
// started earlier is followed to its end (done); a leftover still in
// progress is rolled back before the release starts its own.
func (r *release) current(ctx context.Context, arn string) (done bool, err error) {
	sd, err := r.p.deployment(ctx, arn)
	if err != nil {
		return false, err
	}
	target, err := r.p.revisionLabels(ctx, sd.TargetServiceRevision)
	if err != nil {
		return false, err
	}
	if r.rel.ID != "" && target[LabelID] == r.rel.ID && target[LabelVersion] == r.rel.Version {
		if r.res.From, err = r.p.sourceVersion(ctx, sd); err != nil {
			return false, err
		}
		r.emit(deploy.PhaseStart, fmt.Sprintf("following service deployment %s, started by an earlier attempt (%s)", arn, sd.Status))
		if err := r.fence(ctx, true); err != nil {
			r.fail("fence", err)
			return true, nil
		}
		r.follow(ctx, sd)
		return true, nil
	}
	if !active(sd.Status) {
		return false, nil
	}
	r.emit(deploy.PhaseStart, fmt.Sprintf("rolling back service deployment %s of %s, left over (%s)", arn, orNone(target[LabelVersion]), sd.Status))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deploy.RollbackTimeout)
	defer cancel()
	if err := r.p.stop(sctx, sd); err != nil {
		return false, err
	}
	end, err := r.waitEnd(sctx, arn)
	if err != nil {
		return false, fmt.Errorf("roll back leftover %s: %w", arn, err)
	}
	if end.Status != ecstypes.ServiceDeploymentStatusRollbackSuccessful && end.Status != ecstypes.ServiceDeploymentStatusStopped {
		return false, fmt.Errorf("leftover %s ended %s", arn, end.Status)
	}
	return false, nil
}

// start registers the new task definition, updates the service and
// follows the service deployment that starts.
func (r *release) start(ctx context.Context, svc *ecstypes.Service) {
	p := r.p
	blue, err := ecstask.Describe(ctx, p.c.ECS, aws.ToString(svc.TaskDefinition))
	if err != nil {
		r.fail("describe task definition", err)
		return
	}
	c, err := ecstask.Container(blue.TaskDefinition, p.c.Container, r.rel.App)
	if err != nil {
		r.fail("task definition", err)
		return
	}
	r.res.From = c.DockerLabels[LabelVersion]
	if r.res.From == r.rel.Version {
		r.res.Outcome = deploy.Succeeded
		r.weight = 100
		r.emit(deploy.PhaseStart, r.rel.Version+" already serves all traffic")
		return
	}
	cfg, err := strategy(svc.DeploymentConfiguration, r.rel)
	if err != nil {
		r.fail("strategy", err)
		return
	}
	r.emit(deploy.PhaseStart, fmt.Sprintf("replacing %s with %s, strategy %s", orNone(r.res.From), r.rel.Version, cfg.Strategy))
	if err := r.fence(ctx, true); err != nil {
		r.fail("fence", err)
		return
	}
	green, _, err := ecstask.Register(ctx, p.c.ECS, blue, p.c.Container, r.rel, map[string]string{LabelID: r.rel.ID})
	if err != nil {
		r.fail("register task definition", err)
		return
	}
	out, err := p.c.ECS.UpdateService(ctx, &awsecs.UpdateServiceInput{
		Cluster: aws.String(p.c.Cluster), Service: aws.String(p.c.Service), TaskDefinition: green.TaskDefinitionArn, DeploymentConfiguration: cfg,
	})
	if err != nil {
		r.fail("update service", err)
		return
	}
	arn := aws.ToString(out.Service.CurrentServiceDeployment)
	if arn == "" {
		r.fail("update service", errors.New("no current service deployment in the answer"))
		return
	}
	r.emit(deploy.PhaseCreate, fmt.Sprintf("service deployment %s started with task definition %s", arn, aws.ToString(green.TaskDefinitionArn)))
	sd, err := p.deployment(ctx, arn)
	if err != nil {
		// The deployment runs: follow it from its ARN alone.
		sd = &ecstypes.ServiceDeployment{ServiceDeploymentArn: aws.String(arn), Status: ecstypes.ServiceDeploymentStatusPending}
	}
	r.follow(ctx, sd)
}

func orNone(v string) string {
	if v == "" {
		return "(no version)"
	}
	return v
}
