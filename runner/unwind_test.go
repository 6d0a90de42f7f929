package runner

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/runner/store"
)

const unwindPipeline = `version: 1
stages:
  release:
    environment: production
    deploy:
      provider: docker
      app: web
      image: web:1
      port: 8080
      docker: {network: n, proxy: "http://127.0.0.1:9000"}
`

// startRelease triggers a run of unwindPipeline whose release reports
// 10 % on the new version, and cancels the run.
func startRelease(t *testing.T, f *fixture) *store.Run {
	t.Helper()
	ctx := context.Background()
	if _, err := f.store.PutEnvironment(ctx, store.Environment{RepoID: f.repo.ID, Name: "production", Branches: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: f.push(map[string]string{".pipeline.yml": unwindPipeline}), Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	f.update(run, wire.Update{Kind: wire.KindStarted, StageID: "release", Attempt: 1, Agent: "a"})
	f.update(run, wire.Update{Kind: wire.KindDeploy, StageID: "release", Attempt: 1, Agent: "a",
		Deploy: &wire.DeployProgress{Provider: "docker", App: "web", Version: "v2", From: "v1", Phase: "shift", Weight: 10}})
	if err := f.runner.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	return run
}

func (f *fixture) deployment(run *store.Run) *store.Deployment {
	f.t.Helper()
	d, err := f.store.DeploymentOfRun(context.Background(), run.ID, "production")
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// TestCancelledReleaseRollsBack: a deploy stage cancelled during its
// release keeps its deployment in progress (canceling, then the agent's
// rollback) until the agent reports the end, which it records:
// rolled_back.
func TestCancelledReleaseRollsBack(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	run := startRelease(t, f)
	if d := f.deployment(run); d.Result != "" || d.Release.Phase != phaseCanceling || d.Release.Traffic != 10 {
		t.Fatalf("after the cancel: %+v (release %+v), want in progress, canceling at 10%%", d, d.Release)
	}
	if n := f.metric("runnel_deployments_total", map[string]string{"environment": "production"}); n > 0 {
		t.Fatalf("after the cancel: %v deployments counted, want none yet", n)
	}
	progress := func(phase, outcome string) {
		f.update(run, wire.Update{Kind: wire.KindDeploy, StageID: "release", Attempt: 1, Agent: "a",
			Deploy: &wire.DeployProgress{Provider: "docker", App: "web", Version: "v2", Phase: phase, Outcome: outcome}})
	}
	f.update(run, wire.Update{Kind: wire.KindHeartbeat, StageID: "release", Attempt: 1, Agent: "a"})
	progress("rollback", "")
	if d := f.deployment(run); d.Result != "" || d.Release.Phase != "rollback" || d.Release.Traffic != 0 {
		t.Fatalf("rolling back: %+v (release %+v), want in progress, rollback at 0%%", d, d.Release)
	}
	progress("done", "rolled_back")
	if d := f.deployment(run); d.Result != store.DeployRolledBack || d.Release.Outcome != "rolled_back" || d.FinishedAt.IsZero() {
		t.Fatalf("after the rollback: %+v (release %+v), want rolled_back", d, d.Release)
	}
	// The attempt's end changes nothing more.
	f.update(run, wire.Update{Kind: wire.KindFinished, StageID: "release", Attempt: 1, Agent: "a", Status: "canceled"})
	if d := f.deployment(run); d.Result != store.DeployRolledBack {
		t.Fatalf("after the end: %+v, want rolled_back", d)
	}
	// Counted once, as a change failure.
	if n := f.metric("runnel_deployments_total", map[string]string{"environment": "production", "result": "rolled_back"}); n != 1 {
		t.Errorf("rolled_back deployments counted %v, want 1", n)
	}
	if n := f.metric("runnel_deployments_total", map[string]string{"environment": "production", "result": "failure"}); n > 0 {
		t.Errorf("failed deployments counted %v, want none", n)
	}
	if n := f.metric("runnel_change_failures_total", map[string]string{"environment": "production"}); n != 1 {
		t.Errorf("change failures counted %v, want 1", n)
	}
}

// TestCancelledReleaseAgentEnds: the attempt ends without a final
// report: the deployment ends failure at the last reported traffic.
func TestCancelledReleaseAgentEnds(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	run := startRelease(t, f)
	f.update(run, wire.Update{Kind: wire.KindFinished, StageID: "release", Attempt: 1, Agent: "a", Status: "canceled"})
	if d := f.deployment(run); d.Result != store.DeployFailure || d.Release.Traffic != 10 {
		t.Fatalf("after the end: %+v (release %+v), want failure at 10%%", d, d.Release)
	}
}

// TestCancelledReleaseAgentDies: the agent unwinding a cancelled release
// goes silent: a lease period later the deployment ends failure.
func TestCancelledReleaseAgentDies(t *testing.T) {
	f := newFixture(t, false, time.Second)
	f.waitUnwound(startRelease(t, f))
}

// TestCancelledReleaseServerRestarts: the server dies while a cancelled
// release unwinds and its agent with it; the next server ends the
// deployment a lease period after it starts.
func TestCancelledReleaseServerRestarts(t *testing.T) {
	f := newFixture(t, false, time.Hour)
	run := startRelease(t, f)
	next, err := New(Config{Store: f.store, Bus: f.bus.Dispatcher, Logs: f.logs, CacheDir: filepath.Join(f.dir, "cache-next"),
		LeaseTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(next.Close)
	f.waitUnwound(run)
}

// waitUnwound waits until the deployment of run ends, and wants failure.
func (f *fixture) waitUnwound(run *store.Run) {
	t := f.t
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for d := f.deployment(run); d.Result == ""; d = f.deployment(run) {
		if time.Now().After(deadline) {
			t.Fatalf("deployment %+v still in progress a minute after its agent went silent", d)
		}
		<-tick.C
	}
	if d := f.deployment(run); d.Result != store.DeployFailure {
		t.Errorf("deployment %+v, want failure", d)
	}
}
