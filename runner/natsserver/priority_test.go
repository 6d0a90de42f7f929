package natsserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
)

// TestPriorityJobGoesAhead: a priority job published after a backlog
// reaches a busy agent (capacity 1, with its own credentials) with the
// next free slot or the one after (a normal job may be delivered beside
// it), not behind the whole backlog.
func TestPriorityJobGoesAhead(t *testing.T) {
	srv, creds := start(t, "a")
	d, _ := dispatcher(t, srv, StreamLimits{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const backlog = 6
	for i := range backlog {
		if err := d.Publish(ctx, &wire.Job{RunID: "r", StageID: fmt.Sprintf("n%d", i), Attempt: 1, Stage: &pipeline.Stage{ID: "n"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Publish(ctx, &wire.Job{RunID: "r", StageID: "p", Attempt: 1, Priority: true, Stage: &pipeline.Stage{ID: "p"}}); err != nil {
		t.Fatal(err)
	}
	nc, err := natsbus.Connect(srv.ClientURL(), creds["a"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	in, err := natsbus.NewIntake(ctx, nc, natsbus.IntakeOptions{Name: "a", Capacity: 1, PullExpiry: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	got := make(chan struct{}, backlog+1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		_ = in.Run(ctx, func(ctx context.Context, dl *natsbus.Delivery) {
			mu.Lock()
			order = append(order, dl.Job.StageID)
			mu.Unlock()
			// A stage takes longer than a round trip to the server:
			// the other consumers' answers to this slot's pull requests
			// are in before the slot frees again.
			_ = nc.Flush()
			_ = dl.Ack(ctx)
			got <- struct{}{}
		})
	})
	for range backlog + 1 {
		select {
		case <-got:
		case <-time.After(time.Minute):
			mu.Lock()
			t.Fatalf("got %v within a minute, want %d jobs", order, backlog+1)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if i := slices.Index(order, "p"); i < 0 || i > 1 {
		t.Errorf("delivery order %v: the priority job came %d., want 1. or 2.", order, i+1)
	}
}
