package httpserver

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runnel-ci/runnel/internal/ratelog"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/deliveryq"
	"github.com/runnel-ci/runnel/runner/httpapi"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/transfers"
	"github.com/runnel-ci/runnel/runner/ui"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/gitea"
	"github.com/runnel-ci/runnel/scm/github"
	"github.com/runnel-ci/runnel/scm/gitlab"
)

// Config is what the web UI and the API are made of.
type Config struct {
	Store      *store.Store
	Logs       *logstore.Store
	Runner     *runner.Runner
	Deliveries *deliveryq.Queue
	Metrics    *metrics.Metrics
	Registry   *prometheus.Registry // served on /metrics; nil: no /metrics
	// Transfers serves agents' transfers and runs' artifacts; nil: none.
	Transfers *transfers.Service
	// ScheduleAdded wakes the schedule ticker (nil: none runs).
	ScheduleAdded func()
	// PublicURL is --base-url (may be empty), for the UI's links;
	// SecureCookie is set when the server is reached over https.
	PublicURL    string
	SecureCookie bool
	// HookSpoolDir holds webhook bodies too long for memory while they
	// are verified (the data directory).
	HookSpoolDir string
	Logger       *slog.Logger
}

// New makes the web UI and the API in front of the runner, as one
// http.Server; StopHooks on the API stops taking webhooks.
func New(c Config) (*httpapi.Server, *http.Server, error) {
	log := c.Logger
	// UI mount (runner/ui): the web UI serves /, /ui/, /runs/, /agents,
	// /deployments, /login, /logout and /static/; everything else goes to the API.
	uc := ui.Config{Store: c.Store, Logs: c.Logs, Actions: c.Runner, Agents: c.Runner.Agents, Logger: log,
		SecureCookie: c.SecureCookie, BaseURL: c.PublicURL}
	if c.Transfers != nil {
		uc.Artifacts = c.Transfers
	}
	web, err := ui.New(uc)
	if err != nil {
		return nil, nil, err
	}
	// The UI's pages read the API (the log endpoint) with their session.
	ac := httpapi.Config{Store: c.Store, Runner: c.Runner, Logs: c.Logs, Metrics: c.Metrics, Logger: log, Deliveries: c.Deliveries,
		Hooks:  map[string]scm.Hook{scm.ForgeGitHub: github.Hook{}, scm.ForgeGitea: gitea.Hook{}, scm.ForgeGitLab: gitlab.Hook{}},
		Agents: c.Runner.Agents, Session: web.SessionToken, ScheduleAdded: c.ScheduleAdded, HookSpoolDir: c.HookSpoolDir}
	if c.Registry != nil {
		ac.MetricsHandler = promhttp.HandlerFor(c.Registry, promhttp.HandlerOpts{})
	}
	if c.Transfers != nil {
		ac.Transfers, ac.Artifacts = c.Transfers.Handler(), c.Transfers.RunArtifacts
	}
	api := httpapi.New(ac)
	// Headers are bounded in size and time for every request; webhook
	// bodies get their own deadline and budgets (httpapi.Config); long
	// ones are verified while written, unlinked, to the data directory.
	// net/http's own lines (accept errors under fd exhaustion, a
	// handler's panic) can come per connection, which anyone can open:
	// they go to the log within bounds (internal/ratelog), not to the
	// standard logger.
	errLog := ratelog.New(log, 10*time.Second, "http server errors not logged one by one").
		StdLogger("http_server", slog.LevelWarn, "http server")
	srv := &http.Server{Handler: web.Wrap(api.Handler()), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: errLog}
	return api, srv, nil
}
