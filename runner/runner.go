package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/statusq"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// PipelineFile is the file read from the pushed commit.
const PipelineFile = ".pipeline.yml"

// StatusSink takes commit statuses to report (statusq.Queue).
type StatusSink interface {
	Enqueue(s scm.Status) error
}

// Config configures New.
type Config struct {
	Store    *store.Store
	Bus      Bus
	Logs     *logstore.Store
	Statuses StatusSink       // nil: no commit statuses
	Metrics  *metrics.Metrics // nil: no metrics
	Logger   *slog.Logger
	BaseURL  string // e.g. https://ci.example.com; run links are BaseURL/runs/<id>
	// CacheDir holds mirrors of forge repositories for reading the pipeline
	// file; required for forge repos.
	CacheDir string
	// LeaseTimeout bounds the silence of a claimed stage attempt before
	// the stage is queued again as a new attempt (after MaxAttempts it
	// ends agent_lost); default 45 s. Agents send a heartbeat update per
	// running stage every 5 s, so only a stage that nobody runs any more
	// falls silent this long.
	LeaseTimeout time.Duration
	// Transfers grants jobs access to the artifact store
	// (runner/transfers); nil means jobs get none.
	Transfers Granter
	// Credentials are the agents' credentials: a claim for a stage that
	// needs labels the claiming agent's credential does not allow is
	// refused (see labelRefusal). nil: no such check, the NATS
	// permissions alone keep agents to their labels.
	Credentials Credentials
}

// Runner owns the run lifecycle. Create it with New, call Start, and
// Close it at shutdown.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	cache *gitmirror.Cache

	// mu serialises scheduling decisions (concurrency groups span runs).
	mu sync.Mutex
	// seen is when each running stage's current attempt last reported
	// (any update, mostly heartbeats). It lives in memory only, so that
	// heartbeats cost no database write; Start gives the running stages
	// of a previous process one lease period.
	seenMu sync.Mutex
	seen   map[stageRef]lease
	// unwinding is when the agent of each cancelled release (deployment
	// ID) last reported while it stops and rolls back (see unwindingUpdate).
	unwinding map[int64]time.Time
	// lag is how far behind the agents the update stream was at lagAt:
	// the age of the last update applied (see leaseExpired).
	lag   time.Duration
	lagAt time.Time

	steps stepCache // step names of stages, for log chunks

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Bus == nil || cfg.Logs == nil {
		return nil, errors.New("runner: Store, Bus and Logs are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LeaseTimeout <= 0 {
		cfg.LeaseTimeout = 45 * time.Second
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	r := &Runner{cfg: cfg, log: cfg.Logger, seen: map[stageRef]lease{}, unwinding: map[int64]time.Time{}, stop: make(chan struct{})}
	cfg.Logs.OnIncomplete(func(k logstore.Key, err error) {
		r.log.Warn("step log stored with chunks missing", "run", k.Run, "stage", k.Stage, "attempt", k.Attempt, "step", k.Step, "err", err)
	})
	if cfg.Metrics != nil {
		cfg.Metrics.LogDroppedFrom(cfg.Logs.Dropped)
	}
	if cfg.CacheDir != "" {
		c, err := gitmirror.NewCache(cfg.CacheDir)
		if err != nil {
			return nil, err
		}
		r.cache = c
	}
	return r, nil
}

// Close stops the watchdog.
func (r *Runner) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

func (r *Runner) runMetrics(repo string, run *store.Run) {
	if r.cfg.Metrics == nil {
		return
	}
	queued := run.QueuedAt
	if queued.IsZero() {
		queued = run.CreatedAt
	}
	r.cfg.Metrics.RunFinished(repo, string(run.Status), queued, run.StartedAt, run.FinishedAt)
}

// report enqueues a commit status; state is a run/stage status.
func (r *Runner) report(run *store.Run, context, state, desc string) {
	if r.cfg.Statuses == nil || run.Commit == "" {
		return
	}
	s := scm.Status{Repo: run.Repo, Commit: run.Commit, State: statusq.State(state), Context: context,
		Description: scm.Clip(desc, 140), TargetURL: fmt.Sprintf("%s/runs/%d", r.cfg.BaseURL, run.ID)}
	if err := r.cfg.Statuses.Enqueue(s); err != nil {
		r.log.Warn("enqueue commit status", "run", run.ID, "context", context, "err", err)
	}
}
