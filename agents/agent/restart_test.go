package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// TestServerRestart restarts the NATS server (same store, same port)
// while jobs are being published and run: every job runs and finishes
// exactly once.
func TestServerRestart(t *testing.T) {
	b := newBus(t, "a1", "a2")
	var mu sync.Mutex
	runs := map[string]int{}
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		mu.Lock()
		runs[job.StageID]++
		mu.Unlock()
		// no event: the job's own run time keeps jobs in flight across
		// the restart; the test waits on nothing here.
		time.Sleep(5 * time.Millisecond)
		return Result{Status: rules.Success}
	})
	lease := Config{AckWait: 6 * time.Second, Progress: 500 * time.Millisecond, LeaseMargin: 2 * time.Second, PullExpiry: time.Second}
	var conns []*nats.Conn
	for _, name := range []string{"a1", "a2"} {
		cfg := lease
		cfg.Name, cfg.Runner, cfg.Capacity = name, runner, 4
		_, nc := b.agent(cfg)
		conns = append(conns, nc)
	}

	const n = 300
	published := make(chan struct{})
	go func() {
		defer close(published)
		pace := time.NewTicker(time.Millisecond) // the publisher's pace (a load generator)
		defer pace.Stop()
		for i := range n {
			j := job("restart", fmt.Sprintf("s%03d", i), nil)
			for {
				// Retrying with the same attempt reuses the message id, so a
				// publish whose ack was lost is not stored twice.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := b.d.Publish(ctx, j)
				cancel()
				if err == nil {
					break
				}
				// no event: the back-off of a retry while the server is
				// down; nothing tells the publisher JetStream is back.
				time.Sleep(50 * time.Millisecond)
			}
			<-pace.C
		}
	}()
	b.rec.wait(t, 10*time.Second, "some jobs finished", func() bool { return b.rec.count(wire.KindFinished) >= n/4 })
	b.srv.Shutdown()
	// The agents have noticed the outage before the server comes back.
	b.rec.wait(t, 10*time.Second, "agents disconnected", func() bool {
		return !conns[0].IsConnected() && !conns[1].IsConnected()
	})
	b.start()
	<-published
	b.rec.wait(t, 30*time.Second, "all finished", func() bool { return b.rec.count(wire.KindFinished) >= n })
	// A duplicate stored in the stream would be delivered before a job
	// published now: once that one has run, duplicates would have shown.
	b.publish(context.Background(), "restart", "sentinel", nil)
	b.rec.wait(t, 10*time.Second, "sentinel finished", func() bool {
		return len(b.rec.find(wire.KindFinished, "restart", "sentinel")) == 1
	})

	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		id := fmt.Sprintf("s%03d", i)
		if got := len(b.rec.find(wire.KindFinished, "restart", id)); got != 1 {
			t.Errorf("stage %s: got %d finished updates, want 1", id, got)
		}
		if runs[id] != 1 {
			t.Errorf("stage %s: ran %d times, want 1", id, runs[id])
		}
	}
}
