package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/docker"
	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/internal/assembly"
	"github.com/runnel-ci/runnel/internal/assembly/httpserver"
	"github.com/runnel-ci/runnel/internal/install"
	"github.com/runnel-ci/runnel/internal/private"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/cron"
	"github.com/runnel-ci/runnel/runner/deliveryq"
	"github.com/runnel-ci/runnel/runner/httpapi"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/secretbox"
	"github.com/runnel-ci/runnel/runner/statusq"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/transfers"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/gitea"
	"github.com/runnel-ci/runnel/scm/github"
	"github.com/runnel-ci/runnel/scm/gitlab"
)

func init() { commands = append(commands, (*app).serverCommand) }

type serverFlags struct {
	addr          string
	data          string
	db            string
	natsURL       string
	baseURL       string
	artifacts     artifactFlags
	noAgent       bool
	agentLabels   string
	agentCapacity int
	stepLogMax    string
	backend       string
	drainTimeout  time.Duration
	leaseTimeout  time.Duration
	logLevel      string
	natsPort      int
	natsHost      string
	natsUser      string
	natsPassword  string
	agentToken    string
	container     containerFlags
}

// envDefault returns the value of the RUNNEL_* variable or def.
func (a *app) envDefault(name, def string) string {
	if v, ok := a.env[name]; ok && v != "" {
		return v
	}
	return def
}

// envInt returns the integer in the RUNNEL_* variable or def; a value
// that is not one is recorded for envProblems.
func (a *app) envInt(name string, def int) int {
	s := a.env[name]
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		a.envBad(name, "not an integer")
		return def
	}
	return v
}

// envDuration is envInt for durations.
func (a *app) envDuration(name string, def time.Duration) time.Duration {
	s := a.env[name]
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		a.envBad(name, "not a duration such as 45s or 2m")
		return def
	}
	return v
}

func (a *app) envBad(name, why string) {
	if a.badEnv == nil {
		a.badEnv = map[string]string{}
	}
	a.badEnv[name] = why
}

func (a *app) serverCommand() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Runnel server (API, webhooks, scheduler and a built-in agent)",
		Long: `Server runs the HTTP API and webhooks, schedules runs and, unless
--no-agent is given, one built-in agent on this host's Docker engine (or the
local shell when Docker does not answer). Every flag has a RUNNEL_*
environment variable (e.g. RUNNEL_ADDR, RUNNEL_DATA). On first start it
creates an admin API token and prints it once.

The first SIGINT/SIGTERM stops accepting webhooks and drains running stages
for up to --drain-timeout; a second one exits at once.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runServer(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", a.envDefault("RUNNEL_ADDR", ":8080"), "listen address ($RUNNEL_ADDR)")
	fl.StringVar(&f.data, "data", a.envDefault("RUNNEL_DATA", "./runnel-data"), "data directory ($RUNNEL_DATA)")
	fl.StringVar(&f.db, "db", a.envDefault("RUNNEL_DB", ""), "database DSN: a SQLite path or postgres://... (default: DATA/runnel.db) ($RUNNEL_DB)")
	fl.StringVar(&f.natsURL, "nats-url", a.envDefault("RUNNEL_NATS_URL", "embedded"), `"embedded" (NATS+JetStream in DATA/nats) or nats://... (external) ($RUNNEL_NATS_URL)`)
	fl.StringVar(&f.natsHost, "nats-host", a.envDefault("RUNNEL_NATS_HOST", "127.0.0.1"), "address the embedded NATS server listens on; 0.0.0.0 lets agents on other hosts join ($RUNNEL_NATS_HOST)")
	fl.IntVar(&f.natsPort, "nats-port", a.envInt("RUNNEL_NATS_PORT", 4222), "port of the embedded NATS server; -1 picks a free one ($RUNNEL_NATS_PORT)")
	fl.StringVar(&f.natsUser, "nats-user", a.envDefault("RUNNEL_NATS_USER", "runnel-server"), "user for an external NATS ($RUNNEL_NATS_USER)")
	fl.StringVar(&f.natsPassword, "nats-password", a.envDefault("RUNNEL_NATS_PASSWORD", ""), "password for an external NATS ($RUNNEL_NATS_PASSWORD)")
	fl.StringVar(&f.agentToken, "agent-token", a.envDefault("RUNNEL_AGENT_TOKEN", ""), "NATS token of the built-in agent with an external NATS ($RUNNEL_AGENT_TOKEN)")
	fl.StringVar(&f.baseURL, "base-url", a.envDefault("RUNNEL_BASE_URL", ""), "public URL of the server, for links in commit statuses ($RUNNEL_BASE_URL)")
	fl.BoolVar(&f.noAgent, "no-agent", a.envDefault("RUNNEL_NO_AGENT", "") == "true", "do not run the built-in agent ($RUNNEL_NO_AGENT)")
	fl.StringVar(&f.agentLabels, "agent-labels", a.envDefault("RUNNEL_AGENT_LABELS", ""), "labels of the built-in agent, k=v,... ($RUNNEL_AGENT_LABELS)")
	a.addCapacityFlag(fl, &f.agentCapacity, "agent-capacity", "stages the built-in agent runs at once")
	a.addStepLogMaxFlag(fl, &f.stepLogMax, "bytes of one step's log the server stores and its built-in agent sends")
	fl.StringVar(&f.backend, "backend", a.envDefault("RUNNEL_BACKEND", "docker"), "built-in agent executor: docker or local ($RUNNEL_BACKEND)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", a.envDuration("RUNNEL_DRAIN_TIMEOUT", 2*time.Minute), "how long shutdown waits for running stages ($RUNNEL_DRAIN_TIMEOUT)")
	fl.DurationVar(&f.leaseTimeout, "lease-timeout", a.envDuration("RUNNEL_LEASE_TIMEOUT", 45*time.Second), "silence of a running stage after which it runs again as a new attempt: the time from an agent's death to the retry ($RUNNEL_LEASE_TIMEOUT)")
	a.addArtifactFlags(fl, &f.artifacts)
	a.addContainerFlags(fl, &f.container, "agent-", "RUNNEL_AGENT_")
	fl.StringVar(&f.logLevel, "log-level", a.envDefault("RUNNEL_LOG_LEVEL", "info"), "debug, info, warn or error ($RUNNEL_LOG_LEVEL)")
	return cmd
}

func parseLabels(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want k=v", kv)
		}
		m[k] = v
	}
	return m, nil
}

func (a *app) runServer(ctx context.Context, f serverFlags) error {
	if err := refuseFlags(append(a.envProblems(), serverFlagProblems(f)...)); err != nil {
		return err
	}
	base, err := a.serverBase(f)
	if err != nil {
		return err
	}
	log, data := base.log, base.data
	// The store outlives the first signal: draining stages still write.
	bg := context.WithoutCancel(ctx)
	st, logs, closeStorage, err := a.openStorage(bg, f, data, log)
	if err != nil {
		return err
	}
	defer closeStorage()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mets, err := metrics.New(reg)
	if err != nil {
		return err
	}
	statuses := statusq.New(statusReporter(st), statusq.Options{Logger: log,
		OnFailure: func(s scm.Status, err error) { mets.StatusReportFailed(repoForge(st, s.Repo)) }})

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	// On an error below; after a clean stop the HTTP server has closed it.
	defer ln.Close()
	baseURL := f.baseURL
	if baseURL == "" {
		baseURL = "http://" + ln.Addr().String()
	}

	if f.natsURL == "" || f.natsURL == "none" {
		return usageError(fmt.Errorf("--nats-url %q: want \"embedded\" or nats://... (the built-in agent always talks to the server over NATS)", f.natsURL))
	}
	c, err := startCore(bg, f, base, st, logs, statuses, mets, reg, baseURL)
	if err != nil {
		return err
	}
	defer c.close()
	api, srv, err := newHTTP(f, base, baseURL, st, logs, mets, reg, c)
	if err != nil {
		return err
	}
	// Webhooks accepted (202) but not triggered before the last stop are
	// still stored as received: trigger them now, in the background.
	c.deliveries.Resume()
	// The first admin token is made only now that start-up succeeded: a
	// start that failed earlier stores none, so the next start prints it.
	if err := a.ensureAdminToken(bg, st); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	defer drainHookSpools(ctx, st, ln.Addr(), log)() // pushes spooled while the server was down
	fmt.Fprintf(a.stdout, "runnel: listening on %s\n", ln.Addr())
	log.Info("server started", "addr", ln.Addr().String(), "data", data, "base_url", baseURL)

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	stop := stopping{api: api, stopSched: c.stopSched, deliveries: c.deliveries, nb: c.nb, srv: srv, statuses: statuses}
	stop.drain(bg, f.drainTimeout, log)
	return nil
}

// basics is what the server's flags and data directory say before
// anything starts.
type basics struct {
	log     *slog.Logger
	labels  map[string]string
	allowed []pipeline.Permission
	limits  docker.Limits
	data    string // absolute
	inst    string // the install id
}

// serverBase reads the flags that need no service and the data
// directory's install id (made on the first start).
func (a *app) serverBase(f serverFlags) (basics, error) {
	var b basics
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return b, usageError(fmt.Errorf("--log-level: %w", err))
	}
	b.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	var err error
	if b.labels, err = parseLabels(f.agentLabels); err != nil {
		return b, usageError(fmt.Errorf("--agent-labels: %w", err))
	}
	if b.allowed, b.limits, err = f.container.parse("agent-"); err != nil {
		return b, err
	}
	if b.data, err = filepath.Abs(f.data); err != nil {
		return b, err
	}
	if err := private.MkdirAll(b.data); err != nil {
		return b, fmt.Errorf("data dir: %w", err)
	}
	if b.inst, err = install.Load(b.data); err != nil {
		return b, err
	}
	b.log = b.log.With("install", b.inst)
	return b, nil
}

// openStorage opens the store (sealing secrets with the data directory's
// or the environment's key) and the log store; close closes both.
func (a *app) openStorage(ctx context.Context, f serverFlags, data string, log *slog.Logger) (*store.Store, *logstore.Store, func(), error) {
	dsn := f.db
	if dsn == "" {
		dsn = filepath.Join(data, "runnel.db")
	}
	box, err := secretbox.Load(data, func(k string) string { return a.env[k] })
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := store.Open(ctx, dsn, store.WithLogger(log), store.WithSealer(box))
	if err != nil {
		return nil, nil, nil, err
	}
	logs, err := logstore.New(filepath.Join(data, "logs"))
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	stepLogMax, _ := parseSize(f.stepLogMax) // checked by serverFlagProblems
	logs.SetStepMax(stepLogMax)
	return st, logs, func() { logs.Close(); st.Close() }, nil
}

// core is what runs behind the HTTP server: transfers, the built-in
// agent's engine, NATS and its dispatcher, the runner, the delivery queue
// and the schedule ticker.
type core struct {
	tsvc       *transfers.Service
	nb         *natsSetup
	rn         *runner.Runner
	deliveries *deliveryq.Queue
	sched      *cron.Scheduler
	stopSched  func()
	closers    []func() // in start order
}

// close stops what started, last first.
func (c *core) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
}

// startCore starts the core; on an error it stops what it started.
func startCore(bg context.Context, f serverFlags, b basics, st *store.Store, logs *logstore.Store, statuses *statusq.Queue,
	mets *metrics.Metrics, reg *prometheus.Registry, baseURL string) (_ *core, err error) {
	c := &core{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	log := b.log
	tsvc, stopSweep, err := newTransfers(bg, f.artifacts, b.data, st, baseURL, reg, log)
	if err != nil {
		return nil, err
	}
	c.tsvc, c.closers = tsvc, append(c.closers, stopSweep)
	var agentEng engine.Engine
	if !f.noAgent {
		eng, closer, err := serverEngine(bg, f.backend, b.inst, b.limits, log)
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, closer)
		agentEng = eng
	}
	if c.nb, err = startNATS(bg, f, b.data, b.inst, b.labels, log); err != nil {
		return nil, err
	}
	c.closers = append(c.closers, c.nb.close)
	rc := runner.Config{Store: st, Bus: c.nb.d, Logs: logs, Statuses: statuses, Metrics: mets, Logger: log,
		BaseURL: baseURL, CacheDir: filepath.Join(b.data, "cache"), LeaseTimeout: f.leaseTimeout, Transfers: tsvc,
		Credentials: c.nb.bus}
	c.rn, c.deliveries, err = assembly.StartCore(bg, assembly.CoreConfig{Runner: rc, Serve: func(h runner.BusHandler) error {
		return c.nb.run(bg, h, f, agentEng, b.labels, b.allowed, filepath.Join(b.data, "agent"), log)
	}})
	if err != nil {
		return nil, err
	}
	c.closers = append(c.closers, c.rn.Close)
	c.sched, c.stopSched = startScheduler(bg, st, c.rn, b.inst, log)
	c.closers = append(c.closers, c.stopSched)
	return c, nil
}

// newHTTP makes the web UI and the API in front of the core, as one
// http.Server (internal/assembly/httpserver, as the benchmarks serve it).
func newHTTP(f serverFlags, b basics, baseURL string, st *store.Store, logs *logstore.Store, mets *metrics.Metrics, reg *prometheus.Registry,
	c *core) (*httpapi.Server, *http.Server, error) {
	return httpserver.New(httpserver.Config{Store: st, Logs: logs, Runner: c.rn, Deliveries: c.deliveries, Metrics: mets,
		Registry: reg, Transfers: c.tsvc, ScheduleAdded: c.sched.Kick, PublicURL: f.baseURL,
		SecureCookie: strings.HasPrefix(baseURL, "https://"), HookSpoolDir: b.data, Logger: b.log})
}

// stopping is what a first signal stops, in order.
type stopping struct {
	api        *httpapi.Server
	stopSched  func()
	deliveries *deliveryq.Queue
	nb         *natsSetup
	srv        *http.Server
	statuses   *statusq.Queue
}

// drain takes no new webhooks or ticks, lets running stages and queued
// deliveries finish within timeout, then stops the HTTP server and sends
// the statuses still queued.
func (s stopping) drain(bg context.Context, timeout time.Duration, log *slog.Logger) {
	log.Info("shutting down: no new webhooks; draining running stages", "deadline", timeout)
	s.api.StopHooks()
	s.stopSched()
	dctx, cancel := context.WithTimeout(bg, timeout)
	defer cancel()
	s.deliveries.Drain(dctx)
	s.nb.drain(dctx)
	sctx, scancel := context.WithTimeout(bg, 5*time.Second)
	defer scancel()
	_ = s.srv.Shutdown(sctx)
	if err := s.statuses.Close(sctx); err != nil {
		log.Warn("status queue", "err", err)
	}
	log.Info("stopped")
}

// ensureAdminToken creates the first admin API token and prints it once.
func (a *app) ensureAdminToken(ctx context.Context, st *store.Store) error {
	toks, err := st.Tokens(ctx)
	if err != nil {
		return err
	}
	if len(toks) > 0 {
		return nil
	}
	plain, _, err := st.CreateToken(ctx, "admin", access.Admin)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "runnel: admin API token (shown once, only its hash is stored): %s\n", plain)
	return nil
}

// serverEngine builds the engine of the built-in agent or of `runnel
// agent`, whose Docker resources carry install id inst; Docker falls back
// to the local shell with a warning when no Docker engine answers.
func serverEngine(ctx context.Context, backend, inst string, limits docker.Limits, log *slog.Logger) (engine.Engine, func(), error) {
	switch backend {
	case "local":
		return local.New(local.Options{Logger: log}), func() {}, nil
	case "docker":
	default:
		return nil, nil, usageError(fmt.Errorf("--backend %q: want docker or local", backend))
	}
	cli, err := docker.NewClient()
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.Ping(pctx)
		cancel()
		if err != nil {
			cli.Close()
		}
	}
	if err != nil {
		log.Warn("no Docker engine answers; the built-in agent uses the local shell backend", "err", err)
		return local.New(local.Options{Logger: log}), func() {}, nil
	}
	eng, err := docker.New(cli, docker.Options{Install: inst, Owner: inst, PullPolicy: engine.PullIfNotPresent, Limits: limits, Logger: log})
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	if err := eng.PruneDead(ctx); err != nil {
		log.Warn("removing leftovers of dead processes failed", "err", err)
	}
	return eng, func() { cli.Close() }, nil
}

// repoForge names the forge of a repository for metric labels ("unknown"
// when the repository is gone).
func repoForge(st *store.Store, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	repo, err := st.Repo(ctx, name)
	if err != nil {
		return "unknown"
	}
	return repo.Forge
}

// statusReporter reports statuses of GitHub, Gitea and GitLab repos that
// have a status token; other repos have none. A Gitea or GitLab repo
// without a status API URL reports to its forge URL.
func statusReporter(st *store.Store) statusq.Reporter {
	return statusq.ReporterFunc(func(ctx context.Context, s scm.Status) error {
		repo, err := st.Repo(ctx, s.Repo)
		if err != nil {
			return statusq.Permanent(err)
		}
		if repo.StatusToken == "" {
			return nil
		}
		var rep scm.StatusReporter
		switch repo.Forge {
		case store.ForgeGitHub:
			rep, err = github.NewStatusReporter(repo.StatusAPIURL, repo.StatusToken, nil)
		case store.ForgeGitea:
			rep, err = gitea.NewStatusReporter(cmp.Or(repo.StatusAPIURL, repo.ForgeURL), repo.StatusToken, nil)
		case store.ForgeGitLab:
			rep, err = gitlab.NewStatusReporter(cmp.Or(repo.StatusAPIURL, repo.ForgeURL), repo.StatusToken, nil)
		default:
			return nil
		}
		if err != nil {
			return statusq.Permanent(err)
		}
		return rep.Report(ctx, s)
	})
}
