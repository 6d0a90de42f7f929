package runner

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/runner/store"
)

// stallBus is a Bus whose Publish never reaches the queue: it blocks
// until the test ends, like a server killed after storing a stage as
// queued and before handing its job over.
type stallBus struct {
	Bus
	publishing chan struct{} // closed at the first Publish
	release    chan struct{}
}

func (b *stallBus) Publish(ctx context.Context, j *wire.Job) error {
	select {
	case <-b.publishing:
	default:
		close(b.publishing)
	}
	<-b.release
	return errors.New("process gone")
}

// TestQueuedJobPublishedAgainAtStart: a server dies between storing a
// stage as queued and publishing its job; the next server's Start
// publishes it, so the run ends instead of waiting for ever.
func TestQueuedJobPublishedAgainAtStart(t *testing.T) {
	f := newFixture(t, true, 20*time.Second)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo ran\n"})
	ctx := context.Background()

	bus := &stallBus{Bus: f.bus.Dispatcher, publishing: make(chan struct{}), release: make(chan struct{})}
	dead, err := New(Config{Store: f.store, Bus: bus, Logs: f.logs, CacheDir: filepath.Join(f.dir, "cache-dead")})
	if err != nil {
		t.Fatal(err)
	}
	triggered := make(chan *store.Run, 1)
	go func() {
		run, err := dead.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
		if err != nil {
			t.Error(err)
		}
		triggered <- run
	}()
	t.Cleanup(func() { close(bus.release); <-triggered })
	select {
	case <-bus.publishing:
	case <-time.After(time.Minute):
		t.Fatal("the first server never published")
	}
	runs, err := f.store.UnfinishedRuns(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("unfinished runs: %v, %v", runs, err)
	}
	if st := stageByKey(runs[0], "a"); st.Status != store.StatusQueued || st.Published != 0 {
		t.Fatalf("stage before restart: %s published %d, want queued and unpublished", st.Status, st.Published)
	}

	// The next server process: same store, same bus.
	next, err := New(Config{Store: f.store, Bus: f.bus.Dispatcher, Logs: f.logs, CacheDir: filepath.Join(f.dir, "cache-next"), LeaseTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(next.Close)
	run := f.wait(runs[0].ID, 2*time.Minute)
	if st := stageByKey(run, "a"); run.Status != store.StatusSuccess || st.Attempt != 1 || st.Published != 1 {
		t.Fatalf("run %s, stage %s attempt %d published %d; want success on attempt 1, published", run.Status, st.Status, st.Attempt, st.Published)
	}
}
