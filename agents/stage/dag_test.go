package stage_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

func st(id string, needs []string, runOn pipeline.RunOn, script string) *pipeline.Stage {
	return &pipeline.Stage{ID: id, Name: strings.SplitN(id, "[", 2)[0], Needs: needs, RunOn: runOn,
		Steps: []*pipeline.Step{{Name: "main", Run: script}}}
}

func scheduler(t *testing.T, env map[string]string) (*stage.Scheduler, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var order []string
	s := &stage.Scheduler{
		Executor: &stage.Executor{Engine: newLocal(t)},
		Spec: func(p *pipeline.Stage) *engine.Spec {
			for k, v := range env {
				if p.Env == nil {
					p.Env = map[string]string{}
				}
				p.Env[k] = v
			}
			return &engine.Spec{RunID: "run", Attempt: 1, Stage: p}
		},
		StageStarted: func(p *pipeline.Stage) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, "start "+p.ID)
		},
		StageFinished: func(p *pipeline.Stage, r stage.Result) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, "finish "+p.ID+" "+string(r.Status))
		},
	}
	return s, &order
}

func statuses(res stage.RunResult) map[string]rules.Status {
	m := map[string]rules.Status{}
	for _, r := range res.Stages {
		m[r.StageID] = r.Status
	}
	return m
}

func TestSchedulerRunOn(t *testing.T) {
	tests := []struct {
		name    string
		stages  []*pipeline.Stage
		want    map[string]rules.Status
		wantRun rules.Status
		// reasons of skipped stages: the server's words (package rules)
		reasons map[string]string
	}{
		{
			name: "chain succeeds",
			stages: []*pipeline.Stage{
				st("a", nil, "", "true"),
				st("b", []string{"a"}, pipeline.RunOnSuccess, "true"),
				st("cleanup", []string{"b"}, pipeline.RunOnFailure, "true"),
				st("report", []string{"b"}, pipeline.RunOnAlways, "true"),
				// cleanup was skipped without a failure: that counts as
				// fine for what needs it.
				st("after-cleanup", []string{"cleanup"}, "", "true"),
			},
			want:    map[string]rules.Status{"a": "success", "b": "success", "cleanup": "skipped", "report": "success", "after-cleanup": "success"},
			wantRun: rules.Success,
		},
		{
			name: "failure travels down the graph",
			stages: []*pipeline.Stage{
				st("a", nil, "", "exit 1"),
				st("ok", nil, "", "true"),
				st("b", []string{"a", "ok"}, "", "true"),
				st("c", []string{"b"}, "", "true"),
				st("notify", []string{"c"}, pipeline.RunOnFailure, "true"),
				st("always", []string{"c"}, pipeline.RunOnAlways, "true"),
				st("only-ok", []string{"ok"}, pipeline.RunOnFailure, "true"),
			},
			want:    map[string]rules.Status{"a": "failure", "ok": "success", "b": "skipped", "c": "skipped", "notify": "success", "always": "success", "only-ok": "skipped"},
			wantRun: rules.Failure,
			reasons: map[string]string{"b": rules.ReasonNeedsFailed, "c": rules.ReasonNeedsFailed, "only-ok": rules.ReasonNoNeedFailed},
		},
		{
			name: "a failing run_on failure stage fails the run",
			stages: []*pipeline.Stage{
				st("a", nil, "", "exit 1"),
				st("notify", []string{"a"}, pipeline.RunOnFailure, "exit 2"),
			},
			want:    map[string]rules.Status{"a": "failure", "notify": "failure"},
			wantRun: rules.Failure,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := scheduler(t, nil)
			res, err := s.Run(context.Background(), &pipeline.Plan{Stages: tt.stages})
			if err != nil {
				t.Fatal(err)
			}
			got := statuses(res)
			for id, want := range tt.want {
				if got[id] != want {
					t.Errorf("stage %s: got %s, want %s", id, got[id], want)
				}
			}
			if res.Status != tt.wantRun {
				t.Errorf("run: got %s, want %s", res.Status, tt.wantRun)
			}
			for _, r := range res.Stages {
				if want, ok := tt.reasons[r.StageID]; ok && r.Reason != want {
					t.Errorf("stage %s: reason %q, want %q", r.StageID, r.Reason, want)
				}
			}
			if len(res.Stages) != len(tt.stages) {
				t.Errorf("got %d results, want %d", len(res.Stages), len(tt.stages))
			}
		})
	}
}

// TestSchedulerNotLevelByLevel checks that a stage starts when its own
// needs are done, not when its whole "level" is: slow only finishes once
// late (which needs fast, a sibling of slow) has run. A level-by-level
// scheduler would wait for slow before starting late, and slow would fail.
func TestSchedulerNotLevelByLevel(t *testing.T) {
	dir := t.TempDir()
	s, order := scheduler(t, map[string]string{"DIR": dir})
	plan := &pipeline.Plan{Stages: []*pipeline.Stage{
		st("slow", nil, "", `for i in $(seq 200); do [ -f "$DIR/late" ] && exit 0; sleep 0.05; done; exit 1`),
		st("fast", nil, "", "true"),
		st("late", []string{"fast"}, "", `touch "$DIR/late"`),
	}}
	res, err := s.Run(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rules.Status{"slow": "success", "fast": "success", "late": "success"}
	for id, w := range want {
		if got := statuses(res)[id]; got != w {
			t.Errorf("stage %s: got %s, want %s (order %v)", id, got, w, *order)
		}
	}
	// late must have started before slow finished.
	iLate := slices.Index(*order, "start late")
	iSlow := slices.Index(*order, "finish slow success")
	if iLate < 0 || iSlow < 0 || iLate > iSlow {
		t.Errorf("order: got %v, want start late before finish slow", *order)
	}
}

func TestSchedulerMaxParallel(t *testing.T) {
	dir := t.TempDir()
	s, _ := scheduler(t, map[string]string{"DIR": dir})
	s.MaxParallel = 1
	// Each stage fails if another one is running at the same time.
	script := `mkdir "$DIR/lock" || exit 9; sleep 0.2; rmdir "$DIR/lock"`
	plan := &pipeline.Plan{Stages: []*pipeline.Stage{st("a", nil, "", script), st("b", nil, "", script), st("c", nil, "", script)}}
	res, err := s.Run(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != rules.Success {
		t.Errorf("run: got %s, want success (%v)", res.Status, statuses(res))
	}
}

func TestSchedulerCancel(t *testing.T) {
	dir := t.TempDir()
	s, _ := scheduler(t, map[string]string{"DIR": dir})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	plan := &pipeline.Plan{Stages: []*pipeline.Stage{
		st("hang", nil, "", `touch "$DIR/started"; sleep 30`),
		st("next", []string{"hang"}, pipeline.RunOnAlways, "true"),
	}}
	done := make(chan stage.RunResult)
	go func() {
		res, err := s.Run(ctx, plan)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "started")); return err == nil })
	cancel()
	var res stage.RunResult
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after cancel")
	}
	want := map[string]rules.Status{"hang": "canceled", "next": "canceled"}
	for id, w := range want {
		if got := statuses(res)[id]; got != w {
			t.Errorf("stage %s: got %s, want %s", id, got, w)
		}
	}
	// A stage that never started says why as the server does.
	if r := res.Stages[1]; r.Reason != rules.ReasonCanceledByUser {
		t.Errorf("stage next: reason %q, want %q", r.Reason, rules.ReasonCanceledByUser)
	}
	if res.Status != rules.Canceled {
		t.Errorf("run: got %s, want canceled", res.Status)
	}
}

func TestSchedulerBadPlan(t *testing.T) {
	tests := []struct {
		name   string
		stages []*pipeline.Stage
		want   string
	}{
		{"unknown need", []*pipeline.Stage{st("a", []string{"nope"}, "", "true")}, `stage "a" needs unknown stage "nope"`},
		{"cycle", []*pipeline.Stage{st("a", []string{"b"}, "", "true"), st("b", []string{"a"}, "", "true")}, "needs cycle: a -> b -> a"},
		{"duplicate", []*pipeline.Stage{st("a", nil, "", "true"), st("a", nil, "", "true")}, `duplicate stage id "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, order := scheduler(t, nil)
			_, err := s.Run(context.Background(), &pipeline.Plan{Stages: tt.stages})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
			if len(*order) != 0 {
				t.Errorf("stages ran for a bad plan: %v", *order)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	plan := &pipeline.Plan{Stages: []*pipeline.Stage{
		st("lint", nil, "", ""),
		st("test[go=1]", nil, "", ""),
		st("test[go=2]", nil, "", ""),
		st("build", []string{"lint"}, "", ""),
		st("package", []string{"build", "test[go=1]", "test[go=2]"}, "", ""),
		st("docs", nil, "", ""),
	}}
	tests := []struct {
		names []string
		want  []string
		err   string
	}{
		{nil, []string{"lint", "test[go=1]", "test[go=2]", "build", "package", "docs"}, ""},
		{[]string{"build"}, []string{"lint", "build"}, ""},
		{[]string{"package"}, []string{"lint", "test[go=1]", "test[go=2]", "build", "package"}, ""},
		{[]string{"test"}, []string{"test[go=1]", "test[go=2]"}, ""},
		{[]string{"test[go=2]", "docs"}, []string{"test[go=2]", "docs"}, ""},
		{[]string{"nope"}, nil, `select stage "nope": no such stage`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) {
			got, err := stage.Select(plan, tt.names)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range got.Stages {
				ids = append(ids, s.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("got %v, want %v", ids, tt.want)
			}
		})
	}
}
