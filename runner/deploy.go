package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
)

// A deployment is what a run did to one environment: all its stages that
// name the environment (the variants of a matrix, or several stages),
// counted once, when the last of them is final. See deploymentResult.

// deploymentResult is the rule for the stages of one run and environment:
// ok is false while one of them is not final, or when none started (a
// skipped or canceled-before-start deploy is no deployment). Otherwise
// the result is failure when one failed or errored, else success.
// Canceled stages neither fail nor succeed a deployment.
func deploymentResult(stages []*store.Stage) (result string, ok bool) {
	started, failed := false, false
	for _, st := range stages {
		if !st.Status.Terminal() {
			return "", false
		}
		if st.StartedAt.IsZero() || st.Status == store.StatusCanceled || st.Status == store.StatusSkipped {
			continue
		}
		started = true
		if st.Status != store.StatusSuccess {
			failed = true
		}
	}
	switch {
	case !started:
		return "", false
	case failed:
		return store.DeployFailure, true
	default:
		return store.DeploySuccess, true
	}
}

// recordDeployment records the deployment of run to env once its stages
// of env are all final: in the store, then in the metrics with the same
// finish time, so that a rebuild after a restart gives the same samples.
// Callers hold r.mu, and each stage becomes final once, so the last of
// them records it exactly once. A release cancelled on its way waits
// for its rollback (unwinding).
func (r *Runner) recordDeployment(ctx context.Context, run *store.Run, env string) {
	r.endDeployment(ctx, run, env, false)
}

// endDeployment is recordDeployment; with unwound, a cancelled release
// ends with what its agent reported last instead of waiting for more.
func (r *Runner) endDeployment(ctx context.Context, run *store.Run, env string, unwound bool) {
	if env == "" {
		return
	}
	var group []*store.Stage
	for _, st := range run.Stages {
		if st.Environment == env {
			group = append(group, st)
		}
	}
	result, ok := deploymentResult(group)
	cur := r.release(ctx, run.ID, env)
	if !unwound && allTerminal(group) && cancelledRelease(group, cur) {
		r.markCanceling(ctx, cur)
		return
	}
	switch {
	case ok && cur != nil:
		result = releaseResult(result, cur.Release.Outcome)
	case ok:
	case cur != nil && allTerminal(group):
		// Cancelled (or lost) during its release: the environment got
		// what the release did.
		result = releaseResult(store.DeployFailure, cur.Release.Outcome)
	default:
		return
	}
	d := store.Deployment{RepoID: run.RepoID, Environment: env, RunID: run.ID, StageID: group[len(group)-1].ID,
		Commit: run.Commit, CommitTime: run.CommitTime, Result: result, FinishedAt: time.Now().Truncate(time.Microsecond)}
	for _, st := range group {
		if !st.StartedAt.IsZero() && (d.StartedAt.IsZero() || st.StartedAt.Before(d.StartedAt)) {
			d.StartedAt = st.StartedAt
		}
	}
	if cur == nil {
		if _, err := r.cfg.Store.CreateDeployment(ctx, d); err != nil {
			r.log.Error("record deployment", "run", run.ID, "environment", env, "err", err)
			return
		}
	} else {
		if !cur.StartedAt.IsZero() && (d.StartedAt.IsZero() || cur.StartedAt.Before(d.StartedAt)) {
			d.StartedAt = cur.StartedAt
		}
		var restored int64
		if result == store.DeployRolledBack {
			if last, err := r.cfg.Store.LastDeployments(ctx, run.RepoID); err == nil && last[env] != nil {
				restored = last[env].ID
			}
		}
		if err := r.cfg.Store.EndDeployment(ctx, cur.ID, result, d.FinishedAt, restored); err != nil {
			r.log.Error("record deployment", "run", run.ID, "environment", env, "err", err)
			return
		}
		r.seenMu.Lock()
		delete(r.unwinding, cur.ID)
		r.seenMu.Unlock()
	}
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.DeploymentFinished(metrics.Deployment{Repo: run.Repo, Environment: env, CommitTime: run.CommitTime,
			Started: d.StartedAt, Finished: d.FinishedAt, Result: result})
	}
}

// releaseResult is the result of a deployment whose stages gave result
// and whose release ended with outcome: a rolled back release is
// rolled_back (a change failure that left the old version serving).
func releaseResult(result, outcome string) string {
	switch {
	case outcome == "rolled_back":
		return store.DeployRolledBack
	case outcome == "succeeded" && result == store.DeploySuccess:
		return store.DeploySuccess
	}
	return store.DeployFailure
}

func allTerminal(stages []*store.Stage) bool {
	for _, st := range stages {
		if !st.Status.Terminal() {
			return false
		}
	}
	return true
}

// release returns the in-progress deployment a deploy stage of the run
// made for env, nil if there is none.
func (r *Runner) release(ctx context.Context, runID int64, env string) *store.Deployment {
	cur, err := r.cfg.Store.DeploymentOfRun(ctx, runID, env)
	if err != nil || cur.Result != "" {
		return nil
	}
	return cur
}

// recoverDeployments records, for a run whose stages have all ended, the
// deployment of every environment of the run that has no finished one:
// the server may have died between a stage's end and its record. Callers
// hold r.mu; recordDeployment finishes an in-progress record.
func (r *Runner) recoverDeployments(ctx context.Context, run *store.Run) {
	done := map[string]bool{}
	for _, st := range run.Stages {
		env := st.Environment
		if env == "" || done[env] {
			continue
		}
		done[env] = true
		d, err := r.cfg.Store.DeploymentOfRun(ctx, run.ID, env)
		switch {
		case err == nil && d.Result != "":
			continue
		case err != nil && !errors.Is(err, store.ErrNotFound):
			r.log.Error("recover deployment", "run", run.ID, "environment", env, "err", err)
			continue
		}
		r.log.Info("recording a deployment its stage's end did not", "run", run.ID, "environment", env)
		r.recordDeployment(ctx, run, env)
	}
}

// environments returns the environments declared for a repository, as
// the pipeline package plans with them.
func (r *Runner) environments(ctx context.Context, repoID int64) ([]pipeline.Environment, error) {
	envs, err := r.cfg.Store.Environments(ctx, repoID)
	if err != nil {
		return nil, fmt.Errorf("environments: %w", err)
	}
	out := make([]pipeline.Environment, 0, len(envs))
	for _, e := range envs {
		out = append(out, pipeline.Environment{Name: e.Name, Branches: e.Branches, Tags: e.Tags})
	}
	return out, nil
}

// deployProgress records a deploy step's report on the deployment of its
// run and environment (a stage without environment is no deployment: its
// release is only in its log).
func (r *Runner) deployProgress(ctx context.Context, run *store.Run, st *store.Stage, p *wire.DeployProgress) error {
	if p == nil || st.Environment == "" {
		return nil
	}
	d := store.Deployment{RepoID: run.RepoID, Environment: st.Environment, RunID: run.ID, StageID: st.ID,
		Commit: run.Commit, CommitTime: run.CommitTime, StartedAt: st.StartedAt,
		Release: store.Release{Provider: p.Provider, Version: p.Version, From: p.From, Phase: p.Phase, Traffic: p.Weight, Outcome: p.Outcome}}
	if _, err := r.cfg.Store.DeployProgress(ctx, d); err != nil {
		if errors.Is(err, store.ErrConflict) {
			r.log.Info("deploy progress after the deployment ended ignored", "run", run.ID, "stage", st.Key)
			return nil
		}
		return fmt.Errorf("deploy progress of run %d stage %s: %w", run.ID, st.Key, err)
	}
	return nil
}
