package natsserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
)

// seqRecorder checks that log chunks come in order, one after the other.
// Its first Log call blocks until release is closed.
type seqRecorder struct {
	release <-chan struct{}
	once    sync.Once

	mu   sync.Mutex
	next uint64
	err  error
	done chan struct{} // closed when chunk last arrived or on the first error
	last uint64
}

func (r *seqRecorder) Update(context.Context, *wire.Update) error { return nil }
func (r *seqRecorder) Claim(context.Context, *wire.Claim) *wire.ClaimReply {
	return nil
}

func (r *seqRecorder) Log(_ context.Context, c *wire.LogChunk) error {
	r.once.Do(func() { <-r.release })
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.err != nil:
	case c.Seq != r.next:
		r.err = fmt.Errorf("got chunk %d, want %d", c.Seq, r.next)
		close(r.done)
	default:
		r.next++
		if c.Seq == r.last {
			close(r.done)
		}
	}
	return nil
}

// TestDispatchSlowHandlerLosesNothing: while the handler is busy, the
// dispatcher buffers no more events than its connection holds. Full log
// chunks are waiting in the stream and the handler blocks on the first
// until JetStream has delivered all the dispatcher asked for; every chunk
// then arrives in order, and the connection never reports a slow
// consumer (a dropped chunk came back only after AckWait, after its
// successors, and the stored log lacked it).
func TestDispatchSlowHandlerLosesNothing(t *testing.T) {
	srv, _ := start(t)
	var mu sync.Mutex
	var asyncErrs []error
	nc, err := natsbus.Connect(srv.ClientURL(), srv.ServerCreds(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		asyncErrs = append(asyncErrs, err)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	d, err := NewDispatcher(context.Background(), nc, DispatcherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	const n = 300 // 300 encoded chunks are about 100 MB
	data := make([]byte, wire.MaxChunk)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	for i := range n {
		c := wire.LogChunk{RunID: "r", StageID: "s", Attempt: 1, Agent: "a", Step: "x", Seq: uint64(i), Data: data, EOF: i == n-1}
		b, err := wire.Encode(&c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, wire.LogsSubject("r", "a"), b, jetstream.WithMsgID(wire.LogMsgID(&c))); err != nil {
			t.Fatalf("publish chunk %d: %v", i, err)
		}
	}
	release := make(chan struct{})
	rec := &seqRecorder{release: release, done: make(chan struct{}), last: n - 1}
	wg.Go(func() { _ = d.Run(ctx, rec) })

	// Delivered and unacked, and no pull request left open: the server
	// sends nothing more until the handler returns.
	waitFor(t, 30*time.Second, "the dispatcher's pull to be delivered", func() bool {
		cons, err := js.Consumer(ctx, natsbus.EventsStream, EventsConsumer)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending > 0 && info.NumWaiting == 0
	})
	close(release)
	select {
	case <-rec.done:
	case <-time.After(2 * time.Minute): // a bound: without loss this takes seconds
		t.Fatal("not every chunk handled within 2 minutes")
	}
	rec.mu.Lock()
	if rec.err != nil {
		t.Error(rec.err)
	}
	rec.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	for _, err := range asyncErrs {
		t.Errorf("connection error: %v", err)
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}
