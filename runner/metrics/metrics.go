package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Run and stage results. Other values are recorded as ResultError so the
// label stays bounded.
const (
	ResultSuccess  = "success"
	ResultFailure  = "failure"
	ResultError    = "error"
	ResultCanceled = "canceled"
	ResultSkipped  = "skipped"
)

// Deployment results.
const (
	DeploySuccess    = "success"
	DeployFailure    = "failure"
	DeployRolledBack = "rolled_back"
)

// Webhook delivery results. Other values are recorded as WebhookError.
const (
	WebhookAccepted          = "accepted"
	WebhookDuplicate         = "duplicate"
	WebhookRejectedSignature = "rejected_signature"
	WebhookIgnored           = "ignored"
	WebhookError             = "error"
)

// Reasons a webhook request is not taken (runnel_webhook_rejected_total).
// Other values count as RejectedBadRequest.
const (
	RejectedBadSignature = "bad_signature" // 401: unknown repository or token, bad signature
	RejectedUnknownForge = "unknown_forge" // 404
	RejectedBadRequest   = "bad_request"   // 400
	RejectedTooLarge     = "too_large"     // 413
	RejectedSlowBody     = "slow_body"     // 408: body not received within the read timeout
	RejectedBusy         = "busy"          // 503: the body or spool budget is spent
	RejectedShuttingDown = "shutting_down" // 503
	RejectedAborted      = "aborted"       // the client went away before its body was read
)

// Forges are the forge label values: the webhook forges, "generic" for
// the generic JSON hook and "git" for pushes reported by the git
// post-receive hook. Their series exist from start-up at 0.
var Forges = []string{"github", "gitea", "gitlab", "generic", "git"}

var (
	runResults     = []string{ResultSuccess, ResultFailure, ResultError, ResultCanceled, ResultSkipped}
	deployResults  = []string{DeploySuccess, DeployFailure, DeployRolledBack}
	webhookResults = []string{WebhookAccepted, WebhookDuplicate, WebhookRejectedSignature, WebhookIgnored, WebhookError}
	rejectReasons  = []string{RejectedBadSignature, RejectedUnknownForge, RejectedBadRequest, RejectedTooLarge,
		RejectedSlowBody, RejectedBusy, RejectedShuttingDown, RejectedAborted}
)

// Deployment is one finished deploy of a commit to an environment.
type Deployment struct {
	Repo        string
	Environment string
	// CommitTime is the committer time of the deployed commit; lead time
	// is measured from it. Zero means unknown: no lead time is recorded.
	CommitTime time.Time
	Started    time.Time
	Finished   time.Time
	// Result is DeploySuccess, DeployFailure or DeployRolledBack.
	Result string
}

// StageRecord is a finished stage of a RunRecord.
type StageRecord struct {
	Result   string
	Started  time.Time
	Finished time.Time
}

// RunRecord is a finished run as kept by the store.
type RunRecord struct {
	Repo     string
	Result   string
	Queued   time.Time
	Started  time.Time
	Finished time.Time
	Stages   []StageRecord
}

// HistorySource replays finished work for Rebuild. Implementations stop
// and return fn's error when fn fails.
type HistorySource interface {
	// Known calls fn for every registered repository with the
	// environments declared for it.
	Known(ctx context.Context, fn func(repo string, environments []string) error) error
	// FinishedRuns calls fn for every finished run, in any order.
	FinishedRuns(ctx context.Context, fn func(RunRecord) error) error
	// Deployments calls fn for every finished deployment in ascending
	// order of Finished.
	Deployments(ctx context.Context, fn func(Deployment) error) error
}

// ErrNotFresh is returned by Rebuild when runs or deployments were already
// recorded: replaying history on top of them would count them twice.
var ErrNotFresh = errors.New("metrics already recorded events")

var (
	durationBuckets = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}
	waitBuckets     = []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}
	// Lead time and time to restore span minutes to weeks.
	leadBuckets    = []float64{300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400}
	restoreBuckets = []float64{60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400}
)

type envKey struct{ repo, env string }

// Metrics records Runnel's events as Prometheus metrics. Its methods are
// safe for concurrent use.
type Metrics struct {
	runsFinished   *prometheus.CounterVec
	stagesFinished *prometheus.CounterVec
	runDuration    *prometheus.HistogramVec
	stageDuration  *prometheus.HistogramVec
	queueWait      prometheus.Histogram
	stagesRunning  prometheus.Gauge
	agents         prometheus.GaugeFunc
	agentCapacity  prometheus.GaugeFunc
	agentBusy      prometheus.Gauge
	logDropped     prometheus.CounterFunc
	webhooks       *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	statusFailures *prometheus.CounterVec

	leadTime       *prometheus.HistogramVec
	deployments    *prometheus.CounterVec
	changeFailures *prometheus.CounterVec
	timeToRestore  *prometheus.HistogramVec

	mu sync.Mutex
	// failedSince holds, per repo and environment, when the first failed
	// deployment not yet followed by a successful one finished.
	failedSince map[envKey]time.Time
	lastDeploy  map[envKey]time.Time
	recorded    bool
	agentsFn    func() (agents, capacity int)
	droppedFn   func() int64
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_runs_finished_total",
			Help: "Pipeline runs that reached a final state, by repository and result.",
		}, []string{"repo", "result"}),
		stagesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_stages_finished_total",
			Help: "Stages that reached a final state, by repository and result.",
		}, []string{"repo", "result"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runnel_run_duration_seconds",
			Help:    "Time from a run's start to its end.",
			Buckets: durationBuckets,
		}, []string{"repo"}),
		stageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runnel_stage_duration_seconds",
			Help:    "Time from a stage's start on an agent to its end.",
			Buckets: durationBuckets,
		}, []string{"repo"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runnel_queue_wait_seconds",
			Help:    "Time a run waited from being queued until its first stage started.",
			Buckets: waitBuckets,
		}),
		stagesRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "runnel_stages_running",
			Help: "Stages currently running on agents.",
		}),
		agentBusy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "runnel_agent_busy_slots",
			Help: "Stage slots of connected agents that are running a stage.",
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_webhook_deliveries_total",
			Help: "Webhook deliveries received, by forge and result (accepted, duplicate, rejected_signature, ignored, error).",
		}, []string{"forge", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_webhook_rejected_total",
			Help: "Webhook requests not taken, by reason (bad_signature, unknown_forge, bad_request, too_large, slow_body, busy, shutting_down, aborted).",
		}, []string{"reason"}),
		statusFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_status_report_failures_total",
			Help: "Commit statuses given up on after all delivery attempts failed, by forge.",
		}, []string{"forge"}),
		leadTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runnel_lead_time_seconds",
			Help:    "DORA lead time for changes: commit time to the end of the successful deployment of that commit.",
			Buckets: leadBuckets,
		}, []string{"repo", "environment"}),
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_deployments_total",
			Help: "Finished deployments, by repository, environment and result (success, failure, rolled_back).",
		}, []string{"repo", "environment", "result"}),
		changeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_change_failures_total",
			Help: "Deployments that failed or were rolled back.",
		}, []string{"repo", "environment"}),
		timeToRestore: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runnel_time_to_restore_seconds",
			Help:    "DORA time to restore: end of the first failed deployment to the end of the next successful one, same repository and environment.",
			Buckets: restoreBuckets,
		}, []string{"repo", "environment"}),
		failedSince: make(map[envKey]time.Time),
		lastDeploy:  make(map[envKey]time.Time),
	}
	// Agents and their slots are read at scrape time, so they are right
	// from the first scrape after a start, not after a watchdog period.
	m.agents = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "runnel_agents_connected",
		Help: "Agents currently connected.",
	}, func() float64 { n, _ := m.agentCount(); return float64(n) })
	m.agentCapacity = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "runnel_agent_capacity_slots",
		Help: "Stage slots offered by all connected agents.",
	}, func() float64 { _, c := m.agentCount(); return float64(c) })
	m.logDropped = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "runnel_step_log_dropped_bytes_total",
		Help: "Bytes of step logs the server dropped past its per-step log cap.",
	}, m.droppedBytes)
	for _, c := range []prometheus.Collector{
		m.runsFinished, m.stagesFinished, m.runDuration, m.stageDuration,
		m.queueWait, m.stagesRunning, m.agents, m.agentCapacity, m.agentBusy, m.logDropped,
		m.webhooks, m.rejected, m.statusFailures,
		m.leadTime, m.deployments, m.changeFailures, m.timeToRestore,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register runnel metrics: %w", err)
		}
	}
	for _, f := range Forges {
		for _, r := range webhookResults {
			m.webhooks.WithLabelValues(f, r)
		}
		m.statusFailures.WithLabelValues(f)
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	return m, nil
}

// RepoKnown creates every series of repo at 0, so that Prometheus sees
// each counter before its first event: increase() cannot count the step
// of a series that first appears at 1. Call it when a repository is
// registered (Rebuild calls it for the stored ones).
func (m *Metrics) RepoKnown(repo string) {
	for _, r := range runResults {
		m.runsFinished.WithLabelValues(repo, r)
		m.stagesFinished.WithLabelValues(repo, r)
	}
	m.runDuration.WithLabelValues(repo)
	m.stageDuration.WithLabelValues(repo)
}

// EnvironmentKnown creates every series of a repository's environment at
// 0 (see RepoKnown). Call it when an environment is declared.
func (m *Metrics) EnvironmentKnown(repo, env string) {
	for _, r := range deployResults {
		m.deployments.WithLabelValues(repo, env, r)
	}
	m.changeFailures.WithLabelValues(repo, env)
	m.leadTime.WithLabelValues(repo, env)
	m.timeToRestore.WithLabelValues(repo, env)
}

func oneOf(v, fallback string, allowed ...string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return fallback
}

func runResult(r string) string {
	return oneOf(r, ResultError, ResultSuccess, ResultFailure, ResultError, ResultCanceled, ResultSkipped)
}

// seconds returns to - from in seconds and whether both are set and
// ordered; clock skew between machines must not produce negative samples.
func seconds(from, to time.Time) (float64, bool) {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return 0, false
	}
	return to.Sub(from).Seconds(), true
}

func (m *Metrics) markRecorded() {
	m.mu.Lock()
	m.recorded = true
	m.mu.Unlock()
}

// RunFinished records a run that reached its final state: its result and
// its duration from started to finished. queued is not used here (the
// queue wait is recorded by QueueWait when the run starts) but is part of
// the signature so that callers pass the whole timeline.
func (m *Metrics) RunFinished(repo, result string, queued, started, finished time.Time) {
	m.markRecorded()
	m.runFinished(repo, result, started, finished)
}

func (m *Metrics) runFinished(repo, result string, started, finished time.Time) {
	m.runsFinished.WithLabelValues(repo, runResult(result)).Inc()
	if d, ok := seconds(started, finished); ok {
		m.runDuration.WithLabelValues(repo).Observe(d)
	}
}

// QueueWait records how long a run waited between being queued and its
// first stage starting. Call it once per run, when that stage starts, so a
// growing queue shows before the runs finish.
func (m *Metrics) QueueWait(d time.Duration) {
	if d < 0 {
		return
	}
	m.queueWait.Observe(d.Seconds())
}

// StageStarted records that an agent started a stage: one more stage
// running and one more busy slot, at once rather than at the agent's
// next heartbeat.
func (m *Metrics) StageStarted() {
	m.stagesRunning.Inc()
	m.agentBusy.Inc()
}

// StageFinished records a stage that had been reported with StageStarted
// and reached its final state; it frees its slot.
func (m *Metrics) StageFinished(repo, result string, started, finished time.Time) {
	m.stagesRunning.Dec()
	m.agentBusy.Dec()
	m.stageFinished(repo, result, started, finished)
}

// StagesRunning sets the number of stages running on agents (and so the
// busy slots) from the store, at start-up: stages that were running
// before a restart end with StageFinished like any other.
func (m *Metrics) StagesRunning(n int) {
	m.stagesRunning.Set(float64(n))
	m.agentBusy.Set(float64(n))
}

func (m *Metrics) stageFinished(repo, result string, started, finished time.Time) {
	m.stagesFinished.WithLabelValues(repo, runResult(result)).Inc()
	if d, ok := seconds(started, finished); ok {
		m.stageDuration.WithLabelValues(repo).Observe(d)
	}
}

// AgentsFrom sets the function that tells, at each scrape, how many agents
// are connected and how many stage slots they offer. Busy slots follow
// StageStarted and StageFinished; busy/capacity is the utilisation.
func (m *Metrics) AgentsFrom(fn func() (agents, capacity int)) {
	m.mu.Lock()
	m.agentsFn = fn
	m.mu.Unlock()
}

// LogDroppedFrom sets the function that tells, at each scrape, how many
// bytes of step logs the server has dropped past its cap since it started.
func (m *Metrics) LogDroppedFrom(fn func() int64) {
	m.mu.Lock()
	m.droppedFn = fn
	m.mu.Unlock()
}

func (m *Metrics) droppedBytes() float64 {
	m.mu.Lock()
	fn := m.droppedFn
	m.mu.Unlock()
	if fn == nil {
		return 0
	}
	return float64(fn())
}

func (m *Metrics) agentCount() (int, int) {
	m.mu.Lock()
	fn := m.agentsFn
	m.mu.Unlock()
	if fn == nil {
		return 0, 0
	}
	return fn()
}

// WebhookDelivery counts a webhook delivery from forge ("github", "gitea",
// …) with one of the Webhook* results; other results count as WebhookError.
func (m *Metrics) WebhookDelivery(forge, result string) {
	result = oneOf(result, WebhookError, WebhookAccepted, WebhookDuplicate, WebhookRejectedSignature, WebhookIgnored, WebhookError)
	m.webhooks.WithLabelValues(forge, result).Inc()
}

// WebhookRejected counts a webhook request that was not taken, by one of
// the Rejected* reasons; other reasons count as RejectedBadRequest. It
// has no forge label: the forge of a rejected request may be any string
// its sender chose.
func (m *Metrics) WebhookRejected(reason string) {
	m.rejected.WithLabelValues(oneOf(reason, RejectedBadRequest, rejectReasons...)).Inc()
}

// StatusReportFailed counts a commit status that could not be delivered to
// forge.
func (m *Metrics) StatusReportFailed(forge string) { m.statusFailures.WithLabelValues(forge).Inc() }

// DeploymentFinished records a finished deployment: it counts it, records
// the lead time of a successful one, counts a failed or rolled back one as
// a change failure, and records time to restore when a success follows a
// failure in the same repository and environment. Deployments of one
// repository and environment must be reported in the order they finished.
// A result other than the Deploy* constants counts as DeployFailure.
func (m *Metrics) DeploymentFinished(d Deployment) {
	m.mu.Lock()
	m.recorded = true
	m.mu.Unlock()
	m.deploymentFinished(d)
}

func (m *Metrics) deploymentFinished(d Deployment) {
	result := oneOf(d.Result, DeployFailure, DeploySuccess, DeployFailure, DeployRolledBack)
	k := envKey{d.Repo, d.Environment}
	m.deployments.WithLabelValues(d.Repo, d.Environment, result).Inc()

	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastDeploy[k] = d.Finished
	if result != DeploySuccess {
		m.changeFailures.WithLabelValues(d.Repo, d.Environment).Inc()
		if _, ok := m.failedSince[k]; !ok {
			m.failedSince[k] = d.Finished
		}
		return
	}
	if s, ok := seconds(d.CommitTime, d.Finished); ok {
		m.leadTime.WithLabelValues(d.Repo, d.Environment).Observe(s)
	}
	if since, ok := m.failedSince[k]; ok {
		delete(m.failedSince, k)
		if s, ok := seconds(since, d.Finished); ok {
			m.timeToRestore.WithLabelValues(d.Repo, d.Environment).Observe(s)
		}
	}
}

// Rebuild replays finished runs (with their stages) and deployments from
// src so that counters and histograms survive a restart. Call it once,
// after New and before any live event; it returns ErrNotFresh otherwise.
// Deployments must come in ascending order of Finished per repository and
// environment.
func (m *Metrics) Rebuild(ctx context.Context, src HistorySource) error {
	m.mu.Lock()
	if m.recorded {
		m.mu.Unlock()
		return fmt.Errorf("rebuild metrics: %w", ErrNotFresh)
	}
	m.recorded = true
	m.mu.Unlock()

	err := src.Known(ctx, func(repo string, envs []string) error {
		m.RepoKnown(repo)
		for _, e := range envs {
			m.EnvironmentKnown(repo, e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuild metrics from repositories: %w", err)
	}
	err = src.FinishedRuns(ctx, func(r RunRecord) error {
		for _, s := range r.Stages {
			m.stageFinished(r.Repo, s.Result, s.Started, s.Finished)
		}
		if d, ok := seconds(r.Queued, r.Started); ok {
			m.queueWait.Observe(d)
		}
		m.runFinished(r.Repo, r.Result, r.Started, r.Finished)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuild metrics from finished runs: %w", err)
	}
	err = src.Deployments(ctx, func(d Deployment) error {
		m.mu.Lock()
		last, ok := m.lastDeploy[envKey{d.Repo, d.Environment}]
		m.mu.Unlock()
		if ok && d.Finished.Before(last) {
			return fmt.Errorf("deployment of %s to %s finished %s, before the previous one (%s): want ascending order",
				d.Repo, d.Environment, d.Finished.Format(time.RFC3339), last.Format(time.RFC3339))
		}
		m.deploymentFinished(d)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuild metrics from deployments: %w", err)
	}
	return nil
}
