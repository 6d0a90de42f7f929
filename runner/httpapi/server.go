package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/runnel-ci/runnel/internal/ratelog"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/deliveryq"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// Config configures New.
type Config struct {
	Store  *store.Store
	Runner *runner.Runner
	Logs   *logstore.Store
	// Hooks maps a forge name (github, gitea, gitlab) to its webhook
	// parser; the generic hook is built in.
	Hooks map[string]scm.Hook
	// Agents lists connected agents (the bus's presence).
	Agents  func() []runner.AgentInfo
	Metrics *metrics.Metrics
	// MetricsHandler serves /metrics; nil means 404.
	MetricsHandler http.Handler
	Logger         *slog.Logger
	// Deliveries stores verified webhook deliveries and triggers them;
	// without it webhooks answer 503.
	Deliveries *deliveryq.Queue
	// HookReadTimeout bounds the time a webhook request has to send its
	// body (default 10 s): a slow client is cut off.
	HookReadTimeout time.Duration
	// HookBodyBudget bounds the bytes of webhook bodies held at once
	// (default 32 MiB, more than the largest body a forge sends): a
	// request that finds it spent answers 503 with Retry-After.
	HookBodyBudget int64
	// HookSpoolDir is where forge webhook bodies longer than 256 KiB are
	// written, unlinked, while their signature is checked (default the
	// system's temporary directory; the server passes its data
	// directory). HookSpoolBudget bounds the bytes of those files at once
	// (default 256 MiB); a request that finds it spent for a second
	// answers 503 with Retry-After.
	HookSpoolDir    string
	HookSpoolBudget int64
	// HookLogInterval is the interval of the log of rejected webhooks and
	// of failing token checks (default 10 s): in each, the first 5 of each
	// reason are logged one by one and the others in one summary line at
	// its end (internal/ratelog).
	HookLogInterval time.Duration
	// RepoCacheTTL is how long webhook repo lookups are cached (default
	// 2 s; negative disables). API repo changes invalidate the cache.
	RepoCacheTTL time.Duration
	// Transfers serves the transfer and blob APIs of agents
	// (/api/v1/transfer/, /api/v1/blobs/; runner/transfers), which
	// authenticate by the signatures in their URLs; nil means 404.
	Transfers http.Handler
	// Artifacts serves GET /api/v1/runs/{id}/artifacts and
	// /api/v1/runs/{id}/artifacts/{stage} behind the API's authentication;
	// nil means 404.
	Artifacts http.HandlerFunc
	// Session returns the API token behind the web UI session a request
	// carries (its cookie), or nil. GET requests without a bearer token
	// are let in with it, so the UI reads the same endpoints as the CLI
	// (the log stream above all); anything else needs a bearer token.
	Session func(r *http.Request) *store.Token
	// ScheduleAdded is called after a schedule or one-off run was added
	// (the scheduler's Kick), so that it looks at once; nil is fine.
	ScheduleAdded func()
}

// Server is the HTTP API. Create it with New; its Handler serves
// requests. Call StopHooks at shutdown, then drain the delivery queue.
type Server struct {
	cfg       Config
	log       *slog.Logger
	mux       *http.ServeMux
	accepting atomic.Bool
	repos     repoCache
	bodies    *semaphore.Weighted // the webhook body budget
	spool     hookSpool
	rejects   *ratelog.Log // rejected webhooks' log lines
	authFails *ratelog.Log // failing token checks' log lines (unauthenticated requests reach them)
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HookReadTimeout <= 0 {
		cfg.HookReadTimeout = 10 * time.Second
	}
	if cfg.HookBodyBudget <= 0 {
		cfg.HookBodyBudget = 32 << 20
	}
	if cfg.HookSpoolDir == "" {
		cfg.HookSpoolDir = os.TempDir()
	}
	if cfg.HookSpoolBudget <= 0 {
		cfg.HookSpoolBudget = 256 << 20
	}
	if cfg.HookLogInterval <= 0 {
		cfg.HookLogInterval = 10 * time.Second
	}
	if cfg.RepoCacheTTL == 0 {
		cfg.RepoCacheTTL = 2 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(),
		repos:     repoCache{ttl: cfg.RepoCacheTTL, m: map[string]repoEntry{}},
		bodies:    semaphore.NewWeighted(cfg.HookBodyBudget),
		spool:     hookSpool{dir: cfg.HookSpoolDir, budget: semaphore.NewWeighted(cfg.HookSpoolBudget)},
		rejects:   ratelog.New(cfg.Logger, cfg.HookLogInterval, "webhook rejections not logged one by one"),
		authFails: ratelog.New(cfg.Logger, cfg.HookLogInterval, "token check failures not logged one by one")}
	s.accepting.Store(true)
	s.routes()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// StopHooks makes webhooks answer 503 (the forge retries later), for the
// start of a graceful shutdown.
func (s *Server) StopHooks() { s.accepting.Store(false) }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if s.cfg.MetricsHandler != nil {
		m.Handle("GET /metrics", s.cfg.MetricsHandler)
	}
	m.HandleFunc("POST /hooks/{forge}", s.hook)
	m.HandleFunc("POST /hooks/{forge}/{repo...}", s.hook)
	m.HandleFunc("GET /badges/{rest...}", s.badge)

	// Every API route names the permission its token's role needs
	// (runner/access); handlers that serve several actions check more.
	api := func(p access.Permission, pattern string, h http.HandlerFunc) {
		m.Handle(pattern, s.auth(s.allow(p, h)))
	}
	api(access.View, "GET /api/v1/runs", s.listRuns)
	api(access.View, "GET /api/v1/runs/{id}", s.getRun)
	api(access.View, "GET /api/v1/runs/{id}/stages/{stage}/steps/{step}/log", s.stepLog)
	api(access.Operate, "POST /api/v1/runs/{id}/cancel", s.cancelRun)
	api(access.Operate, "POST /api/v1/runs/{id}/rerun", s.rerun)
	api(access.Operate, "POST /api/v1/runs/{id}/approve", s.approvePR)
	api(access.Operate, "POST /api/v1/runs/{id}/stages/{stage}/approve", s.approve(true))
	api(access.Operate, "POST /api/v1/runs/{id}/stages/{stage}/reject", s.approve(false))
	api(access.View, "GET /api/v1/repos", s.listRepos)
	api(access.Administer, "POST /api/v1/repos", s.invalidating(s.createRepo))
	api(access.Operate, "POST /api/v1/repos/{rest...}", s.invalidating(s.repoAction))
	api(access.Administer, "PUT /api/v1/repos/{rest...}", s.putEnvironment)
	api(access.View, "GET /api/v1/repos/{rest...}", s.repoGet)
	api(access.Administer, "PATCH /api/v1/repos/{name...}", s.invalidating(s.patchRepo))
	api(access.Administer, "DELETE /api/v1/repos/{rest...}", s.invalidating(s.repoDelete))
	api(access.View, "GET /api/v1/agents", s.listAgents)
	api(access.View, "GET /api/v1/deployments", s.listDeployments)
	api(access.Administer, "GET /api/v1/tokens", s.listTokens)
	api(access.Administer, "POST /api/v1/tokens", s.createToken)
	api(access.Administer, "DELETE /api/v1/tokens/{id}", s.deleteToken)
	api(access.Administer, "GET /api/v1/secrets", s.listSecrets)
	api(access.Administer, "PUT /api/v1/secrets/{name}", s.putSecret)
	api(access.Administer, "DELETE /api/v1/secrets/{name}", s.deleteSecret)
	if s.cfg.Transfers != nil {
		m.Handle("/api/v1/transfer/", s.cfg.Transfers)
		m.Handle("/api/v1/blobs/", s.cfg.Transfers)
	}
	if s.cfg.Artifacts != nil {
		api(access.View, "GET /api/v1/runs/{id}/artifacts", s.cfg.Artifacts)
		api(access.View, "GET /api/v1/runs/{id}/artifacts/{stage}", s.cfg.Artifacts)
	}
}

// invalidating wraps a handler that may change repos: cached repo
// lookups are dropped after it ran.
func (s *Server) invalidating(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer s.InvalidateRepos()
		h(w, r)
	}
}

type ctxKey struct{}

// auth checks the bearer token against the store's API tokens (only
// their hashes are stored; the lookup is by hash, so the plaintext is
// never compared byte by byte).
func (s *Server) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := r.Header.Get("Authorization")
		if hdr == "" && s.cfg.Session != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if t := s.cfg.Session(r); t != nil {
				h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, t)))
				return
			}
		}
		tok, ok := strings.CutPrefix(hdr, "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="runnel"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		t, err := s.cfg.Store.CheckToken(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.authFails.Log("store_error", slog.LevelError, "check token", "err", err)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="runnel", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid token")
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, t)))
	})
}

// allow answers 403 unless the request's token has permission p.
func (s *Server) allow(p access.Permission, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.permitted(w, r, p) {
			h(w, r)
		}
	}
}

// permitted reports whether the request's token has permission p; when
// not, it has answered 403 naming the role needed.
func (s *Server) permitted(w http.ResponseWriter, r *http.Request, p access.Permission) bool {
	t, _ := r.Context().Value(ctxKey{}).(*store.Token)
	if t != nil && access.Allows(t.Role, p) {
		return true
	}
	role := access.Role("")
	if t != nil {
		role = t.Role
	}
	writeError(w, http.StatusForbidden, fmt.Sprintf("token role %q may not do this; it needs %s", role, p))
	return false
}

func user(r *http.Request) string {
	if t, ok := r.Context().Value(ctxKey{}).(*store.Token); ok {
		return t.Name
	}
	return ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// storeError maps store errors to HTTP statuses.
func (s *Server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrDuplicate), errors.Is(err, store.ErrStale):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log.Error("request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}
