package runner

import (
	"context"
	"errors"
	"fmt"

	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/gitrepo"
)

// ManualRequest asks for a run of a repository's branch, now (Manual) or
// by a schedule (Scheduled).
type ManualRequest struct {
	Repo   *store.Repo
	Branch string // "" means the repository's default branch
	Commit string // "" means the branch's head, resolved now
	Inputs map[string]string
	User   string // who asked (the run's author)
}

// resolve fills in the branch and commit of req.
func (r *Runner) resolve(ctx context.Context, req *ManualRequest) error {
	if req.Branch == "" {
		req.Branch = req.Repo.DefaultBranch
	}
	if req.Commit != "" {
		if !scm.ValidSHA(req.Commit) {
			return &InputError{Message: fmt.Sprintf("commit %q is not a full SHA", req.Commit)}
		}
		return nil
	}
	sha, err := gitmirror.ResolveRef(ctx, req.Repo.CloneURL, "refs/heads/"+req.Branch)
	if err != nil {
		return &InputError{Message: fmt.Sprintf("resolve branch %q: %v", req.Branch, err)}
	}
	req.Commit = sha
	return nil
}

// event is the event of a manual or scheduled run of req.
func (req *ManualRequest) event(kind string) *scm.Event {
	return &scm.Event{Forge: req.Repo.Forge, Kind: kind, Repo: req.Repo.Name, CloneURL: req.Repo.CloneURL,
		Ref: "refs/heads/" + req.Branch, Branch: req.Branch, Commit: req.Commit, Author: req.User, Inputs: req.Inputs}
}

// Manual starts a run of event "manual" for req. A request that cannot
// run (a branch that does not exist, inputs the pipeline refuses) is an
// *InputError and starts nothing.
func (r *Runner) Manual(ctx context.Context, req ManualRequest) (*store.Run, error) {
	req, err := r.CheckManual(ctx, req)
	if err != nil {
		return nil, err
	}
	return r.Trigger(ctx, TriggerRequest{Repo: req.Repo, Event: req.event(scm.KindManual), Trigger: store.TriggerManual})
}

// CheckManual resolves req's branch and commit and checks its inputs
// against the inputs the pipeline at that commit declares (an
// *InputError with Fields by input). A pipeline that is missing or does
// not parse is left to Trigger, which records it as the run's error.
func (r *Runner) CheckManual(ctx context.Context, req ManualRequest) (ManualRequest, error) {
	if err := r.resolve(ctx, &req); err != nil {
		return req, err
	}
	p, err := r.pipelineAt(ctx, req.Repo, req.Branch, req.Commit)
	if err != nil || p == nil {
		return req, err
	}
	if _, problems := p.CheckInputs(req.Inputs, true); problems != nil {
		return req, &InputError{Message: "inputs refused by " + PipelineFile + " at " + req.Commit, Fields: problems}
	}
	return req, nil
}

// Inputs returns the head commit of a repository's branch ("" means the
// default branch) and the inputs its pipeline declares (none when the
// file is missing or does not parse).
func (r *Runner) Inputs(ctx context.Context, repo *store.Repo, branch string) (string, []pipeline.Input, error) {
	req := ManualRequest{Repo: repo, Branch: branch}
	if err := r.resolve(ctx, &req); err != nil {
		return "", nil, err
	}
	p, err := r.pipelineAt(ctx, repo, req.Branch, req.Commit)
	if err != nil || p == nil {
		return req.Commit, nil, err
	}
	return req.Commit, p.Inputs(), nil
}

// pipelineAt reads and parses the pipeline file at commit; nil (and no
// error) when it is missing or does not parse.
func (r *Runner) pipelineAt(ctx context.Context, repo *store.Repo, branch, commit string) (*pipeline.Pipeline, error) {
	src, err := r.readPipeline(ctx, repo.CloneURL, commit, "refs/heads/"+branch)
	if errors.Is(err, gitrepo.ErrNoFile) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s of %s at %s: %w", PipelineFile, repo.Name, commit, err)
	}
	p, err := pipeline.Parse(PipelineFile, src)
	if err != nil {
		return nil, nil
	}
	return p, nil
}

// Scheduled starts the run of tick tickID of schedule sc: event "cron"
// for a cron schedule, "manual" for a one-off run, with the schedule's
// name and inputs. The run is linked to the tick in the transaction that
// creates it; a tick that has its run already gives store.ErrConflict.
func (r *Runner) Scheduled(ctx context.Context, sc *store.Schedule, tickID int64) (*store.Run, error) {
	repo, err := r.cfg.Store.RepoByID(ctx, sc.RepoID)
	if err != nil {
		return nil, err
	}
	req := ManualRequest{Repo: repo, Branch: sc.Branch, Commit: sc.Commit, Inputs: sc.Inputs, User: sc.By}
	if err := r.resolve(ctx, &req); err != nil {
		return nil, err
	}
	kind, trigger := scm.KindCron, store.TriggerCron
	if sc.Kind == store.ScheduleOnce {
		kind, trigger = scm.KindManual, store.TriggerAt
	}
	ev := req.event(kind)
	ev.Schedule = sc.Name
	return r.Trigger(ctx, TriggerRequest{Repo: repo, Event: ev, Trigger: trigger, Tick: tickID})
}

// InputError is a manual request that cannot run as asked: a bad
// branch or commit, or inputs the pipeline refuses (Fields: by input
// name, what is wrong). Nothing was started.
type InputError struct {
	Message string
	Fields  map[string]string
}

func (e *InputError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return "invalid inputs"
}
