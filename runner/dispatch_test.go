package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/runner/runnertest"
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

// TestLostStageWaitsBehindBusyAgent: the agent running a stage dies, and
// the only agent left is busy for several lease periods. The stage goes
// back to the queue as a new attempt and runs when a slot frees; a queue
// wait is never taken for a lost agent (it used to end agent_lost).
func TestLostStageWaitsBehindBusyAgent(t *testing.T) {
	const lease = 3 * time.Second
	f := newFixtureOpts(t, runnertest.Options{Capacity: 1, AckWait: 3 * time.Second}, lease)
	mark := filepath.Join(t.TempDir(), "first-attempt-ran")
	script := "if [ -e " + mark + " ]; then echo resumed; else touch " + mark + "; sleep 60; fi"
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n" +
		"  a:\n    steps:\n      - name: s\n        run: '" + script + "'\n" +
		"  b:\n    steps:\n      - name: s\n        run: sleep 12\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	f.waitStage(run.ID, "a", func(st *store.Stage) bool {
		_, err := os.Stat(mark)
		return st.Status == store.StatusRunning && err == nil
	})
	f.bus.KillAgent()
	f.bus.StartAgent() // takes b, the head of the queue, for 12 s
	run = f.wait(run.ID, 2*time.Minute)
	a, b := stageByKey(run, "a"), stageByKey(run, "b")
	if run.Status != store.StatusSuccess || a.Attempt != 2 || b.Attempt != 1 {
		t.Fatalf("run %s; a %s/%s attempt %d, b %s attempt %d; want success, a on attempt 2, b on 1",
			run.Status, a.Status, a.Reason, a.Attempt, b.Status, b.Attempt)
	}
	if a.StartedAt.Before(b.FinishedAt) {
		t.Errorf("a's attempt 2 started at %v, before b finished at %v: the agent was not busy, the test proves nothing", a.StartedAt, b.FinishedAt)
	}
}
