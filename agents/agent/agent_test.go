package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

func TestDispatchByLabels(t *testing.T) {
	b := newBus(t, "gpu", "linux", "bare")
	ctx := context.Background()
	b.agent(Config{Name: "gpu", Labels: map[string]string{"os": "linux", "gpu": "yes"}, Capacity: 4, Runner: EchoRunner{}})
	b.agent(Config{Name: "linux", Labels: map[string]string{"os": "linux"}, Capacity: 4, Runner: EchoRunner{}})
	// The agent without labels holds its jobs until the others are done, so
	// at most its capacity of the unlabelled jobs can be its own: the rest
	// must be taken by the labelled agents, whoever pulls first.
	release := make(chan struct{})
	held := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return EchoRunner{}.RunStage(ctx, job, sink)
	})
	b.agent(Config{Name: "bare", Capacity: 4, Runner: held})

	const n = 12
	for i := range n {
		b.publish(ctx, "labels", fmt.Sprintf("gpu-%d", i), map[string]string{"os": "linux", "gpu": "yes"})
		b.publish(ctx, "labels", fmt.Sprintf("linux-%d", i), map[string]string{"os": "linux"})
		b.publish(ctx, "labels", fmt.Sprintf("any-%d", i), nil)
	}
	defer func() {
		if t.Failed() {
			b.rec.dump(t)
		}
	}()
	b.rec.wait(t, 30*time.Second, "all jobs but the held ones finished", func() bool { return b.rec.count(wire.KindFinished) >= 3*n-4 })
	close(release)
	b.rec.wait(t, 30*time.Second, "all jobs finished", func() bool { return b.rec.count(wire.KindFinished) == 3*n })

	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	labelledRanAny := 0
	for i := range n {
		for _, tt := range []struct {
			stage string
			may   map[string]bool
		}{
			{fmt.Sprintf("gpu-%d", i), map[string]bool{"gpu": true}},
			{fmt.Sprintf("linux-%d", i), map[string]bool{"gpu": true, "linux": true}},
			{fmt.Sprintf("any-%d", i), map[string]bool{"gpu": true, "linux": true, "bare": true}},
		} {
			got := b.rec.find(wire.KindStarted, "labels", tt.stage)
			if len(got) != 1 {
				t.Errorf("stage %s: got %d started, want 1", tt.stage, len(got))
				continue
			}
			if !tt.may[got[0].Agent] {
				t.Errorf("stage %s ran on agent %s, want one of %v", tt.stage, got[0].Agent, tt.may)
			}
			if tt.stage[:3] == "any" && got[0].Agent != "bare" {
				labelledRanAny++
			}
		}
	}
	// Unlabelled jobs are not reserved for the agent without labels.
	if labelledRanAny < n-4 {
		t.Errorf("labelled agents ran %d unlabelled jobs, want at least %d", labelledRanAny, n-4)
	}
}

func TestCapacity(t *testing.T) {
	b := newBus(t, "a")
	var cur, peak atomic.Int32
	pair := make(chan struct{})
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		// Jobs finish in pairs: each waits for another to run beside it,
		// so the peak reaches the capacity without waiting for time.
		select {
		case pair <- struct{}{}:
		case <-pair:
		}
		cur.Add(-1)
		return Result{Status: rules.Success}
	})
	b.agent(Config{Name: "a", Capacity: 2, Runner: runner})
	for i := range 20 {
		b.publish(context.Background(), "cap", fmt.Sprint(i), nil)
	}
	b.rec.wait(t, 10*time.Second, "20 finished", func() bool { return b.rec.count(wire.KindFinished) == 20 })
	if got := peak.Load(); got != 2 {
		t.Errorf("got peak concurrency %d, want 2", got)
	}
}

// TestCutOffAgentStops: an agent that claimed a job and is then cut off
// from NATS stops the stage (cause ErrLeaseLost) before the lease the
// server granted ends, so the server's next attempt never overlaps it.
func TestCutOffAgentStops(t *testing.T) {
	b := newBus(t, "dies")
	const lease = 3 * time.Second
	b.rec.lease = lease
	started := make(chan time.Time, 1)
	stopped := make(chan error, 1)
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		started <- time.Now()
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return Result{Status: rules.Canceled}
	})
	_, nc := b.agent(Config{Name: "dies", Runner: runner, AckWait: 3 * time.Second, Progress: 300 * time.Millisecond, LeaseMargin: time.Second, PullExpiry: time.Second})
	b.publish(context.Background(), "death", "build", nil)
	var t0 time.Time
	select {
	case t0 = <-started:
	case <-time.After(time.Minute):
		t.Fatal("stage did not start")
	}
	nc.Close() // no more heartbeats can be stored
	select {
	case cause := <-stopped:
		if !errors.Is(cause, ErrLeaseLost) {
			t.Errorf("stage stopped with cause %v, want ErrLeaseLost", cause)
		}
		// The grant came before t0, so the server's lease ends before
		// t0+lease; the agent must be done before that.
		if d := time.Since(t0); d >= lease {
			t.Errorf("stage stopped %v after its start, want within the lease %v", d, lease)
		}
	case <-time.After(time.Minute):
		t.Fatal("cut-off agent did not stop its stage")
	}
}

// TestDuplicateJobRunsOnce: two copies of one job (a copy that JetStream's
// duplicate window did not catch, or a redelivery) reach two agents; only
// the claim of the first is granted and the other copy runs nothing.
func TestDuplicateJobRunsOnce(t *testing.T) {
	b := newBus(t, "a", "b")
	var runs atomic.Int32
	release := make(chan struct{})
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		runs.Add(1)
		<-release
		return Result{Status: rules.Success}
	})
	b.agent(Config{Name: "a", Runner: runner, PullExpiry: time.Second})
	b.agent(Config{Name: "b", Runner: runner, PullExpiry: time.Second})
	js, err := jetstream.New(b.nc)
	if err != nil {
		t.Fatal(err)
	}
	data, err := wire.Encode(job("dup", "build", nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		if _, err := js.Publish(ctx, wire.JobSubject(nil), data, jetstream.WithMsgID(fmt.Sprintf("copy-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	b.rec.wait(t, time.Minute, "the copy refused", func() bool { return b.rec.refused == 1 })
	close(release)
	b.rec.wait(t, time.Minute, "the job finished", func() bool { return len(b.rec.find(wire.KindFinished, "dup", "build")) == 1 })
	if n := runs.Load(); n != 1 {
		t.Errorf("the job ran %d times, want 1", n)
	}
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	if n := len(b.rec.find(wire.KindStarted, "dup", "")); n != 1 {
		t.Errorf("got %d started updates, want 1", n)
	}
}

func TestCancel(t *testing.T) {
	b := newBus(t, "a")
	var cause atomic.Value
	stopped := make(chan time.Time, 1)
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		<-ctx.Done()
		stopped <- time.Now()
		cause.Store(context.Cause(ctx))
		return Result{Status: rules.Canceled, Reason: context.Cause(ctx).Error()}
	})
	b.agent(Config{Name: "a", Runner: runner})
	b.publish(context.Background(), "cancel-me", "build", nil)
	b.rec.wait(t, 5*time.Second, "started", func() bool { return len(b.rec.find(wire.KindStarted, "cancel-me", "")) == 1 })
	sent := time.Now()
	if err := b.d.Cancel(context.Background(), wire.Cancel{RunID: "cancel-me"}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-stopped:
		t.Logf("cancel took %v", at.Sub(sent))
	case <-time.After(2 * time.Second):
		t.Fatal("stage not cancelled within 2s")
	}
	if c, _ := cause.Load().(error); !errors.Is(c, ErrCanceled) {
		t.Errorf("got cause %v, want ErrCanceled", c)
	}
	b.rec.wait(t, 5*time.Second, "finished", func() bool {
		f := b.rec.find(wire.KindFinished, "cancel-me", "")
		return len(f) == 1 && f[0].Status == rules.Canceled
	})
}

func TestLogsComplete(t *testing.T) {
	b := newBus(t, "a")
	const bulk = 100 << 20
	var want sync.Map
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		for _, s := range job.Stage.Steps {
			w := sink.Log(s.Name)
			h := sha256.New()
			out := io.MultiWriter(w, h)
			switch s.Name {
			case "bulk": // 100 MiB in writes of varying size
				rng := rand.New(rand.NewPCG(1, 2))
				buf := make([]byte, 200<<10)
				for i := range buf {
					buf[i] = 'a' + byte(i%26)
				}
				for n := 0; n < bulk; {
					k := min(1+rng.IntN(len(buf)), bulk-n)
					buf[0] = byte(n)
					if _, err := out.Write(buf[:k]); err != nil {
						return Result{Status: rules.Error, Reason: err.Error()}
					}
					n += k
				}
			case "line": // one 5 MiB line in one write
				line := make([]byte, 5<<20)
				for i := range line {
					line[i] = 'x' + byte(i%3)
				}
				line[len(line)-1] = '\n'
				_, _ = out.Write(line)
			}
			_ = w.Close()
			want.Store(s.Name, fmt.Sprintf("%x", h.Sum(nil)))
		}
		return Result{Status: rules.Success}
	})
	b.agent(Config{Name: "a", Runner: runner})
	b.publish(context.Background(), "logs", "build", nil, &pipeline.Step{Name: "bulk"}, &pipeline.Step{Name: "line"})
	// Generous: about 3 s normally, near a minute under -race on 2 cores.
	b.rec.wait(t, 3*time.Minute, "finished", func() bool { return len(b.rec.find(wire.KindFinished, "logs", "")) == 1 })
	b.rec.wait(t, 30*time.Second, "both logs at EOF", func() bool {
		for _, k := range []string{"logs/build/1/bulk", "logs/build/1/line"} {
			if s := b.rec.logs[k]; s == nil || (!s.eof && s.err == nil) {
				return false
			}
		}
		return true
	})
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	for _, tt := range []struct {
		step string
		size int64
	}{{"bulk", bulk}, {"line", 5 << 20}} {
		s := b.rec.logs["logs/build/1/"+tt.step]
		if s.err != nil {
			t.Errorf("step %s: %v", tt.step, s.err)
			continue
		}
		w, _ := want.Load(tt.step)
		if got := fmt.Sprintf("%x", s.h.Sum(nil)); s.n != tt.size || got != w {
			t.Errorf("step %s: got %d bytes sha256 %s, want %d bytes %s", tt.step, s.n, got, tt.size, w)
		}
	}
}

func TestDrainWaitsThenCancels(t *testing.T) {
	b := newBus(t, "a", "b")
	release := make(chan struct{})
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		if job.StageID == "slow" {
			<-ctx.Done()
			return Result{Status: rules.Canceled, Reason: context.Cause(ctx).Error()}
		}
		<-release
		return Result{Status: rules.Success}
	})
	a, _ := b.agent(Config{Name: "a", Capacity: 2, Runner: runner, PullExpiry: time.Second})
	b.publish(context.Background(), "drain", "quick", nil)
	b.publish(context.Background(), "drain", "slow", nil)
	b.rec.wait(t, 5*time.Second, "both started", func() bool { return len(b.rec.find(wire.KindStarted, "drain", "")) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- a.Drain(ctx) }()
	// The quick stage ends while the agent drains.
	b.rec.wait(t, 5*time.Second, "draining", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.draining
	})
	close(release)
	if err := <-drained; !errors.Is(err, ErrDrainDeadline) {
		t.Errorf("got drain error %v, want ErrDrainDeadline", err)
	}
	// A job published after the drain is left for others: agent b runs it.
	b.publish(context.Background(), "drain", "later", nil)
	b.agent(Config{Name: "b", Runner: runner, PullExpiry: time.Second})
	b.rec.wait(t, 10*time.Second, "three finished", func() bool { return len(b.rec.find(wire.KindFinished, "drain", "")) >= 3 })
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	for _, tt := range []struct {
		stage string
		want  rules.Status
	}{{"quick", rules.Success}, {"slow", rules.Canceled}} {
		f := b.rec.find(wire.KindFinished, "drain", tt.stage)
		if len(f) != 1 || f[0].Status != tt.want {
			t.Errorf("stage %s: got finished %+v, want one with status %s", tt.stage, f, tt.want)
		}
	}
	if got := b.rec.find(wire.KindStarted, "drain", "later"); len(got) != 1 || got[0].Agent != "b" {
		t.Errorf("got starts of later %+v, want one by b (a drained agent takes no job)", got)
	}
}

// TestLogFlushTimer: output without a newline or a full chunk reaches the
// server before the step ends.
func TestLogFlushTimer(t *testing.T) {
	b := newBus(t, "a")
	seen := make(chan struct{})
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		w := sink.Log("s")
		_, _ = io.WriteString(w, "progress 10%")
		select {
		case <-seen:
		case <-ctx.Done():
		}
		_ = w.Close()
		return Result{Status: rules.Success}
	})
	b.agent(Config{Name: "a", Runner: runner, FlushInterval: 50 * time.Millisecond})
	b.publish(context.Background(), "flush", "build", nil, &pipeline.Step{Name: "s"})
	b.rec.wait(t, 5*time.Second, "partial chunk before the step ends", func() bool {
		s := b.rec.logs["flush/build/1/s"]
		return s != nil && s.n == int64(len("progress 10%")) && !s.eof
	})
	close(seen)
	b.rec.wait(t, 5*time.Second, "EOF", func() bool {
		s := b.rec.logs["flush/build/1/s"]
		return s.eof && s.nextSeq == 2
	})
}

// TestStageHeartbeats: while stages run, the agent sends a heartbeat
// update per stage and attempt with each lease extension, only after the
// stage's "started" and never after its "finished".
func TestStageHeartbeats(t *testing.T) {
	b := newBus(t, "a")
	release := make(chan struct{})
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		select {
		case <-release:
			return Result{Status: rules.Success}
		case <-ctx.Done():
			return Result{Status: rules.Canceled}
		}
	})
	presence := make(chan *nats.Msg, 64)
	sub, err := b.nc.ChanSubscribe(wire.PresenceSubject("a"), presence)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	b.agent(Config{Name: "a", Capacity: 2, Runner: runner, AckWait: 3 * time.Second, Progress: 200 * time.Millisecond, LeaseMargin: time.Second, PullExpiry: time.Second, Heartbeat: 200 * time.Millisecond})
	stages := []string{"one", "two"}
	for _, s := range stages {
		b.publish(context.Background(), "hb", s, nil)
	}
	b.rec.wait(t, 10*time.Second, "3 heartbeats of each stage", func() bool {
		for _, s := range stages {
			if len(b.rec.find(wire.KindHeartbeat, "hb", s)) < 3 {
				return false
			}
		}
		return true
	})
	close(release)
	b.rec.wait(t, 10*time.Second, "both finished", func() bool { return len(b.rec.find(wire.KindFinished, "hb", "")) == 2 })
	// The agent's presence ticks at the stage heartbeats' period: after
	// three more of them, late stage heartbeats would have shown.
	for range len(presence) {
		<-presence
	}
	for i := 0; i < 3; {
		select {
		case m := <-presence:
			var p wire.Presence
			if wire.Decode(m.Data, &p) == nil && p.Kind == wire.PresenceHeartbeat {
				i++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for the agent's presence heartbeats")
		}
	}
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	for _, s := range stages {
		var order []wire.Kind
		for _, u := range b.rec.updates {
			if u.RunID != "hb" || u.StageID != s {
				continue
			}
			if u.Attempt != 1 || u.Agent != "a" {
				t.Errorf("stage %s: got %s update of attempt %d from %q, want attempt 1 from a", s, u.Kind, u.Attempt, u.Agent)
			}
			if len(order) == 0 || order[len(order)-1] != u.Kind {
				order = append(order, u.Kind)
			}
		}
		want := []wire.Kind{wire.KindStarted, wire.KindHeartbeat, wire.KindFinished}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Errorf("stage %s: got update kinds in order %v, want %v", s, order, want)
		}
	}
}

// TestRefusedJobHandedBack: a claim the server refuses with Release (the
// agent's credential does not allow the stage) hands the job back rather
// than dropping it, and an agent that may claim it runs it.
func TestRefusedJobHandedBack(t *testing.T) {
	b := newBus(t, "wrong", "right")
	b.rec.mu.Lock()
	b.rec.release = map[string]time.Duration{"wrong": time.Second}
	b.rec.mu.Unlock()
	runner := RunnerFunc(func(ctx context.Context, job *wire.Job, sink EventSink) Result {
		return Result{Status: rules.Success}
	})
	wrong, _ := b.agent(Config{Name: "wrong", Runner: runner, PullExpiry: time.Second})
	js, err := jetstream.New(b.nc)
	if err != nil {
		t.Fatal(err)
	}
	data, err := wire.Encode(job("r1", "deploy", nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.Publish(ctx, wire.JobSubject(nil), data); err != nil {
		t.Fatal(err)
	}
	b.rec.wait(t, time.Minute, "the wrong agent's claim refused", func() bool { return b.rec.refused >= 1 })
	if err := wrong.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	b.agent(Config{Name: "right", Runner: runner, PullExpiry: time.Second})
	b.rec.wait(t, time.Minute, "the job finished on the right agent", func() bool {
		for _, u := range b.rec.find(wire.KindFinished, "r1", "deploy") {
			if u.Agent == "right" {
				return true
			}
		}
		return false
	})
}
