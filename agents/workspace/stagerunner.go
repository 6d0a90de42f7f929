package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/runnel-ci/runnel/agents/agent"
	"github.com/runnel-ci/runnel/agents/deployer"
	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/logs"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/agents/transfer"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// StageRunner is the agent loop's agent.StageRunner: it checks the job's
// workspace out with a Cache, runs the stage with the stage executor on
// an engine, and reports steps and logs through the agent's sink.
type StageRunner struct {
	Cache   *gitmirror.Cache
	Engine  engine.Engine
	WorkDir string // temporary checkouts are made below it; "" means os.TempDir()
	Logger  *slog.Logger
	// Fetcher keeps the files stages fetch on this agent.
	Fetcher *artifact.Fetcher
	// AllowContainer are the container permissions the agent grants
	// (stage.Executor.AllowContainer).
	AllowContainer []pipeline.Permission
	// Deployer runs deploy steps; nil: they end in error.
	Deployer *deployer.Deployer
	// StepLogMax caps the bytes of one step's log (all its retries) the
	// agent sends; past it the step keeps running and its log ends with
	// a line saying it was truncated. 0 means logs.DefaultStepMax,
	// negative no cap.
	StepLogMax int64
}

var _ agent.StageRunner = (*StageRunner)(nil)

// RunStage implements agent.StageRunner.
func (r *StageRunner) RunStage(ctx context.Context, job *wire.Job, sink agent.EventSink) agent.Result {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("run", job.RunID, "stage", job.StageID, "attempt", job.Attempt)
	var src string
	if job.Workspace.Kind == "git" {
		dir, err := os.MkdirTemp(r.WorkDir, "ws-")
		if err != nil {
			return agent.Result{Status: rules.Error, Reason: "create workspace: " + err.Error()}
		}
		defer os.RemoveAll(dir)
		src = dir + "/src"
		s := gitmirror.Source{URL: job.Workspace.URL, Commit: job.Workspace.Commit, Ref: job.Workspace.Ref}
		if err := r.Cache.Checkout(ctx, s, src); err != nil {
			log.Error("checkout failed", "err", err)
			return agent.Result{Status: rules.Error, Reason: rules.ReasonCheckoutFailed + ": " + err.Error()}
		}
	}
	r.reapEarlierAttempts(ctx, job, log)
	sr := &sinkReporter{sink: sink, logs: map[*pipeline.Step]io.WriteCloser{}, secrets: logs.NewSet(), notes: job.Withheld, max: r.stepLogMax()}
	spec := &engine.Spec{Install: job.Install, RunID: job.RunID, Attempt: job.Attempt, Stage: job.Stage, Source: src}
	for _, sec := range job.Secrets {
		sr.secrets.Add(sec.Value)
		spec.Secrets = append(spec.Secrets, engine.Secret{Env: sec.Env, File: sec.File, Value: sec.Value})
	}
	x := &stage.Executor{Engine: r.Engine, Logger: log, Reporter: sr, Output: sr.output, Transfer: r.transfer(job, log), AllowContainer: r.AllowContainer}
	if r.Deployer != nil {
		x.Deployer = r.Deployer.Job(func(p wire.DeployProgress) { sink.Deploying(pipeline.DeployStep, p) })
	}
	res := x.Run(ctx, spec)
	sr.closeAll()
	out := agent.Result{Status: res.Status, Reason: sr.secrets.Mask(res.Reason)}
	for _, s := range res.Steps {
		if s.Status.Failed() && !s.AllowedFailure {
			out.ExitCode = s.ExitCode
		}
	}
	return out
}

func (r *StageRunner) stepLogMax() int64 {
	if r.StepLogMax == 0 {
		return logs.DefaultStepMax
	}
	return r.StepLogMax
}

// transfer returns the job's stage.Transfer.
func (r *StageRunner) transfer(job *wire.Job, log *slog.Logger) *transfer.Transfer {
	files, _ := r.Engine.(engine.Files)
	t := &transfer.Transfer{Files: files, Fetcher: r.Fetcher, TempDir: r.WorkDir, Logger: log}
	if job.Transfer != nil {
		t.Remote = transfer.NewHTTP(*job.Transfer, nil)
	}
	return t
}

// maxReap bounds how many earlier attempts reapEarlierAttempts looks for.
const maxReap = 20

// reapEarlierAttempts removes what earlier attempts of the job's stage
// left on this engine before the new attempt starts. An attempt above 1
// is a retry or a redelivery after its agent was lost; an agent killed
// with SIGKILL cannot stop its containers, and on a shared Docker host they
// would keep running next to the new attempt. Teardown finds resources by
// label within the job's install, whichever agent of it made them, so this
// stops them and never touches another install's; on another host it
// finds nothing.
func (r *StageRunner) reapEarlierAttempts(ctx context.Context, job *wire.Job, log *slog.Logger) {
	for a := job.Attempt - 1; a >= 1 && a >= job.Attempt-maxReap; a-- {
		if err := r.Engine.Teardown(ctx, &engine.Spec{Install: job.Install, RunID: job.RunID, Attempt: a, Stage: job.Stage}); err != nil {
			log.Warn("remove leftovers of an earlier attempt", "attempt", a, "err", err)
		}
	}
}

// sinkReporter adapts the executor's Reporter and OutputFunc to the sink.
// A step's log writer lives across its retries and is closed (sending
// the end-of-log mark) when the step finishes.
type sinkReporter struct {
	sink agent.EventSink
	mu   sync.Mutex
	logs map[*pipeline.Step]io.WriteCloser
	// secrets are masked in every log of the stage before a byte leaves
	// the agent; steps add to them with ::add-mask:: lines.
	secrets *logs.Set
	// notes are written at the top of the first log (withheld secrets).
	notes []string
	// max caps each step's log after masking (StageRunner.StepLogMax).
	max int64
}

func (s *sinkReporter) StepStarted(st *pipeline.Stage, step *pipeline.Step, attempt int) {
	s.sink.StepStarted(step.Name)
}

func (s *sinkReporter) StepFinished(st *pipeline.Stage, step *pipeline.Step, res stage.StepResult) {
	s.mu.Lock()
	w, ok := s.logs[step]
	delete(s.logs, step)
	s.mu.Unlock()
	if ok {
		_ = w.Close()
	}
	s.sink.StepFinished(step.Name, res.Status, res.ExitCode, res.Attempts, s.secrets.Mask(res.Reason))
}

func (s *sinkReporter) output(st *pipeline.Stage, step *pipeline.Step, attempt int) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.logs[step]
	if !ok {
		sink := s.sink.Log(step.Name)
		chain := []logs.Filter{logs.AddMask(s.secrets), logs.MaskSet(s.secrets)}
		if s.max > 0 {
			chain = append(chain, logs.Limit(s.max))
		}
		w = &maskedLog{WriteCloser: logs.Chain(sink, chain...), sink: sink}
		s.logs[step] = w
		for _, n := range s.notes {
			fmt.Fprintf(w, "[runnel: %s]\n", n)
		}
		s.notes = nil
	}
	return writerOnly{w}
}

// maskedLog is a step's log: the masking chain in front of the sink's
// writer. Close flushes the chain, then ends the log.
type maskedLog struct {
	io.WriteCloser
	sink io.WriteCloser
}

func (m *maskedLog) Close() error {
	return errors.Join(m.WriteCloser.Close(), m.sink.Close())
}

func (s *sinkReporter) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, w := range s.logs {
		_ = w.Close()
		delete(s.logs, k)
	}
}

// writerOnly hides Close so the executor does not end the log between
// retries of a step.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }
