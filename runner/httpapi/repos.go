package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/badge"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// RepoView is a repository as the API shows it (never its secrets).
type RepoView struct {
	ID             int64  `json:"id"`
	Name           string `json:"name"`
	Forge          string `json:"forge"`
	CloneURL       string `json:"clone_url"`
	ForgeURL       string `json:"forge_url,omitempty"`
	GenericHook    bool   `json:"generic_hook"`
	DefaultBranch  string `json:"default_branch"`
	CancelPrevious bool   `json:"cancel_previous"`
	Private        bool   `json:"private"`
	HasSecret      bool   `json:"has_secret"`
	// AllowContainer are the container permissions the repository's
	// pipelines may ask for (docs/pipeline.md#container).
	AllowContainer []string `json:"allow_container"`
	// ForkPipelineFromBase: pull requests from forks run the base
	// branch's pipeline file (docs/secrets.md#pull-requests-from-forks).
	ForkPipelineFromBase bool      `json:"fork_pipeline_from_base"`
	CreatedAt            time.Time `json:"created_at"`
	// HookToken and BadgeToken are returned once, at creation.
	HookToken  string `json:"hook_token,omitempty"`
	BadgeToken string `json:"badge_token,omitempty"`
}

func repoView(r *store.Repo) RepoView {
	return RepoView{ID: r.ID, Name: r.Name, Forge: r.Forge, CloneURL: gitmirror.Redact(r.CloneURL), ForgeURL: r.ForgeURL,
		GenericHook: r.GenericHook, DefaultBranch: r.DefaultBranch,
		CancelPrevious: r.CancelPrevious, Private: r.Private, HasSecret: r.WebhookSecret != "", CreatedAt: r.CreatedAt,
		AllowContainer: append([]string{}, r.AllowContainer...), ForkPipelineFromBase: r.ForkPipelineFromBase}
}

func (s *Server) listRepos(w http.ResponseWriter, r *http.Request) {
	repos, err := s.cfg.Store.Repos(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]RepoView, 0, len(repos))
	for _, rp := range repos {
		out = append(out, repoView(rp))
	}
	writeJSON(w, http.StatusOK, map[string]any{"repos": out})
}

// RepoRequest is the body of POST /api/v1/repos.
type RepoRequest struct {
	Name     string `json:"name"`
	Forge    string `json:"forge"`
	CloneURL string `json:"clone_url"`
	// ForgeURL is the forge instance (default https://github.com,
	// https://gitlab.com); without a clone URL the server fetches only
	// from its scheme and host. GenericHook lets a forge repository also
	// take the generic hook with its hook token.
	ForgeURL       string `json:"forge_url"`
	GenericHook    bool   `json:"generic_hook"`
	Secret         string `json:"secret"`
	DefaultBranch  string `json:"default_branch"`
	CancelPrevious bool   `json:"cancel_previous"`
	Private        bool   `json:"private"`
	// StatusToken and StatusAPIURL let the server report commit statuses
	// (GitHub, Gitea); the API URL is empty for github.com.
	StatusToken  string `json:"status_token"`
	StatusAPIURL string `json:"status_api_url"`
}

func (s *Server) createRepo(w http.ResponseWriter, r *http.Request) {
	var req RepoRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := checkCloneCredentials(req.CloneURL); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	repo, err := s.cfg.Store.CreateRepo(r.Context(), store.Repo{Name: req.Name, Forge: req.Forge, CloneURL: req.CloneURL,
		ForgeURL: req.ForgeURL, GenericHook: req.GenericHook, WebhookSecret: req.Secret, DefaultBranch: req.DefaultBranch,
		CancelPrevious: req.CancelPrevious, Private: req.Private, StatusToken: req.StatusToken, StatusAPIURL: req.StatusAPIURL})
	if err != nil {
		s.storeError(w, err)
		return
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.RepoKnown(repo.Name)
	}
	v := repoView(repo)
	if v.HookToken, err = s.cfg.Store.RotateRepoToken(r.Context(), repo.ID, store.HookToken); err != nil {
		s.storeError(w, err)
		return
	}
	if req.Private {
		if v.BadgeToken, err = s.cfg.Store.RotateRepoToken(r.Context(), repo.ID, store.BadgeToken); err != nil {
			s.storeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusCreated, v)
}

// checkCloneCredentials refuses a clone URL that carries credentials (a
// repository stored with one before keeps it until its URL is changed).
func checkCloneCredentials(cloneURL string) error {
	if err := gitmirror.CheckNoCredentials(cloneURL); err != nil {
		return fmt.Errorf("clone_url %s: %w: they would show in errors, the API and the UI; register the URL without them and give the server's and agents' hosts access with an SSH key (ssh:// or git@host:path) or a git credential helper (docs/operations.md#clone-credentials)",
			gitmirror.Redact(cloneURL), err)
	}
	return nil
}

// check validates req and fills in defaults.
func (req *RepoRequest) check() error {
	switch req.Forge {
	case store.ForgeGitHub, store.ForgeGitea, store.ForgeGitLab, store.ForgeGeneric, store.ForgeGit:
	default:
		return fmt.Errorf("forge %q: want github, gitea, gitlab, generic or git", req.Forge)
	}
	if req.Name == "" || strings.ContainsAny(req.Name, "\x00\n\r ") || strings.HasPrefix(req.Name, "/") || strings.Contains(req.Name, "..") {
		return errors.New("name must be non-empty, without spaces, leading slash or '..'")
	}
	if req.CloneURL != "" {
		if err := (gitmirror.Source{URL: req.CloneURL, Commit: strings.Repeat("0", 40)}).Validate(); err != nil {
			return fmt.Errorf("clone_url: %w", err)
		}

	}
	if req.DefaultBranch == "" {
		req.DefaultBranch = "main"
	}
	forge := req.Forge == store.ForgeGitHub || req.Forge == store.ForgeGitea || req.Forge == store.ForgeGitLab
	if !forge {
		if req.ForgeURL != "" || req.GenericHook {
			return fmt.Errorf("forge_url and generic_hook are for github, gitea and gitlab repositories, not %s", req.Forge)
		}
		return nil
	}
	if req.ForgeURL == "" {
		req.ForgeURL = scm.DefaultForgeURL(req.Forge)
	}
	if req.ForgeURL == "" {
		if req.CloneURL == "" {
			return fmt.Errorf("a %s repository needs clone_url or forge_url (the instance its events' clone URLs must be on)", req.Forge)
		}
		return nil
	}
	u, err := scm.ParseForgeURL(req.ForgeURL)
	if err != nil {
		return fmt.Errorf("forge_url: %w", err)
	}
	req.ForgeURL = u
	return nil
}

// RepoPatch is the body of PATCH /api/v1/repos/{repo}: the settings to
// change (absent fields stay).
type RepoPatch struct {
	CloneURL       *string `json:"clone_url"`
	ForgeURL       *string `json:"forge_url"`
	GenericHook    *bool   `json:"generic_hook"`
	Secret         *string `json:"secret"`
	DefaultBranch  *string `json:"default_branch"`
	CancelPrevious *bool   `json:"cancel_previous"`
	Private        *bool   `json:"private"`
	StatusToken    *string `json:"status_token"`
	StatusAPIURL   *string `json:"status_api_url"`
	// AllowContainer replaces the repository's container permissions
	// ([] grants none).
	AllowContainer *[]string `json:"allow_container"`
	// ForkPipelineFromBase sets where pull requests from forks take their
	// pipeline file: true, the base branch; false, their own head.
	ForkPipelineFromBase *bool `json:"fork_pipeline_from_base"`
}

// patchRepo changes a repository's settings (where its code is fetched
// from, which hooks it takes, its secret, default branch, status
// reporting...), with the checks of createRepo.
func (s *Server) patchRepo(w http.ResponseWriter, r *http.Request) {
	repo, err := s.cfg.Store.Repo(r.Context(), r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	var p RepoPatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	req := RepoRequest{Name: repo.Name, Forge: repo.Forge, CloneURL: repo.CloneURL, ForgeURL: repo.ForgeURL,
		GenericHook: repo.GenericHook, DefaultBranch: repo.DefaultBranch}
	set(&req.CloneURL, p.CloneURL)
	set(&req.ForgeURL, p.ForgeURL)
	set(&req.GenericHook, p.GenericHook)
	set(&req.DefaultBranch, p.DefaultBranch)
	if p.DefaultBranch != nil && strings.TrimSpace(*p.DefaultBranch) == "" {
		writeError(w, http.StatusBadRequest, "default_branch must not be empty")
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if p.CloneURL != nil {
		if err := checkCloneCredentials(*p.CloneURL); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if p.AllowContainer != nil {
		perms, err := pipeline.ParsePermissions(*p.AllowContainer)
		if err != nil {
			writeError(w, http.StatusBadRequest, "allow_container: "+err.Error())
			return
		}
		repo.AllowContainer = nil
		for _, pm := range perms {
			repo.AllowContainer = append(repo.AllowContainer, string(pm))
		}
	}
	repo.CloneURL, repo.ForgeURL, repo.GenericHook, repo.DefaultBranch = req.CloneURL, req.ForgeURL, req.GenericHook, req.DefaultBranch
	set(&repo.WebhookSecret, p.Secret)
	set(&repo.CancelPrevious, p.CancelPrevious)
	set(&repo.Private, p.Private)
	set(&repo.StatusToken, p.StatusToken)
	set(&repo.StatusAPIURL, p.StatusAPIURL)
	set(&repo.ForkPipelineFromBase, p.ForkPipelineFromBase)
	if err := s.cfg.Store.UpdateRepo(r.Context(), *repo); err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("repo updated", "repo", repo.Name, "by", user(r), "allow_container", repo.AllowContainer)
	writeJSON(w, http.StatusOK, repoView(repo))
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// TriggerRequest is the body of POST /api/v1/repos/{repo}/trigger. With
// At the run is a one-off run at that time (answered 202 with the
// schedule; Name optionally names it).
type TriggerRequest struct {
	Branch string            `json:"branch"`
	Commit string            `json:"commit"`
	Inputs map[string]string `json:"inputs"`
	At     time.Time         `json:"at"`
	Name   string            `json:"name"`
}

// trigger handles POST /api/v1/repos/{repo...}/trigger.
func (s *Server) trigger(w http.ResponseWriter, r *http.Request, name string) {
	var req TriggerRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	if !req.At.IsZero() {
		s.addSchedule(w, r, name, ScheduleRequest{Name: req.Name, At: req.At, Branch: req.Branch, Commit: req.Commit, Inputs: req.Inputs})
		return
	}
	if req.Name != "" {
		writeError(w, http.StatusBadRequest, "name is for one-off runs (with at)")
		return
	}
	if err := checkInputs(req.Inputs); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	run, err := s.cfg.Runner.Manual(r.Context(), runner.ManualRequest{Repo: repo, Branch: req.Branch, Commit: req.Commit,
		Inputs: req.Inputs, User: user(r)})
	if err != nil {
		s.manualError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.view(run))
}

// manualError answers an error of runner.Manual or CheckManual: 400 with
// the fields of an InputError, for an unsafe source or a pipeline whose
// when filters skip the run; 503 when the repository could not be
// reached; else as storeError.
func (s *Server) manualError(w http.ResponseWriter, err error) {
	var ie *runner.InputError
	switch {
	case errors.As(err, &ie):
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": ie.Error(), "fields": ie.Fields})
	case errors.Is(err, gitmirror.ErrUnsafe), errors.Is(err, pipeline.ErrSkipped):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, runner.ErrTransient):
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.storeError(w, err)
	}
}

func cutLast(p string) (string, string, bool) {
	i := strings.LastIndex(p, "/")
	if i <= 0 {
		return "", "", false
	}
	return p[:i], p[i+1:], true
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	var out any = []any{}
	if s.cfg.Agents != nil {
		if a := s.cfg.Agents(); a != nil {
			out = a
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": out})
}

// DeploymentView is a deployment as the API shows it.
type DeploymentView struct {
	ID          int64     `json:"id"`
	Repo        string    `json:"repo"`
	Environment string    `json:"environment"`
	RunID       int64     `json:"run_id,omitempty"`
	Commit      string    `json:"commit"`
	StartedAt   time.Time `json:"started_at"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	Result      string    `json:"result,omitempty"`
	// RollsBack is, for a rolled_back deployment, the deployment whose
	// version serves again.
	RollsBack int64 `json:"rolls_back,omitempty"`
	// Release is set for a deploy stage's deployment.
	Release *ReleaseView `json:"release,omitempty"`
}

// ReleaseView is where a deploy stage's release is (or ended).
type ReleaseView struct {
	Provider string `json:"provider"`
	Version  string `json:"version"`
	From     string `json:"from,omitempty"`
	Phase    string `json:"phase"`
	// Traffic is the percentage on the new version.
	Traffic int    `json:"traffic"`
	Outcome string `json:"outcome,omitempty"`
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.DeploymentFilter{Environment: q.Get("environment")}
	if name := q.Get("repo"); name != "" {
		repo, err := s.cfg.Store.Repo(r.Context(), name)
		if err != nil {
			s.storeError(w, err)
			return
		}
		f.RepoID = repo.ID
	}
	var ok bool
	if f.Limit, ok = queryLimit(w, q); !ok {
		return
	}
	ds, err := s.cfg.Store.ListDeployments(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]DeploymentView, 0, len(ds))
	for _, d := range ds {
		v := DeploymentView{ID: d.ID, Repo: d.Repo, Environment: d.Environment, RunID: d.RunID, Commit: d.Commit,
			StartedAt: d.StartedAt, FinishedAt: d.FinishedAt, Result: d.Result, RollsBack: d.RollsBack}
		if rl := d.Release; rl.Provider != "" {
			v.Release = &ReleaseView{Provider: rl.Provider, Version: rl.Version, From: rl.From, Phase: rl.Phase, Traffic: rl.Traffic, Outcome: rl.Outcome}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deployments": out})
}

// badge serves GET /badges/{repo...}/status.svg?branch=&stage=&token=.
func (s *Server) badge(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("rest"), "/status.svg")
	if !ok || name == "" {
		http.NotFound(w, r)
		return
	}
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if repo.Private {
		ok, err := s.cfg.Store.CheckRepoToken(r.Context(), repo.ID, store.BadgeToken, r.URL.Query().Get("token"))
		if err != nil || !ok {
			// Same answer as an unknown repo: a private repo's existence is not revealed.
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "private, no-cache")
	}
	branch := r.URL.Query().Get("branch")
	if branch == "" {
		branch = repo.DefaultBranch
	}
	label, status := "runnel", "unknown"
	if stage := r.URL.Query().Get("stage"); stage != "" {
		label = stage
		if st, err := s.cfg.Store.LatestFinishedStage(r.Context(), repo.ID, branch, stage); err == nil {
			status = string(st.Status)
		}
	} else if run, err := s.cfg.Store.LatestFinishedRun(r.Context(), repo.ID, branch); err == nil {
		status = string(run.Status)
	}
	badge.Serve(w, r, label, status)
}
