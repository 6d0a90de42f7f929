package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/runnel-ci/runnel/internal/ratelog"
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
		s.reject(w, r, forge, rejection{http.StatusServiceUnavailable, metrics.RejectedShuttingDown, "server is shutting down", "30"}, nil)
		return
	}
	if forge != scm.ForgeGeneric && s.cfg.Hooks[forge] == nil {
		s.reject(w, r, forge, rejection{http.StatusNotFound, metrics.RejectedUnknownForge, "unknown forge " + ratelog.Clip(forge), ""}, nil)
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
		s.hookError(w, r, forge, err)
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

// hookError answers a webhook request that ended in err: 202 for an
// event that is ignored, else a rejection (rejectionOf), or 500.
func (s *Server) hookError(w http.ResponseWriter, r *http.Request, forge string, err error) {
	if errors.Is(err, scm.ErrIgnored) {
		s.count(forge, metrics.WebhookIgnored)
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored"})
		return
	}
	rej, ok := rejectionOf(err)
	switch {
	case !ok:
		// An internal failure, but one that unauthenticated requests can
		// cause (a store that fails to look up a repository): logged
		// within the same bounds.
		s.count(forge, metrics.WebhookError)
		s.rejects.Log("internal_error", slog.LevelError, "webhook failed", "forge", forge, "err", ratelog.Clip(err.Error()))
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	case rej.reason == metrics.RejectedBadSignature:
		s.count(forge, metrics.WebhookRejectedSignature)
	default:
		s.count(forge, metrics.WebhookError)
	}
	s.reject(w, r, forge, rej, err)
}

// rejection is how a webhook request that is not taken is answered.
type rejection struct {
	status     int    // 0: none, the client is gone
	reason     string // metrics.Rejected*: counted and logged under it
	msg        string
	retryAfter string // seconds, for a 503
}

// rejectionOf classifies the error that ended a webhook request; false
// for an internal failure.
func rejectionOf(err error) (rejection, bool) {
	switch {
	case errors.Is(err, scm.ErrSignature):
		return rejection{http.StatusUnauthorized, metrics.RejectedBadSignature, "invalid signature or token", ""}, true
	case errors.Is(err, scm.ErrTooLarge):
		return rejection{http.StatusRequestEntityTooLarge, metrics.RejectedTooLarge, "body too large", ""}, true
	case errors.Is(err, scm.ErrBadRequest):
		return rejection{http.StatusBadRequest, metrics.RejectedBadRequest, err.Error(), ""}, true
	case errors.Is(err, errBusy):
		return rejection{http.StatusServiceUnavailable, metrics.RejectedBusy, "too many webhook bodies being read; retry later", "5"}, true
	case errors.Is(err, os.ErrDeadlineExceeded):
		return rejection{http.StatusRequestTimeout, metrics.RejectedSlowBody, "webhook body not received in time", ""}, true
	case errors.Is(err, context.Canceled), errors.Is(err, io.ErrUnexpectedEOF):
		return rejection{0, metrics.RejectedAborted, "", ""}, true
	}
	return rejection{}, false
}

// reject answers a webhook request that is not taken, counts it by its
// reason and logs it within bounds (internal/ratelog): senders of rejected
// requests are not authenticated, and choose how many they send.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, forge string, rej rejection, err error) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.WebhookRejected(rej.reason)
	}
	args := []any{"forge", ratelog.Clip(forge), "remote", r.RemoteAddr, "status", rej.status}
	if err != nil {
		args = append(args, "err", ratelog.Clip(err.Error()))
	}
	s.rejects.Log(rej.reason, slog.LevelWarn, "webhook rejected", args...)
	if rej.status == 0 {
		return // nobody to answer
	}
	if rej.retryAfter != "" {
		w.Header().Set("Retry-After", rej.retryAfter)
	}
	writeError(w, rej.status, rej.msg)
}
