package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/runnel-ci/runnel/agents/workspace"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/gitrepo"
)

// Trigger starts a run for ev in repo: it reads and compiles the pipeline
// file at ev.Commit, stores the run and schedules its first stages. A
// pipeline that does not compile yields a run ended error with reason
// pipeline_invalid; its diagnostics are kept (see Diagnostics).
func (r *Runner) Trigger(ctx context.Context, repo *store.Repo, ev *scm.Event, trigger string, parent int64) (*store.Run, error) {
	return r.trigger(ctx, repo, ev, store.NewRun{Trigger: trigger, ParentID: parent, SameRepo: ev.SameRepo()})
}

// trigger is Trigger with the run's Trigger, ParentID and SameRepo in nr.
func (r *Runner) trigger(ctx context.Context, repo *store.Repo, ev *scm.Event, nr store.NewRun) (*store.Run, error) {
	log := r.log.With("repo", repo.Name, "commit", ev.Commit)
	pev := ev.PipelineEvent()
	pev.Repo = repo.Name
	nr.RepoID, nr.Event, nr.CommitTime = repo.ID, pev, ev.Timestamp

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
			var envs []pipeline.Environment
			if envs, err = r.environments(ctx, repo.ID); err != nil {
				return nil, fmt.Errorf("trigger %s at %s: %w", repo.Name, ev.Commit, err)
			}
			plan, perr = p.PlanFor(pev, envs)
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

// Rerun starts a new run of the same event as runID.
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
	// The event is rebuilt from the run, so its pull request origin is the
	// run's.
	return r.trigger(ctx, repo, ev, store.NewRun{Trigger: store.TriggerRerun, ParentID: old.ID, SameRepo: old.SameRepo})
}
