package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/store"
)

// LogKey returns the log of step index step of a stage attempt.
func LogKey(runID int64, stageKey string, attempt, step int) logstore.Key {
	return logstore.Key{Run: strconv.FormatInt(runID, 10), Stage: stageKey, Attempt: attempt, Step: strconv.Itoa(step)}
}

// Handler returns what feeds agents' updates, log chunks and claims into
// r: pass it to the bus dispatcher's Run (it is a natsserver.Handler).
func (r *Runner) Handler() BusHandler { return BusHandler{r} }

// BusHandler hands what agents send to its Runner.
type BusHandler struct{ r *Runner }

// Update applies an agent's update (Runner.HandleUpdate).
func (h BusHandler) Update(ctx context.Context, u *wire.Update) error {
	return h.r.HandleUpdate(ctx, u)
}

// Log stores a chunk of a step's output (Runner.HandleLog).
func (h BusHandler) Log(ctx context.Context, c *wire.LogChunk) error { return h.r.HandleLog(ctx, c) }

// Claim answers an agent's claim of a job (Runner.HandleClaim).
func (h BusHandler) Claim(ctx context.Context, c *wire.Claim) *wire.ClaimReply {
	return h.r.HandleClaim(ctx, c)
}

// HandleUpdate applies an agent's update. An update of an attempt that is
// not the current one is ignored and its attempt told to stop (wire rule
// 6); attempts are made by the server alone (dispatch and retry), as are updates that
// the state machine refuses. u.Agent must be the authenticated sender (the
// dispatcher checks it against the subject): an update of the current
// attempt from another agent than the one whose claim was granted or
// whose "started" was accepted (the stage's Agent) is ignored, without a cancel, which
// would stop the rightful agent too; so is anything but a "started" for
// an attempt nobody started yet. KindLost is the server's own. It returns an error when the store failed
// (reading, or applying the update), so the bus delivers it again; every
// step of applying an update is idempotent. Once handed an update it
// applies it to the end, even when ctx ends (a shutdown), within
// applyTimeout: a stage end must not stop half applied. It is safe for
// concurrent use.
func (r *Runner) HandleUpdate(ctx context.Context, u *wire.Update) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	runID, err := strconv.ParseInt(u.RunID, 10, 64)
	if err != nil {
		r.log.Warn("update for a run id that is not ours", "run", u.RunID)
		return nil
	}
	r.observeLag(u.Time, time.Now())
	// A heartbeat of the attempt known to run the stage only renews its
	// lease: no database read or write. Others (unknown attempt, a stage
	// that ended) take the full path below, which fences them.
	if u.Kind == wire.KindHeartbeat && r.beat(runID, u.StageID, u.Attempt, u.Agent, time.Now()) {
		return nil
	}
	log := r.log.With("run", runID, "stage", u.StageID, "attempt", u.Attempt, "agent", u.Agent, "kind", u.Kind)
	run, err := r.cfg.Store.Run(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("update for unknown run")
		return nil
	}
	if err != nil {
		return fmt.Errorf("update of run %d: %w", runID, err)
	}
	var st *store.Stage
	for _, s := range run.Stages {
		if s.Key == u.StageID {
			st = s
		}
	}
	if st == nil {
		log.Warn("update for unknown stage")
		return nil
	}
	if done, err := r.unwindingUpdate(ctx, run, st, u); done {
		return err
	}
	switch v := updateVerdict(st, u); v {
	case foreign:
		// Not stale either, so no cancel: it would reach the agent that
		// does run the attempt.
		log.Warn("update from an agent that does not run the attempt ignored", "stage_agent", st.Agent)
		return nil
	case endAgain:
		// The stage's end is stored, but what follows it (the next
		// stages, the run's end) may not be, if the store failed after
		// it. Scheduling is idempotent.
		log.Debug("stage end delivered again; re-evaluating the run")
		if err := r.schedule(ctx, run.ID); err != nil {
			return fmt.Errorf("re-evaluate run %d after the end of %s: %w", run.ID, st.Key, err)
		}
		return nil
	case stale, staleEnd:
		log.Info("stale update ignored", "current_attempt", st.Attempt, "status", st.Status)
		if v == stale {
			c := wire.Cancel{RunID: u.RunID, StageID: u.StageID, Attempt: u.Attempt, Reason: "stale attempt"}
			if err := r.cfg.Bus.Cancel(ctx, c); err != nil {
				log.Warn("cancel stale attempt", "err", err)
			}
		}
		return nil
	}
	r.touch(run.ID, st.Key, st.Attempt, u.Agent, time.Now())
	return r.apply(ctx, run, st, u, log)
}

// verdict is what HandleUpdate does with an update (updateVerdict).
type verdict int

const (
	apply    verdict = iota // the current attempt's owner speaks: apply it
	foreign                 // another agent speaks for the current attempt: ignore it
	endAgain                // the current attempt's end, delivered again: schedule the run again
	stale                   // an older attempt, or a stage that ended: ignore it, tell it to stop
	staleEnd                // the end of an older attempt: ignore it
)

// updateVerdict decides whether u is applied to st, over plain values:
// only the agent that runs st's current attempt (ownsAttempt) changes
// it; the server's own KindLost speaks for any agent.
func updateVerdict(st *store.Stage, u *wire.Update) verdict {
	end := u.Kind == wire.KindFinished || u.Kind == wire.KindLost
	current := u.Attempt == st.Attempt
	switch {
	case u.Kind != wire.KindLost && current && !ownsAttempt(st, u):
		return foreign
	case end && current && st.Status.Terminal():
		return endAgain
	case (!current || st.Status.Terminal()) && end:
		return staleEnd
	case !current || st.Status.Terminal():
		return stale
	}
	return apply
}

// apply applies u, of the attempt that runs st, by its kind. An error
// means the store failed and the bus should deliver u again; an update
// the state machine refuses is logged and dropped.
func (r *Runner) apply(ctx context.Context, run *store.Run, st *store.Stage, u *wire.Update, log *slog.Logger) error {
	fence := func(err error) error {
		if err == nil {
			return nil
		}
		if refused(err) {
			log.Info("update refused by the state machine", "err", err)
			return nil
		}
		return fmt.Errorf("apply %s update of run %d stage %s: %w", u.Kind, run.ID, st.Key, err)
	}
	step := -1
	for _, s := range st.Steps {
		if u.Step != "" && s.Name == u.Step {
			step = s.Position
		}
	}
	switch u.Kind {
	case wire.KindLost:
		r.forget(run.ID, st.Key)
		r.finishStepLogs(run.ID, st)
		return r.endStage(ctx, run, st, u.Attempt, store.StatusError, rules.ReasonAgentLost)
	case wire.KindHeartbeat:
	case wire.KindStarted:
		return fence(r.stageStarted(ctx, run, st, u, log))
	case wire.KindStepStarted, wire.KindStepFinished:
		if step < 0 {
			log.Warn("update for unknown step", "step", u.Step)
			return nil
		}
		return r.stepUpdate(ctx, run, st, step, u, log, fence)
	case wire.KindFinished:
		status, reason := stageStatus(u.Status, r.maskSecrets(ctx, run, u.Reason))
		return r.endStage(ctx, run, st, u.Attempt, status, reason)
	case wire.KindDeploy:
		return r.deployProgress(ctx, run, st, u.Deploy)
	default:
		log.Warn("update of unknown kind ignored")
	}
	return nil
}

// stageStarted marks st running on u.Agent and, for the run's first
// stage, the run running too.
func (r *Runner) stageStarted(ctx context.Context, run *store.Run, st *store.Stage, u *wire.Update, log *slog.Logger) error {
	if err := r.cfg.Store.UpdateStage(ctx, st.ID, u.Attempt, store.StageUpdate{Status: store.StatusRunning, Agent: u.Agent}); err != nil {
		return err
	}
	if run.Status == store.StatusPending {
		err := r.cfg.Store.UpdateRun(ctx, run.ID, store.StatusRunning, "")
		if err != nil && !errors.Is(err, store.ErrConflict) {
			log.Error("mark run running", "err", err)
		}
		if err == nil && r.cfg.Metrics != nil {
			r.observeQueueWait(ctx, run, u.Time)
		}
		r.report(run, "runnel", "running", "Running")
	}
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.StageStarted()
	}
	r.report(run, "runnel/"+st.Key, "running", "Running on "+u.Agent)
	return nil
}

// observeQueueWait records the run's queue wait, once: when its first
// stage starts (metrics.Rebuild restores the same sample from the stored
// start).
func (r *Runner) observeQueueWait(ctx context.Context, run *store.Run, at time.Time) {
	queued := run.QueuedAt
	if queued.IsZero() {
		queued = run.CreatedAt
	}
	started := at
	if started.IsZero() {
		started = time.Now()
	}
	if fresh, err := r.cfg.Store.Run(ctx, run.ID); err == nil && !fresh.StartedAt.IsZero() {
		started = fresh.StartedAt
	}
	r.cfg.Metrics.QueueWait(started.Sub(queued))
}

// stepUpdate stores a step's start or end; an end closes its log.
func (r *Runner) stepUpdate(ctx context.Context, run *store.Run, st *store.Stage, step int, u *wire.Update, log *slog.Logger, fence func(error) error) error {
	key := LogKey(run.ID, st.Key, u.Attempt, step)
	if u.Kind == wire.KindStepStarted {
		return fence(r.cfg.Store.UpdateStep(ctx, st.ID, u.Attempt, step, store.StepUpdate{Status: store.StatusRunning, LogKey: key.String()}))
	}
	su := store.StepUpdate{Status: stepStatus(u.Status), Attempts: max(u.Attempts, 1)}
	if u.Status != rules.Skipped {
		code := u.ExitCode
		su.ExitCode = &code
	}
	if err := fence(r.cfg.Store.UpdateStep(ctx, st.ID, u.Attempt, step, su)); err != nil {
		return err
	}
	if err := r.cfg.Logs.EndStep(key, int64(u.LogChunks)); err != nil {
		log.Warn("finish step log", "err", err)
	}
	return nil
}

// ownsAttempt reports whether u comes from the agent that runs st's
// current attempt: the one whose "started" was accepted, or, before
// anyone's was, any agent's "started".
func ownsAttempt(st *store.Stage, u *wire.Update) bool {
	if st.Agent == "" {
		return u.Kind == wire.KindStarted
	}
	return u.Agent == st.Agent
}

// HandleLog stores a chunk of a step's output. Chunks of steps the run
// does not have are dropped, and so are chunks that are not from the
// agent running the stage's current attempt (c.Agent, set by the
// dispatcher from the subject; see HandleUpdate); an error (the log store
// failed) asks the bus to deliver the chunk again.
func (r *Runner) HandleLog(ctx context.Context, c *wire.LogChunk) error {
	runID, err := strconv.ParseInt(c.RunID, 10, 64)
	if err != nil {
		return nil
	}
	idx, owner, err := r.steps.index(ctx, r.cfg.Store, runID, c.StageID, c.Step, c.Attempt, c.Agent)
	if err != nil {
		return err
	}
	if idx < 0 {
		return nil
	}
	if !owner {
		r.log.Warn("log chunk from an agent that does not run the attempt dropped",
			"run", runID, "stage", c.StageID, "attempt", c.Attempt, "agent", c.Agent, "step", c.Step)
		return nil
	}
	key := LogKey(runID, c.StageID, c.Attempt, idx)
	if c.EOF {
		err = r.cfg.Logs.End(key, int64(c.Seq), c.Data)
	} else if len(c.Data) > 0 {
		err = r.cfg.Logs.Append(key, int64(c.Seq), c.Data)
	}
	if err != nil {
		return fmt.Errorf("store log %s: %w", key, err)
	}
	return nil
}

// stepCache maps a run's stage's step names (what agents report) to step
// positions (what the store and the log keys use), and knows the stage's
// current attempt and its agent, so log chunks need no query each. Its
// zero value is ready.
type stepCache struct {
	mu     sync.Mutex
	stages map[string]stageSteps // "run/stage"
}

type stageSteps struct {
	names   []string // step names in order
	attempt int      // the current attempt when loaded
	agent   string   // its agent ("" while nobody started it)
}

// index returns the position of step in the stage, or -1, and whether
// agent runs attempt, the stage's current attempt. An entry that does not
// name attempt and agent is reloaded: a newer attempt may have started.
func (c *stepCache) index(ctx context.Context, st *store.Store, runID int64, stageKey, step string, attempt int, agent string) (int, bool, error) {
	k := strconv.FormatInt(runID, 10) + "/" + stageKey
	c.mu.Lock()
	info, ok := c.stages[k]
	c.mu.Unlock()
	if !ok || info.attempt != attempt || info.agent != agent {
		run, err := st.Run(ctx, runID)
		if errors.Is(err, store.ErrNotFound) {
			return -1, false, nil
		}
		if err != nil {
			return -1, false, fmt.Errorf("steps of run %d: %w", runID, err)
		}
		info = stageSteps{}
		for _, s := range run.Stages {
			if s.Key == stageKey {
				info.attempt, info.agent = s.Attempt, s.Agent
				for _, step := range s.Steps {
					info.names = append(info.names, step.Name)
				}
			}
		}
		c.mu.Lock()
		if c.stages == nil || len(c.stages) > 10000 {
			c.stages = map[string]stageSteps{}
		}
		c.stages[k] = info
		c.mu.Unlock()
	}
	owner := info.agent != "" && info.agent == agent && info.attempt == attempt
	for i, n := range info.names {
		if n == step {
			return i, owner, nil
		}
	}
	return -1, owner, nil
}

func stepStatus(s rules.Status) store.Status {
	switch s {
	case rules.Success:
		return store.StatusSuccess
	case rules.Failure, rules.Timeout:
		return store.StatusFailure
	case rules.Canceled:
		return store.StatusCanceled
	case rules.Skipped:
		return store.StatusSkipped
	}
	return store.StatusError
}

func stageStatus(s rules.Status, reason string) (store.Status, string) {
	switch s {
	case rules.Success:
		return store.StatusSuccess, ""
	case rules.Failure:
		return store.StatusFailure, reason
	case rules.Timeout:
		return store.StatusFailure, rules.ReasonTimeout
	case rules.Canceled:
		return store.StatusCanceled, reason
	case rules.Skipped:
		return store.StatusSkipped, reason
	}
	if reason == "" {
		reason = "error"
	}
	return store.StatusError, reason
}

// applyTimeout bounds the store work for one update or stage end once
// begun; it runs on even when its caller's context ends.
const applyTimeout = 20 * time.Second

// refused reports whether a store error is the state machine's or the
// fence's refusal (expected with late or duplicated messages), as opposed
// to a failure of the store.
func refused(err error) bool {
	return errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)
}

// endStep moves a step whose end nobody reported to status to, whatever
// the attempt. A refusal (the step ended meanwhile, a newer attempt owns
// the stage) is expected and logged at debug level; a store failure is
// logged as a warning, since it leaves the step unfinished in a finished
// stage.
func (r *Runner) endStep(ctx context.Context, runID int64, st *store.Stage, step *store.Step, to store.Status) {
	err := r.cfg.Store.UpdateStep(ctx, st.ID, store.AnyAttempt, step.Position, store.StepUpdate{Status: to})
	if err == nil {
		return
	}
	log := r.log.With("run", runID, "stage", st.Key, "step", step.Name, "status", to, "err", err)
	if errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrConflict) {
		log.Debug("step end refused")
		return
	}
	log.Warn("end step")
}

// endStage moves a stage to a terminal status and re-evaluates the run.
// It returns an error if the store failed (a refusal is not one).
func (r *Runner) endStage(ctx context.Context, run *store.Run, st *store.Stage, attempt int, status store.Status, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endStageLocked(ctx, run, st, attempt, status, reason)
}

// endStageLocked is endStage with r.mu held. Once begun it finishes even
// if ctx ends (within applyTimeout): the stage's end, its steps' ends and
// the scheduling that follows belong together.
func (r *Runner) endStageLocked(ctx context.Context, run *store.Run, st *store.Stage, attempt int, status store.Status, reason string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	log := r.log.With("run", run.ID, "stage", st.Key, "attempt", st.Attempt)
	if len(reason) > 500 {
		reason = reason[:500]
	}
	err := r.cfg.Store.UpdateStage(ctx, st.ID, attempt, store.StageUpdate{Status: status, Reason: reason})
	if err != nil {
		if refused(err) {
			log.Info("stage end refused", "status", status, "err", err)
			return nil
		}
		return fmt.Errorf("end stage %s of run %d as %s: %w", st.Key, run.ID, status, err)
	}
	log.Info("stage finished", "status", status, "reason", reason)
	r.forget(run.ID, st.Key)
	// Steps that never reported their end (lost agent, cancel) end with
	// the stage so nothing is left pending or running.
	full, err := r.cfg.Store.Stage(ctx, st.ID)
	if err != nil {
		log.Warn("load steps to end with the stage", "err", err)
	} else {
		for _, step := range full.Steps {
			if step.Status.Terminal() {
				continue
			}
			to := store.StatusSkipped
			if step.Status == store.StatusRunning {
				to = status
				if to == store.StatusSuccess {
					to = store.StatusError
				}
			}
			r.endStep(ctx, run.ID, st, step, to)
		}
		st = full
	}
	r.finishStepLogs(run.ID, st)
	r.report(run, "runnel/"+st.Key, string(status), "Stage "+string(status))
	if r.cfg.Metrics != nil && !st.StartedAt.IsZero() {
		// The stored finish time, as Rebuild will read it after a restart.
		finished := st.FinishedAt
		if finished.IsZero() {
			finished = time.Now()
		}
		r.cfg.Metrics.StageFinished(run.Repo, string(status), st.StartedAt, finished)
	}
	if st.Environment != "" {
		if fresh, err := r.cfg.Store.Run(ctx, run.ID); err != nil {
			log.Error("load run to record its deployment", "err", err)
		} else {
			r.recordDeployment(ctx, fresh, st.Environment)
		}
	}
	serr := r.scheduleLocked(ctx, run.ID)
	if st.Concurrency != "" {
		r.scheduleRepoLocked(ctx, run.RepoID, run.ID)
	}
	if serr != nil {
		return fmt.Errorf("schedule run %d after the end of %s: %w", run.ID, st.Key, serr)
	}
	return nil
}

func (r *Runner) finishStepLogs(runID int64, st *store.Stage) {
	for i := range st.Steps {
		if err := r.cfg.Logs.Finish(LogKey(runID, st.Key, st.Attempt, i)); err != nil {
			r.log.Warn("finish log", "run", runID, "stage", st.Key, "err", err)
		}
	}
}
