package stage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// logTransfer is a stage.Transfer that writes a line to the log it is
// given and records its calls in rec's event list.
type logTransfer struct {
	rec       *recorder
	beforeErr error
	afterErr  error
}

func (l *logTransfer) Before(ctx context.Context, s *engine.Spec, out io.Writer) error {
	fmt.Fprintln(out, "restored")
	l.rec.add("before " + s.Stage.ID)
	return l.beforeErr
}

func (l *logTransfer) After(ctx context.Context, s *engine.Spec, status rules.Status, out io.Writer) error {
	fmt.Fprintln(out, "saved")
	l.rec.add(fmt.Sprintf("after %s %s", s.Stage.ID, status))
	return l.afterErr
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// appendOutput is an OutputFunc whose writers for the same step attempt
// share one buffer, as the agent's per-step logs do.
func (r *recorder) appendOutput(st *pipeline.Stage, step *pipeline.Step, attempt int) io.Writer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		r.out = map[string]*strings.Builder{}
	}
	k := fmt.Sprintf("%s/%s#%d", st.ID, step.Name, attempt)
	if r.out[k] == nil {
		r.out[k] = &strings.Builder{}
	}
	return r.out[k]
}

func TestExecutorTransfer(t *testing.T) {
	three := func() []*pipeline.Step {
		return []*pipeline.Step{{Name: "a", Run: "echo a"}, {Name: "b", Run: "echo b; exit $FAIL_B"}, {Name: "c", Run: "echo c"}}
	}
	tests := []struct {
		name       string
		failB      string
		beforeErr  error
		afterErr   error
		wantStatus rules.Status
		wantEvents []string
		wantOut    map[string]string
	}{
		{
			name: "success", failB: "0", wantStatus: rules.Success,
			wantEvents: []string{"start s/a#1", "before s", "finish s/a success", "start s/b#1", "finish s/b success",
				"start s/c#1", "after s success", "finish s/c success"},
			wantOut: map[string]string{"s/a#1": "restored\na\n", "s/b#1": "b\n", "s/c#1": "c\nsaved\n"},
		},
		{
			name: "a failing step gets the saves", failB: "3", wantStatus: rules.Failure,
			wantEvents: []string{"start s/a#1", "before s", "finish s/a success", "start s/b#1", "after s failure",
				"finish s/b failure", "finish s/c skipped"},
			wantOut: map[string]string{"s/a#1": "restored\na\n", "s/b#1": "b\nsaved\n"},
		},
		{
			name: "refused content fails the first step", failB: "0", beforeErr: fmt.Errorf("fetch x: %w", stage.ErrContent),
			wantStatus: rules.Failure,
			wantEvents: []string{"start s/a#1", "before s", "finish s/a failure", "finish s/b skipped", "finish s/c skipped"},
			wantOut:    map[string]string{"s/a#1": "restored\n"},
		},
		{
			name: "a store failure is an error", failB: "0", beforeErr: errors.New("store down"),
			wantStatus: rules.Error,
			wantEvents: []string{"start s/a#1", "before s", "finish s/a error", "finish s/b skipped", "finish s/c skipped"},
			wantOut:    map[string]string{"s/a#1": "restored\n"},
		},
		{
			name: "a failed upload errs a successful stage", failB: "0", afterErr: errors.New("upload refused"),
			wantStatus: rules.Error,
			wantEvents: []string{"start s/a#1", "before s", "finish s/a success", "start s/b#1", "finish s/b success",
				"start s/c#1", "after s success", "finish s/c success"},
			wantOut: map[string]string{"s/a#1": "restored\na\n", "s/b#1": "b\n", "s/c#1": "c\nsaved\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			x := &stage.Executor{Engine: newLocal(t), Reporter: rec, Output: rec.appendOutput,
				Transfer: &logTransfer{rec: rec, beforeErr: tt.beforeErr, afterErr: tt.afterErr}}
			st := &pipeline.Stage{ID: "s", Env: map[string]string{"FAIL_B": tt.failB}, Steps: three()}
			res := x.Run(context.Background(), &engine.Spec{RunID: "r", Stage: st})
			if res.Status != tt.wantStatus {
				t.Errorf("status = %s (%s), want %s", res.Status, res.Reason, tt.wantStatus)
			}
			if got, want := strings.Join(rec.events, "; "), strings.Join(tt.wantEvents, "; "); got != want {
				t.Errorf("events:\ngot  %s\nwant %s", got, want)
			}
			for k, want := range tt.wantOut {
				if b := rec.out[k]; b == nil || b.String() != want {
					t.Errorf("log of %s = %q, want %q", k, b, want)
				}
			}
			if len(rec.out) != len(tt.wantOut) {
				t.Errorf("logs %v, want exactly %v", rec.out, tt.wantOut)
			}
			for _, e := range []error{tt.beforeErr, tt.afterErr} {
				if e != nil && !strings.Contains(res.Reason, e.Error()) {
					t.Errorf("reason %q does not name %q", res.Reason, e)
				}
			}
		})
	}
}
