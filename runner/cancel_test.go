package runner

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

// until polls cond every 10 ms until it holds, failing the test after
// two minutes (a guard against hangs, not a timing assertion).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// metric returns the value of the gauge or counter name whose labels
// include want, or -1 when there is none.
func (f *fixture) metric(name string, want map[string]string) float64 {
	f.t.Helper()
	fams, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
	next:
		for _, m := range fam.GetMetric() {
			for k, v := range want {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestCancel (issue 11, item 8): cancelling a running stage
// ends it at once in the metrics (runnel_stages_running back to 0,
// counted in runnel_stages_finished_total as canceled), and the step's
// process really stops; the agent's late report of the end changes
// neither.
func TestCancel(t *testing.T) {
	f := newFixture(t, true, 0)
	pidFile := filepath.Join(f.dir, "step.pid")
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo $$ > " +
		pidFile + "; sleep 120\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	until(t, "the step to run", func() bool {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0 && f.metric("runnel_stages_running", nil) == 1
	})
	if err := f.runner.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	got, err := f.store.Run(ctx, run.ID)
	if err != nil || got.Status != store.StatusCanceled || got.Reason != rules.ReasonCanceledByUser ||
		stageByKey(got, "a").Status != store.StatusCanceled {
		t.Fatalf("after Cancel: run %+v, %v; want it and its stage canceled by the user", got, err)
	}
	check := func(when string) {
		t.Helper()
		if n := f.metric("runnel_stages_running", nil); n != 0 {
			t.Errorf("%s: runnel_stages_running = %v, want 0", when, n)
		}
		if n := f.metric("runnel_stages_finished_total", map[string]string{"repo": f.repo.Name, "result": "canceled"}); n != 1 {
			t.Errorf("%s: runnel_stages_finished_total{result=canceled} = %v, want 1", when, n)
		}
	}
	check("right after Cancel")
	until(t, "the step's process to stop", func() bool { return syscall.Kill(pid, 0) != nil })
	until(t, "the agent to be idle", func() bool {
		a := f.runner.Agents()
		return len(a) == 1 && a[0].Running == 0
	})
	check("after the agent stopped the step")
}
