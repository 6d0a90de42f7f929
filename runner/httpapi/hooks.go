package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/generic"
)

// hook handles POST /hooks/{forge}[/{repo...}]. The request is verified
// on its raw body before anything is stored (fail closed: an unknown repo
// or a repo without a secret answers 401), deduplicated by delivery ID in
// the store, answered 202, and triggered by a worker (triggers.go).
//
// The recommended hook URL names the repository,
// /hooks/github/{owner}/{name}: the secret is then found without reading
// the unverified body for the name first.
func (s *Server) hook(w http.ResponseWriter, r *http.Request) {
	forge := r.PathValue("forge")
	if !s.accepting.Load() {
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	var (
		ev   *scm.Event
		repo *store.Repo
		body []byte
		err  error
	)
	pathRepo := r.PathValue("repo")
	if forge == scm.ForgeGeneric {
		body, err = scm.ReadBody(r, generic.MaxBodySize)
		if err == nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			ev, err = generic.ParseFunc(r, func(name string) ([]byte, error) {
				if pathRepo != "" && name != pathRepo {
					return nil, fmt.Errorf("payload repo %q differs from the URL's %q", name, pathRepo)
				}
				rp, err := s.repo(r.Context(), name)
				if err != nil {
					return nil, err
				}
				tok := bearer(r)
				ok, err := s.cfg.Store.CheckRepoToken(r.Context(), rp.ID, store.HookToken, tok)
				if err != nil || !ok {
					return nil, errors.New("token does not match")
				}
				repo = rp
				return []byte(tok), nil
			})
		}
	} else {
		hook, ok := s.cfg.Hooks[forge]
		if !ok {
			writeError(w, http.StatusNotFound, "unknown forge "+forge)
			return
		}
		body, err = scm.ReadBody(r, scm.MaxBodySize)
		if err == nil {
			name := pathRepo
			if name == "" {
				name = repoFromPayload(body)
			}
			repo, err = s.repo(r.Context(), name)
			if err != nil || repo.WebhookSecret == "" || repo.Forge != forge {
				// Fail closed without saying whether the repo exists.
				err = fmt.Errorf("repo %q: no secret for forge %s: %w", name, forge, scm.ErrSignature)
			} else {
				r.Body = io.NopCloser(bytes.NewReader(body))
				ev, err = hook.Parse(r, []byte(repo.WebhookSecret))
			}
		}
	}
	if err != nil {
		s.hookError(w, forge, err)
		return
	}
	if pathRepo != "" && repo.Name != pathRepo {
		s.hookError(w, forge, fmt.Errorf("repo mismatch: %w", scm.ErrSignature))
		return
	}
	var deliveryID int64
	if ev.Delivery != "" {
		// The stored payload is the verified event, so a delivery accepted
		// just before a crash can be triggered again at start (Resume)
		// without its request headers.
		evJSON, err := json.Marshal(ev)
		if err != nil {
			s.hookError(w, forge, err)
			return
		}
		id, dup, err := s.cfg.Store.InsertDelivery(r.Context(), forge, ev.Delivery, ev.Kind, evJSON)
		if err != nil {
			s.count(forge, metrics.WebhookError)
			s.storeError(w, err)
			return
		}
		if dup {
			s.count(forge, metrics.WebhookDuplicate)
			writeJSON(w, http.StatusOK, map[string]any{"status": "duplicate", "delivery": ev.Delivery})
			return
		}
		deliveryID = id
	}
	trigger := store.TriggerWebhook
	if forge == scm.ForgeGeneric && repo.Forge == store.ForgeGit {
		// Pushes of the git post-receive hook are counted apart from
		// the generic JSON hook.
		trigger, forge = store.TriggerGitHook, store.ForgeGit
	}
	j := job{delivery: deliveryID, repo: repo, ev: ev, trigger: trigger}
	if deliveryID != 0 {
		// Stored: when the queue is full the sweeper triggers it later.
		s.offer(j)
	} else {
		// Nothing stored to fall back on: wait for room.
		select {
		case s.queue <- j:
		case <-s.stop:
			w.Header().Set("Retry-After", "30")
			writeError(w, http.StatusServiceUnavailable, "server is shutting down")
			return
		case <-r.Context().Done():
			s.count(forge, metrics.WebhookError)
			return
		}
	}
	s.count(forge, metrics.WebhookAccepted)
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "accepted", "delivery": ev.Delivery, "commit": ev.Commit})
}

func (s *Server) count(forge, result string) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.WebhookDelivery(forge, result)
	}
}

func (s *Server) hookError(w http.ResponseWriter, forge string, err error) {
	switch {
	case errors.Is(err, scm.ErrIgnored):
		s.count(forge, metrics.WebhookIgnored)
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored"})
	case errors.Is(err, scm.ErrSignature):
		s.count(forge, metrics.WebhookRejectedSignature)
		s.log.Warn("webhook rejected", "forge", forge, "err", err)
		writeError(w, http.StatusUnauthorized, "invalid signature or token")
	case errors.Is(err, scm.ErrTooLarge):
		s.count(forge, metrics.WebhookError)
		writeError(w, http.StatusRequestEntityTooLarge, "body too large")
	case errors.Is(err, scm.ErrBadRequest):
		s.count(forge, metrics.WebhookError)
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.count(forge, metrics.WebhookError)
		s.log.Error("webhook failed", "forge", forge, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func bearer(r *http.Request) string {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) > len(prefix) && h[:len(prefix)] == prefix {
		return h[len(prefix):]
	}
	return ""
}
