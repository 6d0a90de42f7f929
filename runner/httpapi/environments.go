package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

// envNameRE is what an environment may be called: it becomes a metric
// label value and a path element.
var envNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// EnvironmentRequest is the body of PUT /api/v1/repos/{repo}/environments/{name}.
type EnvironmentRequest struct {
	Branches []string `json:"branches"`
	Tags     []string `json:"tags"`
}

// EnvironmentView is an environment as the API shows it.
type EnvironmentView struct {
	Name     string   `json:"name"`
	Branches []string `json:"branches"`
	Tags     []string `json:"tags"`
}

// putEnvironment handles PUT /api/v1/repos/{repo...}/environments/{name}:
// it declares an environment (201) or replaces its branches and tags (200).
func (s *Server) putEnvironment(w http.ResponseWriter, r *http.Request) {
	rest, name, _ := cutLast(r.PathValue("rest"))
	repoName, kind, ok := cutLast(rest)
	if !ok || kind != "environments" {
		writeError(w, http.StatusNotFound, "unknown repo resource")
		return
	}
	var req EnvironmentRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	if err := validEnvironment(name, req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	repo, err := s.cfg.Store.Repo(r.Context(), repoName)
	if err != nil {
		s.storeError(w, err)
		return
	}
	created, err := s.cfg.Store.PutEnvironment(r.Context(), store.Environment{RepoID: repo.ID, Name: name,
		Branches: req.Branches, Tags: req.Tags})
	if errors.Is(err, store.ErrTooMany) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.EnvironmentKnown(repo.Name, name)
		}
	}
	writeJSON(w, code, EnvironmentView{Name: name, Branches: nonNil(req.Branches), Tags: nonNil(req.Tags)})
}

// validEnvironment checks a declaration: a bounded name, at least one
// branch or tag glob (an environment nothing may deploy to is a mistake),
// and globs that compile.
func validEnvironment(name string, req EnvironmentRequest) error {
	if !envNameRE.MatchString(name) {
		return fmt.Errorf("environment name %q: want [A-Za-z0-9][A-Za-z0-9_.-]*, at most 63 characters", name)
	}
	if len(req.Branches) == 0 && len(req.Tags) == 0 {
		return fmt.Errorf("environment %s: give the branches or tags that may deploy to it", name)
	}
	if len(req.Branches)+len(req.Tags) > 50 {
		return fmt.Errorf("environment %s: at most 50 globs", name)
	}
	for _, g := range append(append([]string(nil), req.Branches...), req.Tags...) {
		if err := pipeline.ValidGlob(g); err != nil {
			return fmt.Errorf("environment %s: glob %q: %w", name, g, err)
		}
	}
	return nil
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// listEnvironments handles GET /api/v1/repos/{repo...}/environments.
func (s *Server) listEnvironments(w http.ResponseWriter, r *http.Request) {
	repoName, kind, ok := cutLast(r.PathValue("rest"))
	if !ok || kind != "environments" {
		writeError(w, http.StatusNotFound, "unknown repo resource")
		return
	}
	repo, err := s.cfg.Store.Repo(r.Context(), repoName)
	if err != nil {
		s.storeError(w, err)
		return
	}
	envs, err := s.cfg.Store.Environments(r.Context(), repo.ID)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]EnvironmentView, 0, len(envs))
	for _, e := range envs {
		out = append(out, EnvironmentView{Name: e.Name, Branches: nonNil(e.Branches), Tags: nonNil(e.Tags)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"environments": out})
}
