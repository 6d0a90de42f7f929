package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/generic"
)

// hook handles POST /hooks/{forge}[/{repo...}]. The request is verified
// on its raw body before anything is stored (fail closed: an unknown repo
// or a repo without a secret answers 401), deduplicated by delivery ID in
// the store, answered 202, and triggered by a worker.
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
				rp, err := s.cfg.Store.Repo(r.Context(), name)
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
			repo, err = s.cfg.Store.Repo(r.Context(), name)
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
	s.count(forge, metrics.WebhookAccepted)
	trigger := store.TriggerWebhook
	if forge == scm.ForgeGeneric && repo.Forge == store.ForgeGit {
		trigger = store.TriggerGitHook
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case s.sem <- struct{}{}:
		case <-s.base.Done():
			return
		}
		defer func() { <-s.sem }()
		s.runTrigger(s.base, repo, ev, trigger, deliveryID)
	}()
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "accepted", "delivery": ev.Delivery, "commit": ev.Commit})
}

// Resume triggers deliveries that were accepted but not handled when the
// previous server process stopped. Call it once at start, before serving.
func (s *Server) Resume(ctx context.Context) error {
	ds, err := s.cfg.Store.PendingDeliveries(ctx, 1000)
	if err != nil {
		return fmt.Errorf("resume deliveries: %w", err)
	}
	for _, d := range ds {
		var ev scm.Event
		if err := json.Unmarshal(d.Payload, &ev); err != nil || ev.Repo == "" {
			_ = s.cfg.Store.FinishDelivery(ctx, d.ID, store.DeliveryFailed, 0, "cannot resume: payload is not an event")
			continue
		}
		repo, err := s.cfg.Store.Repo(ctx, ev.Repo)
		if err != nil {
			_ = s.cfg.Store.FinishDelivery(ctx, d.ID, store.DeliveryFailed, 0, "cannot resume: "+err.Error())
			continue
		}
		trigger := store.TriggerWebhook
		if repo.Forge == store.ForgeGit {
			trigger = store.TriggerGitHook
		}
		s.log.Info("resuming delivery", "delivery", d.DeliveryID, "repo", repo.Name, "commit", ev.Commit)
		s.runTrigger(ctx, repo, &ev, trigger, d.ID)
	}
	return nil
}

func (s *Server) runTrigger(ctx context.Context, repo *store.Repo, ev *scm.Event, trigger string, deliveryID int64) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	run, err := s.cfg.Runner.Trigger(ctx, repo, ev, trigger, 0)
	state, runID, msg := store.DeliveryProcessed, int64(0), ""
	if err != nil {
		s.log.Error("trigger from webhook failed", "repo", repo.Name, "commit", ev.Commit, "err", err)
		state, msg = store.DeliveryFailed, err.Error()
	} else {
		runID = run.ID
	}
	if deliveryID != 0 {
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer fcancel()
		if err := s.cfg.Store.FinishDelivery(fctx, deliveryID, state, runID, msg); err != nil {
			s.log.Error("finish delivery", "delivery", deliveryID, "err", err)
		}
	}
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

// repoFromPayload finds the repository name in an unverified forge
// payload, only to choose the secret that then verifies it.
func repoFromPayload(body []byte) string {
	var p struct {
		Repository struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
		Project struct {
			PathWithNamespace string `json:"path_with_namespace"`
		} `json:"project"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	if p.Repository.FullName != "" {
		return p.Repository.FullName
	}
	return p.Project.PathWithNamespace
}

func bearer(r *http.Request) string {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) > len(prefix) && h[:len(prefix)] == prefix {
		return h[len(prefix):]
	}
	return ""
}
