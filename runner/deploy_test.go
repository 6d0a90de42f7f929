package runner

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"

	"github.com/runnel-ci/runnel/runner/store"
)

func TestDeploymentResult(t *testing.T) {
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := func(status store.Status, ran bool) *store.Stage {
		s := &store.Stage{Status: status}
		if ran {
			s.StartedAt = started
		}
		return s
	}
	tests := []struct {
		name   string
		stages []*store.Stage
		want   string
		ok     bool
	}{
		{"one stage ok", []*store.Stage{st(store.StatusSuccess, true)}, store.DeploySuccess, true},
		{"one stage failed", []*store.Stage{st(store.StatusFailure, true)}, store.DeployFailure, true},
		{"errored counts as failed", []*store.Stage{st(store.StatusError, true)}, store.DeployFailure, true},
		{"matrix both ok: one deployment", []*store.Stage{st(store.StatusSuccess, true), st(store.StatusSuccess, true)}, store.DeploySuccess, true},
		{"matrix one failed: failed", []*store.Stage{st(store.StatusSuccess, true), st(store.StatusFailure, true)}, store.DeployFailure, true},
		{"matrix one still running: not yet", []*store.Stage{st(store.StatusFailure, true), st(store.StatusRunning, true)}, "", false},
		{"matrix one queued: not yet", []*store.Stage{st(store.StatusSuccess, true), st(store.StatusQueued, false)}, "", false},
		{"skipped after a failed test: none", []*store.Stage{st(store.StatusSkipped, false)}, "", false},
		{"canceled before start: none", []*store.Stage{st(store.StatusCanceled, false)}, "", false},
		{"canceled while running: none", []*store.Stage{st(store.StatusCanceled, true)}, "", false},
		{"one failed, other canceled: failed", []*store.Stage{st(store.StatusFailure, true), st(store.StatusCanceled, true)}, store.DeployFailure, true},
		{"one ok, other canceled: success", []*store.Stage{st(store.StatusSuccess, true), st(store.StatusCanceled, false)}, store.DeploySuccess, true},
		{"no stages: none", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := deploymentResult(tt.stages)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v, want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestReleaseResult(t *testing.T) {
	tests := []struct{ result, outcome, want string }{
		{store.DeploySuccess, "succeeded", store.DeploySuccess},
		{store.DeployFailure, "rolled_back", store.DeployRolledBack},
		{store.DeployFailure, "failed", store.DeployFailure},
		{store.DeployFailure, "", store.DeployFailure},               // lost before any report of its end
		{store.DeploySuccess, "rolled_back", store.DeployRolledBack}, // another variant's release rolled back
		{store.DeployFailure, "succeeded", store.DeployFailure},      // released, but a later step failed
	}
	for _, tt := range tests {
		if got := releaseResult(tt.result, tt.outcome); got != tt.want {
			t.Errorf("releaseResult(%q, %q) = %q, want %q", tt.result, tt.outcome, got, tt.want)
		}
	}
}

// TestDeploymentRecordedAfterCrash: the server dies after a deploy stage's
// end is stored and before its deployment is recorded; the next server
// records it when it finishes the run.
func TestDeploymentRecordedAfterCrash(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	ctx := context.Background()
	if _, err := f.store.PutEnvironment(ctx, store.Environment{RepoID: f.repo.ID, Name: "production", Branches: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  deploy:\n    environment: production\n    steps:\n      - name: s\n        run: echo\n"})
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	f.update(run, wire.Update{Kind: wire.KindStarted, StageID: "deploy", Attempt: 1, Agent: "a"})
	// What the dying server got done: the stage's end, nothing after it.
	st := stageByKey(run, "deploy")
	if err := f.store.UpdateStage(ctx, st.ID, 1, store.StageUpdate{Status: store.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.DeploymentOfRun(ctx, run.ID, "production"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deployment before the restart: %v, want none", err)
	}
	next, err := New(Config{Store: f.store, Bus: f.bus.Dispatcher, Logs: f.logs, CacheDir: filepath.Join(f.dir, "cache-next")})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(next.Close)
	if run = f.wait(run.ID, time.Minute); run.Status != store.StatusSuccess {
		t.Fatalf("run %s, want success", run.Status)
	}
	d, err := f.store.DeploymentOfRun(ctx, run.ID, "production")
	if err != nil {
		t.Fatalf("no deployment recorded after the restart: %v", err)
	}
	if d.Result != store.DeploySuccess || d.Commit != run.Commit {
		t.Errorf("deployment %+v, want success of %s", d, run.Commit)
	}
}
