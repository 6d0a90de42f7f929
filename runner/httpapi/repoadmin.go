package httpapi

import (
	"net/http"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/store"
)

// Routes below /api/v1/repos/{repo...}: repository names contain
// slashes, so the resource is the last path element (or the last two for
// a named schedule) and the rest is the repository.

// repoGet serves GET /api/v1/repos/{repo...}[/environments|/inputs|
// /schedules|/schedules/{name}/ticks].
func (s *Server) repoGet(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	if repo, sched, ticks, ok := scheduleParts(rest); ok && ticks {
		s.listTicks(w, r, repo, sched)
		return
	}
	if name, kind, ok := cutLast(rest); ok {
		switch kind {
		case "environments":
			s.listEnvironments(w, r)
			return
		case "inputs":
			s.repoInputs(w, r, name)
			return
		case "schedules":
			s.listSchedules(w, r, name)
			return
		}
	}
	repo, err := s.cfg.Store.Repo(r.Context(), rest)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, repoView(repo))
}

// repoAction handles POST /api/v1/repos/{repo...}/trigger (operator),
// .../schedules (operator for a one-off run, admin for a cron schedule)
// and .../hook-token (admin).
func (s *Server) repoAction(w http.ResponseWriter, r *http.Request) {
	name, action, ok := cutLast(r.PathValue("rest"))
	if !ok {
		writeError(w, http.StatusNotFound, "unknown repo action")
		return
	}
	switch action {
	case "trigger":
		s.trigger(w, r, name)
	case "schedules":
		s.createSchedule(w, r, name)
	case "hook-token":
		if s.permitted(w, r, access.Administer) {
			s.rotateHookToken(w, r, name)
		}
	default:
		writeError(w, http.StatusNotFound, "unknown repo action")
	}
}

// repoDelete handles DELETE /api/v1/repos/{repo...} (admin) and
// DELETE /api/v1/repos/{repo...}/schedules/{name}.
func (s *Server) repoDelete(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	if repo, sched, ticks, ok := scheduleParts(rest); ok && !ticks {
		if _, err := s.cfg.Store.Repo(r.Context(), repo); err == nil {
			s.deleteSchedule(w, r, repo, sched)
			return
		}
	}
	if !s.permitted(w, r, access.Administer) {
		return
	}
	repo, err := s.cfg.Store.Repo(r.Context(), rest)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if err := s.cfg.Store.DeleteRepo(r.Context(), repo.ID); err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("repo removed", "repo", repo.Name, "by", user(r))
	w.WriteHeader(http.StatusNoContent)
}

// rotateHookToken makes a new hook token for the repository; the old one
// stops working at once.
func (s *Server) rotateHookToken(w http.ResponseWriter, r *http.Request, name string) {
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	tok, err := s.cfg.Store.RotateRepoToken(r.Context(), repo.ID, store.HookToken)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("repo hook token rotated", "repo", repo.Name, "by", user(r))
	writeJSON(w, http.StatusOK, map[string]string{"name": repo.Name, "hook_token": tok})
}

// repoInputs handles GET /api/v1/repos/{repo...}/inputs?branch=: the
// inputs the pipeline at the branch's head declares (for a trigger form).
func (s *Server) repoInputs(w http.ResponseWriter, r *http.Request, name string) {
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	branch := r.URL.Query().Get("branch")
	if branch == "" {
		branch = repo.DefaultBranch
	}
	commit, inputs, err := s.cfg.Runner.Inputs(r.Context(), repo, branch)
	if err != nil {
		s.manualError(w, err)
		return
	}
	if inputs == nil {
		inputs = []pipeline.Input{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"branch": branch, "commit": commit, "inputs": inputs})
}
