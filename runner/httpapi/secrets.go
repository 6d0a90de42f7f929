package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

// maxSecretValue bounds a secret's value (a key or certificate fits).
const maxSecretValue = 64 << 10

// SecretRequest is the body of PUT /api/v1/secrets/{name}.
type SecretRequest struct {
	Value        string   `json:"value"`
	Events       []string `json:"events"`
	Branches     []string `json:"branches"`
	Environments []string `json:"environments"`
}

// SecretView is a secret as the API shows it: never its value.
type SecretView struct {
	Name         string    `json:"name"`
	Repo         string    `json:"repo,omitempty"` // empty: global
	Events       []string  `json:"events"`
	Branches     []string  `json:"branches"`
	Environments []string  `json:"environments"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	UpdatedBy    string    `json:"updated_by"`
}

func secretView(repo string, s *store.Secret) SecretView {
	return SecretView{Name: s.Name, Repo: repo, Events: nonNil(s.Events), Branches: nonNil(s.Branches),
		Environments: nonNil(s.Environments), CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, UpdatedBy: s.UpdatedBy}
}

// check validates a secret request: a value of MinSecretLen to
// maxSecretValue bytes, known events, well-formed branch globs.
func (req *SecretRequest) check() error {
	switch {
	case len(req.Value) < pipeline.MinSecretLen:
		return fmt.Errorf("value: %d bytes; secrets must be at least %d (shorter ones cannot be masked usefully)", len(req.Value), pipeline.MinSecretLen)
	case len(req.Value) > maxSecretValue:
		return fmt.Errorf("value: %d bytes, at most %d", len(req.Value), maxSecretValue)
	}
	kinds := []string{pipeline.EventPush, pipeline.EventPullRequest, pipeline.EventTag, pipeline.EventCron, pipeline.EventManual}
	for _, e := range req.Events {
		if !slices.Contains(kinds, e) {
			return fmt.Errorf("events: %q is not one of %s", e, strings.Join(kinds, ", "))
		}
	}
	for _, b := range req.Branches {
		if err := pipeline.ValidGlob(b); err != nil {
			return fmt.Errorf("branches: %w", err)
		}
	}
	for _, e := range req.Environments {
		if e == "" || len(e) > 64 {
			return fmt.Errorf("environments: %q: want 1 to 64 characters", e)
		}
	}
	return nil
}

// secretScope resolves ?repo=NAME to its id; no repo means the global
// secrets (id 0). It has answered when ok is false.
func (s *Server) secretScope(w http.ResponseWriter, r *http.Request) (id int64, name string, ok bool) {
	name = r.URL.Query().Get("repo")
	if name == "" {
		return 0, "", true
	}
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return 0, "", false
	}
	return repo.ID, repo.Name, true
}

// listSecrets handles GET /api/v1/secrets[?repo=NAME].
func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	id, repo, ok := s.secretScope(w, r)
	if !ok {
		return
	}
	list, err := s.cfg.Store.Secrets(r.Context(), id)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]SecretView, 0, len(list))
	for _, sec := range list {
		out = append(out, secretView(repo, sec))
	}
	writeJSON(w, http.StatusOK, map[string]any{"secrets": out})
}

// putSecret handles PUT /api/v1/secrets/{name}[?repo=NAME].
func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := pipeline.CheckSecretName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req SecretRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2*maxSecretValue))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, repo, ok := s.secretScope(w, r)
	if !ok {
		return
	}
	sec := store.Secret{RepoID: id, Name: name, Events: req.Events, Branches: req.Branches,
		Environments: req.Environments, UpdatedBy: user(r)}
	created, err := s.cfg.Store.PutSecret(r.Context(), sec, req.Value)
	if errors.Is(err, store.ErrNoSealer) {
		writeError(w, http.StatusServiceUnavailable, "the server has no secret key")
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("secret set", "secret", name, "repo", repo, "by", user(r))
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	list, err := s.cfg.Store.Secrets(r.Context(), id)
	if err != nil {
		s.storeError(w, err)
		return
	}
	for _, stored := range list {
		if stored.Name == name {
			sec = *stored
		}
	}
	writeJSON(w, code, secretView(repo, &sec))
}

// deleteSecret handles DELETE /api/v1/secrets/{name}[?repo=NAME].
func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	id, repo, ok := s.secretScope(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if err := s.cfg.Store.DeleteSecret(r.Context(), id, name); err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("secret removed", "secret", name, "repo", repo, "by", user(r))
	w.WriteHeader(http.StatusNoContent)
}
