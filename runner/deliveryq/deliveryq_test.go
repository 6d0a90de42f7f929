package deliveryq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

type env struct {
	t  *testing.T
	st *store.Store
	q  *Queue
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"),
		store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// start starts a Queue on st whose trigger is fn; Drain runs at cleanup.
func start(t *testing.T, st *store.Store, cfg Config, fn TriggerFunc) *env {
	t.Helper()
	cfg.Store, cfg.Trigger = st, fn
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		q.Drain(ctx)
	})
	return &env{t: t, st: st, q: q}
}

func (e *env) repo(name string) *store.Repo {
	e.t.Helper()
	r, err := e.st.CreateRepo(context.Background(), store.Repo{Name: name, Forge: store.ForgeGitHub, WebhookSecret: "s"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func event(repo, delivery string) *scm.Event {
	return &scm.Event{Forge: scm.ForgeGitHub, Delivery: delivery, Kind: scm.KindPush, Repo: repo,
		Ref: "refs/heads/main", Branch: "main", Commit: "0123456789abcdef0123456789abcdef01234567"}
}

func (e *env) accept(repo *store.Repo, delivery string) int64 {
	e.t.Helper()
	a, err := e.q.Accept(context.Background(), repo, scm.ForgeGitHub, event(repo.Name, delivery))
	if err != nil || a.Duplicate {
		e.t.Fatalf("Accept %s: %+v %v", delivery, a, err)
	}
	return a.ID
}

// createRun is what a trigger does when it succeeds: a run linked to
// the delivery.
func createRun(ctx context.Context, st *store.Store, d *Delivery) (*store.Run, error) {
	return st.CreateRun(ctx, store.NewRun{RepoID: d.Repo.ID, Event: d.Event.PipelineEvent(), Trigger: d.Trigger(),
		DeliveryID: d.ID, Status: store.StatusSkipped})
}

// waitFor polls cond until it holds (or fails the test after 20 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (e *env) delivery(id int64) *store.Delivery {
	e.t.Helper()
	d, err := e.st.Delivery(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) waitState(id int64, state string) *store.Delivery {
	e.t.Helper()
	var d *store.Delivery
	waitFor(e.t, fmt.Sprintf("delivery %d %s", id, state), func() bool {
		d = e.delivery(id)
		return d.State == state
	})
	return d
}

// TestHangingRepository: triggers of a repository that hang (its forge
// accepts and never answers) hold one worker, not all: another
// repository's delivery becomes a run while they hang. On Drain the hung
// triggers are cancelled and their deliveries stay received, their
// attempt not counted.
func TestHangingRepository(t *testing.T) {
	st := openStore(t)
	var mu sync.Mutex
	hung := 0
	e := start(t, st, Config{Workers: 4}, func(ctx context.Context, d *Delivery) (*store.Run, error) {
		if d.Repo.Name == "acme/slow" {
			mu.Lock()
			hung++
			mu.Unlock()
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return createRun(ctx, st, d)
	})
	slow, fast := e.repo("acme/slow"), e.repo("acme/fast")
	var slowIDs []int64
	for i := range 4 {
		slowIDs = append(slowIDs, e.accept(slow, fmt.Sprintf("slow-%d", i)))
	}
	waitFor(t, "a hung trigger", func() bool { mu.Lock(); defer mu.Unlock(); return hung > 0 })
	id := e.accept(fast, "fast")
	if d := e.waitState(id, store.DeliveryProcessed); d.RunID == 0 {
		t.Fatalf("fast delivery: processed without a run")
	}
	mu.Lock()
	if hung != 1 {
		t.Errorf("hung triggers of one repository: got %d, want 1 (PerRepo)", hung)
	}
	mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	e.q.Drain(ctx)
	for _, id := range slowIDs {
		if d := e.delivery(id); d.State != store.DeliveryReceived || d.Attempts != 0 {
			t.Errorf("slow delivery %d after Drain: got %s, %d attempts, want received, 0", id, d.State, d.Attempts)
		}
	}
}

// TestRetryUntilLast: a trigger is bounded by Timeout; a timed-out trigger is
// retried, and its last attempt is marked Last.
func TestRetryUntilLast(t *testing.T) {
	st := openStore(t)
	var mu sync.Mutex
	var seen []string
	e := start(t, st, Config{Timeout: 50 * time.Millisecond, Backoff: []time.Duration{time.Millisecond, 2 * time.Millisecond}},
		func(ctx context.Context, d *Delivery) (*store.Run, error) {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%d/%v", d.Attempt, d.Last))
			mu.Unlock()
			if !d.Last {
				<-ctx.Done() // hangs until Timeout
				return nil, fmt.Errorf("fetch: %w", ctx.Err())
			}
			return createRun(ctx, st, d)
		})
	repo := e.repo("acme/web")
	id := e.accept(repo, "d1")
	d := e.waitState(id, store.DeliveryProcessed)
	if d.RunID == 0 || d.Attempts != 2 {
		t.Errorf("delivery: got run %d after %d failed attempts, want a run after 2", d.RunID, d.Attempts)
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := fmt.Sprint(seen), "[1/false 2/false 3/true]"; got != want {
		t.Errorf("attempts: got %s, want %s", got, want)
	}
}

// TestOutcomes: how each answer of the trigger is recorded.
func TestOutcomes(t *testing.T) {
	st := openStore(t)
	failAfterRun := errors.New("dispatch failed")
	e := start(t, st, Config{Backoff: []time.Duration{time.Hour}}, func(ctx context.Context, d *Delivery) (*store.Run, error) {
		switch d.Event.Delivery {
		case "ignored":
			return nil, fmt.Errorf("pipeline skipped: %w", scm.ErrIgnored)
		case "after-run":
			run, err := createRun(ctx, st, d)
			if err != nil {
				return nil, err
			}
			return run, failAfterRun
		case "transient":
			return nil, errors.New("connection refused")
		}
		return createRun(ctx, st, d)
	})
	repo := e.repo("acme/web")
	if d := e.waitState(e.accept(repo, "ignored"), store.DeliveryIgnored); d.Error != "pipeline skipped: webhook event ignored" {
		t.Errorf("ignored: error %q", d.Error)
	}
	if d := e.waitState(e.accept(repo, "after-run"), store.DeliveryFailed); d.RunID == 0 || d.Error != failAfterRun.Error() {
		t.Errorf("failed after the run: got run %d, error %q", d.RunID, d.Error)
	}
	id := e.accept(repo, "transient")
	var d *store.Delivery
	waitFor(t, "a recorded retry", func() bool { d = e.delivery(id); return d.Attempts == 1 })
	if d.State != store.DeliveryReceived || d.Error != "connection refused" || time.Until(d.NextAttemptAt) < 50*time.Minute {
		t.Errorf("transient failure: got %s %q, due %v, want received, due in an hour", d.State, d.Error, d.NextAttemptAt)
	}
	// Redelivery of the same id: a duplicate, nothing new.
	a, err := e.q.Accept(context.Background(), repo, scm.ForgeGitHub, event(repo.Name, "ignored"))
	if err != nil || !a.Duplicate {
		t.Errorf("redelivery: got %+v %v, want duplicate", a, err)
	}
	// No delivery id: one is made up, and the delivery is stored.
	a, err = e.q.Accept(context.Background(), repo, scm.ForgeGitHub, event(repo.Name, ""))
	if err != nil || a.Duplicate || a.DeliveryID == "" {
		t.Fatalf("delivery without id: got %+v %v", a, err)
	}
	if d := e.waitState(a.ID, store.DeliveryProcessed); d.DeliveryID != a.DeliveryID || d.RunID == 0 {
		t.Errorf("delivery without id: got %+v", d)
	}
}

// TestSpillAndResume: deliveries that do not fit in memory, and those a
// previous process stored but never triggered, each become exactly one
// run; a stored delivery is triggered for the repository that verified
// it, whatever repository its payload names.
func TestSpillAndResume(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	a, err := st.CreateRepo(ctx, store.Repo{Name: "acme/a", Forge: store.ForgeGitHub})
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateRepo(ctx, store.Repo{Name: "acme/b", Forge: store.ForgeGitHub})
	if err != nil {
		t.Fatal(err)
	}
	// Stored by a previous process, verified by a's secret, naming b.
	var ids []int64
	for i := range 5 {
		payload, _ := json.Marshal(event(b.Name, fmt.Sprintf("old-%d", i)))
		id, _, err := st.InsertDelivery(ctx, store.NewDelivery{RepoID: a.ID, Source: scm.ForgeGitHub,
			DeliveryID: fmt.Sprintf("old-%d", i), Event: "push", Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	gate := make(chan struct{})
	var mu sync.Mutex
	calls := map[int64]int{}
	wrongRepo := 0
	e := start(t, st, Config{Workers: 2, Held: 3, HeldPerRepo: 2, SweepInterval: time.Hour},
		func(ctx context.Context, d *Delivery) (*store.Run, error) {
			<-gate
			mu.Lock()
			calls[d.ID]++
			if strings.HasPrefix(d.Event.Delivery, "old-") && d.Repo.ID != a.ID {
				wrongRepo++
			}
			mu.Unlock()
			return createRun(ctx, st, d)
		})
	e.q.Resume()
	for i := range 10 {
		repo := a
		if i%2 == 1 {
			repo = b
		}
		ids = append(ids, e.accept(repo, fmt.Sprintf("new-%d", i)))
	}
	close(gate)
	for _, id := range ids {
		if d := e.waitState(id, store.DeliveryProcessed); d.RunID == 0 {
			t.Errorf("delivery %d: processed without a run", id)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if calls[id] != 1 {
			t.Errorf("delivery %d triggered %d times, want once", id, calls[id])
		}
	}
	if wrongRepo != 0 {
		t.Errorf("%d stored deliveries were triggered for the repository their payload names", wrongRepo)
	}
	runs, err := st.ListRuns(ctx, store.RunFilter{RepoID: a.ID, Limit: 100})
	if err != nil || len(runs) != 10 {
		t.Errorf("runs of repo a: got %d %v, want 10 (5 stored, 5 new)", len(runs), err)
	}
}
