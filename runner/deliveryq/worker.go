package deliveryq

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// job is a delivery held in memory. Jobs from Accept carry the verified
// repository and event; jobs from the sweeper carry the stored row.
type job struct {
	id     int64
	repoID int64
	repo   *store.Repo
	ev     *scm.Event
	source string
	stored *store.Delivery // set for jobs from the store
}

func (q *Queue) worker() {
	defer q.wg.Done()
	for {
		j := q.take()
		if j == nil {
			return
		}
		q.handle(j)
		q.mu.Lock()
		q.fair.done(j)
		q.cond.Broadcast()
		spilled := q.spilled
		q.mu.Unlock()
		if spilled {
			q.kickSweeper()
		}
	}
}

// take waits for a job to hand out; nil when the worker should return:
// triggers are cancelled, or Drain began and nothing waits any more.
func (q *Queue) take() *job {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.base.Err() != nil {
			return nil
		}
		if j := q.fair.next(); j != nil {
			return j
		}
		if q.stopping && q.fair.total == 0 {
			return nil
		}
		q.cond.Wait()
	}
}

// handle triggers one delivery, within Timeout, and records the outcome.
func (q *Queue) handle(j *job) {
	ctx, cancel := context.WithTimeout(q.base, q.cfg.Timeout)
	defer cancel()
	d, err := q.load(ctx, j)
	if d == nil {
		if err != nil && q.base.Err() == nil {
			q.log.Error("load delivery", "delivery", j.id, "err", err)
		}
		return
	}
	log := q.log.With("delivery", d.Event.Delivery, "repo", d.Repo.Name, "commit", d.Event.Commit, "attempt", d.Attempt)
	if err != nil {
		// Stored but not an event: nothing could ever trigger it.
		log.Error("delivery cannot be triggered", "err", err)
		q.record(ctx, func(ctx context.Context) error {
			return q.cfg.Store.SettleDelivery(ctx, d.ID, store.DeliveryFailed, err.Error())
		})
		return
	}
	run, err := q.cfg.Trigger(ctx, d)
	switch {
	case err == nil:
		// The run was linked to the delivery when it was created.
	case run != nil:
		log.Error("trigger failed after creating the run", "run", run.ID, "err", err)
		q.record(ctx, func(ctx context.Context) error {
			return q.cfg.Store.FinishDelivery(ctx, d.ID, store.DeliveryFailed, run.ID, err.Error())
		})
	case errors.Is(err, scm.ErrIgnored):
		log.Info("delivery ignored", "why", err)
		q.record(ctx, func(ctx context.Context) error {
			return q.cfg.Store.SettleDelivery(ctx, d.ID, store.DeliveryIgnored, err.Error())
		})
	case errors.Is(err, store.ErrConflict):
		// Another attempt linked a run to this delivery first.
	case q.base.Err() != nil:
		// Cancelled by Drain before a run existed: the delivery stays
		// received, and its attempt is not counted.
	default:
		wait := Backoff(q.cfg.Backoff, d.Attempt)
		log.Warn("trigger failed; retrying later", "in", wait, "err", err)
		q.record(ctx, func(ctx context.Context) error {
			return q.cfg.Store.RetryDelivery(ctx, d.ID, d.Attempt, time.Now().Add(wait), err.Error())
		})
		time.AfterFunc(wait, q.kickSweeper) // a kick after Drain is dropped
	}
}

// record writes an outcome, also when the trigger's context has ended.
// A delivery handled meanwhile by another attempt (ErrConflict) keeps
// that outcome.
func (q *Queue) record(ctx context.Context, write func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := write(ctx); err != nil && !errors.Is(err, store.ErrConflict) {
		q.log.Error("record delivery outcome", "err", err)
	}
}

// load makes the Delivery of j. For a job from the store it reads the
// row again (another attempt may have handled it since the sweeper read
// it: then nil, nil) and the repository by its id, never by the name in
// the payload. A row whose payload is not an event gives the Delivery
// and an error.
func (q *Queue) load(ctx context.Context, j *job) (*Delivery, error) {
	if j.stored == nil {
		return &Delivery{ID: j.id, Repo: j.repo, Event: j.ev, Source: j.source, Attempt: 1, Last: len(q.cfg.Backoff) == 0}, nil
	}
	row, err := q.cfg.Store.Delivery(ctx, j.id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil // its repository was deleted
		}
		return nil, err
	}
	if row.State != store.DeliveryReceived {
		return nil, nil
	}
	repo, err := q.cfg.Store.RepoByID(ctx, row.RepoID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	d := &Delivery{ID: row.ID, Repo: repo, Source: row.Source, Attempt: row.Attempts + 1,
		Last: row.Attempts >= len(q.cfg.Backoff), Event: &scm.Event{Delivery: row.DeliveryID}}
	var ev scm.Event
	if err := json.Unmarshal(row.Payload, &ev); err != nil {
		return d, errors.New("cannot trigger: stored payload is not an event")
	}
	d.Event = &ev
	return d, nil
}

// Backoff is the wait after failed attempt number attempt (from 1):
// waits[attempt-1], or the last entry once they are used up.
func Backoff(waits []time.Duration, attempt int) time.Duration {
	if len(waits) == 0 {
		return 0
	}
	return waits[min(max(attempt, 1), len(waits))-1]
}
