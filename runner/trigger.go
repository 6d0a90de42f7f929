package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/deliveryq"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/gitrepo"
)

// TriggerRequest asks for one run of an event in a repository.
type TriggerRequest struct {
	Repo    *store.Repo
	Event   *scm.Event
	Trigger string // store.Trigger* constant
	Parent  int64  // the run this one re-runs, or 0
	// Source is where the code is fetched from (a clone URL or the path
	// of a bare repository on this host); "" resolves it from Repo and
	// Event (see ResolveSource). A rerun passes its run's.
	Source string
	// Delivery and Tick, when not 0, are the deliveries row or schedule
	// tick the run is made for: they are linked in the transaction that
	// creates it (store.NewRun).
	Delivery, Tick int64
	// Final is set when no retry follows a failure: a cause that could
	// pass (the forge unreachable) then ends in a run ended error with
	// reason fetch_failed instead of an error.
	Final bool
}

// ErrTransient wraps a trigger failure that may pass (the forge
// unreachable or slow): no run was made, and the caller may retry.
var ErrTransient = errors.New("transient trigger failure")

// Trigger starts a run for req: it reads and compiles the pipeline file
// at the event's commit, stores the run with its resolved source and
// schedules its first stages.
//
// A pipeline whose when filters leave nothing to run makes no run: the
// error wraps pipeline.ErrSkipped and scm.ErrIgnored. Whatever else stops
// the pipeline from being read or compiled gives a run ended error that
// says why (reason pipeline_missing, pipeline_invalid with positioned
// diagnostics, source_refused, or fetch_failed for a Final request),
// except a failure that may pass (ErrTransient), which makes no run.
func (r *Runner) Trigger(ctx context.Context, req TriggerRequest) (*store.Run, error) {
	repo, ev := req.Repo, req.Event
	pev := ev.PipelineEvent()
	pev.Repo = repo.Name
	nr := store.NewRun{RepoID: repo.ID, Event: pev, CommitTime: ev.Timestamp, Trigger: req.Trigger, ParentID: req.Parent,
		SourceURL: req.Source, DeliveryID: req.Delivery, TickID: req.Tick,
		SameRepo: ev.Kind == scm.KindPullRequest && ev.PullRequest != nil && ev.PullRequest.SameRepo}
	diags, err := r.plan(ctx, req, &nr)
	if err != nil {
		return nil, fmt.Errorf("trigger %s at %s: %w", repo.Name, ev.Commit, err)
	}
	nr.Diagnostics = diags
	// From here on the run is created and scheduled as one piece of work:
	// a caller going away (an HTTP client disconnecting) must not leave it
	// half done, such as a stage marked queued whose job was never
	// published, which nothing would ever end.
	ctx = context.WithoutCancel(ctx)
	run, err := r.cfg.Store.CreateRun(ctx, nr)
	if err != nil {
		return nil, fmt.Errorf("trigger %s at %s: %w", repo.Name, ev.Commit, err)
	}
	log := r.log.With("repo", repo.Name, "commit", ev.Commit, "run", run.ID)
	log.Info("run created", "number", run.Number, "status", run.Status, "reason", run.Reason)
	if run.Status.Terminal() {
		r.report(run, "runnel", string(run.Status), "Pipeline: "+run.Reason)
		r.runMetrics(repo.Name, run)
		return run, nil
	}
	r.report(run, "runnel", "pending", "Run queued")
	if repo.CancelPrevious && run.Branch != "" {
		r.cancelPrevious(ctx, repo.ID, run)
	}
	if err := r.schedule(ctx, run.ID); err != nil {
		return run, err
	}
	return r.cfg.Store.Run(ctx, run.ID)
}

// TriggerDelivery makes the run of a verified webhook delivery; it is
// the server's deliveryq.TriggerFunc.
func (r *Runner) TriggerDelivery(ctx context.Context, d *deliveryq.Delivery) (*store.Run, error) {
	return r.Trigger(ctx, TriggerRequest{Repo: d.Repo, Event: d.Event, Trigger: d.Trigger(), Delivery: d.ID, Final: d.Last})
}

// plan resolves the source of req, reads and compiles its pipeline and
// fills in nr: the plan, or a terminal status with the diagnostics that
// say why. An error means no run is to be made.
func (r *Runner) plan(ctx context.Context, req TriggerRequest, nr *store.NewRun) ([]pipeline.Diagnostic, error) {
	failed := func(reason string, d pipeline.Diagnostic) ([]pipeline.Diagnostic, error) {
		nr.Status, nr.Reason = store.StatusError, reason
		if d.File == "" {
			d.File = PipelineFile
		}
		return []pipeline.Diagnostic{d}, nil
	}
	if nr.SourceURL == "" {
		src, err := ResolveSource(req.Repo, req.Event)
		if err != nil {
			return failed(rules.ReasonSourceRefused, pipeline.Diagnostic{Message: err.Error()})
		}
		nr.SourceURL = src
	}
	at, ref, err := r.pipelineCommit(ctx, req, nr.SourceURL)
	var src []byte
	if err == nil {
		src, err = r.readPipeline(ctx, nr.SourceURL, at, ref)
	}
	switch {
	case errors.Is(err, gitrepo.ErrNoFile):
		return failed(rules.ReasonPipelineMissing, pipeline.Diagnostic{Message: "no " + PipelineFile + " in commit " + at})
	case errors.Is(err, gitrepo.ErrTooLarge):
		return failed(rules.ReasonPipelineInvalid, pipeline.Diagnostic{Code: "file-too-large", Message: err.Error()})
	case errors.Is(err, gitmirror.ErrUnsafe):
		return failed(rules.ReasonSourceRefused, pipeline.Diagnostic{Message: err.Error()})
	case err != nil && req.Final:
		return failed(rules.ReasonFetchFailed, pipeline.Diagnostic{Message: err.Error()})
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrTransient, err)
	}
	p, err := pipeline.Parse(PipelineFile, src)
	if err == nil {
		var envs []pipeline.Environment
		if envs, err = r.environments(ctx, req.Repo.ID); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTransient, err)
		}
		if err = checkPolicy(p, req.Repo); err == nil {
			nr.Plan, err = p.PlanFor(nr.Event, envs)
		}
		if err == nil {
			if err = r.checkSecrets(ctx, req.Repo.ID, p); errors.Is(err, ErrTransient) {
				return nil, err
			}
		}
	}
	var ds pipeline.Diagnostics
	switch {
	case errors.Is(err, pipeline.ErrSkipped):
		return nil, fmt.Errorf("%w: %w", scm.ErrIgnored, err)
	case errors.As(err, &ds):
		nr.Status, nr.Reason, nr.Plan = store.StatusError, rules.ReasonPipelineInvalid, nil
		return ds, nil
	case err != nil:
		nr.Plan = nil
		return failed(rules.ReasonPipelineInvalid, pipeline.Diagnostic{Message: err.Error()})
	}
	return nil, nil
}

// ResolveSource is the one rule of where the server fetches a run's code
// from: the repository's registered clone URL (or bare repository path);
// without one, for a forge repository only, the clone URL its event
// names when that is on the forge instance named when the repository was
// added (Repo.ForgeURL, else the forge's public default). Anything else
// is refused with an error wrapping scm.ErrForeignSource.
func ResolveSource(repo *store.Repo, ev *scm.Event) (string, error) {
	if repo.CloneURL != "" {
		return repo.CloneURL, nil
	}
	forge := repo.ForgeURL
	if forge == "" {
		forge = scm.DefaultForgeURL(repo.Forge)
	}
	switch repo.Forge {
	case store.ForgeGitHub, store.ForgeGitea, store.ForgeGitLab:
	default:
		return "", fmt.Errorf("repo %s (%s) has no clone URL: %w", repo.Name, repo.Forge, scm.ErrForeignSource)
	}
	if err := scm.OnForge(ev.CloneURL, forge); err != nil {
		return "", fmt.Errorf("repo %s has no clone URL: %w", repo.Name, err)
	}
	return ev.CloneURL, nil
}

// cancelPrevious cancels the unfinished runs of run's branch older than
// run (cancel_previous).
func (r *Runner) cancelPrevious(ctx context.Context, repoID int64, run *store.Run) {
	older, err := r.cfg.Store.ActiveRuns(ctx, repoID, run.Branch)
	if err != nil {
		r.log.Error("cancel previous: list runs", "run", run.ID, "err", err)
	}
	for _, o := range older {
		if o.ID < run.ID {
			if err := r.cancel(ctx, o.ID, rules.ReasonSuperseded); err != nil {
				r.log.Error("cancel previous run", "run", run.ID, "previous", o.ID, "err", err)
			}
		}
	}
}

// readPipeline reads the pipeline file at commit from the source url: a
// bare repository on this host directly, anything else through the
// mirror cache.
func (r *Runner) readPipeline(ctx context.Context, url, commit, ref string) ([]byte, error) {
	src := gitmirror.Source{URL: url, Commit: commit, Ref: ref}
	if err := src.Validate(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(url); err == nil && fi.IsDir() && filepath.IsAbs(url) {
		// A bare repository on this host (git hook repos): read its objects.
		return gitrepo.ReadFile(ctx, url, commit, PipelineFile)
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
	return gitrepo.ReadFile(ctx, mirror, commit, PipelineFile)
}

// Diagnostics returns why run ended error before it started: the
// diagnostics stored with it, or for a run from before they were (store
// migration 0009) those kept next to its logs; nil when there are none.
func (r *Runner) Diagnostics(run *store.Run) []pipeline.Diagnostic {
	if run.Diagnostics != nil || run.Status != store.StatusError {
		return run.Diagnostics
	}
	f, err := r.cfg.Logs.Open(logstore.Key{Run: strconv.FormatInt(run.ID, 10), Stage: "_pipeline", Attempt: 0, Step: "diagnostics"})
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

// Rerun starts a new run of the same event as runID, from the source it
// was resolved from.
func (r *Runner) Rerun(ctx context.Context, runID int64) (*store.Run, error) {
	old, err := r.cfg.Store.Run(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("rerun %d: %w", runID, err)
	}
	repo, err := r.cfg.Store.RepoByID(ctx, old.RepoID)
	if err != nil {
		return nil, fmt.Errorf("rerun %d: %w", runID, err)
	}
	ev := &scm.Event{Kind: old.Event, Repo: repo.Name, Ref: old.Ref, Branch: old.Branch, Tag: old.Tag, Commit: old.Commit,
		Message: old.Message, Author: old.Author, Timestamp: old.CommitTime, Inputs: old.Inputs, Schedule: old.Schedule}
	if old.Event == scm.KindPullRequest {
		// The pull request's origin is the run's.
		ev.PullRequest = &scm.PullRequest{SameRepo: old.SameRepo}
	}
	return r.Trigger(ctx, TriggerRequest{Repo: repo, Event: ev, Trigger: store.TriggerRerun, Parent: old.ID, Source: old.SourceURL})
}

// checkPolicy refuses a pipeline that asks for container permissions the
// repository was not granted (positioned not-allowed diagnostics).
func checkPolicy(p *pipeline.Pipeline, repo *store.Repo) error {
	allowed, err := pipeline.ParsePermissions(repo.AllowContainer)
	if err != nil {
		return fmt.Errorf("repository %s: %w", repo.Name, err)
	}
	return p.CheckPolicy(allowed)
}
