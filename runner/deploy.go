package runner

import (
	"context"
	"time"

	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
)

func metricsDeployment(run *store.Run, st *store.Stage, result string) metrics.Deployment {
	return metrics.Deployment{Repo: run.Repo, Environment: st.Environment, CommitTime: run.CommitTime,
		Started: st.StartedAt, Finished: time.Now(), Result: result}
}

// storeDeployment records the deployment in the store.
func (r *Runner) storeDeployment(ctx context.Context, run *store.Run, st *store.Stage, result string) error {
	started := st.StartedAt
	if started.IsZero() {
		started = time.Now()
	}
	id, err := r.cfg.Store.CreateDeployment(ctx, store.Deployment{RepoID: run.RepoID, Environment: st.Environment,
		RunID: run.ID, StageID: st.ID, Commit: run.Commit, CommitTime: run.CommitTime, StartedAt: started})
	if err != nil {
		return err
	}
	return r.cfg.Store.FinishDeployment(ctx, id, result)
}
