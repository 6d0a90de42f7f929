package runner

import (
	"context"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/runner/store"
)

// A deploy stage cancelled during its release is not the end of its
// deployment: its agent stops the release and rolls it back (each
// provider's cancel), reporting as it goes. The deployment stays in
// progress (phase canceling, then the agent's phases) until the agent's
// final report (rolled_back, or failed), the attempt's end without one,
// or a lease period without a word from the agent (it died: the
// deployment ends failure at the last reported traffic). See
// docs/deploy.md#cancel.

// phaseCanceling is a release's phase from its stage's cancel to the
// agent's next report.
const phaseCanceling = "canceling"

// cancelledRelease reports whether cur is the release of a stage of group that
// was cancelled while it ran and has not reported its end.
func cancelledRelease(group []*store.Stage, cur *store.Deployment) bool {
	if cur == nil || cur.Release.Outcome != "" {
		return false
	}
	for _, st := range group {
		if st.ID == cur.StageID && st.Status == store.StatusCanceled && !st.StartedAt.IsZero() {
			return true
		}
	}
	return false
}

// markCanceling shows the cancelled release as being stopped and starts
// its lease.
func (r *Runner) markCanceling(ctx context.Context, cur *store.Deployment) {
	r.touchUnwinding(cur.ID, time.Now())
	d := *cur
	d.Release.Phase = phaseCanceling
	if _, err := r.cfg.Store.DeployProgress(ctx, d); err != nil {
		r.log.Warn("mark release canceling", "run", cur.RunID, "environment", cur.Environment, "err", err)
	}
}

func (r *Runner) touchUnwinding(id int64, t time.Time) {
	r.seenMu.Lock()
	r.unwinding[id] = t
	r.seenMu.Unlock()
}

// unwindingUpdate handles an update of the current attempt of a
// cancelled deploy stage whose release is still in progress: progress
// is recorded, any report keeps the release's lease, and the final
// report or the attempt's end ends the deployment. done is false for
// any other update (HandleUpdate's verdict applies).
func (r *Runner) unwindingUpdate(ctx context.Context, run *store.Run, st *store.Stage, u *wire.Update) (done bool, err error) {
	switch u.Kind {
	case wire.KindDeploy, wire.KindHeartbeat, wire.KindFinished:
	default:
		return false, nil
	}
	if st.Status != store.StatusCanceled || st.Environment == "" || u.Attempt != st.Attempt || !ownsAttempt(st, u) {
		return false, nil
	}
	cur := r.release(ctx, run.ID, st.Environment)
	if cur == nil || cur.StageID != st.ID {
		return false, nil
	}
	r.touchUnwinding(cur.ID, time.Now())
	if u.Kind == wire.KindHeartbeat {
		// As for any stale attempt: a cancel the agent missed reaches it.
		c := wire.Cancel{RunID: u.RunID, StageID: u.StageID, Attempt: u.Attempt, Reason: st.Reason}
		if err := r.cfg.Bus.Cancel(ctx, c); err != nil {
			r.log.Warn("cancel unwinding attempt", "run", run.ID, "stage", st.Key, "err", err)
		}
	}
	if u.Kind == wire.KindDeploy {
		if err := r.deployProgress(ctx, run, st, u.Deploy); err != nil {
			return true, err
		}
	}
	if u.Kind == wire.KindFinished || u.Kind == wire.KindDeploy && u.Deploy != nil && u.Deploy.Outcome != "" {
		r.log.Info("cancelled release ended", "run", run.ID, "stage", st.Key, "kind", u.Kind)
		r.endUnwound(ctx, run.ID, st.Environment)
	}
	return true, nil
}

// endUnwound ends the deployment of a cancelled release with what its
// agent reported.
func (r *Runner) endUnwound(ctx context.Context, runID int64, env string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	run, err := r.cfg.Store.Run(ctx, runID)
	if err != nil {
		r.log.Error("load run to end its cancelled release", "run", runID, "err", err)
		return
	}
	r.endDeployment(ctx, run, env, true)
}

// checkUnwinding ends the deployments of cancelled releases whose agent
// has not reported for a lease period (also after a server restart: a
// release not heard of since gets one lease period from now).
func (r *Runner) checkUnwinding(ctx context.Context) {
	ds, err := r.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		r.log.Error("lease check: unfinished deployments", "err", err)
		return
	}
	now := time.Now()
	live := map[int64]bool{}
	for _, d := range ds {
		if d.RunID == 0 || d.StageID == 0 {
			continue
		}
		run, err := r.cfg.Store.Run(ctx, d.RunID)
		if err != nil {
			continue
		}
		if !cancelledRelease(run.Stages, d) {
			continue
		}
		live[d.ID] = true
		r.seenMu.Lock()
		last, ok := r.unwinding[d.ID]
		if !ok {
			last = now
			r.unwinding[d.ID] = now
		}
		r.seenMu.Unlock()
		if now.Sub(last) < r.cfg.LeaseTimeout {
			continue
		}
		r.log.Warn("cancelled release silent for a lease period: its deployment ends", "run", d.RunID, "environment", d.Environment)
		r.endUnwound(ctx, d.RunID, d.Environment)
	}
	r.seenMu.Lock()
	for id := range r.unwinding {
		if !live[id] {
			delete(r.unwinding, id)
		}
	}
	r.seenMu.Unlock()
}
