package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/generic"
)

// unnamedRepoPrefix is how much of a forge hook's body is read, when the
// URL does not name the repository, to find the name in it. Forges put
// the repository object early (GitHub pushes: after three short members;
// pull requests: after the pull request object), well within this. It
// is what a body may hold in memory before it is verified (memBody).
const unnamedRepoPrefix = memBody

// hook handles POST /hooks/{forge}[/{repo...}]. Nothing of the request is
// trusted before it is verified, so it is bounded first: the handler has
// HookReadTimeout to read the whole body, the bytes of bodies held in
// memory come from a budget shared by all hooks (503 when it is spent),
// a forge hook's body longer than memBody is verified while it streams
// to a file (hookSpool), and the repository is known before its body is
// read in full: from the URL (recommended, /hooks/github/{owner}/{name}),
// from the generic hook's token, or else from the first
// unnamedRepoPrefix bytes. An unknown repository, one that does not
// accept this hook (acceptsHook), or a bad signature or token answers
// 401 (fail closed, without saying which).
//
// The verified event is then stored, bound to the repository that
// verified it, deduplicated per repository, and answered 202; the
// delivery queue triggers it (package deliveryq).
func (s *Server) hook(w http.ResponseWriter, r *http.Request) {
	forge, pathRepo := r.PathValue("forge"), r.PathValue("repo")
	if !s.accepting.Load() || s.cfg.Deliveries == nil {
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	if forge != scm.ForgeGeneric && s.cfg.Hooks[forge] == nil {
		writeError(w, http.StatusNotFound, "unknown forge "+forge)
		return
	}
	// A failure to set the deadline (a connection that cannot have one)
	// leaves the server's own timeouts.
	deadline := time.Now().Add(s.cfg.HookReadTimeout)
	_ = http.NewResponseController(w).SetReadDeadline(deadline)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	body := newHookBody(s.bodies, r.Body, r.ContentLength)
	defer body.release()
	var (
		repo *store.Repo
		ev   *scm.Event
		err  error
	)
	if forge == scm.ForgeGeneric {
		repo, ev, err = s.genericEvent(r, pathRepo, body)
	} else {
		repo, ev, err = s.forgeEvent(ctx, r, forge, pathRepo, body)
	}
	if err != nil {
		if !body.eof {
			// Answer now and close: net/http would otherwise read up to
			// 256 KiB of the unwanted body before the answer.
			w.Header().Set("Connection", "close")
		}
		s.hookError(w, forge, err)
		return
	}
	label := forge
	if forge == scm.ForgeGeneric && repo.Forge == store.ForgeGit {
		// Pushes of the git post-receive hook are counted apart from
		// the generic JSON hook.
		label = store.ForgeGit
	}
	a, err := s.cfg.Deliveries.Accept(r.Context(), repo, forge, ev)
	if err != nil {
		s.count(label, metrics.WebhookError)
		s.storeError(w, err)
		return
	}
	if a.Duplicate {
		s.count(label, metrics.WebhookDuplicate)
		writeJSON(w, http.StatusOK, map[string]any{"status": "duplicate", "delivery": a.DeliveryID})
		return
	}
	s.count(label, metrics.WebhookAccepted)
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "accepted", "delivery": a.DeliveryID, "commit": ev.Commit})
}

// forgeEvent verifies a forge's webhook with the secret of the
// repository named in the URL, or else in the start of the body. A body
// longer than memBody is verified as it streams to a file (hookSpool),
// so only a verified one is held in memory whole; ctx bounds the wait
// for the memory it then takes.
func (s *Server) forgeEvent(ctx context.Context, r *http.Request, forge, name string, body *hookBody) (*store.Repo, *scm.Event, error) {
	if err := body.announced(scm.MaxBodySize); err != nil {
		return nil, nil, err
	}
	if name == "" {
		if err := body.prefix(unnamedRepoPrefix); err != nil {
			return nil, nil, err
		}
		name = repoFromPayload(body.bytes())
	}
	repo, err := s.repo(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	if err != nil || !acceptsHook(repo, forge) {
		return nil, nil, fmt.Errorf("repo %q: no %s webhook secret: %w", name, forge, scm.ErrSignature)
	}
	hook, secret := s.cfg.Hooks[forge], []byte(repo.WebhookSecret)
	chk, err := hook.Verify(r, secret)
	if err != nil {
		return nil, nil, err
	}
	if err := body.prefix(memBody); err != nil {
		return nil, nil, err
	}
	if !body.eof {
		if err := s.spool.verify(ctx, body, chk, scm.MaxBodySize); err != nil {
			return nil, nil, err
		}
	}
	r.Body, r.ContentLength = scm.BytesBody(body.bytes()), int64(len(body.bytes()))
	ev, err := hook.Parse(r, secret)
	return repo, ev, err
}

// genericEvent authenticates the generic hook by its token, which names
// the repository, before reading the body; the body must name the same
// repository.
func (s *Server) genericEvent(r *http.Request, name string, body *hookBody) (*store.Repo, *scm.Event, error) {
	repo, err := s.cfg.Store.RepoByHookToken(r.Context(), generic.Token(r))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("generic hook: unknown token: %w", scm.ErrSignature)
	case name != "" && name != repo.Name:
		return nil, nil, fmt.Errorf("generic hook: token of %q used for %q: %w", repo.Name, name, scm.ErrSignature)
	case !acceptsHook(repo, scm.ForgeGeneric):
		return nil, nil, fmt.Errorf("generic hook: %s repository %q accepts only its forge's webhooks: %w", repo.Forge, repo.Name, scm.ErrSignature)
	}
	if err := body.all(generic.MaxBodySize); err != nil {
		return nil, nil, err
	}
	ev, err := generic.ParseBody(r, body.bytes())
	if err != nil {
		return nil, nil, err
	}
	if ev.Repo != repo.Name {
		return nil, nil, fmt.Errorf("generic hook: payload names repo %q, the token is %q's: %w", ev.Repo, repo.Name, scm.ErrBadRequest)
	}
	return repo, ev, nil
}

// acceptsHook is the rule of which hooks start runs of a repository: a
// forge's webhook only for a repository of that forge with a webhook
// secret; the generic hook (with the hook token) for bare repositories
// on this host and generic ones, and for a forge repository only when
// its generic hook was explicitly enabled.
func acceptsHook(repo *store.Repo, source string) bool {
	if source == scm.ForgeGeneric {
		return repo.Forge == store.ForgeGit || repo.Forge == store.ForgeGeneric || repo.GenericHook
	}
	return repo.Forge == source && repo.WebhookSecret != ""
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
		return
	case errors.Is(err, scm.ErrSignature):
		s.count(forge, metrics.WebhookRejectedSignature)
		s.log.Warn("webhook rejected", "forge", forge, "err", err)
		writeError(w, http.StatusUnauthorized, "invalid signature or token")
		return
	}
	s.count(forge, metrics.WebhookError)
	switch {
	case errors.Is(err, scm.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "body too large")
	case errors.Is(err, scm.ErrBadRequest):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "too many webhook bodies being read; retry later")
	case errors.Is(err, os.ErrDeadlineExceeded):
		writeError(w, http.StatusRequestTimeout, "webhook body not received in time")
	case errors.Is(err, context.Canceled), errors.Is(err, io.ErrUnexpectedEOF):
		// The client went away before the body was read: nobody to answer.
	default:
		s.log.Error("webhook failed", "forge", forge, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}
