package deliveryq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// Delivery is one trigger to run: a stored delivery with its verified
// repository and event.
type Delivery struct {
	ID     int64 // the deliveries row; the run made for it must link it (store.NewRun.DeliveryID)
	Repo   *store.Repo
	Event  *scm.Event
	Source string // the hook that received it (scm.ForgeGitHub, ..., scm.ForgeGeneric)
	// Attempt counts from 1. Last is true when no retry follows: a
	// failure the trigger would otherwise leave to a retry must end in a
	// run (ended error, saying why) instead.
	Attempt int
	Last    bool
}

// Trigger is the store's trigger kind of d: a generic hook to a bare
// repository on this host is the git hook; everything else a webhook.
func (d *Delivery) Trigger() string {
	if d.Source == scm.ForgeGeneric && d.Repo.Forge == store.ForgeGit {
		return store.TriggerGitHook
	}
	return store.TriggerWebhook
}

// TriggerFunc makes the run of a delivery. It returns:
//   - the run, created and linked to d.ID in one transaction, and nil;
//   - the run and an error when something failed after the run was
//     created (the delivery is then recorded failed, with its run);
//   - an error wrapping scm.ErrIgnored when the delivery asks for nothing
//     (the delivery is recorded ignored, with the error's text);
//   - an error wrapping store.ErrConflict when another attempt linked a
//     run to the delivery first;
//   - any other error when no run could be made now: the delivery is
//     retried later (Config.Backoff), also after the Last attempt.
type TriggerFunc func(ctx context.Context, d *Delivery) (*store.Run, error)

// Config configures New.
type Config struct {
	Store   *store.Store
	Trigger TriggerFunc
	Logger  *slog.Logger
	// Workers is the number of concurrent triggers (default 8), PerRepo
	// of one repository (default 1: a repository's runs are created in
	// the order its deliveries arrived).
	Workers, PerRepo int
	// Held bounds the deliveries waiting in memory (default 1024),
	// HeldPerRepo those of one repository (default 64); the rest wait in
	// the store for the sweeper.
	Held, HeldPerRepo int
	// SweepInterval is how often the store is searched for deliveries
	// that are due and not held (default 10 s; also at Resume, when
	// deliveries were left in the store for lack of room, and when a
	// retry is due).
	SweepInterval time.Duration
	// Timeout bounds one trigger (default 2 min).
	Timeout time.Duration
	// Backoff is the wait after each failed attempt (default 10 s, 1 min,
	// 5 min, 15 min); the attempt after the last wait is the Last one,
	// and further retries wait as long as the last entry.
	Backoff []time.Duration
}

// Queue is the durable delivery queue. Create it with New and stop it
// with Drain.
type Queue struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond // signalled when a job may be handed out, or on stop
	fair     *fair
	spilled  bool // deliveries were left in the store for lack of room
	stopping bool
	turn     int64 // the repository the next sweep starts after

	kick     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	base     context.Context
	cancel   context.CancelFunc
}

// New returns a Queue and starts its workers and sweeper.
func New(cfg Config) (*Queue, error) {
	if cfg.Store == nil || cfg.Trigger == nil {
		return nil, errors.New("deliveryq: Store and Trigger are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Workers = positive(cfg.Workers, 8)
	cfg.PerRepo = positive(cfg.PerRepo, 1)
	cfg.Held = positive(cfg.Held, 1024)
	cfg.HeldPerRepo = positive(cfg.HeldPerRepo, 64)
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute}
	}
	q := &Queue{cfg: cfg, log: cfg.Logger, fair: newFair(cfg.Held, cfg.HeldPerRepo, cfg.PerRepo),
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	q.base, q.cancel = context.WithCancel(context.Background())
	q.wg.Add(cfg.Workers + 1)
	for range cfg.Workers {
		go q.worker()
	}
	go q.sweeper()
	return q, nil
}

func positive(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Accepted is the answer of Accept.
type Accepted struct {
	ID         int64  // the deliveries row
	DeliveryID string // the event's delivery id, or the one Accept gave it
	Duplicate  bool   // seen before: nothing new was stored or queued
}

// Accept stores ev, verified by repo's secret or token and received by
// the hook source, and queues it without blocking. An event without a
// delivery id gets a random one (it cannot be deduplicated, but it is
// stored like any other). A store failure is returned; then nothing was
// accepted.
func (q *Queue) Accept(ctx context.Context, repo *store.Repo, source string, ev *scm.Event) (Accepted, error) {
	if ev.Delivery == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return Accepted{}, err
		}
		cp := *ev
		cp.Delivery = "runnel-" + hex.EncodeToString(b[:])
		ev = &cp
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return Accepted{}, fmt.Errorf("accept delivery %s: %w", ev.Delivery, err)
	}
	id, dup, err := q.cfg.Store.InsertDelivery(ctx, store.NewDelivery{RepoID: repo.ID, Source: source,
		DeliveryID: ev.Delivery, Event: ev.Kind, Payload: payload})
	if err != nil {
		return Accepted{}, err
	}
	a := Accepted{ID: id, DeliveryID: ev.Delivery, Duplicate: dup}
	if !dup {
		q.offer(&job{id: id, repoID: repo.ID, repo: repo, ev: ev, source: source})
	}
	return a, nil
}

// offer holds j if there is room; otherwise it stays in the store and
// the sweeper is told.
func (q *Queue) offer(j *job) {
	q.mu.Lock()
	ok := !q.stopping && q.fair.add(j)
	if ok {
		q.cond.Signal()
	} else {
		q.spilled = true
	}
	q.mu.Unlock()
	if !ok {
		q.kickSweeper()
	}
}

func (q *Queue) kickSweeper() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Resume makes the sweeper look for due deliveries now instead of at its
// next interval. Call it at start: deliveries accepted but not triggered
// when the previous process stopped become runs. It returns at once.
func (q *Queue) Resume() { q.kickSweeper() }

// Drain stops the sweeper and lets the workers finish the deliveries held
// in memory until ctx ends; then it cancels the triggers still running
// and waits for the workers to return. Deliveries not triggered stay in
// the store and are triggered after the next start (Resume). Accept must
// not be called after Drain began; call Drain once.
func (q *Queue) Drain(ctx context.Context) {
	defer q.cancel()
	q.stopOnce.Do(func() {
		close(q.stop)
		q.mu.Lock()
		q.stopping = true
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	done := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		q.cancel()
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
		<-done
	}
}
