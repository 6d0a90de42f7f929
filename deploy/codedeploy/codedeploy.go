package codedeploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cd "github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecstask"
)

// CodeDeploy is the part of the CodeDeploy API the Provider uses;
// *codedeploy.Client has it.
type CodeDeploy interface {
	GetDeploymentGroup(context.Context, *cd.GetDeploymentGroupInput, ...func(*cd.Options)) (*cd.GetDeploymentGroupOutput, error)
	CreateDeploymentConfig(context.Context, *cd.CreateDeploymentConfigInput, ...func(*cd.Options)) (*cd.CreateDeploymentConfigOutput, error)
	CreateDeployment(context.Context, *cd.CreateDeploymentInput, ...func(*cd.Options)) (*cd.CreateDeploymentOutput, error)
	ListDeployments(context.Context, *cd.ListDeploymentsInput, ...func(*cd.Options)) (*cd.ListDeploymentsOutput, error)
	BatchGetDeployments(context.Context, *cd.BatchGetDeploymentsInput, ...func(*cd.Options)) (*cd.BatchGetDeploymentsOutput, error)
	GetDeployment(context.Context, *cd.GetDeploymentInput, ...func(*cd.Options)) (*cd.GetDeploymentOutput, error)
	GetDeploymentTarget(context.Context, *cd.GetDeploymentTargetInput, ...func(*cd.Options)) (*cd.GetDeploymentTargetOutput, error)
	StopDeployment(context.Context, *cd.StopDeploymentInput, ...func(*cd.Options)) (*cd.StopDeploymentOutput, error)
}

// ECS is the part of the ECS API the Provider uses; *ecs.Client has it.
type ECS interface {
	DescribeServices(context.Context, *awsecs.DescribeServicesInput, ...func(*awsecs.Options)) (*awsecs.DescribeServicesOutput, error)
	ecstask.API // describing and registering task definitions
}

// Config configures a Provider for one CodeDeploy deployment group.
type Config struct {
	CodeDeploy CodeDeploy
	ECS        ECS
	// Application and DeploymentGroup name the ECS blue/green deployment
	// group (its ECS service is read from it).
	Application, DeploymentGroup string
	// DeploymentConfig, when set, is used instead of the config the
	// release's traffic steps map to.
	DeploymentConfig string
	// Container is the container of the task definition that runs the
	// release's image and takes the load balancer's traffic (default:
	// the only one, else the one named after the release's App).
	Container string
	// PollInterval is how often the deployment is read (default 5 s).
	PollInterval time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Provider is the deploy.Provider of one deployment group. Its state
// lives in CodeDeploy: a release is a deployment whose description
// carries the release's identity and version. Deploy is serialised per
// Provider.
type Provider struct {
	c    Config
	log  *slog.Logger
	lock chan struct{}
}

var _ deploy.Provider = (*Provider)(nil)

// New checks c and returns a Provider.
func New(c Config) (*Provider, error) {
	if c.CodeDeploy == nil || c.ECS == nil || c.Application == "" || c.DeploymentGroup == "" {
		return nil, errors.New("codedeploy deploy provider: CodeDeploy and ECS clients, an application and a deployment group are required")
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{c: c, log: log.With("application", c.Application, "deployment_group", c.DeploymentGroup), lock: make(chan struct{}, 1)}, nil
}

// Deploy implements deploy.Provider (see the package doc).
func (p *Provider) Deploy(ctx context.Context, rel deploy.Release, progress func(deploy.Event)) (deploy.Result, error) {
	r := &release{p: p, rel: rel, progress: progress, res: deploy.Result{To: rel.Version, Started: time.Now()}, events: map[string]cdtypes.LifecycleEventStatus{}}
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
	target   string // the ECS target id, "cluster:service"
	weight   int    // production traffic on green, percent
	shifted  bool   // green took production traffic
	events   map[string]cdtypes.LifecycleEventStatus
	step     *deploy.Step
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

// rolledBack ends the release as RolledBack.
func (r *release) rolledBack(what string, cause error) {
	r.res.Outcome = deploy.RolledBack
	r.res.Reason = fmt.Sprintf("%s: %v", what, cause)
	r.err = fmt.Errorf("deploy %s %s: %s: %w: %w", r.rel.App, r.rel.Version, what, deploy.ErrRolledBack, cause)
}

func (r *release) run(ctx context.Context) {
	if err := r.rel.Validate(); err != nil {
		r.fail("validate", err)
		return
	}
	cluster, service, err := r.p.group(ctx)
	if err != nil {
		r.fail("deployment group", err)
		return
	}
	r.target = cluster + ":" + service
	past, err := r.p.history(ctx, r.rel)
	if err != nil {
		r.fail("list deployments", err)
		return
	}
	r.res.From = past.serving
	if past.mine != nil {
		r.emit(deploy.PhaseStart, fmt.Sprintf("following deployment %s, created by an earlier attempt (%s)", aws.ToString(past.mine.DeploymentId), past.mine.Status))
		r.follow(ctx, aws.ToString(past.mine.DeploymentId))
		return
	}
	if past.active != nil {
		if err := r.leftover(ctx, past.active); err != nil {
			r.fail("leftover deployment", err)
			return
		}
	}
	if r.res.From == r.rel.Version {
		r.res.Outcome, r.weight = deploy.Succeeded, 100
		r.emit(deploy.PhaseStart, r.rel.Version+" already serves all traffic")
		return
	}
	r.start(ctx, cluster, service)
}

// start registers the task definition, creates the deployment and
// follows it.
func (r *release) start(ctx context.Context, cluster, service string) {
	p := r.p
	config, err := p.deploymentConfig(ctx, r.rel)
	if err != nil {
		r.fail("deployment config", err)
		return
	}
	r.emit(deploy.PhaseStart, fmt.Sprintf("replacing %s with %s, deployment config %s", orNone(r.res.From), r.rel.Version, config))
	td, container, port, err := p.register(ctx, cluster, service, r.rel)
	if err != nil {
		r.fail("register task definition", err)
		return
	}
	spec, sum := appSpec(td, container, port)
	out, err := p.c.CodeDeploy.CreateDeployment(ctx, &cd.CreateDeploymentInput{
		ApplicationName: aws.String(p.c.Application), DeploymentGroupName: aws.String(p.c.DeploymentGroup),
		DeploymentConfigName: aws.String(config), Description: aws.String(description(r.rel)),
		Revision: &cdtypes.RevisionLocation{RevisionType: cdtypes.RevisionLocationTypeAppSpecContent,
			AppSpecContent: &cdtypes.AppSpecContent{Content: aws.String(spec), Sha256: aws.String(sum)}},
		AutoRollbackConfiguration: &cdtypes.AutoRollbackConfiguration{Enabled: !r.rel.StopOnFailure,
			Events: []cdtypes.AutoRollbackEvent{cdtypes.AutoRollbackEventDeploymentFailure, cdtypes.AutoRollbackEventDeploymentStopOnRequest}},
	})
	if err != nil {
		r.fail("create deployment", err)
		return
	}
	id := aws.ToString(out.DeploymentId)
	r.emit(deploy.PhaseCreate, fmt.Sprintf("deployment %s created with task definition %s", id, td))
	r.follow(ctx, id)
}

// leftover ends an active deployment of an earlier release of the group
// before this release starts: CodeDeploy's own rollback is waited for;
// one of Runnel's is stopped with a rollback, and both waited for. A
// deployment not started by Runnel is left alone: the release fails.
func (r *release) leftover(ctx context.Context, d *cdtypes.DeploymentInfo) error {
	id := aws.ToString(d.DeploymentId)
	if d.Creator == cdtypes.DeploymentCreatorCodeDeployRollback {
		r.emit(deploy.PhaseStart, fmt.Sprintf("waiting for deployment %s, CodeDeploy's rollback of an earlier release (%s)", id, d.Status))
		_, err := r.p.waitEnd(ctx, id)
		return err
	}
	if _, _, ok := parseDescription(aws.ToString(d.Description)); !ok {
		return fmt.Errorf("deployment %s (%s) of the group was not started by runnel; not touching it", id, d.Status)
	}
	r.emit(deploy.PhaseStart, fmt.Sprintf("stopping deployment %s, left over by an earlier release (%s)", id, d.Status))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deploy.RollbackTimeout)
	defer cancel()
	end, err := r.p.stop(sctx, id, true)
	if err != nil {
		return err
	}
	if rb := rollbackID(end); rb != "" {
		if _, err := r.p.waitEnd(sctx, rb); err != nil {
			return fmt.Errorf("rollback %s of %s: %w", rb, id, err)
		}
	}
	return nil
}

func orNone(v string) string {
	if v == "" {
		return "(no version)"
	}
	return v
}
