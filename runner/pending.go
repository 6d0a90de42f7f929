package runner

import (
	"context"
	"time"

	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

// RunPendingReason is the reason a run shows while none of its stages
// runs: the first waiting stage's (in plan order), named; "" once one
// runs.
func RunPendingReason(stages []*store.Stage) string {
	for _, st := range stages {
		if st.Status == store.StatusRunning {
			return ""
		}
	}
	for _, st := range stages {
		if !st.Status.Terminal() && st.PendingReason != "" {
			return st.Key + ": " + st.PendingReason
		}
	}
	return ""
}

// agentLoads is the bus's view of the connected agents.
func (r *Runner) agentLoads() []rules.AgentLoad {
	var out []rules.AgentLoad
	for _, a := range r.cfg.Bus.Agents() {
		if !a.Lost {
			out = append(out, rules.AgentLoad{Labels: a.Labels, Capacity: a.Capacity, Running: a.Running})
		}
	}
	return out
}

// pendingRefresh is how often the reasons of queued stages are computed
// again: agents report their load every few seconds, so a reason given at
// dispatch goes stale.
const pendingRefresh = 2 * time.Second

// refreshPending recomputes the reasons of queued stages against the
// agents' current load, and the reasons of runs none of whose stages
// runs. Stages held before dispatch (needs, approval, group) get theirs
// from schedule, which runs on every event that can change them.
func (r *Runner) refreshPending(ctx context.Context) {
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		r.log.Error("refresh pending reasons: list runs", "err", err)
		return
	}
	agents := r.agentLoads()
	for _, run := range runs {
		for _, st := range run.Stages {
			if st.Status != store.StatusQueued {
				continue
			}
			ps, err := r.planStage(ctx, run, st)
			if err != nil {
				continue
			}
			why := rules.PendingReason(rules.Hold{Queued: true, Labels: ps.Labels}, agents)
			if why == st.PendingReason {
				continue
			}
			changed, err := r.cfg.Store.SetQueuedStagePendingReason(ctx, st.ID, st.Attempt, why)
			if err != nil {
				r.log.Error("refresh pending reason", "run", run.ID, "stage", st.Key, "err", err)
			}
			if changed {
				st.PendingReason = why
			}
		}
		r.setRunPending(ctx, run)
	}
}

// setRunPending stores RunPendingReason of run's stages when it changed.
func (r *Runner) setRunPending(ctx context.Context, run *store.Run) {
	why := RunPendingReason(run.Stages)
	if why == run.PendingReason {
		return
	}
	if err := r.cfg.Store.SetRunPendingReason(ctx, run.ID, why); err == nil {
		run.PendingReason = why
	}
}
