package runner

import (
	"context"

	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
)

// History replays the store's finished runs and deployments for
// metrics.Rebuild at start-up.
type History struct{ Store *store.Store }

var _ metrics.HistorySource = History{}

// Known implements metrics.HistorySource.
func (h History) Known(ctx context.Context, fn func(repo string, environments []string) error) error {
	repos, err := h.Store.Repos(ctx)
	if err != nil {
		return err
	}
	envs, err := h.Store.Environments(ctx, 0)
	if err != nil {
		return err
	}
	byRepo := map[string][]string{}
	for _, e := range envs {
		byRepo[e.Repo] = append(byRepo[e.Repo], e.Name)
	}
	for _, r := range repos {
		if err := fn(r.Name, byRepo[r.Name]); err != nil {
			return err
		}
	}
	return nil
}

// FinishedRuns implements metrics.HistorySource.
func (h History) FinishedRuns(ctx context.Context, fn func(metrics.RunRecord) error) error {
	return h.Store.EachFinishedRun(ctx, func(r *store.Run) error {
		rec := metrics.RunRecord{Repo: r.Repo, Result: string(r.Status), Queued: r.QueuedAt, Started: r.StartedAt, Finished: r.FinishedAt}
		if rec.Queued.IsZero() {
			rec.Queued = r.CreatedAt
		}
		for _, st := range r.Stages {
			if st.Status.Terminal() && !st.StartedAt.IsZero() {
				rec.Stages = append(rec.Stages, metrics.StageRecord{Result: string(st.Status), Started: st.StartedAt, Finished: st.FinishedAt})
			}
		}
		return fn(rec)
	})
}

// Deployments implements metrics.HistorySource.
func (h History) Deployments(ctx context.Context, fn func(metrics.Deployment) error) error {
	return h.Store.EachFinishedDeployment(ctx, func(d *store.Deployment) error {
		return fn(metrics.Deployment{Repo: d.Repo, Environment: d.Environment, CommitTime: d.CommitTime,
			Started: d.StartedAt, Finished: d.FinishedAt, Result: d.Result})
	})
}
