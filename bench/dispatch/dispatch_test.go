package dispatch

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/agent"
	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/internal/serverbus"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

type counter struct {
	finished atomic.Int64
	poke     chan struct{}
}

func (c *counter) Update(_ context.Context, u *wire.Update) error {
	if u.Kind == wire.KindFinished {
		c.finished.Add(1)
		select {
		case c.poke <- struct{}{}:
		default:
		}
	}
	return nil
}

func (c *counter) Log(context.Context, *wire.LogChunk) error { return nil }

// Claim grants every claim, as the server does for a job's first copy, so
// the figures include the claim round trip every job now makes.
func (c *counter) Claim(_ context.Context, cl *wire.Claim) *wire.ClaimReply {
	return &wire.ClaimReply{Granted: true, Attempt: cl.Attempt}
}

type env struct {
	d    *natsserver.Dispatcher
	rec  *counter
	toks map[string]string
}

// setup starts NATS, a dispatcher and n agents (own connection each).
func setup(b *testing.B, n, capacity int, runner agent.StageRunner) *env {
	b.Helper()
	e := &env{toks: map[string]string{}, rec: &counter{poke: make(chan struct{}, 1)}}
	var creds []natsserver.AgentCredential
	for i := range n {
		name := fmt.Sprintf("agent%d", i)
		tok, c, err := natsserver.NewAgentCredential(name)
		if err != nil {
			b.Fatal(err)
		}
		e.toks[name] = tok
		creds = append(creds, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The server's bus, as `runnel server --no-agent` starts it, with
	// the agents' credentials.
	bus, err := serverbus.Start(ctx, serverbus.Options{DataDir: b.TempDir(), Port: -1, Agents: creds})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	e.d = bus.Dispatcher
	var wg sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		bus.Close()
	})
	wg.Go(func() { _ = e.d.Run(ctx, e.rec) })
	for name, tok := range e.toks {
		c, err := natsbus.ParseAgentToken(tok)
		if err != nil {
			b.Fatal(err)
		}
		nc, err := natsbus.Connect(bus.URL, c)
		if err != nil {
			b.Fatal(err)
		}
		a, err := agent.New(agent.Config{Name: name, Capacity: capacity, Runner: runner})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer nc.Close()
			_ = a.Run(ctx, nc)
		})
	}
	// Wait until every agent has its pull requests waiting.
	deadline := time.Now().Add(10 * time.Second)
	for len(e.d.Agents()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return e
}

func stageJob(run string, i int) *wire.Job {
	id := fmt.Sprintf("s%d", i)
	return &wire.Job{RunID: run, StageID: id, Attempt: 1, Stage: &pipeline.Stage{ID: id, Name: "bench"}}
}

// BenchmarkDispatchLatency: one job at a time, from the start of
// Dispatcher.Publish to the agent calling its (no-op) StageRunner.
func BenchmarkDispatchLatency(b *testing.B) {
	var t0 atomic.Int64
	called := make(chan time.Duration, 1)
	runner := agent.RunnerFunc(func(ctx context.Context, job *wire.Job, sink agent.EventSink) agent.Result {
		called <- time.Duration(time.Now().UnixNano() - t0.Load())
		return agent.Result{Status: rules.Success}
	})
	e := setup(b, 1, 1, runner)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0.Store(time.Now().UnixNano())
		if err := e.d.Publish(ctx, stageJob("lat", i)); err != nil {
			b.Fatal(err)
		}
		select {
		case l := <-called:
			lat = append(lat, l)
		case <-time.After(40 * time.Second):
			b.Fatal("job not dispatched within 40s")
		}
		// Let the agent finish (ack) so the next job meets an idle agent.
		for e.rec.finished.Load() < int64(i+1) {
			<-e.rec.poke
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkThroughput: b.N stages published by four goroutines as fast as
// the dispatcher takes them, run by n agents of capacity 4 with a no-op
// runner; the clock stops when the server has received every "finished"
// update.
func BenchmarkThroughput(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			noop := agent.RunnerFunc(func(context.Context, *wire.Job, agent.EventSink) agent.Result {
				return agent.Result{Status: rules.Success}
			})
			e := setup(b, n, 4, noop)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			// Four publishers, as a server publishes for several runs at once.
			const publishers = 4
			errc := make(chan error, publishers)
			for p := range publishers {
				go func() {
					for i := p; i < b.N; i += publishers {
						if err := e.d.Publish(ctx, stageJob(fmt.Sprintf("tp%d", n), i)); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
			}
			for e.rec.finished.Load() < int64(b.N) {
				select {
				case <-e.rec.poke:
				case <-time.After(time.Second):
				}
			}
			el := time.Since(start)
			b.StopTimer()
			for range publishers {
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "stages/s")
		})
	}
}
