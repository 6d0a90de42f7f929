package stage_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

func newLocal(t *testing.T) *local.Engine {
	t.Helper()
	return local.New(local.Options{Root: t.TempDir(), StopGrace: 200 * time.Millisecond})
}

func dur(d time.Duration) pipeline.Duration { return pipeline.Duration(d) }

// recorder is a Reporter and OutputFunc that keeps everything it is given.
type recorder struct {
	mu     sync.Mutex
	events []string
	out    map[string]*strings.Builder // "stage/step#attempt" -> output
	closed int
	onStep func(step *pipeline.Step, attempt int)
}

func (r *recorder) StepStarted(st *pipeline.Stage, step *pipeline.Step, attempt int) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf("start %s/%s#%d", st.ID, step.Name, attempt))
	f := r.onStep
	r.mu.Unlock()
	if f != nil {
		f(step, attempt)
	}
}

func (r *recorder) StepFinished(st *pipeline.Stage, step *pipeline.Step, res stage.StepResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("finish %s/%s %s", st.ID, step.Name, res.Status))
}

type closeRecorder struct {
	*strings.Builder
	r *recorder
}

func (c closeRecorder) Close() error {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.r.closed++
	return nil
}

func (r *recorder) output(st *pipeline.Stage, step *pipeline.Step, attempt int) io.Writer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		r.out = map[string]*strings.Builder{}
	}
	b := &strings.Builder{}
	r.out[fmt.Sprintf("%s/%s#%d", st.ID, step.Name, attempt)] = b
	return closeRecorder{b, r}
}

type wantStep struct {
	status   rules.Status
	allowed  bool
	exit     int
	attempts int
}

func TestExecutorLocal(t *testing.T) {
	tests := []struct {
		name       string
		stage      *pipeline.Stage
		wantStatus rules.Status
		wantReason string // substring
		want       []wantStep
	}{
		{
			name: "all succeed",
			stage: &pipeline.Stage{ID: "s", Env: map[string]string{"A": "stage", "B": "stage"}, Steps: []*pipeline.Step{
				{Name: "one", Run: `[ "$A" = stage ]`},
				{Name: "two", Run: `[ "$A" = step ] && [ "$B" = stage ]`, Env: map[string]string{"A": "step"}},
			}},
			wantStatus: rules.Success,
			want:       []wantStep{{rules.Success, false, 0, 1}, {rules.Success, false, 0, 1}},
		},
		{
			name: "failure skips the rest",
			stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
				{Name: "ok", Run: "true"},
				{Name: "bad", Run: "exit 7"},
				{Name: "after", Run: "true"},
			}},
			wantStatus: rules.Failure,
			wantReason: `step "bad": exit code 7`,
			want:       []wantStep{{rules.Success, false, 0, 1}, {rules.Failure, false, 7, 1}, {rules.Skipped, false, 0, 0}},
		},
		{
			name: "allowed failure does not fail the stage",
			stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
				{Name: "bad", Run: "exit 3", AllowFailure: true},
				{Name: "after", Run: "true"},
			}},
			wantStatus: rules.Success,
			want:       []wantStep{{rules.Failure, true, 3, 1}, {rules.Success, false, 0, 1}},
		},
		{
			name: "retry until success",
			stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
				{Name: "flaky", Retry: pipeline.Retry{Limit: 3}, Run: `n=$(cat .n 2>/dev/null || echo 0); n=$((n+1)); echo $n > .n; [ $n -ge 3 ]`},
			}},
			wantStatus: rules.Success,
			want:       []wantStep{{rules.Success, false, 0, 3}},
		},
		{
			name: "retry exhausted",
			stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
				{Name: "bad", Retry: pipeline.Retry{Limit: 2}, Run: "exit 1"},
			}},
			wantStatus: rules.Failure,
			want:       []wantStep{{rules.Failure, false, 1, 3}},
		},
		{
			name: "retry only listed exit codes",
			stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
				{Name: "bad", Retry: pipeline.Retry{Limit: 2, ExitCodes: []int{3}}, Run: "exit 4"},
			}},
			wantStatus: rules.Failure,
			want:       []wantStep{{rules.Failure, false, 4, 1}},
		},
		{
			name: "retry listed exit code",
			stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
				{Name: "bad", Retry: pipeline.Retry{Limit: 2, ExitCodes: []int{3}}, Run: "exit 3"},
			}},
			wantStatus: rules.Failure,
			want:       []wantStep{{rules.Failure, false, 3, 3}},
		},
		{
			name: "step timeout is not retried and skips the rest",
			stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
				{Name: "hang", Timeout: dur(300 * time.Millisecond), Retry: pipeline.Retry{Limit: 2}, Run: "sleep 30"},
				{Name: "after", Run: "true"},
			}},
			wantStatus: rules.Timeout,
			wantReason: "timed out after 300ms",
			want:       []wantStep{{rules.Timeout, false, engine.ExitUnknown, 1}, {rules.Skipped, false, 0, 0}},
		},
		{
			name: "allowed timeout",
			stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
				{Name: "hang", Timeout: dur(300 * time.Millisecond), AllowFailure: true, Run: "sleep 30"},
				{Name: "after", Run: "true"},
			}},
			wantStatus: rules.Success,
			want:       []wantStep{{rules.Timeout, true, engine.ExitUnknown, 1}, {rules.Success, false, 0, 1}},
		},
		{
			name: "stage timeout bounds the steps",
			stage: &pipeline.Stage{ID: "s", Timeout: dur(500 * time.Millisecond), Steps: []*pipeline.Step{
				{Name: "hang", Timeout: dur(time.Minute), Run: "sleep 30"},
				{Name: "after", Run: "true"},
			}},
			wantStatus: rules.Timeout,
			wantReason: "stage timed out after 500ms",
			want:       []wantStep{{rules.Timeout, false, engine.ExitUnknown, 1}, {rules.Skipped, false, 0, 0}},
		},
		{
			name: "setup error skips every step",
			stage: &pipeline.Stage{ID: "s", Services: []pipeline.Service{{Name: "db", Image: "x"}}, Steps: []*pipeline.Step{
				{Name: "one", Run: "true"},
			}},
			wantStatus: rules.Error,
			wantReason: "setup: ",
			want:       []wantStep{{rules.Skipped, false, 0, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := newLocal(t)
			rec := &recorder{}
			x := &stage.Executor{Engine: eng, Reporter: rec, Output: rec.output}
			spec := &engine.Spec{RunID: "r1", Attempt: 1, Stage: tt.stage}
			res := x.Run(context.Background(), spec)

			if res.Status != tt.wantStatus {
				t.Errorf("stage status: got %s, want %s (reason %q)", res.Status, tt.wantStatus, res.Reason)
			}
			if !strings.Contains(res.Reason, tt.wantReason) {
				t.Errorf("stage reason: got %q, want it to contain %q", res.Reason, tt.wantReason)
			}
			if len(res.Steps) != len(tt.want) {
				t.Fatalf("got %d step results, want %d", len(res.Steps), len(tt.want))
			}
			for i, w := range tt.want {
				got := res.Steps[i]
				g := wantStep{got.Status, got.AllowedFailure, got.ExitCode, got.Attempts}
				if g != w {
					t.Errorf("step %s: got %+v, want %+v (reason %q)", got.Name, g, w, got.Reason)
				}
				if got.Status != rules.Skipped && (got.Started.IsZero() || got.Finished.Before(got.Started)) {
					t.Errorf("step %s: bad times %v..%v", got.Name, got.Started, got.Finished)
				}
			}
			if _, err := os.Stat(eng.Workspace(spec)); !os.IsNotExist(err) {
				t.Errorf("workspace after Run: got stat error %v, want not-exist (Teardown must run)", err)
			}
			// Every step is reported finished exactly once.
			finished := 0
			for _, e := range rec.events {
				if strings.HasPrefix(e, "finish ") {
					finished++
				}
			}
			if finished != len(tt.stage.Steps) {
				t.Errorf("StepFinished calls: got %d, want %d (%v)", finished, len(tt.stage.Steps), rec.events)
			}
			attempts := 0
			for _, s := range res.Steps {
				attempts += s.Attempts
			}
			if rec.closed != attempts {
				t.Errorf("output writers closed: got %d, want %d (one per attempt)", rec.closed, attempts)
			}
		})
	}
}

func TestExecutorOutputAndEvents(t *testing.T) {
	rec := &recorder{}
	x := &stage.Executor{Engine: newLocal(t), Reporter: rec, Output: rec.output}
	st := &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{
		{Name: "flaky", Retry: pipeline.Retry{Limit: 1}, Run: `if [ -f .seen ]; then echo second; else touch .seen; echo first; exit 1; fi`},
		{Name: "bad", Run: "echo oops >&2; exit 2"},
		{Name: "never", Run: "true"},
	}}
	x.Run(context.Background(), &engine.Spec{RunID: "r", Stage: st})

	wantEvents := []string{
		"start s/flaky#1", "start s/flaky#2", "finish s/flaky success",
		"start s/bad#1", "finish s/bad failure",
		"finish s/never skipped",
	}
	if got := strings.Join(rec.events, "; "); got != strings.Join(wantEvents, "; ") {
		t.Errorf("events:\ngot  %s\nwant %s", got, strings.Join(wantEvents, "; "))
	}
	wantOut := map[string]string{"s/flaky#1": "first\n", "s/flaky#2": "second\n", "s/bad#1": "oops\n"}
	for k, want := range wantOut {
		b := rec.out[k]
		if b == nil || b.String() != want {
			t.Errorf("output of %s: got %q, want %q", k, b, want)
		}
	}
	if len(rec.out) != len(wantOut) {
		t.Errorf("got output writers for %d attempts, want %d", len(rec.out), len(wantOut))
	}
}

func TestExecutorCancel(t *testing.T) {
	eng := newLocal(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	marker := filepath.Join(t.TempDir(), "started")
	rec := &recorder{}
	x := &stage.Executor{Engine: eng, Reporter: rec}
	st := &pipeline.Stage{ID: "s", Env: map[string]string{"MARKER": marker}, Steps: []*pipeline.Step{
		{Name: "hang", AllowFailure: true, Retry: pipeline.Retry{Limit: 3}, Run: `touch "$MARKER"; sleep 30`},
		{Name: "after", Run: "true"},
	}}
	spec := &engine.Spec{RunID: "r", Stage: st}
	done := make(chan stage.Result)
	go func() { done <- x.Run(ctx, spec) }()
	waitFor(t, func() bool { _, err := os.Stat(marker); return err == nil })
	cancel()
	var res stage.Result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after cancel")
	}
	if res.Status != rules.Canceled {
		t.Errorf("stage status: got %s, want canceled", res.Status)
	}
	got := res.Steps[0]
	if got.Status != rules.Canceled || got.AllowedFailure || got.Attempts != 1 {
		t.Errorf("step hang: got %s allowed=%v attempts=%d, want canceled allowed=false attempts=1", got.Status, got.AllowedFailure, got.Attempts)
	}
	if res.Steps[1].Status != rules.Skipped {
		t.Errorf("step after: got %s, want skipped", res.Steps[1].Status)
	}
	if _, err := os.Stat(eng.Workspace(spec)); !os.IsNotExist(err) {
		t.Errorf("workspace after cancel: got %v, want removed", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("condition not met within 10s")
		}
	}
}

// failingTeardown is the local engine with a Teardown that fails after
// doing its work: a real engine cannot be made to fail teardown on demand.
type failingTeardown struct{ *local.Engine }

func (f failingTeardown) Teardown(ctx context.Context, s *engine.Spec) error {
	if err := f.Engine.Teardown(ctx, s); err != nil {
		return err
	}
	return fmt.Errorf("teardown stage %s: volume busy", s.Stage.ID)
}

func TestExecutorTeardownErrorKeepsStatus(t *testing.T) {
	x := &stage.Executor{Engine: failingTeardown{newLocal(t)}}
	res := x.Run(context.Background(), &engine.Spec{RunID: "r", Stage: &pipeline.Stage{ID: "s", Steps: []*pipeline.Step{{Name: "a", Run: "true"}}}})
	if res.Status != rules.Success {
		t.Errorf("status: got %s, want success", res.Status)
	}
	if want := "teardown stage s: volume busy"; res.TeardownError != want {
		t.Errorf("teardown error: got %q, want %q", res.TeardownError, want)
	}
}

// TestExecutorStageTimeoutBetweenSteps: when the stage's time runs out
// during a step that ignores its context only briefly, the next steps are
// skipped, not started.
func TestExecutorStageTimeoutBetweenSteps(t *testing.T) {
	x := &stage.Executor{Engine: newLocal(t)}
	st := &pipeline.Stage{ID: "s", Timeout: dur(400 * time.Millisecond), Steps: []*pipeline.Step{
		{Name: "a", Run: "sleep 1", AllowFailure: true},
		{Name: "b", Run: "true"},
	}}
	res := x.Run(context.Background(), &engine.Spec{RunID: "r", Stage: st})
	if res.Status != rules.Timeout {
		t.Errorf("status: got %s, want timeout (%s)", res.Status, res.Reason)
	}
	if got := res.Steps[0]; got.Status != rules.Timeout || !got.AllowedFailure {
		t.Errorf("step a: got %s allowed=%v, want timeout allowed", got.Status, got.AllowedFailure)
	}
	if got := res.Steps[1]; got.Status != rules.Skipped || got.Attempts != 0 {
		t.Errorf("step b: got %s attempts=%d, want skipped attempts=0", got.Status, got.Attempts)
	}
}

// TestExecutorContainerPolicy: a stage asking for a container permission
// the executor does not grant is refused before Setup, so none of its
// steps runs; granted, it runs.
func TestExecutorContainerPolicy(t *testing.T) {
	st := &pipeline.Stage{ID: "build", Name: "build", Timeout: dur(time.Minute),
		Container: &pipeline.Container{Volumes: []string{"/var/run/docker.sock:/var/run/docker.sock"}},
		Steps:     []*pipeline.Step{{Name: "a", Run: "echo ran"}, {Name: "b", Run: "true", Container: &pipeline.Container{Privileged: true}}}}
	tests := []struct {
		name    string
		allowed []pipeline.Permission
		status  rules.Status
		reason  string
	}{
		{"nothing granted", nil, rules.Error,
			`refused by this agent's container policy: step a: volume "/var/run/docker.sock:/var/run/docker.sock" needs the container permission docker-socket; ` +
				`step b: privileged: true needs the container permission privileged; step b: volume "/var/run/docker.sock:/var/run/docker.sock" needs the container permission docker-socket`},
		{"socket only", []pipeline.Permission{pipeline.PermDockerSocket}, rules.Error,
			"refused by this agent's container policy: step b: privileged: true needs the container permission privileged"},
		{"both", []pipeline.Permission{pipeline.PermDockerSocket, pipeline.PermPrivileged}, rules.Success, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			x := &stage.Executor{Engine: newLocal(t), Output: rec.output, Reporter: rec, AllowContainer: tt.allowed}
			res := x.Run(t.Context(), &engine.Spec{RunID: "1", Attempt: 1, Stage: st})
			if res.Status != tt.status || res.Reason != tt.reason {
				t.Fatalf("got %s %q, want %s %q", res.Status, res.Reason, tt.status, tt.reason)
			}
			if tt.status != rules.Success {
				for _, s := range res.Steps {
					if s.Status != rules.Skipped {
						t.Errorf("step %s: %s, want skipped (nothing may run)", s.Name, s.Status)
					}
				}
				if len(rec.out) != 0 {
					t.Errorf("output of a refused stage: %v", rec.out)
				}
			}
		})
	}
}
