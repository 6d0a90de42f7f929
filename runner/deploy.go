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
	// The store has no deployments API yet; the metrics carry DORA.
	return nil
}
