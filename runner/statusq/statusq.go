package statusq

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

// Reporter delivers one commit status to a forge. It must be safe for
// concurrent use. scm.StatusReporter implementations satisfy it.
type Reporter interface {
	Report(ctx context.Context, s scm.Status) error
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(ctx context.Context, s scm.Status) error

// Report calls f.
func (f ReporterFunc) Report(ctx context.Context, s scm.Status) error { return f(ctx, s) }

// State maps a run or stage state of the run lifecycle onto a commit
// status state: queued becomes pending, running stays running (reporters
// of forges without it send pending, scm.State.Basic); skipped becomes success (a stage skipped by design, such as a
// `when: {status: failure}` stage of a green run, must not turn the
// commit red; the description says "Skipped"); canceled and unknown
// states become error.
func State(runState string) scm.State {
	switch runState {
	case "queued", "pending":
		return scm.StatePending
	case "running", "started":
		return scm.StateRunning
	case "success", "passed", "skipped":
		return scm.StateSuccess
	case "failure", "failed":
		return scm.StateFailure
	default:
		return scm.StateError
	}
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying. A Reporter returns it to make
// the queue give up at once; errors wrapping scm.ErrRejected (a forge's 4xx
// answer) are treated the same way.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Options configure a Queue. Zero values take the defaults shown.
type Options struct {
	Workers     int           // delivery goroutines; default 4
	MaxPending  int           // keys waiting for delivery; default 1000
	MaxAttempts int           // attempts per status; default 6
	BaseDelay   time.Duration // first retry delay, doubled each retry; default 500ms
	MaxDelay    time.Duration // retry delay cap; default 30s
	Timeout     time.Duration // per attempt; default 30s
	Logger      *slog.Logger  // default slog.Default()
	// OnFailure is called once for a status given up on: after
	// MaxAttempts failures or a Permanent error. Wire it to
	// metrics.StatusReportFailed. It is called from worker goroutines
	// and must be safe for concurrent use.
	OnFailure func(s scm.Status, err error)
	// OnDrop is called for a status discarded without a delivery
	// attempt succeeding or failing for good: the queue was full, it was
	// enqueued after Close, or Close's deadline passed. Statuses replaced
	// by a newer one of their key are not drops. Called from Enqueue,
	// Close or worker goroutines; must be safe for concurrent use.
	OnDrop func(s scm.Status)
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1000
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 500 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

type key struct{ repo, commit, context string }

func keyOf(s scm.Status) key { return key{s.Repo, s.Commit, s.Context} }

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("status queue closed")

// Queue is an asynchronous, coalescing commit status queue. Create it with
// New and stop it with Close.
type Queue struct {
	rep  Reporter
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	wake    *sync.Cond
	waiting map[key]*list.Element // newest undelivered status per key
	order   *list.List            // of scm.Status, oldest first
	busy    map[key]bool          // keys held by a worker
	closed  bool

	stop context.CancelFunc // aborts deliveries and backoff when Close's deadline passes
	wg   sync.WaitGroup
}

// New starts a queue delivering through rep.
func New(rep Reporter, opts Options) *Queue {
	opts.defaults()
	q := &Queue{
		rep:     rep,
		opts:    opts,
		log:     opts.Logger,
		waiting: make(map[key]*list.Element),
		order:   list.New(),
		busy:    make(map[key]bool),
	}
	q.wake = sync.NewCond(&q.mu)
	// Deliveries outlive any single request: they run under their own
	// context, cancelled by Close when its deadline passes.
	ctx, cancel := context.WithCancel(context.Background())
	q.stop = cancel
	for range opts.Workers {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			q.work(ctx)
		}()
	}
	return q
}

// Enqueue queues s for delivery and returns without waiting. A waiting
// status of the same (Repo, Commit, Context) is replaced by s. When the
// queue is full the oldest waiting status is dropped. After Close it
// returns ErrClosed and drops s.
func (q *Queue) Enqueue(s scm.Status) error {
	k := keyOf(s)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.log.Warn("commit status dropped: queue closed", statusAttrs(s)...)
		q.dropped(s)
		return ErrClosed
	}
	if e, ok := q.waiting[k]; ok {
		// Keep the key's place in line: it has waited longest.
		e.Value = s
		q.mu.Unlock()
		q.wake.Signal()
		return nil
	}
	var evicted *scm.Status
	if q.order.Len() >= q.opts.MaxPending {
		front := q.order.Front()
		old := q.order.Remove(front).(scm.Status)
		delete(q.waiting, keyOf(old))
		evicted = &old
	}
	q.waiting[k] = q.order.PushBack(s)
	q.mu.Unlock()
	q.wake.Signal()
	if evicted != nil {
		q.log.Warn("commit status dropped: queue full", append(statusAttrs(*evicted), "max_pending", q.opts.MaxPending)...)
		q.dropped(*evicted)
	}
	return nil
}

// Len returns the number of statuses waiting (not counting those being
// delivered).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.order.Len()
}

// Close stops intake and waits until every waiting status is delivered or
// given up on, or until ctx is done. In the latter case deliveries in
// flight are cancelled, what is left is dropped (and reported to OnDrop),
// and the returned error wraps ctx.Err(). Close waits for all workers to
// exit before returning and may be called more than once.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake.Broadcast()

	done := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		q.stop()
		return nil
	case <-ctx.Done():
	}
	q.stop()
	// Broadcast under the lock: a worker between its ctx check and
	// Wait holds the lock, so it cannot miss this wake-up.
	q.mu.Lock()
	q.wake.Broadcast()
	q.mu.Unlock()
	<-done
	q.mu.Lock()
	var left []scm.Status
	for e := q.order.Front(); e != nil; e = e.Next() {
		left = append(left, e.Value.(scm.Status))
	}
	q.order.Init()
	clear(q.waiting)
	q.mu.Unlock()
	for _, s := range left {
		q.log.Warn("commit status dropped: close deadline passed", statusAttrs(s)...)
		q.dropped(s)
	}
	return fmt.Errorf("drain status queue: %d statuses left: %w", len(left), ctx.Err())
}

func (q *Queue) dropped(s scm.Status) {
	if q.opts.OnDrop != nil {
		q.opts.OnDrop(s)
	}
}

// next blocks until a status whose key no other worker holds is waiting,
// takes it and marks its key busy. It returns false when the queue is
// closed and empty, or stopped.
func (q *Queue) next(ctx context.Context) (scm.Status, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if ctx.Err() != nil {
			return scm.Status{}, false
		}
		for e := q.order.Front(); e != nil; e = e.Next() {
			s := e.Value.(scm.Status)
			k := keyOf(s)
			if q.busy[k] {
				continue // its holder takes it when done, keeping order
			}
			q.order.Remove(e)
			delete(q.waiting, k)
			q.busy[k] = true
			return s, true
		}
		if q.closed && q.order.Len() == 0 {
			return scm.Status{}, false
		}
		q.wake.Wait()
	}
}

// newer takes the waiting status of k, if any, for the worker holding k.
func (q *Queue) newer(k key) (scm.Status, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.waiting[k]
	if !ok {
		return scm.Status{}, false
	}
	q.order.Remove(e)
	delete(q.waiting, k)
	return e.Value.(scm.Status), true
}

func (q *Queue) release(k key) {
	q.mu.Lock()
	delete(q.busy, k)
	q.mu.Unlock()
	// Wake everyone: a status of k may be waiting, and a closing queue
	// needs idle workers to notice it is empty.
	q.wake.Broadcast()
}

func (q *Queue) work(ctx context.Context) {
	for {
		s, ok := q.next(ctx)
		if !ok {
			return
		}
		k := keyOf(s)
		q.deliver(ctx, s)
		q.release(k)
	}
}

// deliver sends s, retrying with backoff. Before each retry it switches to
// a newer status of the same key if one arrived.
func (q *Queue) deliver(ctx context.Context, s scm.Status) {
	k := keyOf(s)
	delay := q.opts.BaseDelay
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, q.opts.Timeout)
		err := q.rep.Report(actx, s)
		cancel()
		if err == nil {
			q.log.Debug("commit status delivered", append(statusAttrs(s), "attempt", attempt)...)
			return
		}
		if ctx.Err() != nil {
			q.log.Warn("commit status dropped: close deadline passed", append(statusAttrs(s), "err", err)...)
			q.dropped(s)
			return
		}
		var perm permanentError
		if errors.As(err, &perm) || errors.Is(err, scm.ErrRejected) || attempt >= q.opts.MaxAttempts {
			q.log.Error("commit status not delivered", append(statusAttrs(s), "attempts", attempt, "err", err)...)
			if q.opts.OnFailure != nil {
				q.opts.OnFailure(s, err)
			}
			return
		}
		q.log.Warn("commit status delivery failed, retrying", append(statusAttrs(s), "attempt", attempt, "retry_in", delay, "err", err)...)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			q.log.Warn("commit status dropped: close deadline passed", statusAttrs(s)...)
			q.dropped(s)
			return
		case <-t.C:
		}
		delay = min(2*delay, q.opts.MaxDelay)
		if n, ok := q.newer(k); ok {
			q.log.Debug("commit status superseded before delivery", statusAttrs(s)...)
			s, attempt, delay = n, 0, q.opts.BaseDelay
		}
	}
}

func statusAttrs(s scm.Status) []any {
	return []any{"repo", s.Repo, "commit", s.Commit, "context", s.Context, "state", string(s.State)}
}
