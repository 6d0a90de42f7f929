package ui

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/runnel-ci/runnel/internal/ratelog"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/logview"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/transfers"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Actions are the run operations the UI offers besides reading. Each call
// acts on the run with that ID; errors wrapping store.ErrNotFound,
// store.ErrConflict or store.ErrStale are shown to the user as such. The
// methods are called concurrently from request handlers.
type Actions interface {
	// Cancel cancels the run and its unfinished stages.
	Cancel(ctx context.Context, runID int64) error
	// Rerun starts a new run of the same event and returns it.
	Rerun(ctx context.Context, runID int64) (*store.Run, error)
	// Approve lets a stage held for approval run; user is who decided.
	Approve(ctx context.Context, runID int64, stageKey, user string) error
	// Reject refuses a stage held for approval.
	Reject(ctx context.Context, runID int64, stageKey, user string) error
	// PRApproval returns the approval of the head commit of run, a pull
	// request from a fork (nil before one), and whether run needs one.
	PRApproval(ctx context.Context, run *store.Run) (*store.PRApproval, bool, error)
	// ApprovePR approves the head commit sha of run runID, a pull request
	// from a fork; user is who approved.
	ApprovePR(ctx context.Context, runID int64, sha, user string) (*store.PRApproval, error)
	// Diagnostics returns the pipeline diagnostics of a run that ended
	// pipeline_invalid (nil if none are kept).
	Diagnostics(run *store.Run) []pipeline.Diagnostic
	// Inputs returns the head commit of a repository's branch ("" means
	// its default branch) and the inputs its pipeline declares.
	Inputs(ctx context.Context, repo *store.Repo, branch string) (string, []pipeline.Input, error)
	// Manual starts a manual run; inputs it refuses give a
	// *runner.InputError (with Fields by input) and start nothing.
	Manual(ctx context.Context, req runner.ManualRequest) (*store.Run, error)
}

var _ Actions = (*runner.Runner)(nil)

// Config configures New.
type Config struct {
	Store   *store.Store    // required
	Logs    *logstore.Store // required
	Actions Actions         // required
	// Agents lists connected agents (the bus's presence); nil shows only
	// the agents' last heartbeats from the store.
	Agents func() []runner.AgentInfo
	Logger *slog.Logger
	// SecureCookie marks the session cookie Secure. Set it when users
	// reach the server over HTTPS (a TLS-terminating proxy in front);
	// requests that arrive over TLS get it anyway.
	SecureCookie bool
	// SessionTTL is how long a login lasts (default 12 h).
	SessionTTL time.Duration
	// LoginLogInterval is the interval of the refused logins' log
	// (default 10 s): in each, the first 5 of each reason are logged one
	// by one and the others in one summary line at its end
	// (internal/ratelog): anyone can post to /login.
	LoginLogInterval time.Duration
	// RefreshInterval is how often an open runs list, or the page of an
	// unfinished run, reloads its content in the background (default 5 s).
	RefreshInterval time.Duration
	// LogPageLines and LogPageBytes bound a page of a log: the part the
	// log page shows when it opens and each part it fetches as the reader
	// scrolls (defaults 1,000 lines and 256 KiB).
	LogPageLines int
	LogPageBytes int64
	// LogMaxLines bounds the lines a log page holds at once, live or
	// scrolled; the rest are paged out and fetched again when scrolled
	// to (default 5,000).
	LogMaxLines int
	// Artifacts lists and serves runs' artifacts (runner/transfers); nil
	// shows none.
	Artifacts Artifacts
	// BaseURL is the server's public URL (runnel server --base-url), for
	// the badge snippet on a repository's page; empty means the URL the
	// request came to.
	BaseURL string
}

// Artifacts is what the run page needs of the artifact store.
type Artifacts interface {
	List(ctx context.Context, runID int64) ([]transfers.Artifact, error)
	// RunArtifacts serves GET .../runs/{id}/artifacts/{stage}.
	RunArtifacts(w http.ResponseWriter, r *http.Request)
}

// Handler serves the UI. Create it with New.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	pages    map[string]*template.Template
	mux      *http.ServeMux
	sessions *sessions
	refusals *ratelog.Log // refused logins' log lines
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Logs == nil || cfg.Actions == nil {
		return nil, errors.New("ui: Store, Logs and Actions are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.LoginLogInterval <= 0 {
		cfg.LoginLogInterval = 10 * time.Second
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 5 * time.Second
	}
	if cfg.LogPageLines <= 0 {
		cfg.LogPageLines = 1000
	}
	if cfg.LogPageBytes <= 0 || cfg.LogPageBytes > logview.MaxPageBytes {
		cfg.LogPageBytes = 256 << 10
	}
	if cfg.LogMaxLines < 2*cfg.LogPageLines {
		cfg.LogMaxLines = max(5000, 2*cfg.LogPageLines)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, pages: pages, mux: http.NewServeMux(), sessions: newSessions(cfg.SessionTTL),
		refusals: ratelog.New(cfg.Logger, cfg.LoginLogInterval, "ui logins refused not logged one by one")}
	h.routes()
	return h, nil
}

// Paths are the URL patterns the UI serves; Wrap sends everything else
// to the next handler.
var Paths = []string{"/{$}", "/ui/", "/runs/", "/repos", "/repos/", "/trigger", "/tokens", "/tokens/", "/agents", "/deployments",
	"/login", "/logout", "/static/"}

// ServeHTTP serves the UI's own paths (see Paths) and 404 for others.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secure(w)
	h.mux.ServeHTTP(w, r)
}

// Wrap returns a handler that serves the UI's paths and passes every
// other request (the JSON API, webhooks, badges, metrics) to next.
func (h *Handler) Wrap(next http.Handler) http.Handler {
	m := http.NewServeMux()
	for _, p := range Paths {
		m.Handle(p, h)
	}
	m.Handle("/", next)
	return m
}

func (h *Handler) routes() {
	m := h.mux
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	m.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	}))
	m.HandleFunc("GET /login", h.loginPage)
	m.HandleFunc("POST /login", h.login)
	m.Handle("POST /logout", h.mutate(access.View, h.logout))

	m.Handle("GET /{$}", h.view(access.View, h.runsPage))
	m.Handle("GET /ui/{$}", h.view(access.View, h.runsPage))
	m.Handle("GET /runs/{id}", h.view(access.View, h.runPage))
	m.Handle("GET /runs/{id}/stages/{stage}/steps/{step}/log", h.view(access.View, h.logPage))
	m.Handle("GET /runs/{id}/stages/{stage}/steps/{step}/log.txt", h.view(access.View, h.logText))
	m.Handle("POST /runs/{id}/cancel", h.mutate(access.Operate, h.cancel))
	m.Handle("POST /runs/{id}/rerun", h.mutate(access.Operate, h.rerun))
	m.Handle("POST /runs/{id}/approve", h.mutate(access.Operate, h.approveHead))
	m.Handle("POST /runs/{id}/stages/{stage}/approve", h.mutate(access.Operate, h.decide(true)))
	m.Handle("POST /runs/{id}/stages/{stage}/reject", h.mutate(access.Operate, h.decide(false)))
	m.Handle("GET /repos", h.view(access.View, h.reposPage))
	m.Handle("GET /repos/{name...}", h.view(access.View, h.repoPage))
	m.Handle("POST /repos/{name...}", h.mutate(access.Administer, h.repoSettings))
	m.Handle("GET /trigger", h.view(access.Operate, h.triggerPage))
	m.Handle("POST /trigger", h.mutate(access.Operate, h.trigger))
	m.Handle("GET /tokens", h.view(access.Administer, h.tokensPage))
	m.Handle("POST /tokens", h.mutate(access.Administer, h.createToken))
	m.Handle("POST /tokens/{id}/revoke", h.mutate(access.Administer, h.revokeToken))
	m.Handle("GET /agents", h.view(access.View, h.agentsPage))
	m.Handle("GET /deployments", h.view(access.View, h.deploymentsPage))
	if h.cfg.Artifacts != nil {
		m.Handle("GET /runs/{id}/artifacts/{stage}", h.view(access.View, h.cfg.Artifacts.RunArtifacts))
	}
}

// csp allows only the UI's own script, style and connections; no inline
// script or style, no framing, no plugins.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func secure(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// errorPage answers with a status and a short message page.
func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.render(w, r, code, "error", "Error", map[string]any{"Code": code, "Text": http.StatusText(code), "Message": msg})
}

// storeError maps an error of a read or an action to a page.
func (h *Handler) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.errorPage(w, r, http.StatusNotFound, what+": not found")
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrStale), errors.Is(err, store.ErrDuplicate):
		h.errorPage(w, r, http.StatusConflict, what+": not possible in the current state")
	case errors.Is(err, context.Canceled):
	default:
		h.log.Error("ui request failed", "what", what, "err", err)
		h.errorPage(w, r, http.StatusInternalServerError, what+": internal error")
	}
}
