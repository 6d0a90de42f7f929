package runner

import (
	"context"
	"errors"
	"fmt"

	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/trust"
	"github.com/runnel-ci/runnel/scm"
)

// pipelineCommit returns the commit and ref the pipeline file of req is
// read from: the event's, or for a pull request from a fork to a
// repository that takes it from the base branch
// (Repo.ForkPipelineFromBase), the base branch's commit the forge named
// with the event, else the branch's head in src now (a rerun).
func (r *Runner) pipelineCommit(ctx context.Context, req TriggerRequest, src string) (commit, ref string, err error) {
	ev := req.Event
	fork := ev.Kind == scm.KindPullRequest && (ev.PullRequest == nil || !ev.PullRequest.SameRepo)
	if !fork || !req.Repo.ForkPipelineFromBase {
		return ev.Commit, ev.Ref, nil
	}
	ref = "refs/heads/" + ev.Branch
	if ev.PullRequest != nil && scm.ValidSHA(ev.PullRequest.BaseSHA) {
		return ev.PullRequest.BaseSHA, ref, nil
	}
	sha, err := gitmirror.ResolveRef(ctx, src, ref)
	if err != nil {
		return "", "", fmt.Errorf("pipeline file of a fork's pull request from base branch %s: %w", ev.Branch, err)
	}
	return sha, ref, nil
}

// holdUntrusted keeps st of run pending while it waits for the approval
// of run's head commit (untrustedHead), with a pending reason and a
// commit status that say so, and reports whether it does.
func (r *Runner) holdUntrusted(ctx context.Context, run *store.Run, st *store.Stage) (bool, error) {
	head, err := r.untrustedHead(ctx, run, st)
	if err != nil || head == "" {
		return false, err
	}
	why := trust.PendingReason(head)
	if st.PendingReason != why {
		r.report(run, "runnel/"+st.Key, "pending", "Waiting for a maintainer to approve head "+head[:min(7, len(head))])
	}
	r.setPending(ctx, st, why)
	return true, nil
}

// untrustedHead returns the head commit whose approval st of run waits
// for (trust.Hold: a fork's pull request's stage that asks for secrets or
// deploys), or "" when it does not wait.
func (r *Runner) untrustedHead(ctx context.Context, run *store.Run, st *store.Stage) (string, error) {
	if ok, _ := trust.Decide(trust.Of(run)); ok {
		return "", nil
	}
	ps, err := r.planStage(ctx, run, st)
	if err != nil {
		return "", err
	}
	tr, err := trust.Load(ctx, r.cfg.Store, run)
	if err != nil {
		return "", fmt.Errorf("schedule run %d: %w", run.ID, err)
	}
	if !trust.Hold(tr, trust.Stage{Secrets: len(ps.Secrets) > 0, Environment: ps.Environment}) {
		return "", nil
	}
	return run.Commit, nil
}

// PRApproval returns the approval of run's head commit and whether run
// needs one (a fork's pull request); nil when it has none yet.
func (r *Runner) PRApproval(ctx context.Context, run *store.Run) (a *store.PRApproval, needed bool, err error) {
	if ok, _ := trust.Decide(trust.Of(run)); ok {
		return nil, false, nil
	}
	a, err = r.cfg.Store.PRApproval(ctx, run.RepoID, run.Commit)
	if errors.Is(err, store.ErrNotFound) {
		return nil, true, nil
	}
	return a, true, err
}

// ApprovePR approves, on behalf of user, the head commit of run runID, a
// pull request from a fork: its stages held for it, and those of every
// other unfinished run of the same head, are scheduled again and get
// their secrets. sha, when not "", must be the run's head commit (the
// one the maintainer reviewed): a run of another commit gives
// store.ErrConflict. A later push is another head and waits again.
// Approving a head approved before keeps the first approver on record.
func (r *Runner) ApprovePR(ctx context.Context, runID int64, sha, user string) (*store.PRApproval, error) {
	run, err := r.cfg.Store.Run(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("approve pull request of run %d: %w", runID, err)
	}
	if ok, _ := trust.Decide(trust.Of(run)); ok {
		return nil, fmt.Errorf("approve run %d: not a pull request from a fork, nothing to approve: %w", runID, store.ErrConflict)
	}
	if sha != "" && sha != run.Commit {
		return nil, fmt.Errorf("approve run %d: its head is %s, not %s: %w", runID, run.Commit, sha, store.ErrConflict)
	}
	// The approval and the scheduling it allows are one step that a
	// caller going away must not cut in half.
	ctx = context.WithoutCancel(ctx)
	if _, err := r.cfg.Store.ApprovePR(ctx, store.PRApproval{RepoID: run.RepoID, HeadSHA: run.Commit, By: user, RunID: run.ID}); err != nil {
		return nil, err
	}
	a, err := r.cfg.Store.PRApproval(ctx, run.RepoID, run.Commit)
	if err != nil {
		return nil, err
	}
	r.log.Info("pull request head approved", "run", runID, "commit", run.Commit, "by", a.By)
	r.mu.Lock()
	defer r.mu.Unlock()
	runs, err := r.cfg.Store.UnfinishedRuns(ctx)
	if err != nil {
		return a, fmt.Errorf("approve run %d: schedule: %w", runID, err)
	}
	for _, o := range runs {
		if o.RepoID == run.RepoID && o.Commit == run.Commit {
			if err := r.scheduleLocked(ctx, o.ID); err != nil {
				return a, err
			}
		}
	}
	return a, nil
}
