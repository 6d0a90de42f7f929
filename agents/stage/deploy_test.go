package stage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

type fakeDeployer struct {
	err   error
	calls int
}

func (d *fakeDeployer) Deploy(_ context.Context, spec *engine.Spec, out io.Writer) error {
	d.calls++
	fmt.Fprintf(out, "releasing %s\n", spec.Stage.Deploy.Image)
	return d.err
}

// setupCounter counts Setup calls of the engine it wraps.
type setupCounter struct {
	engine.Engine
	setups int
}

func (s *setupCounter) Setup(ctx context.Context, spec *engine.Spec) error {
	s.setups++
	return s.Engine.Setup(ctx, spec)
}

// TestExecutorDeployOnly: a stage whose only step is its deploy needs no
// workspace: the engine is not set up (a deploy stage has no image).
func TestExecutorDeployOnly(t *testing.T) {
	eng := &setupCounter{Engine: newLocal(t)}
	d := &fakeDeployer{}
	x := &stage.Executor{Engine: eng, Deployer: d}
	st := &pipeline.Stage{ID: "prod", Name: "prod", Deploy: &pipeline.Deploy{Provider: "docker", Image: "web:1"},
		Steps: []*pipeline.Step{{Name: pipeline.DeployStep, Deploy: true}}}
	res := x.Run(context.Background(), &engine.Spec{RunID: "r1", Attempt: 1, Stage: st})
	if res.Status != rules.Success || d.calls != 1 || eng.setups != 0 {
		t.Errorf("status %s (%s), %d deploys, %d setups; want success, 1, 0", res.Status, res.Reason, d.calls, eng.setups)
	}
}

// TestExecutorDeploy checks how the deploy step's outcome becomes the
// stage's: success, a failed release (failure), a deployer error (error),
// no deployer (error, never a silent success), and no deploy after a
// failed step.
func TestExecutorDeploy(t *testing.T) {
	tests := []struct {
		name      string
		deployer  *fakeDeployer
		firstRun  string
		want      rules.Status
		wantCalls int
	}{
		{"succeeded", &fakeDeployer{}, "true", rules.Success, 1},
		{"rolled back", &fakeDeployer{err: fmt.Errorf("rolled back: %w", stage.ErrContent)}, "true", rules.Failure, 1},
		{"provider unreachable", &fakeDeployer{err: errors.New("dial proxy: refused")}, "true", rules.Error, 1},
		{"no deployer", nil, "true", rules.Error, 0},
		{"step failed first", &fakeDeployer{}, "exit 3", rules.Failure, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			x := &stage.Executor{Engine: newLocal(t), Reporter: rec, Output: rec.output}
			if tt.deployer != nil {
				x.Deployer = tt.deployer
			}
			st := &pipeline.Stage{ID: "prod", Name: "prod", Deploy: &pipeline.Deploy{Provider: "docker", Image: "web:1"},
				Steps: []*pipeline.Step{{Name: "migrate", Run: tt.firstRun}, {Name: pipeline.DeployStep, Deploy: true}}}
			res := x.Run(context.Background(), &engine.Spec{RunID: "r1", Attempt: 1, Stage: st, Source: t.TempDir()})
			if res.Status != tt.want {
				t.Errorf("status = %s (%s), want %s", res.Status, res.Reason, tt.want)
			}
			calls := 0
			if tt.deployer != nil {
				calls = tt.deployer.calls
			}
			if calls != tt.wantCalls {
				t.Errorf("deployer called %d times, want %d", calls, tt.wantCalls)
			}
			if tt.wantCalls == 1 {
				if got := rec.out["prod/deploy#1"].String(); got != "releasing web:1\n" {
					t.Errorf("deploy step log = %q", got)
				}
			}
			if tt.deployer == nil && res.Steps[1].Reason != stage.ErrNoDeployer.Error() {
				t.Errorf("deploy step reason = %q, want %q", res.Steps[1].Reason, stage.ErrNoDeployer)
			}
		})
	}
}
