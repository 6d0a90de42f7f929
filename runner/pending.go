package runner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
)

// Why a stage that has not started waits, as plain values: PendingReason
// turns them into the text the API and the UI show, in one place.

// Wait is what holds back a stage that has not started.
type Wait struct {
	Needs       []string          // needs not finished yet
	Approval    bool              // waits for a person's approval
	Concurrency string            // a concurrency group another stage holds
	Queued      bool              // handed to the bus: waits for an agent
	Labels      map[string]string // the labels an agent must have (Queued)
}

// AgentLoad is a connected agent as PendingReason sees it.
type AgentLoad struct {
	Labels   map[string]string
	Capacity int // stages at once; 0: unknown, never counted busy
	Running  int
}

// PendingReason says why a stage waits, or "" when nothing holds it (a
// queued stage that a capable agent with room is about to take). The
// first that applies wins: needs, approval, concurrency group, then for a
// queued stage the agents: none connected, none with the labels, every
// capable one busy.
func PendingReason(w Wait, agents []AgentLoad) string {
	switch {
	case len(w.Needs) > 0:
		return "waiting for needs: " + strings.Join(w.Needs, ", ")
	case w.Approval:
		return "waiting for approval"
	case w.Concurrency != "":
		return "waiting for concurrency group " + w.Concurrency
	case !w.Queued:
		return ""
	}
	capable, busy, running, capacity := 0, 0, 0, 0
	for _, a := range agents {
		if !hasLabels(a.Labels, w.Labels) {
			continue
		}
		capable++
		running += a.Running
		capacity += a.Capacity
		if a.Capacity > 0 && a.Running >= a.Capacity {
			busy++
		}
	}
	switch {
	case capable == 0 && len(w.Labels) == 0:
		return "no agent connected"
	case capable == 0:
		kv := make([]string, 0, len(w.Labels))
		for _, k := range slices.Sorted(maps.Keys(w.Labels)) {
			kv = append(kv, k+"="+w.Labels[k])
		}
		return "no agent with labels " + strings.Join(kv, ",")
	case busy == capable:
		return fmt.Sprintf("all capable agents busy (%d running, capacity %d)", running, capacity)
	}
	return ""
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

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
func (r *Runner) agentLoads() []AgentLoad {
	var out []AgentLoad
	for _, a := range r.cfg.Bus.Agents() {
		if !a.Lost {
			out = append(out, AgentLoad{Labels: a.Labels, Capacity: a.Capacity, Running: a.Running})
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
			why := PendingReason(Wait{Queued: true, Labels: ps.Labels}, agents)
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
