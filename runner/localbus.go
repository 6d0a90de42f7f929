package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/agents/workspace"
	"github.com/runnel-ci/runnel/pipeline"
)

// LocalBus is a Bus with one agent inside the server process: it runs jobs
// with an engine, the stage executor and a workspace cache, and reports
// updates straight to a handler. It serves `runnel server` without an
// external NATS agent and the package's tests.
type LocalBus struct {
	name     string
	labels   map[string]string
	capacity int
	eng      engine.Engine
	cache    *workspace.Cache
	workDir  string
	log      *slog.Logger
	beat     time.Duration

	mu       sync.Mutex
	handler  func(context.Context, Update)
	running  map[string]context.CancelFunc
	queue    []*Job
	draining bool
	wg       sync.WaitGroup
}

var _ Bus = (*LocalBus)(nil)

// LocalBusOptions configures NewLocalBus.
type LocalBusOptions struct {
	Name     string
	Labels   map[string]string
	Capacity int // stages at once; 0 means 2
	Engine   engine.Engine
	WorkDir  string // workspaces and the git cache live below it
	Logger   *slog.Logger
	// Heartbeat is how often a running stage reports that it is alive;
	// keep it well below the runner's LeaseTimeout. 0 means 5 s.
	Heartbeat time.Duration
}

// NewLocalBus returns a LocalBus; set its handler before dispatching.
func NewLocalBus(o LocalBusOptions) (*LocalBus, error) {
	if o.Capacity <= 0 {
		o.Capacity = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 5 * time.Second
	}
	cache, err := workspace.NewCache(filepath.Join(o.WorkDir, "git"))
	if err != nil {
		return nil, err
	}
	return &LocalBus{name: o.Name, labels: o.Labels, capacity: o.Capacity, eng: o.Engine, cache: cache,
		workDir: o.WorkDir, log: o.Logger, beat: o.Heartbeat, running: map[string]context.CancelFunc{}}, nil
}

// SetHandler sets the function updates are delivered to.
func (b *LocalBus) SetHandler(h func(context.Context, Update)) {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
}

func jobKey(runID int64, stageID string, attempt int) string {
	return fmt.Sprintf("%d/%s/%d", runID, stageID, attempt)
}

// Dispatch starts j now or when a slot frees up.
func (b *LocalBus) Dispatch(ctx context.Context, j *Job) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.draining {
		return fmt.Errorf("dispatch %s: agent %s is draining", jobKey(j.RunID, j.Stage.ID, j.Attempt), b.name)
	}
	k := jobKey(j.RunID, j.Stage.ID, j.Attempt)
	if _, ok := b.running[k]; ok {
		return nil
	}
	for _, q := range b.queue {
		if jobKey(q.RunID, q.Stage.ID, q.Attempt) == k {
			return nil
		}
	}
	b.queue = append(b.queue, j)
	b.startLocked()
	return nil
}

func (b *LocalBus) startLocked() {
	for len(b.queue) > 0 && len(b.running) < b.capacity && !b.draining {
		j := b.queue[0]
		b.queue = b.queue[1:]
		ctx, cancel := context.WithCancel(context.Background())
		b.running[jobKey(j.RunID, j.Stage.ID, j.Attempt)] = cancel
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.run(ctx, j)
			cancel()
			b.mu.Lock()
			delete(b.running, jobKey(j.RunID, j.Stage.ID, j.Attempt))
			b.startLocked()
			b.mu.Unlock()
		}()
	}
}

// Cancel stops the job, or drops it from the queue.
func (b *LocalBus) Cancel(ctx context.Context, runID int64, stageID string, attempt int) error {
	k := jobKey(runID, stageID, attempt)
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.running[k]; ok {
		c()
	}
	for i, q := range b.queue {
		if jobKey(q.RunID, q.Stage.ID, q.Attempt) == k {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			break
		}
	}
	return nil
}

// Agents reports the one built-in agent.
func (b *LocalBus) Agents() []AgentInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return []AgentInfo{{Name: b.name, Labels: maps.Clone(b.labels), Capacity: b.capacity, Running: len(b.running), LastSeen: time.Now().UTC()}}
}

// Drain stops taking jobs and waits for running ones until ctx ends, then
// cancels them and waits for their teardown.
func (b *LocalBus) Drain(ctx context.Context) {
	b.mu.Lock()
	b.draining = true
	b.queue = nil
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	b.mu.Lock()
	for _, c := range b.running {
		c()
	}
	b.mu.Unlock()
	<-done
}

func (b *LocalBus) emit(ctx context.Context, u Update) {
	b.mu.Lock()
	h := b.handler
	b.mu.Unlock()
	u.Agent = b.name
	if u.Time.IsZero() {
		u.Time = time.Now().UTC()
	}
	if h != nil {
		h(ctx, u)
	}
}

func (b *LocalBus) run(ctx context.Context, j *Job) {
	hctx := context.WithoutCancel(ctx)
	base := Update{RunID: j.RunID, Stage: j.Stage.ID, Attempt: j.Attempt}
	up := func(u Update) {
		u.RunID, u.Stage, u.Attempt = base.RunID, base.Stage, base.Attempt
		b.emit(hctx, u)
	}
	up(Update{Kind: UpdateStageStarted})

	hbDone := make(chan struct{})
	var hbWG sync.WaitGroup
	hbWG.Add(1)
	go func() {
		defer hbWG.Done()
		t := time.NewTicker(b.beat)
		defer t.Stop()
		for {
			select {
			case <-hbDone:
				return
			case <-t.C:
				up(Update{Kind: UpdateHeartbeat})
			}
		}
	}()
	defer func() {
		close(hbDone)
		hbWG.Wait()
	}()

	ws, err := os.MkdirTemp(b.workDir, "ws-")
	if err != nil {
		res := stage.Result{StageID: j.Stage.ID, Status: stage.StatusError, Reason: "create workspace: " + err.Error()}
		up(Update{Kind: UpdateStageFinished, Result: &res})
		return
	}
	defer os.RemoveAll(ws)
	src := filepath.Join(ws, "src")
	if j.Source.URL != "" {
		if err := b.cache.Checkout(ctx, j.Source, src); err != nil {
			b.log.Error("checkout failed", "run", j.RunID, "stage", j.Stage.ID, "err", err)
			res := stage.Result{StageID: j.Stage.ID, Status: stage.StatusError, Reason: "checkout_failed: " + err.Error(),
				Started: time.Now().UTC(), Finished: time.Now().UTC()}
			up(Update{Kind: UpdateStageFinished, Result: &res})
			return
		}
	} else {
		src = ""
	}
	x := &stage.Executor{
		Engine:   b.eng,
		Logger:   b.log,
		Reporter: reporter{up: up},
		Output:   newLogOutput(up),
	}
	res := x.Run(ctx, &engine.Spec{RunID: strconv.FormatInt(j.RunID, 10), Attempt: j.Attempt, Stage: j.Stage, Source: src})
	up(Update{Kind: UpdateStageFinished, Result: &res})
}

// reporter turns executor step events into updates.
type reporter struct{ up func(Update) }

func stepIndex(st *pipeline.Stage, step *pipeline.Step) int {
	for i, s := range st.Steps {
		if s == step {
			return i
		}
	}
	return -1
}

func (r reporter) StepStarted(st *pipeline.Stage, step *pipeline.Step, attempt int) {
	r.up(Update{Kind: UpdateStepStarted, Step: stepIndex(st, step), StepAttempt: attempt})
}

func (r reporter) StepFinished(st *pipeline.Stage, step *pipeline.Step, res stage.StepResult) {
	r.up(Update{Kind: UpdateStepFinished, Step: stepIndex(st, step), StepResult: &res})
}

// newLogOutput returns an OutputFunc that sends output as log updates,
// numbering chunks per step across the step's attempts.
func newLogOutput(up func(Update)) stage.OutputFunc {
	var mu sync.Mutex
	seqs := map[int]*int64{}
	return func(st *pipeline.Stage, step *pipeline.Step, attempt int) io.Writer {
		i := stepIndex(st, step)
		mu.Lock()
		seq, ok := seqs[i]
		if !ok {
			seq = new(int64)
			seqs[i] = seq
		}
		mu.Unlock()
		return &chunkWriter{up: up, step: i, seq: seq}
	}
}

// chunkWriter sends every write as one or more log chunks below the bus
// message size.
type chunkWriter struct {
	up   func(Update)
	step int
	seq  *int64
}

const maxChunk = 256 << 10

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		c := p
		if len(c) > maxChunk {
			c = c[:maxChunk]
		}
		p = p[len(c):]
		w.up(Update{Kind: UpdateLog, Step: w.step, Seq: *w.seq, Data: append([]byte(nil), c...)})
		*w.seq++
	}
	return n, nil
}
