package cron

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
)

// Config configures New.
type Config struct {
	Store *store.Store
	// Fire starts the run of a claimed tick (runner.Scheduled). An error
	// wrapped by Permanent fails the tick for good; store.ErrConflict
	// means its run exists already; other errors are tried again.
	Fire func(ctx context.Context, sc *store.Schedule, tickID int64) (*store.Run, error)
	// Install names this server in its claims (internal/install): after
	// a restart it fires its own unfinished claims at once.
	Install string
	// Interval between looks at the store (default 1 s).
	Interval time.Duration
	// Grace is how late a tick may still run as on time (default 1 min);
	// a later one is missed (Missed policy).
	Grace time.Duration
	// Lease is how long a claim is its server's alone; after it, any
	// server may fire a tick whose run does not exist (default 1 min).
	Lease time.Duration
	// Attempts bounds the tries of a tick whose run fails to start
	// (default 5), with doubling waits from 10 s.
	Attempts int
	Now      func() time.Time // default time.Now
	Logger   *slog.Logger
}

// Scheduler claims and fires due ticks. Create it with New; Run it.
type Scheduler struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}
}

// New returns a Scheduler.
func New(cfg Config) *Scheduler {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1)}
}

// Kick makes Run look at the store now (a schedule was added).
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run looks for due ticks every Interval until ctx ends. Its first pass
// also fires the unfinished claims of this install's earlier processes.
func (s *Scheduler) Run(ctx context.Context) {
	own := s.cfg.Install
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Pass(ctx, own); err != nil && ctx.Err() == nil {
			s.log.Error("schedules", "err", err)
		}
		own = ""
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Pass claims and fires every due tick once, then fires again the
// claimed ticks whose run does not exist and whose lease has passed (or
// that own, an install, claimed).
func (s *Scheduler) Pass(ctx context.Context, own string) error {
	now := s.cfg.Now()
	due, err := s.cfg.Store.DueSchedules(ctx, now)
	if err != nil {
		return err
	}
	for _, sc := range due {
		s.claim(ctx, sc, now)
	}
	stale, err := s.cfg.Store.StaleTicks(ctx, own, now)
	if err != nil {
		return err
	}
	for _, t := range stale {
		if err := s.cfg.Store.RetakeTick(ctx, t.ID, t.Attempts, s.cfg.Install, s.cfg.Lease); err != nil {
			continue // another server took it, or its run exists
		}
		sc, err := s.cfg.Store.ScheduleByID(ctx, t.ScheduleID)
		if err != nil {
			continue // removed since
		}
		s.log.Info("schedule tick fired again", "repo", sc.Repo, "schedule", sc.Name, "tick", t.At, "attempt", t.Attempts+1)
		s.fire(ctx, sc, t.ID, t.Attempts+1)
	}
	return nil
}

// claim decides what schedule sc does now, claims its tick and fires it.
func (s *Scheduler) claim(ctx context.Context, sc *store.Schedule, now time.Time) {
	var spec *Spec
	if sc.Kind == store.ScheduleCron {
		sp, err := Parse(sc.Spec, sc.Timezone)
		if err != nil {
			s.log.Error("schedule has a bad cron expression", "repo", sc.Repo, "schedule", sc.Name, "err", err)
			return
		}
		spec = &sp
	}
	fire, after := Due(spec, sc.NextAt, now, s.cfg.Grace, Missed(sc.Missed))
	id, err := s.cfg.Store.ClaimTick(ctx, sc.ID, sc.NextAt, after, fire, s.cfg.Install, s.cfg.Lease)
	if errors.Is(err, store.ErrConflict) {
		return // another server claimed it
	}
	if err != nil {
		s.log.Error("claim schedule tick", "repo", sc.Repo, "schedule", sc.Name, "err", err)
		return
	}
	if fire.IsZero() {
		s.log.Warn("schedule tick missed while no server ran; skipped", "repo", sc.Repo, "schedule", sc.Name,
			"due", sc.NextAt, "next", after)
		return
	}
	if late := now.Sub(fire); late > s.cfg.Grace {
		s.log.Warn("schedule tick missed while no server ran; running it once now", "repo", sc.Repo,
			"schedule", sc.Name, "tick", fire, "late", late.Round(time.Second))
	}
	s.fire(ctx, sc, id, 0)
}

// fire starts the run of a claimed tick and records a failure.
func (s *Scheduler) fire(ctx context.Context, sc *store.Schedule, tickID int64, attempts int) {
	run, err := s.cfg.Fire(ctx, sc, tickID)
	switch {
	case err == nil:
		s.log.Info("scheduled run created", "repo", sc.Repo, "schedule", sc.Name, "run", run.ID)
		return
	case errors.Is(err, store.ErrConflict):
		return // its run exists
	}
	var p *permanent
	final := errors.As(err, &p) || attempts+1 >= s.cfg.Attempts
	retry := 10 * time.Second << min(attempts, 10)
	s.log.Error("scheduled run not started", "repo", sc.Repo, "schedule", sc.Name, "err", err, "final", final)
	if ferr := s.cfg.Store.FailTick(context.WithoutCancel(ctx), tickID, err.Error(), final, retry); ferr != nil {
		s.log.Error("record schedule tick failure", "err", ferr)
	}
}

type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent marks an error of Fire that retrying cannot mend.
func Permanent(err error) error { return &permanent{err} }
