package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/agents/workspace"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/statusq"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/gitrepo"
)

// PipelineFile is the file read from the pushed commit.
const PipelineFile = ".pipeline.yml"

// Reasons added by the runner to those of the store.
const (
	ReasonPipelineMissing = "pipeline_missing"
	ReasonNoStages        = "no_stages"
	ReasonDispatchFailed  = "dispatch_failed"
)

// StatusSink takes commit statuses to report (statusq.Queue).
type StatusSink interface {
	Enqueue(s scm.Status) error
}

// Config configures New.
type Config struct {
	Store    *store.Store
	Bus      Bus
	Logs     *logstore.Store
	Statuses StatusSink       // nil: no commit statuses
	Metrics  *metrics.Metrics // nil: no metrics
	Logger   *slog.Logger
	BaseURL  string // e.g. https://ci.example.com; run links are BaseURL/runs/<id>
	// CacheDir holds mirrors of forge repositories for reading the pipeline
	// file; required for forge repos.
	CacheDir string
	// LeaseTimeout bounds the silence of a running stage before it ends
	// with agent_lost (default 45 s). Agents send a heartbeat update per
	// running stage with each lease extension (every 5 s by default, and
	// always below the bus's 30 s AckWait, after which JetStream
	// redelivers a lost agent's job), so only a stage that nobody runs
	// any more falls silent this long.
	LeaseTimeout time.Duration
}

// Runner owns the run lifecycle. Create it with New, call Start, and
// Close it at shutdown.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	cache *workspace.Cache

	// mu serialises scheduling decisions (concurrency groups span runs).
	mu sync.Mutex
	// seen is when each running stage's current attempt last reported
	// (any update, mostly heartbeats). It lives in memory only, so that
	// heartbeats cost no database write; Start gives the running stages
	// of a previous process one lease period.
	seenMu sync.Mutex
	seen   map[stageRef]lease

	steps stepCache // step names of stages, for log chunks

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Bus == nil || cfg.Logs == nil {
		return nil, errors.New("runner: Store, Bus and Logs are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LeaseTimeout <= 0 {
		cfg.LeaseTimeout = 45 * time.Second
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	r := &Runner{cfg: cfg, log: cfg.Logger, seen: map[stageRef]lease{}, stop: make(chan struct{})}
	if cfg.CacheDir != "" {
		c, err := workspace.NewCache(cfg.CacheDir)
		if err != nil {
			return nil, err
		}
		r.cache = c
	}
	return r, nil
}

// Start reconciles runs left unfinished by a previous server process and
// starts the lease watchdog. Stages that were queued stay so: their jobs
// wait in the bus's durable queue. Stages that were running get one lease
// period to report before they count as lost.
func (r *Runner) Start(ctx context.Context) error {
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		return fmt.Errorf("recover unfinished runs: %w", err)
	}
	now := time.Now()
	for _, run := range runs {
		for _, st := range run.Stages {
			if st.Status == store.StatusRunning {
				r.touch(run.ID, st.Key, st.Attempt, st.Agent, now)
			}
		}
		if err := r.schedule(ctx, run.ID); err != nil {
			r.log.Error("recovery: schedule failed", "run", run.ID, "err", err)
		}
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.watchdog()
	}()
	return nil
}

// Close stops the watchdog.
func (r *Runner) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

// stageRef names a stage as agents do: by run and stage key.
type stageRef struct {
	run   int64
	stage string
}

// lease is what the watchdog knows of a running stage.
type lease struct {
	attempt int       // the attempt that reported
	agent   string    // the agent running it ("" when not known)
	last    time.Time // when it last did
}

// touch records that attempt of a stage, run by agent, reported at t.
func (r *Runner) touch(runID int64, stage string, attempt int, agent string, t time.Time) {
	r.seenMu.Lock()
	r.seen[stageRef{runID, stage}] = lease{attempt: attempt, agent: agent, last: t}
	r.seenMu.Unlock()
}

// beat records a heartbeat of attempt from agent if that attempt is the
// one known to run the stage, on that agent, and reports whether it was.
func (r *Runner) beat(runID int64, stage string, attempt int, agent string, t time.Time) bool {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	ref := stageRef{runID, stage}
	l, ok := r.seen[ref]
	if !ok || l.attempt != attempt || l.agent == "" || l.agent != agent {
		return false
	}
	l.last = t
	r.seen[ref] = l
	return true
}

func (r *Runner) forget(runID int64, stage string) {
	r.seenMu.Lock()
	delete(r.seen, stageRef{runID, stage})
	r.seenMu.Unlock()
}

// watchdog ends or re-queues stages whose agent stopped reporting. It is
// not a dispatch loop: dispatch happens on events.
func (r *Runner) watchdog() {
	period := r.cfg.LeaseTimeout / 5
	if period < time.Second {
		period = time.Second
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.checkLeases(context.Background())
		}
	}
}

func (r *Runner) checkLeases(ctx context.Context) {
	if r.cfg.Metrics != nil {
		agents := r.Agents()
		capacity, busy := 0, 0
		for _, a := range agents {
			capacity += a.Capacity
			busy += a.Running
		}
		r.cfg.Metrics.AgentsConnected(len(agents))
		r.cfg.Metrics.AgentSlots(capacity, busy)
	}
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		r.log.Error("lease check: list runs", "err", err)
		return
	}
	// Each running stage is judged by its own reports only: an agent
	// that is present and busy says nothing about a stage it dropped.
	now := time.Now()
	running := map[stageRef]bool{}
	for _, run := range runs {
		for _, st := range run.Stages {
			if st.Status != store.StatusRunning {
				continue
			}
			ref := stageRef{run.ID, st.Key}
			running[ref] = true
			r.seenMu.Lock()
			l, ok := r.seen[ref]
			if !ok || l.attempt != st.Attempt {
				// Not heard of since this process started (or only of
				// another attempt): one lease period from now.
				l = lease{attempt: st.Attempt, agent: st.Agent, last: now}
				r.seen[ref] = l
			}
			r.seenMu.Unlock()
			if now.Sub(l.last) < r.cfg.LeaseTimeout {
				continue
			}
			r.agentLost(ctx, run, st)
		}
	}
	// Stages that ended by a path that did not forget them.
	r.seenMu.Lock()
	for ref := range r.seen {
		if !running[ref] {
			delete(r.seen, ref)
		}
	}
	r.seenMu.Unlock()
}

// agentLost ends a running stage whose agent went silent for a lease
// period. The bus redelivers the job of a lost agent after its AckWait
// (below the lease timeout), and the new attempt's "started" keeps the
// stage alive; so this only fires when no agent took the job over.
func (r *Runner) agentLost(ctx context.Context, run *store.Run, st *store.Stage) {
	log := r.log.With("run", run.ID, "stage", st.Key, "attempt", st.Attempt, "agent", st.Agent)
	// Tell the old attempt to stop, in case its agent is only cut off.
	c := wire.Cancel{RunID: strconv.FormatInt(run.ID, 10), StageID: st.Key, Attempt: st.Attempt, Reason: store.ReasonAgentLost}
	if err := r.cfg.Bus.Cancel(ctx, c); err != nil {
		log.Warn("cancel lost attempt", "err", err)
	}
	r.forget(run.ID, st.Key)
	r.finishStepLogs(run.ID, st)
	log.Warn("agent lost: ending stage")
	if err := r.endStage(ctx, run, st, store.AnyAttempt, store.StatusError, store.ReasonAgentLost); err != nil {
		// The next lease check tries again: the stage is still running.
		log.Error("end lost stage", "err", err)
	}
}

// Trigger starts a run for ev in repo: it reads and compiles the pipeline
// file at ev.Commit, stores the run and schedules its first stages. A
// pipeline that does not compile yields a run ended error with reason
// pipeline_invalid; its diagnostics are kept (see Diagnostics).
func (r *Runner) Trigger(ctx context.Context, repo *store.Repo, ev *scm.Event, trigger string, parent int64) (*store.Run, error) {
	log := r.log.With("repo", repo.Name, "commit", ev.Commit)
	pev := ev.PipelineEvent()
	pev.Repo = repo.Name
	nr := store.NewRun{RepoID: repo.ID, Event: pev, CommitTime: ev.Timestamp, Trigger: trigger, ParentID: parent}

	src, err := r.readPipeline(ctx, repo, ev)
	var diags []pipeline.Diagnostic
	switch {
	case errors.Is(err, gitrepo.ErrNoFile):
		nr.Status, nr.Reason = store.StatusError, ReasonPipelineMissing
		diags = []pipeline.Diagnostic{{Message: "no " + PipelineFile + " in commit " + ev.Commit}}
	case err != nil:
		return nil, fmt.Errorf("trigger %s at %s: %w", repo.Name, ev.Commit, err)
	default:
		p, perr := pipeline.Parse(PipelineFile, src)
		var plan *pipeline.Plan
		if perr == nil {
			plan, perr = p.Plan(pev)
		}
		if perr != nil {
			nr.Status, nr.Reason = store.StatusError, store.ReasonPipelineInvalid
			var ds pipeline.Diagnostics
			if errors.As(perr, &ds) {
				diags = ds
			} else {
				diags = []pipeline.Diagnostic{{Message: perr.Error()}}
			}
		} else {
			nr.Plan = plan
			if len(plan.Stages) == 0 {
				nr.Status, nr.Reason = store.StatusSkipped, ReasonNoStages
			}
		}
	}
	// From here on the run is created and scheduled as one piece of work:
	// a caller going away (an HTTP client disconnecting) must not leave it
	// half done, such as a stage marked queued whose job was never
	// published, which nothing would ever end.
	ctx = context.WithoutCancel(ctx)
	run, err := r.cfg.Store.CreateRun(ctx, nr)
	if err != nil {
		return nil, fmt.Errorf("trigger %s at %s: %w", repo.Name, ev.Commit, err)
	}
	log = log.With("run", run.ID)
	if diags != nil {
		if err := r.saveDiagnostics(run.ID, diags); err != nil {
			log.Error("save diagnostics", "err", err)
		}
	}
	log.Info("run created", "number", run.Number, "status", run.Status, "reason", run.Reason)
	if run.Status.Terminal() {
		r.report(run, "runnel", string(run.Status), "Pipeline: "+run.Reason)
		r.runMetrics(repo.Name, run)
		return run, nil
	}
	r.report(run, "runnel", "pending", "Run queued")
	if repo.CancelPrevious && run.Branch != "" {
		older, err := r.cfg.Store.ActiveRuns(ctx, repo.ID, run.Branch)
		if err != nil {
			log.Error("cancel previous: list runs", "err", err)
		}
		for _, o := range older {
			if o.ID < run.ID {
				if err := r.cancel(ctx, o.ID, store.ReasonSuperseded); err != nil {
					log.Error("cancel previous run", "previous", o.ID, "err", err)
				}
			}
		}
	}
	if err := r.schedule(ctx, run.ID); err != nil {
		return run, err
	}
	return r.cfg.Store.Run(ctx, run.ID)
}

func (r *Runner) readPipeline(ctx context.Context, repo *store.Repo, ev *scm.Event) ([]byte, error) {
	url := repo.CloneURL
	if url == "" {
		// The payload's clone URL is the sender's word, not the
		// operator's: never a path or file:// URL on this host, or a
		// hook could make the server read another repository here.
		if !networkURL(ev.CloneURL) {
			return nil, fmt.Errorf("repo %s has no clone URL and the event's %q is not a network URL: %w", repo.Name, ev.CloneURL, workspace.ErrUnsafe)
		}
		url = ev.CloneURL
	}
	src := workspace.Source{URL: url, Commit: ev.Commit, Ref: ev.Ref}
	if err := src.Validate(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(url); err == nil && fi.IsDir() && filepath.IsAbs(url) {
		// A bare repository on this host (git hook repos): read its objects.
		return gitrepo.ReadFile(ctx, url, ev.Commit, PipelineFile)
	}
	if r.cache == nil {
		return nil, errors.New("no cache directory configured for forge repositories")
	}
	// The cache's mirror is a bare repository too: fetch the commit into
	// it, then read the file from its objects.
	mirror, err := r.cache.Fetch(ctx, src)
	if err != nil {
		return nil, err
	}
	return gitrepo.ReadFile(ctx, mirror, ev.Commit, PipelineFile)
}

// networkURL reports whether u names a remote git repository: an
// http(s), ssh or git URL, or scp-like "host:path". Local paths, file://
// and other schemes are not.
func networkURL(u string) bool {
	if scheme, rest, ok := strings.Cut(u, "://"); ok {
		switch strings.ToLower(scheme) {
		case "http", "https", "ssh", "git":
			return rest != "" && !strings.HasPrefix(rest, "/")
		}
		return false
	}
	// scp-like syntax: a colon before any slash (git's rule).
	colon := strings.IndexByte(u, ':')
	slash := strings.IndexByte(u, '/')
	return colon > 0 && (slash < 0 || colon < slash)
}

func (r *Runner) diagKey(runID int64) logstore.Key {
	return logstore.Key{Run: strconv.FormatInt(runID, 10), Stage: "_pipeline", Attempt: 0, Step: "diagnostics"}
}

func (r *Runner) saveDiagnostics(runID int64, diags []pipeline.Diagnostic) error {
	b, err := json.Marshal(diags)
	if err != nil {
		return err
	}
	k := r.diagKey(runID)
	if err := r.cfg.Logs.Append(k, 0, b); err != nil {
		return err
	}
	return r.cfg.Logs.Finish(k)
}

// Diagnostics returns the pipeline diagnostics kept for a run that did
// not compile, or nil.
func (r *Runner) Diagnostics(runID int64) []pipeline.Diagnostic {
	f, err := r.cfg.Logs.Open(r.diagKey(runID))
	if err != nil {
		return nil
	}
	defer f.Close()
	var ds []pipeline.Diagnostic
	if err := json.NewDecoder(f).Decode(&ds); err != nil {
		return nil
	}
	return ds
}

// schedule re-evaluates the DAG of one run: it skips stages whose
// condition cannot hold, holds stages for approval and concurrency groups,
// dispatches ready stages, records pending reasons and ends the run when
// every stage is terminal.
func (r *Runner) schedule(ctx context.Context, runID int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scheduleLocked(ctx, runID)
}

func (r *Runner) scheduleLocked(ctx context.Context, runID int64) error {
	run, err := r.cfg.Store.Run(ctx, runID)
	if err != nil {
		return fmt.Errorf("schedule run %d: %w", runID, err)
	}
	if run.Status.Terminal() {
		return nil
	}
	byKey := map[string]*store.Stage{}
	for _, st := range run.Stages {
		byKey[st.Key] = st
	}
	planStage := map[string]*pipeline.Stage{}
	if run.Plan != nil {
		for _, ps := range run.Plan.Stages {
			planStage[ps.ID] = ps
		}
	}
	for _, st := range run.Stages { // plan order is a topological order
		if st.Status != store.StatusPending && st.Status != store.StatusWaiting {
			continue
		}
		var waiting, failed []string
		for _, n := range st.Needs {
			ns := byKey[n]
			switch {
			case ns == nil:
			case !ns.Status.Terminal():
				waiting = append(waiting, n)
			case counted(ns):
				failed = append(failed, n)
			}
		}
		if len(waiting) > 0 {
			r.setPending(ctx, st, "waiting for needs: "+strings.Join(waiting, ", "))
			continue
		}
		ps := planStage[st.Key]
		runOn := pipeline.RunOnSuccess
		if ps != nil && ps.RunOn != "" {
			runOn = ps.RunOn
		}
		skip := ""
		switch runOn {
		case pipeline.RunOnSuccess:
			if len(failed) > 0 {
				skip = store.ReasonNeedsFailed
			}
		case pipeline.RunOnFailure:
			if len(failed) == 0 {
				skip = "run_on_failure_not_met"
			}
		}
		if skip != "" {
			if err := r.cfg.Store.UpdateStage(ctx, st.ID, store.AnyAttempt, store.StageUpdate{Status: store.StatusSkipped, Reason: skip}); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			st.Status, st.Reason = store.StatusSkipped, skip
			for _, step := range st.Steps {
				r.endStep(ctx, run.ID, st, step, store.StatusSkipped)
			}
			r.report(run, "runnel/"+st.Key, "skipped", "Skipped: "+skip)
			continue
		}
		if st.Approval == store.ApprovalWaiting {
			if st.Status == store.StatusPending {
				if err := r.cfg.Store.UpdateStage(ctx, st.ID, store.AnyAttempt, store.StageUpdate{Status: store.StatusWaiting}); err != nil && !errors.Is(err, store.ErrConflict) {
					return err
				}
				st.Status = store.StatusWaiting
			}
			r.setPending(ctx, st, "waiting for approval")
			continue
		}
		if st.Status == store.StatusWaiting {
			continue
		}
		if st.Concurrency != "" {
			free, err := r.groupFree(ctx, run, st)
			if err != nil {
				return err
			}
			if !free {
				r.setPending(ctx, st, "waiting for concurrency group "+st.Concurrency)
				continue
			}
		}
		if err := r.dispatch(ctx, run, st); err != nil {
			r.log.Error("dispatch failed", "run", run.ID, "stage", st.Key, "err", err)
			if err := r.endStageLocked(ctx, run, st, store.AnyAttempt, store.StatusError, ReasonDispatchFailed); err != nil {
				return err
			}
		}
	}
	return r.maybeFinishRun(ctx, run.ID)
}

// counted reports whether a terminal need counts as failed for the
// stages that need it: a failure, error or cancel, or a skip caused by a
// failure further up.
func counted(st *store.Stage) bool {
	switch st.Status {
	case store.StatusFailure, store.StatusError, store.StatusCanceled:
		return true
	case store.StatusSkipped:
		return st.Reason == store.ReasonNeedsFailed
	}
	return false
}

func (r *Runner) setPending(ctx context.Context, st *store.Stage, reason string) {
	if st.PendingReason == reason {
		return
	}
	st.PendingReason = reason
	if err := r.cfg.Store.SetStagePendingReason(ctx, st.ID, reason); err != nil && !errors.Is(err, store.ErrConflict) {
		r.log.Error("set pending reason", "stage", st.ID, "err", err)
	}
}

// groupFree reports whether st may take its concurrency group: no stage
// of the group in the repo is queued or running, and no earlier run of the
// repo still has an unfinished stage of the group (commit order).
func (r *Runner) groupFree(ctx context.Context, run *store.Run, st *store.Stage) (bool, error) {
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		return false, fmt.Errorf("concurrency group %s: %w", st.Concurrency, err)
	}
	for _, o := range runs {
		if o.RepoID != run.RepoID {
			continue
		}
		for _, os := range o.Stages {
			if os.ID == st.ID || os.Concurrency != st.Concurrency || os.Status.Terminal() {
				continue
			}
			if os.Status == store.StatusQueued || os.Status == store.StatusRunning {
				return false, nil
			}
			if o.Number < run.Number {
				return false, nil
			}
		}
	}
	return true, nil
}

// dispatch queues st with a new attempt and hands the job to the bus.
// Called with r.mu held.
func (r *Runner) dispatch(ctx context.Context, run *store.Run, st *store.Stage) error {
	if run.Plan == nil {
		full, err := r.cfg.Store.Run(ctx, run.ID)
		if err != nil {
			return err
		}
		run.Plan = full.Plan
	}
	var ps *pipeline.Stage
	if run.Plan != nil {
		for _, s := range run.Plan.Stages {
			if s.ID == st.Key {
				ps = s
			}
		}
	}
	if ps == nil {
		return fmt.Errorf("stage %s is not in the run's plan", st.Key)
	}
	repo, err := r.cfg.Store.RepoByID(ctx, run.RepoID)
	if err != nil {
		return fmt.Errorf("dispatch %s: %w", st.Key, err)
	}
	attempt, err := r.cfg.Store.QueueStage(ctx, st.ID)
	if err != nil {
		return err
	}
	st.Status, st.Attempt = store.StatusQueued, attempt
	job := &wire.Job{RunID: strconv.FormatInt(run.ID, 10), StageID: st.Key, Attempt: attempt, Stage: withInputs(ps, run.Inputs)}
	if repo.CloneURL != "" {
		job.Workspace = wire.Workspace{Kind: "git", URL: repo.CloneURL, Commit: run.Commit, Ref: run.Ref, Depth: 1}
	}
	// Report before handing the job over: an agent may start it (and
	// report "running") before the bus call returns.
	r.report(run, "runnel/"+st.Key, "pending", "Queued")
	if err := r.cfg.Bus.Publish(ctx, job); err != nil {
		return fmt.Errorf("dispatch %s attempt %d: %w", st.Key, attempt, err)
	}
	r.log.Info("stage queued", "run", run.ID, "stage", st.Key, "attempt", attempt)
	if why := r.agentReason(ps.Labels); why != "" {
		r.setPending(ctx, st, why)
	}
	return nil
}

// withInputs returns ps with the run's manual inputs in its env (the
// compiler adds them too; this keeps re-runs and older plans right).
func withInputs(ps *pipeline.Stage, inputs map[string]string) *pipeline.Stage {
	if len(inputs) == 0 {
		return ps
	}
	cp := *ps
	cp.Env = make(map[string]string, len(ps.Env)+len(inputs))
	for k, v := range ps.Env {
		cp.Env[k] = v
	}
	for k, v := range inputs {
		name := "RUNNEL_INPUT_" + strings.ToUpper(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, k))
		if _, ok := cp.Env[name]; !ok {
			cp.Env[name] = v
		}
	}
	return &cp
}

// agentReason explains why a job for labels may wait, or "".
func (r *Runner) agentReason(labels map[string]string) string {
	capable, busy := 0, 0
	for _, a := range r.cfg.Bus.Agents() {
		if a.Lost {
			continue
		}
		ok := true
		for k, v := range labels {
			if a.Labels[k] != v {
				ok = false
			}
		}
		if !ok {
			continue
		}
		capable++
		if a.Capacity > 0 && a.Running >= a.Capacity {
			busy++
		}
	}
	switch {
	case capable == 0:
		kv := make([]string, 0, len(labels))
		for k, v := range labels {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		if len(kv) == 0 {
			return "no agent connected"
		}
		return "no agent with labels " + strings.Join(kv, ",")
	case busy == capable:
		return "all capable agents busy"
	}
	return ""
}

// maybeFinishRun ends the run when every stage is terminal.
func (r *Runner) maybeFinishRun(ctx context.Context, runID int64) error {
	run, err := r.cfg.Store.Run(ctx, runID)
	if err != nil {
		return err
	}
	if run.Status.Terminal() {
		return nil
	}
	result := store.StatusSuccess
	for _, st := range run.Stages {
		if !st.Status.Terminal() {
			return nil
		}
		switch st.Status {
		case store.StatusFailure, store.StatusError:
			result = store.StatusFailure
		case store.StatusCanceled:
			if result == store.StatusSuccess {
				result = store.StatusFailure
			}
		}
	}
	if err := r.cfg.Store.UpdateRun(ctx, run.ID, result, ""); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return fmt.Errorf("finish run %d: %w", run.ID, err)
	}
	r.log.Info("run finished", "run", run.ID, "status", result)
	run, err = r.cfg.Store.Run(ctx, run.ID)
	if err != nil {
		return err
	}
	r.report(run, "runnel", string(result), "Run "+string(result))
	r.runMetrics(run.Repo, run)
	return nil
}

func (r *Runner) runMetrics(repo string, run *store.Run) {
	if r.cfg.Metrics == nil {
		return
	}
	queued := run.QueuedAt
	if queued.IsZero() {
		queued = run.CreatedAt
	}
	r.cfg.Metrics.RunFinished(repo, string(run.Status), queued, run.StartedAt, run.FinishedAt)
}

// report enqueues a commit status; state is a run/stage status.
func (r *Runner) report(run *store.Run, context, state, desc string) {
	if r.cfg.Statuses == nil || run.Commit == "" {
		return
	}
	s := scm.Status{Repo: run.Repo, Commit: run.Commit, State: statusq.State(state), Context: context,
		Description: scm.Clip(desc, 140), TargetURL: fmt.Sprintf("%s/runs/%d", r.cfg.BaseURL, run.ID)}
	if err := r.cfg.Statuses.Enqueue(s); err != nil {
		r.log.Warn("enqueue commit status", "run", run.ID, "context", context, "err", err)
	}
}
