package codedeploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cd "github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"

	"github.com/runnel-ci/runnel/deploy"
)

// maxPollErrors is how many reads of a deployment in a row may fail
// before the release gives up following it (the deployment goes on).
const maxPollErrors = 3

// follow polls deployment id until it ends, reporting its lifecycle
// events and traffic weights, and sets the outcome. When ctx ends first
// it stops the deployment.
func (r *release) follow(ctx context.Context, id string) {
	t := time.NewTicker(r.p.c.PollInterval)
	defer t.Stop()
	errs := 0
	for {
		d, err := r.p.deployment(ctx, id)
		if err == nil {
			err = r.observe(ctx, id)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if errs++; errs >= maxPollErrors {
				r.fail("follow deployment "+id, err)
				return
			}
		case err == nil && terminal(d.Status):
			r.ended(ctx, d, nil)
			return
		case err == nil:
			errs = 0
		}
		select {
		case <-ctx.Done():
			r.cancel(ctx, id)
			return
		case <-t.C:
		}
	}
}

// observe reads the deployment's ECS target and reports what changed.
func (r *release) observe(ctx context.Context, id string) error {
	out, err := r.p.c.CodeDeploy.GetDeploymentTarget(ctx, &cd.GetDeploymentTargetInput{DeploymentId: aws.String(id), TargetId: aws.String(r.target)})
	if err != nil {
		return err
	}
	if out.DeploymentTarget == nil || out.DeploymentTarget.EcsTarget == nil {
		return nil // not yet known to CodeDeploy
	}
	t := out.DeploymentTarget.EcsTarget
	for _, e := range t.LifecycleEvents {
		name := aws.ToString(e.LifecycleEventName)
		if r.events[name] == e.Status {
			continue
		}
		r.events[name] = e.Status
		if name == "AllowTraffic" && e.Status != cdtypes.LifecycleEventStatusSkipped && e.Status != cdtypes.LifecycleEventStatusPending {
			r.shifted = true // also for a deployment an earlier attempt followed
		}
		if e.Status == cdtypes.LifecycleEventStatusPending {
			continue
		}
		msg := fmt.Sprintf("%s %s", name, e.Status)
		if e.Diagnostics != nil && aws.ToString(e.Diagnostics.Message) != "" {
			msg += ": " + aws.ToString(e.Diagnostics.Message)
		}
		r.emit(phaseOf(name, e.Status), msg)
	}
	for _, ts := range t.TaskSetsInfo {
		if ts.TaskSetLabel == cdtypes.TargetLabelGreen {
			if w := int(ts.TrafficWeight + 0.5); w != r.weight {
				r.shift(w)
			}
		}
	}
	return nil
}

// phaseOf maps an ECS lifecycle event to the release phase it reports.
func phaseOf(event string, status cdtypes.LifecycleEventStatus) deploy.Phase {
	switch {
	case status == cdtypes.LifecycleEventStatusFailed:
		return deploy.PhaseProbe
	case event == "BeforeInstall" || event == "Install" || event == "AfterInstall":
		return deploy.PhaseCreate
	case event == "AllowTraffic":
		return deploy.PhaseShift
	}
	return deploy.PhaseHealthy
}

// shift records that green now takes w percent of the traffic.
func (r *release) shift(w int) {
	r.endStep(true)
	r.weight = w
	if w > 0 {
		r.shifted = true
		r.step = &deploy.Step{Weight: w, Started: time.Now()}
	}
	r.emit(deploy.PhaseShift, fmt.Sprintf("%d%% of traffic on %s", w, r.rel.Version))
}

func (r *release) endStep(healthy bool) {
	if r.step != nil {
		r.step.Finished, r.step.Healthy = time.Now(), healthy
		r.res.Steps = append(r.res.Steps, *r.step)
		r.step = nil
	}
}

// cancel stops deployment id because ctx ended: CodeDeploy rolls it back
// unless the release stops on failure.
func (r *release) cancel(ctx context.Context, id string) {
	r.emit(deploy.PhaseRollback, fmt.Sprintf("release cancelled: stopping deployment %s", id))
	sctx, done := context.WithTimeout(context.WithoutCancel(ctx), deploy.RollbackTimeout)
	defer done()
	d, err := r.p.stop(sctx, id, !r.rel.StopOnFailure)
	if err != nil {
		r.endStep(false)
		r.fail("stop deployment", errors.Join(ctx.Err(), err))
		return
	}
	r.ended(sctx, d, ctx.Err())
}

// ended sets the outcome of deployment d, which has ended; cause is why
// the release ended it (nil when CodeDeploy did).
func (r *release) ended(ctx context.Context, d *cdtypes.DeploymentInfo, cause error) {
	id := aws.ToString(d.DeploymentId)
	if d.Status == cdtypes.DeploymentStatusSucceeded && cause == nil {
		r.weight = 100
		r.endStep(true)
		r.res.Outcome = deploy.Succeeded
		r.emit(deploy.PhaseFinish, fmt.Sprintf("deployment %s succeeded: %s serves all traffic", id, r.rel.Version))
		return
	}
	r.endStep(false)
	what := fmt.Sprintf("deployment %s %s", id, d.Status)
	if e := d.ErrorInformation; e != nil {
		cause = errors.Join(cause, fmt.Errorf("%s: %s", e.Code, aws.ToString(e.Message)))
	}
	if cause == nil {
		cause = errors.New("no error information")
	}
	rb := rollbackID(d)
	if rb == "" {
		if r.rel.StopOnFailure && r.shifted {
			cause = fmt.Errorf("stopped with %d%% of traffic on the new version, not rolled back (on failure: stop): %w", r.weight, cause)
		}
		r.fail(what, cause)
		return
	}
	r.emit(deploy.PhaseRollback, fmt.Sprintf("%s; CodeDeploy rolls back with deployment %s", what, rb))
	wctx, done := context.WithTimeout(context.WithoutCancel(ctx), deploy.RollbackTimeout)
	defer done()
	end, err := r.p.waitEnd(wctx, rb)
	switch {
	case err != nil:
		r.fail(what, errors.Join(cause, fmt.Errorf("rollback %s: %w", rb, err)))
	case end.Status != cdtypes.DeploymentStatusSucceeded:
		r.fail(what, errors.Join(cause, fmt.Errorf("rollback %s ended %s", rb, end.Status)))
	case r.shifted:
		r.weight = 0
		r.rolledBack(what, cause)
	default:
		r.weight = 0
		r.fail(what, fmt.Errorf("%w (rolled back by %s before taking production traffic)", cause, rb))
	}
}
