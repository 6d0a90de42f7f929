package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// Webhook triggers run asynchronously, after the 202. A hook's delivery
// is stored (state received) before the answer; then the handler offers
// a job to a bounded queue without blocking. Config.MaxTriggers workers
// take jobs from the queue. When the queue is full the delivery just
// stays received: the sweeper pages through received deliveries (oldest
// first) and queues them when there is room, so nothing accepted is
// lost and memory stays bounded however far the triggers fall behind.
// The sweeper also runs every SweepInterval and when Resume is called
// (at start, for deliveries a previous process accepted but did not
// trigger).
//
// A delivery starts at most one run: the run is created under
// store.ContextWithDelivery, which links it to the delivery in the
// run's own transaction and refuses a second run. The in-flight set
// below only avoids wasted work within one process.

// job is one trigger to run. Jobs from the hook carry the parsed event
// and repo; jobs from the sweeper carry the stored payload.
type job struct {
	delivery int64 // deliveries row id; 0 when the hook had no delivery id
	repo     *store.Repo
	ev       *scm.Event
	trigger  string
	payload  []byte // set for jobs from the store (repo and ev nil)
}

// inflight is the set of delivery row ids queued or being triggered.
type inflight struct {
	mu  sync.Mutex
	ids map[int64]struct{}
}

func (f *inflight) claim(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ids[id]; ok {
		return false
	}
	f.ids[id] = struct{}{}
	return true
}

func (f *inflight) release(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ids, id)
}

// offer queues j, a stored delivery, without blocking; false when the
// queue is full (the delivery then waits in the store for the sweeper).
func (s *Server) offer(j job) bool {
	if !s.pending.claim(j.delivery) {
		return true // the sweeper has it already
	}
	select {
	case s.queue <- j:
		return true
	default:
		s.pending.release(j.delivery)
		s.kickSweeper()
		return false
	}
}

func (s *Server) kickSweeper() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Resume makes the sweeper queue every delivery still in state received
// now (all of them, page by page, as the workers make room) instead of at
// its next interval. Call it at start: deliveries accepted but not
// triggered when the previous process stopped become runs. It returns at
// once.
func (s *Server) Resume() { s.kickSweeper() }

func (s *Server) worker() {
	defer s.wg.Done()
	for {
		select {
		case j := <-s.queue:
			s.handle(j)
		case <-s.stop:
			// Drain: handle what is queued, then return.
			for {
				select {
				case j := <-s.queue:
					if s.base.Err() != nil {
						return // cancelled; the delivery stays received
					}
					s.handle(j)
				default:
					return
				}
			}
		}
	}
}

func (s *Server) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-t.C:
		}
		s.sweep()
	}
}

// sweep queues every delivery in state received that is not in flight,
// blocking while the queue is full, until none is left or Drain begins.
func (s *Server) sweep() {
	var after int64
	for {
		page, err := s.cfg.Store.PendingDeliveriesAfter(s.base, after, 100)
		if err != nil {
			if s.base.Err() == nil {
				s.log.Error("sweep pending deliveries", "err", err)
			}
			return
		}
		if len(page) == 0 {
			return
		}
		for _, d := range page {
			after = d.ID
			if !s.pending.claim(d.ID) {
				continue
			}
			select {
			case s.queue <- job{delivery: d.ID, payload: d.Payload}:
			case <-s.stop:
				s.pending.release(d.ID)
				return
			}
		}
	}
}

// handle runs one trigger and records its outcome.
func (s *Server) handle(j job) {
	if j.delivery != 0 {
		defer s.pending.release(j.delivery)
	}
	ctx, cancel := context.WithTimeout(s.base, 5*time.Minute)
	defer cancel()
	if j.payload != nil {
		// From the store: it may have been handled since the sweeper
		// read it (its page is older than the last worker's finish).
		d, err := s.cfg.Store.Delivery(ctx, j.delivery)
		if err != nil || d.State != store.DeliveryReceived {
			return
		}
		var ev scm.Event
		if err := json.Unmarshal(j.payload, &ev); err != nil || ev.Repo == "" {
			s.settle(ctx, j.delivery, "cannot trigger: stored payload is not an event")
			return
		}
		repo, err := s.repo(ctx, ev.Repo)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				s.settle(ctx, j.delivery, "cannot trigger: "+err.Error())
			} else {
				s.log.Error("resume delivery: repo lookup", "delivery", d.DeliveryID, "err", err)
			}
			return
		}
		j.ev, j.repo, j.trigger = &ev, repo, store.TriggerWebhook
		if repo.Forge == store.ForgeGit {
			j.trigger = store.TriggerGitHook
		}
		s.log.Info("triggering stored delivery", "delivery", d.DeliveryID, "repo", repo.Name, "commit", ev.Commit)
	}
	tctx := ctx
	if j.delivery != 0 {
		tctx = store.ContextWithDelivery(ctx, j.delivery)
	}
	run, err := s.cfg.Runner.Trigger(tctx, j.repo, j.ev, j.trigger, 0)
	switch {
	case err == nil:
		// CreateRun linked the run to the delivery.
	case s.base.Err() != nil && run == nil:
		// Cancelled by shutdown before a run existed: the delivery stays
		// received and is triggered after the next start.
	case errors.Is(err, store.ErrConflict) && run == nil:
		// Another attempt linked a run to this delivery first.
	case run != nil:
		s.log.Error("trigger from webhook failed after creating the run", "repo", j.repo.Name, "run", run.ID, "err", err)
		if j.delivery != 0 {
			fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer fcancel()
			if ferr := s.cfg.Store.FinishDelivery(fctx, j.delivery, store.DeliveryFailed, run.ID, err.Error()); ferr != nil {
				s.log.Error("finish delivery", "delivery", j.delivery, "err", ferr)
			}
		}
	default:
		s.log.Error("trigger from webhook failed", "repo", j.repo.Name, "commit", j.ev.Commit, "err", err)
		s.settle(ctx, j.delivery, err.Error())
	}
}

// settle marks a delivery that started no run failed, unless another
// attempt handled it meanwhile.
func (s *Server) settle(ctx context.Context, id int64, msg string) {
	if id == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.cfg.Store.SettleDelivery(fctx, id, store.DeliveryFailed, msg); err != nil && !errors.Is(err, store.ErrConflict) {
		s.log.Error("settle delivery", "delivery", id, "err", err)
	}
}

// repoCache keeps repo lookups of webhooks for a short time. Updates
// through the API invalidate it (invalidate bumps gen, and a lookup that
// started before an invalidation is not cached), so a changed webhook
// secret applies at once; changes made elsewhere (another process, the
// UI) apply within the TTL.
type repoCache struct {
	ttl time.Duration
	mu  sync.Mutex
	gen uint64
	m   map[string]repoEntry
}

type repoEntry struct {
	repo    *store.Repo
	expires time.Time
}

const repoCacheMax = 4096

// repo returns the repo named name, from the cache when fresh. The
// result is shared: callers must not modify it.
func (s *Server) repo(ctx context.Context, name string) (*store.Repo, error) {
	c := &s.repos
	if c.ttl <= 0 {
		return s.cfg.Store.Repo(ctx, name)
	}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[name]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.repo, nil
	}
	r, err := s.cfg.Store.Repo(ctx, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= repoCacheMax {
			clear(c.m)
		}
		c.m[name] = repoEntry{repo: r, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return r, nil
}

// InvalidateRepos drops cached repo lookups. The API's repo changes call
// it; call it after changing a repo through the store directly in the
// same process (otherwise the change applies within RepoCacheTTL).
func (s *Server) InvalidateRepos() {
	c := &s.repos
	c.mu.Lock()
	c.gen++
	clear(c.m)
	c.mu.Unlock()
}
