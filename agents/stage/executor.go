package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
)

// DefaultTeardownTimeout bounds Teardown when Executor.TeardownTimeout is 0.
const DefaultTeardownTimeout = 2 * time.Minute

// Reporter receives step events while a stage runs. Calls for one stage
// come from one goroutine, in order; an Executor running several stages at
// once calls it concurrently, so implementations must be safe for that.
type Reporter interface {
	// StepStarted is called before every attempt of a step (attempt counts
	// from 1).
	StepStarted(st *pipeline.Stage, step *pipeline.Step, attempt int)
	// StepFinished is called once per step with its final result, including
	// for steps that were skipped.
	StepFinished(st *pipeline.Stage, step *pipeline.Step, res StepResult)
}

// OutputFunc returns the writer that receives one attempt's combined
// output. If the writer is also an io.Closer, it is closed when the attempt
// ends (so a line writer can flush a last unterminated line).
type OutputFunc func(st *pipeline.Stage, step *pipeline.Step, attempt int) io.Writer

// Executor runs stages on an Engine. Its fields are read-only after the
// first Run; one Executor may run many stages concurrently.
type Executor struct {
	Engine engine.Engine
	// Output gives each attempt its log writer; nil discards output.
	Output OutputFunc
	// Reporter receives step events; nil means none.
	Reporter Reporter
	// Logger gets operational records (not build output); nil discards.
	Logger *slog.Logger
	// TeardownTimeout bounds Teardown; 0 means DefaultTeardownTimeout.
	TeardownTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (x *Executor) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

func (x *Executor) logger() *slog.Logger {
	if x.Logger != nil {
		return x.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Run executes the stage described by spec: Setup, each step in order,
// then Teardown, which always runs, on context.WithoutCancel(ctx) with its
// own timeout, so that a cancelled run still leaves nothing behind.
//
// Stage.Timeout bounds Setup and the steps together; a step's own Timeout
// bounds each of its attempts and never extends the stage's. A failed step
// (non-zero exit) is retried up to Retry.Limit more times, only for the
// listed exit codes when Retry.ExitCodes is set; timeouts, engine errors and
// cancellation are not retried. After a step fails (without
// allow_failure), the remaining steps are skipped.
//
// Run never returns an error: every outcome, including engine failures, is
// in the Result.
func (x *Executor) Run(ctx context.Context, spec *engine.Spec) Result {
	st := spec.Stage
	log := x.logger().With("run", spec.RunID, "stage", st.ID)
	res := Result{StageID: st.ID, Started: x.now(), Steps: make([]StepResult, len(st.Steps))}
	for i, step := range st.Steps {
		res.Steps[i] = StepResult{Name: step.Name, Status: StatusSkipped}
	}

	stageCtx, cancel := ctx, context.CancelFunc(func() {})
	if d := st.Timeout.D(); d > 0 {
		stageCtx, cancel = context.WithTimeout(ctx, d)
	}
	defer cancel()

	res.Status, res.Reason = x.runSteps(ctx, stageCtx, spec, &res)

	tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), x.teardownTimeout())
	defer tcancel()
	if err := x.Engine.Teardown(tctx, spec); err != nil {
		log.Error("teardown failed", "err", err)
		res.TeardownError = err.Error()
	}
	res.Finished = x.now()

	if x.Reporter != nil {
		for i, step := range st.Steps {
			if res.Steps[i].Status == StatusSkipped {
				x.Reporter.StepFinished(st, step, res.Steps[i])
			}
		}
	}
	return res
}

func (x *Executor) teardownTimeout() time.Duration {
	if x.TeardownTimeout > 0 {
		return x.TeardownTimeout
	}
	return DefaultTeardownTimeout
}

// runSteps runs Setup and the steps, filling res.Steps, and returns the
// stage status and reason.
func (x *Executor) runSteps(runCtx, stageCtx context.Context, spec *engine.Spec, res *Result) (Status, string) {
	st := spec.Stage
	if err := x.Engine.Setup(stageCtx, spec); err != nil {
		status, _ := classify(runCtx, stageCtx, nil, st, nil, err)
		return status, fmt.Sprintf("setup: %v", err)
	}
	for i, step := range st.Steps {
		if err := stageCtx.Err(); err != nil {
			// Out of time (or cancelled) between steps: this step and the
			// rest never start and stay skipped.
			status, reason := classify(runCtx, stageCtx, nil, st, step, err)
			return status, fmt.Sprintf("before step %q: %s", step.Name, reason)
		}
		sr := x.runStep(runCtx, stageCtx, spec, step)
		res.Steps[i] = sr
		if x.Reporter != nil {
			x.Reporter.StepFinished(st, step, sr)
		}
		if sr.Status == StatusSuccess || sr.AllowedFailure {
			continue
		}
		return sr.Status, fmt.Sprintf("step %q: %s", step.Name, sr.Reason)
	}
	return StatusSuccess, ""
}

// runStep runs every attempt of one step.
func (x *Executor) runStep(runCtx, stageCtx context.Context, spec *engine.Spec, step *pipeline.Step) StepResult {
	sr := StepResult{Name: step.Name, Started: x.now()}
	for attempt := 1; ; attempt++ {
		sr.Attempts = attempt
		status, code, reason := x.attempt(runCtx, stageCtx, spec, step, attempt)
		sr.Status, sr.ExitCode, sr.Reason = status, code, reason
		if status != StatusFailure || attempt > step.Retry.Limit || !retryable(step.Retry, code) {
			break
		}
		x.logger().Info("retrying step", "run", spec.RunID, "stage", spec.Stage.ID,
			"step", step.Name, "attempt", attempt+1, "exit_code", code)
	}
	sr.Finished = x.now()
	if sr.Status.Failed() && sr.Status != StatusCanceled && step.AllowFailure {
		// A cancelled step is not "allowed" to fail: the run was stopped.
		sr.AllowedFailure = true
	}
	return sr
}

// attempt runs one attempt of a step and classifies its outcome.
func (x *Executor) attempt(runCtx, stageCtx context.Context, spec *engine.Spec, step *pipeline.Step, n int) (Status, int, string) {
	if err := stageCtx.Err(); err != nil {
		// Out of time (or cancelled) between two attempts.
		status, reason := classify(runCtx, stageCtx, nil, spec.Stage, step, err)
		return status, engine.ExitUnknown, reason
	}
	stepCtx, cancel := stageCtx, context.CancelFunc(func() {})
	if d := step.Timeout.D(); d > 0 {
		stepCtx, cancel = context.WithTimeout(stageCtx, d)
	}
	defer cancel()

	if x.Reporter != nil {
		x.Reporter.StepStarted(spec.Stage, step, n)
	}
	out := io.Discard
	if x.Output != nil {
		if w := x.Output(spec.Stage, step, n); w != nil {
			out = w
		}
	}
	code, err := x.Engine.Run(stepCtx, spec, step, out)
	if c, ok := out.(io.Closer); ok {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close step output: %w", cerr)
		}
	}
	if err != nil {
		status, reason := classify(runCtx, stageCtx, stepCtx, spec.Stage, step, err)
		return status, code, reason
	}
	if code != 0 {
		return StatusFailure, code, fmt.Sprintf("exit code %d", code)
	}
	return StatusSuccess, 0, ""
}

// classify turns an engine error into a status and reason by asking which
// context ended: the run's (cancelled), the stage's (its timeout) or the
// step's (its timeout). Anything else is an engine error.
func classify(runCtx, stageCtx, stepCtx context.Context, st *pipeline.Stage, step *pipeline.Step, err error) (Status, string) {
	switch {
	case runCtx.Err() != nil:
		return StatusCanceled, "canceled"
	case stageCtx.Err() != nil:
		return StatusTimeout, fmt.Sprintf("stage timed out after %s", st.Timeout.D())
	case stepCtx != nil && errors.Is(stepCtx.Err(), context.DeadlineExceeded):
		return StatusTimeout, fmt.Sprintf("timed out after %s", step.Timeout.D())
	case errors.Is(err, context.Canceled):
		return StatusCanceled, "canceled"
	}
	return StatusError, err.Error()
}

func retryable(r pipeline.Retry, code int) bool {
	if code == 0 {
		return false
	}
	return len(r.ExitCodes) == 0 || slices.Contains(r.ExitCodes, code)
}
