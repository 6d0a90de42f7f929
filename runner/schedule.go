package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

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
		if err := r.advance(ctx, run, st, rules.Next(ruleStage(st, byKey, planStage[st.Key]))); err != nil {
			return err
		}
	}
	r.setRunPending(ctx, run)
	return r.maybeFinishRun(ctx, run.ID)
}

// ruleStage describes st, which has not started, for rules.Next. A need
// that is not a stage of the run does not hold it.
func ruleStage(st *store.Stage, byKey map[string]*store.Stage, ps *pipeline.Stage) rules.Stage {
	s := rules.Stage{Approval: st.Approval == store.ApprovalWaiting}
	if ps != nil {
		s.RunOn = ps.RunOn
	}
	for _, n := range st.Needs {
		if ns := byKey[n]; ns != nil {
			s.Needs = append(s.Needs, rules.Need{ID: n, Done: ns.Status.Terminal(), Status: rules.Status(ns.Status), Reason: ns.Reason})
		}
	}
	return s
}

// advance carries out rules.Next's decision d for st; a stage free to
// start still waits for its concurrency group, then is dispatched.
func (r *Runner) advance(ctx context.Context, run *store.Run, st *store.Stage, d rules.Decision) error {
	switch d.Action {
	case rules.Wait:
		r.setPending(ctx, st, rules.PendingReason(rules.Hold{Needs: d.Needs}, nil))
		return nil
	case rules.Skip:
		return r.skipStage(ctx, run, st, d.Reason)
	}
	if held, err := r.holdUntrusted(ctx, run, st); err != nil || held {
		return err
	}
	switch d.Action {
	case rules.AwaitApproval:
		if st.Status == store.StatusPending {
			if err := r.cfg.Store.UpdateStage(ctx, st.ID, store.AnyAttempt, store.StageUpdate{Status: store.StatusWaiting}); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			st.Status = store.StatusWaiting
		}
		r.setPending(ctx, st, rules.PendingReason(rules.Hold{Approval: true}, nil))
		return nil
	}
	if st.Status == store.StatusWaiting {
		return nil
	}
	if st.Concurrency != "" {
		free, err := r.groupFree(ctx, run, st)
		if err != nil {
			return err
		}
		if !free {
			r.setPending(ctx, st, rules.PendingReason(rules.Hold{Concurrency: st.Concurrency}, nil))
			return nil
		}
	}
	if err := r.dispatch(ctx, run, st); err != nil {
		r.log.Error("dispatch failed", "run", run.ID, "stage", st.Key, "err", err)
		return r.endStageLocked(ctx, run, st, store.AnyAttempt, store.StatusError, rules.ReasonDispatchFailed)
	}
	return nil
}

// skipStage ends st, which never started, as skipped for reason.
func (r *Runner) skipStage(ctx context.Context, run *store.Run, st *store.Stage, reason string) error {
	if err := r.cfg.Store.UpdateStage(ctx, st.ID, store.AnyAttempt, store.StageUpdate{Status: store.StatusSkipped, Reason: reason}); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	st.Status, st.Reason = store.StatusSkipped, reason
	for _, step := range st.Steps {
		r.endStep(ctx, run.ID, st, step, store.StatusSkipped)
	}
	r.report(run, "runnel/"+st.Key, "skipped", "Skipped: "+reason)
	return nil
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

// groupFree reports whether st may take its concurrency group
// (rules.GroupFree) among the unfinished runs of its repository.
func (r *Runner) groupFree(ctx context.Context, run *store.Run, st *store.Stage) (bool, error) {
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		return false, fmt.Errorf("concurrency group %s: %w", st.Concurrency, err)
	}
	var others []rules.GroupHolder
	for _, o := range runs {
		if o.RepoID != run.RepoID {
			continue
		}
		for _, os := range o.Stages {
			if os.ID == st.ID || os.Concurrency != st.Concurrency || os.Status.Terminal() {
				continue
			}
			started := os.Status == store.StatusQueued || os.Status == store.StatusRunning
			others = append(others, rules.GroupHolder{RunNumber: o.Number, Started: started})
		}
	}
	return rules.GroupFree(run.Number, others), nil
}

// Granter hands a job of st (run as attempt) its access to the artifact
// store, or nil when the stage moves no files (Config.Transfers).
type Granter interface {
	Grant(run *store.Run, st *pipeline.Stage, attempt int) *wire.Transfer
}

// dispatch queues st with a new attempt and hands the job to the bus.
// Called with r.mu held.
func (r *Runner) dispatch(ctx context.Context, run *store.Run, st *store.Stage) error {
	ps, err := r.planStage(ctx, run, st)
	if err != nil {
		return err
	}
	attempt, err := r.cfg.Store.QueueStage(ctx, st.ID)
	if err != nil {
		return err
	}
	st.Status, st.Attempt = store.StatusQueued, attempt
	// Report before handing the job over: an agent may start it (and
	// report "running") before the bus call returns.
	r.report(run, "runnel/"+st.Key, "pending", "Queued")
	if err := r.publish(ctx, run, st, ps); err != nil {
		return err
	}
	r.log.Info("stage queued", "run", run.ID, "stage", st.Key, "attempt", attempt)
	if why := rules.PendingReason(rules.Hold{Queued: true, Labels: ps.Labels}, r.agentLoads()); why != "" {
		r.setPending(ctx, st, why)
	}
	return nil
}

// planStage returns the plan's stage of st.
func (r *Runner) planStage(ctx context.Context, run *store.Run, st *store.Stage) (*pipeline.Stage, error) {
	if run.Plan == nil {
		full, err := r.cfg.Store.Run(ctx, run.ID)
		if err != nil {
			return nil, err
		}
		run.Plan = full.Plan
	}
	if run.Plan != nil {
		for _, s := range run.Plan.Stages {
			if s.ID == st.Key {
				return s, nil
			}
		}
	}
	return nil, fmt.Errorf("stage %s is not in the run's plan", st.Key)
}

// publish hands the job of st's current attempt to the bus and records
// that the bus has it. The job is made from the stored run alone, so a
// publish repeated after a crash (Start) sends the same job, and the bus
// drops the copy (wire.JobMsgID).
func (r *Runner) publish(ctx context.Context, run *store.Run, st *store.Stage, ps *pipeline.Stage) error {
	src := run.SourceURL
	if src == "" {
		// A run from before sources were stored with runs.
		repo, err := r.cfg.Store.RepoByID(ctx, run.RepoID)
		if err != nil {
			return fmt.Errorf("dispatch %s: %w", st.Key, err)
		}
		src = repo.CloneURL
	}
	job := &wire.Job{RunID: strconv.FormatInt(run.ID, 10), StageID: st.Key, Attempt: st.Attempt, Stage: withInputs(ps, run.Inputs),
		Priority: priority(st)}
	if src != "" {
		job.Workspace = wire.Workspace{Kind: "git", URL: src, Commit: run.Commit, Ref: run.Ref, Depth: 1}
	}
	if r.cfg.Transfers != nil {
		job.Transfer = r.cfg.Transfers.Grant(run, ps, st.Attempt)
	}
	var err error
	if job.Secrets, job.Withheld, err = r.jobSecrets(ctx, run, ps); err != nil {
		return fmt.Errorf("dispatch %s: secrets: %w", st.Key, err)
	}
	if err := r.cfg.Bus.Publish(ctx, job); err != nil {
		return fmt.Errorf("dispatch %s attempt %d: %w", st.Key, st.Attempt, err)
	}
	if err := r.cfg.Store.MarkPublished(ctx, st.ID, st.Attempt); err != nil {
		// Harmless: the next start publishes the job again, and the bus
		// or the claim drops the copy.
		r.log.Warn("record publish", "run", run.ID, "stage", st.Key, "err", err)
	}
	st.Published = st.Attempt
	return nil
}

// priority reports whether st's job goes ahead of the queue: a stage
// holding a concurrency group (every later run of the group waits for
// it, so behind a long queue it would starve the group) or a retry (it
// has waited once already).
func priority(st *store.Stage) bool {
	return st.Concurrency != "" || st.Attempt > 1
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
	r.recoverDeployments(ctx, run)
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

// scheduleRepoLocked re-evaluates other unfinished runs of a repo (a
// concurrency group was released).
func (r *Runner) scheduleRepoLocked(ctx context.Context, repoID, except int64) {
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		r.log.Error("schedule repo", "err", err)
		return
	}
	for _, o := range runs {
		if o.RepoID == repoID && o.ID != except {
			if err := r.scheduleLocked(ctx, o.ID); err != nil {
				r.log.Error("schedule run", "run", o.ID, "err", err)
			}
		}
	}
}
