package agent

import (
	"context"
	"io"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// EchoRunner is a StageRunner for these tests: for every step it
// reports step_started, writes the step's Run text to the step log and
// reports step_finished with success, without running anything. A stage
// whose context ends is reported cancelled.
type EchoRunner struct{}

// RunStage implements StageRunner.
func (EchoRunner) RunStage(ctx context.Context, job *wire.Job, sink EventSink) Result {
	for _, s := range job.Stage.Steps {
		if ctx.Err() != nil {
			return Result{Status: rules.Canceled, Reason: context.Cause(ctx).Error()}
		}
		sink.StepStarted(s.Name)
		w := sink.Log(s.Name)
		_, _ = io.WriteString(w, s.Run)
		_ = w.Close()
		sink.StepFinished(s.Name, rules.Success, 0, 1, "")
	}
	return Result{Status: rules.Success}
}

var _ StageRunner = EchoRunner{}
var _ StageRunner = RunnerFunc(nil)
