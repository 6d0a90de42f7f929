package ecsservice

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/runnel-ci/runnel/deploy"
)

// follow polls the service deployment sd, reporting its lifecycle stages
// and traffic, until it ends; it asks for a rollback when ctx ends or
// the deadline passes (unless the release stops on failure).
func (r *release) follow(ctx context.Context, sd *ecstypes.ServiceDeployment) {
	arn := aws.ToString(sd.ServiceDeploymentArn)
	limit := r.timeout
	if sd.DeploymentConfiguration != nil {
		limit += plannedTime(sd.DeploymentConfiguration)
	}
	deadline := time.Now().Add(limit)
	var cause error // why Runnel asked for a rollback
	var last seen
	wctx := ctx // ctx, or once a rollback is asked for, a context detached from it
	for {
		last = r.observe(sd, last)
		if !active(sd.Status) {
			r.end(sd, cause)
			return
		}
		if cause == nil {
			if cause = stopCause(ctx, deadline, limit); cause != nil {
				if r.rel.StopOnFailure {
					r.emit(deploy.PhaseRollback, fmt.Sprintf("leaving service deployment %s as it is (on failure: stop): %v", arn, cause))
					r.fail("follow service deployment", cause)
					return
				}
				var cancel context.CancelFunc
				wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), deploy.RollbackTimeout)
				defer cancel()
				if err := r.fence(wctx, false); err != nil {
					r.emit(deploy.PhaseRollback, fmt.Sprintf("not stopping service deployment %s: %v", arn, err))
					r.fail("roll back", errors.Join(cause, err))
					return
				}
				r.emit(deploy.PhaseRollback, fmt.Sprintf("stopping service deployment %s with a rollback: %v", arn, cause))
				if err := r.p.stop(wctx, sd); err != nil {
					r.fail("roll back", errors.Join(cause, err))
					return
				}
			}
		}
		next, err := r.poll(wctx, arn)
		switch {
		case err != nil && cause == nil && ctx.Err() != nil:
			continue // cancelled: ask for the rollback
		case err != nil:
			r.fail("follow service deployment", errors.Join(cause, err))
			return
		}
		sd = next
	}
}

// stopCause says why Runnel should stop a service deployment: ctx ended
// or the deadline passed; nil when it should not.
func stopCause(ctx context.Context, deadline time.Time, limit time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if time.Now().After(deadline) {
		return fmt.Errorf("service deployment not finished after %s", limit)
	}
	return nil
}

// poll waits the poll interval and describes the service deployment.
func (r *release) poll(ctx context.Context, arn string) (*ecstypes.ServiceDeployment, error) {
	t := time.NewTimer(r.every)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	return r.p.deployment(ctx, arn)
}

// waitEnd polls a service deployment until it ends.
func (r *release) waitEnd(ctx context.Context, arn string) (*ecstypes.ServiceDeployment, error) {
	for {
		sd, err := r.poll(ctx, arn)
		if err != nil || !active(sd.Status) {
			return sd, err
		}
	}
}

// seen is what the last poll showed.
type seen struct {
	status ecstypes.ServiceDeploymentStatus
	stage  ecstypes.ServiceDeploymentLifecycleStage
	weight int
	polled bool
}

// observe reports what changed since last and keeps the release's steps.
func (r *release) observe(sd *ecstypes.ServiceDeployment, last seen) seen {
	now := seen{status: sd.Status, stage: sd.LifecycleStage, weight: weight(sd.TargetServiceRevision), polled: true}
	if last.polled && now.status == last.status && now.stage == last.stage && now.weight == last.weight {
		return now
	}
	rollingBack := phase(now.status, now.stage) == deploy.PhaseRollback
	if now.weight != r.weight {
		r.closeStep(!rollingBack)
		r.weight = now.weight
		if !rollingBack && now.weight > 0 {
			r.res.Steps = append(r.res.Steps, deploy.Step{Weight: now.weight, Started: time.Now()})
		}
	}
	msg := "service deployment " + string(now.status)
	if now.stage != "" {
		msg += ", stage " + string(now.stage)
	}
	if r.weight > 0 || last.weight > 0 {
		msg += fmt.Sprintf(", %d%% of production traffic on %s", r.weight, r.rel.Version)
	}
	r.emit(phase(now.status, now.stage), msg)
	return now
}

// closeStep finishes the step in progress, if any.
func (r *release) closeStep(healthy bool) {
	if n := len(r.res.Steps); n > 0 && r.res.Steps[n-1].Finished.IsZero() {
		r.res.Steps[n-1].Finished = time.Now()
		r.res.Steps[n-1].Healthy = healthy
	}
}

// end records how the service deployment ended. cause is why Runnel
// asked for a rollback, nil when ECS ended it on its own.
func (r *release) end(sd *ecstypes.ServiceDeployment, cause error) {
	reason := aws.ToString(sd.StatusReason)
	if sd.Rollback != nil && aws.ToString(sd.Rollback.Reason) != "" {
		reason = aws.ToString(sd.Rollback.Reason)
	}
	if cause == nil {
		cause = errors.New(orNone(reason))
	}
	// Production traffic reached green if a poll saw it, or if ECS was
	// at or past shifting it when it rolled back (between two polls).
	took := len(r.res.Steps) > 0 || pastProductionShift(sd.LifecycleStage)
	r.closeStep(sd.Status == ecstypes.ServiceDeploymentStatusSuccessful)
	what := fmt.Sprintf("service deployment %s", sd.Status)
	switch {
	case sd.Status == ecstypes.ServiceDeploymentStatusSuccessful:
		r.res.Outcome = deploy.Succeeded
		r.weight = 100
		r.emit(deploy.PhaseFinish, r.rel.Version+" serves all traffic")
	case sd.Status == ecstypes.ServiceDeploymentStatusRollbackSuccessful && took:
		r.res.Outcome = deploy.RolledBack
		r.res.Reason = fmt.Sprintf("%s: %v", what, cause)
		r.err = fmt.Errorf("deploy %s %s: %s: %w: %w", r.rel.App, r.rel.Version, what, deploy.ErrRolledBack, cause)
	default:
		r.fail(what, cause)
	}
}

func pastProductionShift(st ecstypes.ServiceDeploymentLifecycleStage) bool {
	switch st {
	case ecstypes.ServiceDeploymentLifecycleStageProductionTrafficShift, ecstypes.ServiceDeploymentLifecycleStagePostProductionTrafficShift,
		ecstypes.ServiceDeploymentLifecycleStageBakeTime, ecstypes.ServiceDeploymentLifecycleStageCleanUp:
		return true
	}
	return false
}

// weight is the production traffic a revision is asked to take, in
// whole percent.
func weight(rev *ecstypes.ServiceRevisionSummary) int {
	if rev == nil || rev.RequestedProductionTrafficWeight == nil {
		return 0
	}
	return int(math.Round(*rev.RequestedProductionTrafficWeight))
}

// phase maps a service deployment's status and lifecycle stage to the
// release phase reported to the log and the server.
func phase(s ecstypes.ServiceDeploymentStatus, st ecstypes.ServiceDeploymentLifecycleStage) deploy.Phase {
	switch s {
	case ecstypes.ServiceDeploymentStatusRollbackRequested, ecstypes.ServiceDeploymentStatusRollbackInProgress,
		ecstypes.ServiceDeploymentStatusRollbackSuccessful, ecstypes.ServiceDeploymentStatusRollbackFailed,
		ecstypes.ServiceDeploymentStatusStopRequested, ecstypes.ServiceDeploymentStatusStopped:
		return deploy.PhaseRollback
	case ecstypes.ServiceDeploymentStatusSuccessful:
		return deploy.PhaseFinish
	}
	switch st {
	case ecstypes.ServiceDeploymentLifecycleStagePostScaleUp, ecstypes.ServiceDeploymentLifecycleStageTestTrafficShift,
		ecstypes.ServiceDeploymentLifecycleStagePostTestTrafficShift:
		return deploy.PhaseHealthy
	case ecstypes.ServiceDeploymentLifecycleStageProductionTrafficShift, ecstypes.ServiceDeploymentLifecycleStagePostProductionTrafficShift,
		ecstypes.ServiceDeploymentLifecycleStageBakeTime:
		return deploy.PhaseShift
	case ecstypes.ServiceDeploymentLifecycleStageCleanUp:
		return deploy.PhaseFinish
	}
	return deploy.PhaseCreate
}
