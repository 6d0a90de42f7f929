package runner

import (
	"context"
	"fmt"
	"strconv"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

// Cancel cancels a run and its unfinished stages (reason canceled_by_user).
func (r *Runner) Cancel(ctx context.Context, runID int64) error {
	return r.cancel(ctx, runID, rules.ReasonCanceledByUser)
}

func (r *Runner) cancel(ctx context.Context, runID int64, reason string) error {
	// Once begun, a cancel finishes even if its caller goes away: a run
	// marked canceled must not keep stages queued or running.
	ctx = context.WithoutCancel(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	run, err := r.cfg.Store.Run(ctx, runID)
	if err != nil {
		return fmt.Errorf("cancel run %d: %w", runID, err)
	}
	if run.Status.Terminal() {
		return fmt.Errorf("cancel run %d: run is %s: %w", runID, run.Status, store.ErrConflict)
	}
	if err := r.cfg.Store.UpdateRun(ctx, runID, store.StatusCanceled, reason); err != nil {
		return fmt.Errorf("cancel run %d: %w", runID, err)
	}
	ended := map[string]bool{}
	for _, st := range run.Stages {
		if st.Status.Terminal() {
			continue
		}
		ended[st.Key] = true
		if err := r.cfg.Store.UpdateStage(ctx, st.ID, store.AnyAttempt, store.StageUpdate{Status: store.StatusCanceled, Reason: reason}); err != nil {
			r.log.Warn("cancel stage", "run", runID, "stage", st.Key, "err", err)
		}
		for _, step := range st.Steps {
			if !step.Status.Terminal() {
				r.endStep(ctx, runID, st, step, store.StatusCanceled)
			}
		}
		if st.Status == store.StatusQueued || st.Status == store.StatusRunning {
			c := wire.Cancel{RunID: strconv.FormatInt(runID, 10), StageID: st.Key, Attempt: st.Attempt, Reason: reason}
			if err := r.cfg.Bus.Cancel(ctx, c); err != nil {
				r.log.Warn("publish cancel", "run", runID, "stage", st.Key, "err", err)
			}
		}
		r.forget(run.ID, st.Key)
		r.report(run, "runnel/"+st.Key, "canceled", "Canceled")
	}
	if err := r.cfg.Logs.FinishRun(strconv.FormatInt(runID, 10)); err != nil {
		r.log.Warn("finish logs", "run", runID, "err", err)
	}
	r.log.Info("run canceled", "run", runID, "reason", reason)
	r.report(run, "runnel", "canceled", "Canceled: "+reason)
	if run, err := r.cfg.Store.Run(ctx, runID); err == nil {
		r.canceledMetrics(ctx, run, ended)
		r.runMetrics(run.Repo, run)
	}
	for _, st := range run.Stages {
		if st.Concurrency != "" {
			r.scheduleRepoLocked(ctx, run.RepoID, run.ID)
			break
		}
	}
	return nil
}

// Approve lets a stage held for approval run; Reject cancels it.
func (r *Runner) Approve(ctx context.Context, runID int64, stageKey, user string) error {
	return r.decide(ctx, runID, stageKey, user, true)
}

// Reject refuses a stage held for approval (reason approval_rejected).
func (r *Runner) Reject(ctx context.Context, runID int64, stageKey, user string) error {
	return r.decide(ctx, runID, stageKey, user, false)
}

func (r *Runner) decide(ctx context.Context, runID int64, stageKey, user string, approve bool) error {
	run, err := r.cfg.Store.Run(ctx, runID)
	if err != nil {
		return fmt.Errorf("decide approval: %w", err)
	}
	for _, st := range run.Stages {
		if st.Key != stageKey {
			continue
		}
		// The decision and the scheduling it allows are one step that a
		// caller going away must not cut in half.
		ctx := context.WithoutCancel(ctx)
		if err := r.cfg.Store.DecideApproval(ctx, st.ID, approve, user); err != nil {
			return fmt.Errorf("decide approval of %s: %w", stageKey, err)
		}
		r.log.Info("approval decided", "run", runID, "stage", stageKey, "approved", approve, "by", user)
		return r.schedule(ctx, runID)
	}
	return fmt.Errorf("decide approval: stage %q: %w", stageKey, store.ErrNotFound)
}

// canceledMetrics ends the stages a cancel ended (those in ended) in the
// metrics as endStage would: a started stage frees its slot and counts as
// finished; and an environment whose stages are now all final records
// its deployment (a variant that failed before the cancel fails it).
func (r *Runner) canceledMetrics(ctx context.Context, run *store.Run, ended map[string]bool) {
	envs := map[string]bool{}
	for _, st := range run.Stages {
		if !ended[st.Key] {
			continue
		}
		if r.cfg.Metrics != nil && !st.StartedAt.IsZero() {
			r.cfg.Metrics.StageFinished(run.Repo, string(st.Status), st.StartedAt, st.FinishedAt)
		}
		if st.Environment != "" && !envs[st.Environment] {
			envs[st.Environment] = true
			r.recordDeployment(ctx, run, st.Environment)
		}
	}
}
