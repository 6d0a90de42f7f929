// Package metrics owns Runnel's Prometheus metrics: run and stage outcomes
// and durations, queue wait, agent capacity, webhook deliveries, commit
// status report failures, and the four DORA measures (lead time for
// changes, deployment frequency, change failure rate, time to restore).
//
// All metrics are registered by New on an injected prometheus.Registerer
// and carry the prefix "runnel_". Label values are bounded: repository,
// result, environment and forge only; never a SHA, branch, stage name or
// run id. docs/metrics.md lists every metric.
//
// # Wiring
//
// The server calls the methods of *Metrics as events happen:
//
//	m, err := metrics.New(prometheus.DefaultRegisterer) // forge series at 0
//	err = m.Rebuild(ctx, store)           // once, before live events
//	m.AgentsFrom(agentsAndSlots)          // read at each scrape
//	m.RepoKnown(repo)                     // a repository was registered
//	m.EnvironmentKnown(repo, env)         // an environment was declared
//	m.QueueWait(started.Sub(queued))      // when a run's first stage starts
//	m.StageStarted()                      // an agent started a stage
//	m.StageFinished(repo, result, started, finished)
//	m.RunFinished(repo, result, queued, started, finished)
//	m.DeploymentFinished(metrics.Deployment{...})
//	m.WebhookDelivery("github", metrics.WebhookAccepted)
//	m.StatusReportFailed("github")
//
// Every series a dashboard reads exists at 0 from RepoKnown or
// EnvironmentKnown on: Prometheus's increase() cannot count the first step
// of a series that appears at 1.
//
// # Restarts
//
// Prometheus counters restart from zero when the process restarts; that is
// fine for rate() but loses the long-run totals DORA dashboards are built
// on, and the "first failure not yet restored" state needed for time to
// restore. Rebuild replays history from a HistorySource, which the store
// implements:
//
//	type HistorySource interface {
//		// Known calls fn for every repository with its environments.
//		Known(ctx context.Context, fn func(repo string, envs []string) error) error
//		// FinishedRuns calls fn for every finished run, in any order.
//		FinishedRuns(ctx context.Context, fn func(RunRecord) error) error
//		// Deployments calls fn for every finished deployment in ascending
//		// order of Finished.
//		Deployments(ctx context.Context, fn func(Deployment) error) error
//	}
//
// Rebuild pushes each record through the same code as the live methods, so
// a rebuilt registry exposes the same counters and histograms as one that
// saw the events live. Gauges (stages running, agents) describe the present
// and are not rebuilt.
package metrics
