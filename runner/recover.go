package runner

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

// Start reconciles runs left unfinished by a previous server process and
// starts the lease watchdog. Stages that were queued stay so: their jobs
// wait in the bus's durable queue, and a job the previous process may
// have died before handing to the bus (Published below Attempt) is
// published again. Stages that were running get one lease period to
// report before they count as lost.
func (r *Runner) Start(ctx context.Context) error {
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		return fmt.Errorf("recover unfinished runs: %w", err)
	}
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.AgentsFrom(func() (int, int) {
			agents := r.Agents()
			capacity := 0
			for _, a := range agents {
				capacity += a.Capacity
			}
			return len(agents), capacity
		})
	}
	r.countRunning(runs)
	now := time.Now()
	for _, run := range runs {
		for _, st := range run.Stages {
			if leased(st) {
				r.touch(run.ID, st.Key, st.Attempt, st.Agent, now)
			}
		}
		r.republish(ctx, run)
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

// republish publishes again the job of every queued stage of run whose
// publish was not recorded: the previous process may have stored the
// stage as queued and died before the bus had its job.
func (r *Runner) republish(ctx context.Context, run *store.Run) {
	for _, st := range run.Stages {
		if st.Status != store.StatusQueued || st.Published >= st.Attempt {
			continue
		}
		log := r.log.With("run", run.ID, "stage", st.Key, "attempt", st.Attempt)
		ps, err := r.planStage(ctx, run, st)
		if err == nil {
			err = r.publish(ctx, run, st, ps)
		}
		if err != nil {
			// Not stuck: the stage ends, and the run with it.
			log.Error("recovery: publish queued job", "err", err)
			if err := r.endStage(ctx, run, st, st.Attempt, store.StatusError, rules.ReasonDispatchFailed); err != nil {
				log.Error("recovery: end stage", "err", err)
			}
			continue
		}
		log.Info("recovery: job published again")
	}
}

// countRunning sets the running-stage gauges from the store's unfinished
// runs: at start, and at every lease check so that the gauges that
// follow stage starts and ends cannot drift.
func (r *Runner) countRunning(runs []*store.Run) {
	if r.cfg.Metrics == nil {
		return
	}
	n := 0
	for _, run := range runs {
		for _, st := range run.Stages {
			if st.Status == store.StatusRunning {
				n++
			}
		}
	}
	r.cfg.Metrics.StagesRunning(n)
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

// observeLag records the age of an update being applied (its agent's
// time stamp against now): how far behind the update stream is.
func (r *Runner) observeLag(sent, now time.Time) {
	if sent.IsZero() {
		return
	}
	r.seenMu.Lock()
	r.lag, r.lagAt = max(now.Sub(sent), 0), now
	r.seenMu.Unlock()
}

// leaseExpired is the watchdog's rule: a stage whose attempt last
// reported at last has lost its lease when it was silent for the lease
// timeout plus the lag of the update stream, as last measured (lagAt) if
// that was within a lease. A server that restarts reads what agents sent
// meanwhile in stream order, heartbeats behind log chunks: while it is
// behind, silence may be its own, not the agent's. The lag counts up to
// one lease more, so clocks that disagree cannot hold a stage for ever.
func leaseExpired(now, last time.Time, lease, lag time.Duration, lagAt time.Time) bool {
	if now.Sub(lagAt) >= lease {
		lag = 0
	}
	return now.Sub(last) >= lease+min(max(lag, 0), lease)
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

// watchdog ends or re-queues stages whose agent stopped reporting, and
// keeps the pending reasons of queued stages current. It is not a
// dispatch loop: dispatch happens on events.
func (r *Runner) watchdog() {
	period := r.cfg.LeaseTimeout / 5
	if period < time.Second {
		period = time.Second
	}
	t := time.NewTicker(period)
	defer t.Stop()
	pt := time.NewTicker(pendingRefresh)
	defer pt.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.checkLeases(context.Background())
		case <-pt.C:
			r.refreshPending(context.Background())
		}
	}
}

func (r *Runner) checkLeases(ctx context.Context) {
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		r.log.Error("lease check: list runs", "err", err)
		return
	}
	r.countRunning(runs)
	// Each running stage is judged by its own reports only: an agent
	// that is present and busy says nothing about a stage it dropped.
	now := time.Now()
	running := map[stageRef]bool{}
	for _, run := range runs {
		for _, st := range run.Stages {
			if !leased(st) {
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
			r.seenMu.Lock()
			lag, lagAt := r.lag, r.lagAt
			r.seenMu.Unlock()
			if !leaseExpired(now, l.last, r.cfg.LeaseTimeout, lag, lagAt) {
				continue
			}
			r.agentLost(ctx, run, st)
		}
	}
	r.checkUnwinding(ctx)
	// Stages that ended by a path that did not forget them.
	r.seenMu.Lock()
	for ref := range r.seen {
		if !running[ref] {
			delete(r.seen, ref)
		}
	}
	r.seenMu.Unlock()
}

// leased reports whether st has an attempt an agent holds: running, or
// queued with a granted claim whose "started" is not applied yet.
func leased(st *store.Stage) bool {
	return st.Status == store.StatusRunning || st.Status == store.StatusQueued && st.Claim != ""
}

// MaxAttempts is how many attempts a stage gets whose agents go silent:
// after the last the stage ends error/agent_lost.
const MaxAttempts = 5

// agentLost handles a stage whose current attempt went silent for a
// lease period: it tells the attempt to stop (its agent may only be cut
// off; it stops on its own before the lease ends) and queues the stage
// as a new attempt, or, after MaxAttempts, ends it error/agent_lost.
func (r *Runner) agentLost(ctx context.Context, run *store.Run, st *store.Stage) {
	log := r.log.With("run", run.ID, "stage", st.Key, "attempt", st.Attempt, "agent", st.Agent)
	c := wire.Cancel{RunID: strconv.FormatInt(run.ID, 10), StageID: st.Key, Attempt: st.Attempt, Reason: rules.ReasonAgentLost}
	if err := r.cfg.Bus.Cancel(ctx, c); err != nil {
		log.Warn("cancel lost attempt", "err", err)
	}
	r.forget(run.ID, st.Key)
	r.finishStepLogs(run.ID, st)
	if st.Attempt < MaxAttempts {
		err := r.retry(ctx, run, st)
		if err == nil {
			return
		}
		if refused(err) {
			log.Info("lost attempt not retried: the stage moved on", "err", err)
			return
		}
		log.Error("retry lost attempt", "err", err)
	}
	log.Warn("agent lost: ending stage")
	if err := r.endStage(ctx, run, st, st.Attempt, store.StatusError, rules.ReasonAgentLost); err != nil {
		// The next lease check tries again: the stage is still running.
		log.Error("end lost stage", "err", err)
	}
}

// retry queues st, whose current attempt was lost, as a new attempt and
// publishes its job; an error after the stage was queued (the publish
// failed) leaves st at the new attempt, for the caller to end.
func (r *Runner) retry(ctx context.Context, run *store.Run, st *store.Stage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps, err := r.planStage(ctx, run, st)
	if err != nil {
		return err
	}
	lost := st.Attempt
	attempt, err := r.cfg.Store.RetryStage(ctx, st.ID, lost)
	if err != nil {
		return err
	}
	st.Status, st.Attempt, st.Claim, st.Agent = store.StatusQueued, attempt, "", ""
	r.log.Warn("agent lost: stage queued again", "run", run.ID, "stage", st.Key, "lost_attempt", lost, "attempt", attempt)
	r.setPending(ctx, st, fmt.Sprintf("attempt %d lost its agent; retrying", lost))
	return r.publish(ctx, run, st, ps)
}
