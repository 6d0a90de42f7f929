package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/runner/runnertest"
	"github.com/runnel-ci/runnel/runner/store"
)

func TestRunPendingReason(t *testing.T) {
	st := func(key string, s store.Status, why string) *store.Stage {
		return &store.Stage{Key: key, Status: s, PendingReason: why}
	}
	tests := []struct {
		name   string
		stages []*store.Stage
		want   string
	}{
		{"first waiting stage", []*store.Stage{st("build", store.StatusSuccess, ""), st("test", store.StatusQueued, "no agent connected"),
			st("deploy", store.StatusPending, "waiting for needs: test")}, "test: no agent connected"},
		{"a stage runs", []*store.Stage{st("build", store.StatusRunning, ""), st("test", store.StatusQueued, "all capable agents busy (1 running, capacity 1)")}, ""},
		{"queued without reason", []*store.Stage{st("build", store.StatusQueued, "")}, ""},
		{"approval after success", []*store.Stage{st("build", store.StatusSuccess, ""), st("deploy", store.StatusWaiting, "waiting for approval")},
			"deploy: waiting for approval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RunPendingReason(tt.stages); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPendingReasonStaysTrue: with an agent of capacity 1, the second of
// two parallel stages waits with "all capable agents busy" while the
// first runs (the agent's load arrives after the dispatch, so the reason
// comes from the refresh), and has no reason once it runs.
func TestPendingReasonStaysTrue(t *testing.T) {
	f := newFixtureOpts(t, runnertest.Options{Capacity: 1}, 0)
	gate := filepath.Join(f.dir, "gate")
	step := "      - name: s\n        run: while [ ! -f " + gate + " ]; do sleep 0.05; done\n"
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n" + step + "  b:\n    steps:\n" + step})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	const want = "all capable agents busy (1 running, capacity 1)"
	var queued *store.Stage
	eventually(t, 2*time.Minute, func() bool {
		cur, err := f.store.Run(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		a, b := stageByKey(cur, "a"), stageByKey(cur, "b")
		switch {
		case a.Status == store.StatusRunning && b.Status == store.StatusQueued:
			queued = b
		case b.Status == store.StatusRunning && a.Status == store.StatusQueued:
			queued = a
		default:
			return false
		}
		return queued.PendingReason == want
	})
	t.Logf("stage %s queued with reason %q", queued.Key, queued.PendingReason)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := f.wait(run.ID, 2*time.Minute)
	if done.Status != store.StatusSuccess {
		t.Fatalf("run = %s, want success", done.Status)
	}
	for _, st := range done.Stages {
		if st.PendingReason != "" {
			t.Errorf("stage %s ended with pending reason %q, want none", st.Key, st.PendingReason)
		}
	}
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("condition not met within %s", d)
		}
	}
}
