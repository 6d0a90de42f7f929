package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
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
	// Transfer moves files into the workspace before the first step and
	// out of it after the last; nil means none.
	Transfer Transfer
	// Deployer releases the stage's Deploy as its deploy step (the step
	// with Deploy set); nil makes such a step end in rules.Error.
	Deployer Deployer
	// AllowContainer are the container permissions this executor grants
	// (an agent's --allow-container). A stage whose steps or services ask
	// for any other is refused before anything is set up, whatever the
	// server decided: the job may not have come from it.
	AllowContainer []pipeline.Permission
}

// Deployer runs the release a stage's deploy block describes
// (pipeline.Stage.Deploy), writing its progress to out, the deploy step's
// log. nil means the new version serves all traffic. An error that wraps
// ErrContent (the new version was rolled back or never became healthy)
// fails the step; any other error (a provider that cannot be reached, a
// setting the agent cannot honour) makes it rules.Error.
type Deployer interface {
	Deploy(ctx context.Context, spec *engine.Spec, out io.Writer) error
}

// ErrNoDeployer is the reason of a deploy step on an executor without a
// Deployer.
var ErrNoDeployer = errors.New("this agent cannot deploy: it has no deploy providers")

// Transfer moves a stage's files (artifacts, fetches, caches; see
// agents/transfer) around its steps. One Transfer may serve many stages at
// once; calls for one Spec are made in order, After only when Before ran.
type Transfer interface {
	// Before runs after Setup and before the first step, writing what it
	// does to out, the first step's log (reported started). An error fails
	// the first step and so the stage: rules.Failure when it wraps
	// ErrContent, rules.Error otherwise.
	Before(ctx context.Context, s *engine.Spec, out io.Writer) error
	// After runs when the steps are over (the stage's status so far is
	// status), before Teardown, writing to the log of the last step that
	// ran, whose end is reported after it. An error turns a successful
	// stage into rules.Error.
	After(ctx context.Context, s *engine.Spec, status rules.Status, out io.Writer) error
}

// ErrContent marks a Transfer error caused by the pipeline's content (a
// wrong digest, a path leading out of the workspace) rather than by the
// agent or the store: the stage fails rather than errs.
var ErrContent = errors.New("refused content")

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
	if deployOnly(st) {
		// Nothing runs in the workspace: no transfers around the release.
		cp := *x
		cp.Transfer = nil
		x = &cp
	}
	log := x.logger().With("run", spec.RunID, "stage", st.ID)
	res := Result{StageID: st.ID, Started: x.now(), Steps: make([]StepResult, len(st.Steps))}
	for i, step := range st.Steps {
		res.Steps[i] = StepResult{Name: step.Name, Status: rules.Skipped}
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
			if res.Steps[i].Status == rules.Skipped {
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

// runSteps runs Setup, the transfers and the steps, filling res.Steps,
// and returns the stage status and reason.
func (x *Executor) runSteps(runCtx, stageCtx context.Context, spec *engine.Spec, res *Result) (rules.Status, string) {
	st := spec.Stage
	if refused := pipeline.CheckContainers(st, x.AllowContainer); len(refused) > 0 {
		msgs := make([]string, len(refused))
		for i, r := range refused {
			msgs[i] = r.String()
		}
		return rules.Error, "refused by this agent's container policy: " + strings.Join(msgs, "; ")
	}
	if deployOnly(st) {
		// A stage that only deploys needs no workspace or containers.
	} else if err := x.Engine.Setup(stageCtx, spec); err != nil {
		status, _ := classify(runCtx, stageCtx, nil, st, nil, err)
		return status, fmt.Sprintf("setup: %v", err)
	}
	last := -1 // the last step that ran, while its end is not reported
	status, reason := x.steps(runCtx, stageCtx, spec, res, &last)
	if x.Transfer != nil && last >= 0 {
		status, reason = x.after(runCtx, spec, last, res, status, reason)
	}
	if last >= 0 && x.Reporter != nil {
		x.Reporter.StepFinished(st, st.Steps[last], res.Steps[last])
	}
	return status, reason
}

// steps runs the steps in order. With a Transfer it runs Before first
// and leaves the end of the last step that ran unreported (*last), so
// that After can still write to its log.
func (x *Executor) steps(runCtx, stageCtx context.Context, spec *engine.Spec, res *Result, last *int) (rules.Status, string) {
	st := spec.Stage
	before := x.Transfer != nil && len(st.Steps) > 0
	for i, step := range st.Steps {
		if err := stageCtx.Err(); err != nil {
			// Out of time (or cancelled) between steps: this step and the
			// rest never start and stay skipped.
			status, reason := classify(runCtx, stageCtx, nil, st, step, err)
			return status, fmt.Sprintf("before step %q: %s", step.Name, reason)
		}
		var sr StepResult
		if before {
			before = false
			var ok bool
			if sr, ok = x.before(runCtx, stageCtx, spec, step); !ok {
				res.Steps[i] = sr
				if x.Reporter != nil {
					x.Reporter.StepFinished(st, step, sr)
				}
				return sr.Status, fmt.Sprintf("step %q: %s", step.Name, sr.Reason)
			}
			sr = x.runStep(runCtx, stageCtx, spec, step, true)
		} else {
			sr = x.runStep(runCtx, stageCtx, spec, step, false)
		}
		res.Steps[i] = sr
		goOn := (sr.Status == rules.Success || sr.AllowedFailure) && i < len(st.Steps)-1
		if x.Transfer != nil && !goOn {
			*last = i
		} else if x.Reporter != nil {
			x.Reporter.StepFinished(st, step, sr)
		}
		if sr.Status == rules.Success || sr.AllowedFailure {
			continue
		}
		return sr.Status, fmt.Sprintf("step %q: %s", step.Name, sr.Reason)
	}
	return rules.Success, ""
}

// before reports the first step started and runs Transfer.Before into its
// log. When it fails, the step ends with the transfer's error.
func (x *Executor) before(runCtx, stageCtx context.Context, spec *engine.Spec, step *pipeline.Step) (StepResult, bool) {
	if x.Reporter != nil {
		x.Reporter.StepStarted(spec.Stage, step, 1)
	}
	sr := StepResult{Name: step.Name, Started: x.now(), ExitCode: engine.ExitUnknown}
	out := x.output(spec.Stage, step, 1)
	err := x.Transfer.Before(stageCtx, spec, out)
	if c, ok := out.(io.Closer); ok {
		c.Close() //nolint:errcheck // the transfer's own error is the one to report
	}
	if err == nil {
		return sr, true
	}
	sr.Finished, sr.Attempts = x.now(), 1
	switch {
	case runCtx.Err() != nil || stageCtx.Err() != nil:
		sr.Status, sr.Reason = classify(runCtx, stageCtx, nil, spec.Stage, step, err)
	case errors.Is(err, ErrContent):
		sr.Status, sr.Reason = rules.Failure, err.Error()
	default:
		sr.Status, sr.Reason = rules.Error, err.Error()
	}
	return sr, false
}

// after runs Transfer.After into the log of the last step that ran, on
// the run's context (a stage that timed out still uploads what it must).
func (x *Executor) after(runCtx context.Context, spec *engine.Spec, last int, res *Result, status rules.Status, reason string) (rules.Status, string) {
	step := spec.Stage.Steps[last]
	out := x.output(spec.Stage, step, max(res.Steps[last].Attempts, 1))
	err := x.Transfer.After(runCtx, spec, status, out)
	if c, ok := out.(io.Closer); ok {
		c.Close() //nolint:errcheck // the transfer's own error is the one to report
	}
	if err != nil && status == rules.Success {
		return rules.Error, err.Error()
	}
	if err != nil {
		x.logger().Warn("after steps", "run", spec.RunID, "stage", spec.Stage.ID, "err", err)
	}
	return status, reason
}

func (x *Executor) output(st *pipeline.Stage, step *pipeline.Step, attempt int) io.Writer {
	if x.Output != nil {
		if w := x.Output(st, step, attempt); w != nil {
			return w
		}
	}
	return io.Discard
}

// runStep runs every attempt of one step; started says the first attempt
// was already reported started (by before).
func (x *Executor) runStep(runCtx, stageCtx context.Context, spec *engine.Spec, step *pipeline.Step, started bool) StepResult {
	sr := StepResult{Name: step.Name, Started: x.now()}
	for attempt := 1; ; attempt++ {
		sr.Attempts = attempt
		status, code, reason := x.attempt(runCtx, stageCtx, spec, step, attempt, started && attempt == 1)
		sr.Status, sr.ExitCode, sr.Reason = status, code, reason
		if status != rules.Failure || attempt > step.Retry.Limit || !retryable(step.Retry, code) {
			break
		}
		x.logger().Info("retrying step", "run", spec.RunID, "stage", spec.Stage.ID,
			"step", step.Name, "attempt", attempt+1, "exit_code", code)
	}
	sr.Finished = x.now()
	if sr.Status.Failed() && sr.Status != rules.Canceled && step.AllowFailure {
		// A cancelled step is not "allowed" to fail: the run was stopped.
		sr.AllowedFailure = true
	}
	return sr
}

// attempt runs one attempt of a step and classifies its outcome.
func (x *Executor) attempt(runCtx, stageCtx context.Context, spec *engine.Spec, step *pipeline.Step, n int, started bool) (rules.Status, int, string) {
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

	if x.Reporter != nil && !started {
		x.Reporter.StepStarted(spec.Stage, step, n)
	}
	out := x.output(spec.Stage, step, n)
	var code int
	var err error
	if step.Deploy {
		code, err = x.deploy(stepCtx, spec, out)
	} else {
		code, err = x.Engine.Run(stepCtx, spec, step, out)
	}
	if c, ok := out.(io.Closer); ok {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close step output: %w", cerr)
		}
	}
	if err != nil && errors.Is(err, ErrContent) && stepCtx.Err() == nil {
		return rules.Failure, code, err.Error()
	}
	if errors.Is(err, engine.ErrOutOfMemory) && runCtx.Err() == nil && stageCtx.Err() == nil {
		// The step's own doing, like an exit code: a failure (retried
		// like its exit code), with the reason Docker knows.
		return rules.Failure, code, fmt.Sprintf("out of memory: killed at its memory limit, exit code %d", code)
	}
	if err != nil {
		status, reason := classify(runCtx, stageCtx, stepCtx, spec.Stage, step, err)
		return status, code, reason
	}
	if code != 0 {
		return rules.Failure, code, fmt.Sprintf("exit code %d", code)
	}
	return rules.Success, 0, ""
}

// deployOnly reports whether the stage's only step is its deploy.
func deployOnly(st *pipeline.Stage) bool {
	return len(st.Steps) == 1 && st.Steps[0].Deploy
}

// deploy runs the stage's Deploy; its exit code is 0 on success, 1 when
// the release failed, ExitUnknown otherwise.
func (x *Executor) deploy(ctx context.Context, spec *engine.Spec, out io.Writer) (int, error) {
	switch {
	case x.Deployer == nil:
		return engine.ExitUnknown, ErrNoDeployer
	case spec.Stage.Deploy == nil:
		return engine.ExitUnknown, errors.New("deploy step without a deploy block")
	}
	err := x.Deployer.Deploy(ctx, spec, out)
	switch {
	case err == nil:
		return 0, nil
	case errors.Is(err, ErrContent):
		return 1, err
	}
	return engine.ExitUnknown, err
}

// classify turns an engine error into a status and reason by asking which
// context ended: the run's (cancelled), the stage's (its timeout) or the
// step's (its timeout). Anything else is an engine error.
func classify(runCtx, stageCtx, stepCtx context.Context, st *pipeline.Stage, step *pipeline.Step, err error) (rules.Status, string) {
	switch {
	case runCtx.Err() != nil:
		return rules.Canceled, "canceled"
	case stageCtx.Err() != nil:
		return rules.Timeout, fmt.Sprintf("stage timed out after %s", st.Timeout.D())
	case stepCtx != nil && errors.Is(stepCtx.Err(), context.DeadlineExceeded):
		return rules.Timeout, fmt.Sprintf("timed out after %s", step.Timeout.D())
	case errors.Is(err, context.Canceled):
		return rules.Canceled, "canceled"
	}
	return rules.Error, err.Error()
}

func retryable(r pipeline.Retry, code int) bool {
	if code == 0 {
		return false
	}
	return len(r.ExitCodes) == 0 || slices.Contains(r.ExitCodes, code)
}
