package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/internal/awsfake"
)

const ecsServicePipeline = `version: 1
stages:
  production:
    environment: production
    concurrency: production
    secrets: [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]
    deploy:
      provider: ecs-service
      app: web
      image: registry.example.com/web:${RUNNEL_COMMIT}
      port: 8080
      strategy: {type: canary, percent: 10, interval: %[2]s}
      bake: 1m
      health: {interval: 50ms}
      region: us-east-1
      endpoints: {ecs: "%[1]s"}
      ecs_service: {cluster: prod, service: web}
# %[3]d
`

// TestDeployECSServicePipeline: git pushes whose pipeline releases with
// ECS's own blue/green deployments (provider ecs-service), against the
// protocol fake of ECS (a fake minute lasts 500 ms): a canary that
// succeeds (10 %, then 100 %), one whose lifecycle hook fails after
// production traffic moved (ECS rolls back: the deployment is recorded
// rolled_back, pointing at the first), and one whose run is cancelled
// while the canary takes traffic (Runnel asks ECS to roll back; the
// deployment is rolled_back too).
func TestDeployECSServicePipeline(t *testing.T) {
	fake := awsfake.New(t)
	ecs := awsfake.NewECS(fake)
	ecs.StageTime, ecs.Minute = 50*time.Millisecond, 500*time.Millisecond
	td := `{"family": "web", "containerDefinitions": [{"name": "web", "image": "registry.example.com/web:initial", "portMappings": [{"containerPort": 8080}]}]}`
	if _, err := ecs.AddService("prod", "web", "ECS", td, ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": "app", "forge": "git", "clone_url": bare})
	declareEnvironment(t, srv, "app", "production", []string{"main"})
	srv.setSecret("app", "AWS_ACCESS_KEY_ID", "AKIDECSSERVICE")
	srv.setSecret("app", "AWS_SECRET_ACCESS_KEY", "fake-secret-access-key")
	e := &deployEnv{t: t, srv: srv, work: work}
	image := func(sha string) string { return "registry.example.com/web:" + sha }
	push := func(n int, interval string) string {
		t.Helper()
		sha := commit(t, work, fmt.Sprintf(ecsServicePipeline, fake.URL, interval, n))
		if n == 2 {
			ecs.FailHook(image(sha), "POST_PRODUCTION_TRAFFIC_SHIFT", "smoke test failed")
		}
		e.trigger("app", sha)
		return sha
	}

	v1 := push(1, "1m")
	r1 := srv.waitRun(v1, 5*time.Minute, terminal)
	log1 := e.deployLog(r1)
	d1 := e.deployment(r1.ID)
	if r1.Status != "success" || d1.Result != "success" || d1.Release == nil || d1.Release.Provider != "ecs-service" || d1.Release.Traffic != 100 {
		t.Fatalf("release 1: run %s, deployment %+v (release %+v); want success at 100%%\ndeploy log:\n%s\nserver log:\n%s", r1.Status, d1, d1.Release, log1, srv.log())
	}
	for _, want := range []string{"[shift] 10% on " + v1, "100% of production traffic on " + v1, "[finish]", "succeeded"} {
		if !strings.Contains(log1, want) {
			t.Errorf("release 1 log lacks %q:\n%s", want, log1)
		}
	}
	if got := ecs.ServingImage("prod", "web"); got != image(v1) {
		t.Errorf("after release 1 ECS serves %s, want %s", got, image(v1))
	}

	v2 := push(2, "1m")
	r2 := srv.waitRun(v2, 5*time.Minute, terminal)
	log2 := e.deployLog(r2)
	d2 := e.deployment(r2.ID)
	if r2.Status != "failure" || d2.Result != "rolled_back" || d2.RollsBack != d1.ID || d2.Release == nil || d2.Release.Outcome != "rolled_back" {
		t.Errorf("release 2: run %s, deployment %+v (release %+v); want rolled_back to deployment %d\ndeploy log:\n%s", r2.Status, d2, d2.Release, d1.ID, log2)
	}
	if !strings.Contains(log2, "smoke test failed") || !strings.Contains(log2, "ROLLBACK_SUCCESSFUL") {
		t.Errorf("release 2 log lacks ECS's rollback and its reason:\n%s", log2)
	}
	if got := ecs.ServingImage("prod", "web"); got != image(v1) {
		t.Errorf("after release 2 ECS serves %s, want %s again", got, image(v1))
	}

	v3 := push(3, "60m")
	e.waitTraffic(v3, 10)
	r3 := srv.waitRun(v3, time.Minute, func(run) bool { return true })
	if code, b := srv.api("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", r3.ID)); code != 200 {
		t.Fatalf("cancel run %d: %d %s", r3.ID, code, b)
	}
	r3 = srv.waitRun(v3, 5*time.Minute, terminal)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ecs.WaitServing(ctx, "prod", "web", image(v1)); err != nil {
		t.Errorf("after release 3 was cancelled ECS serves %s, want %s again: %v", ecs.ServingImage("prod", "web"), image(v1), err)
	}
	stops := fake.Calls("StopServiceDeployment")
	if r3.Status != "canceled" || len(stops) != 1 || !strings.Contains(string(stops[0].Body), `"stopType":"ROLLBACK"`) {
		t.Errorf("release 3: run %s, stop calls %+v; want canceled and one ROLLBACK\ndeploy log:\n%s", r3.Status, stops, e.deployLog(r3))
	}
	// The deployment ends when the agent reports the rollback's end:
	// rolled_back, restoring the first release (the second rolled back).
	if d3 := e.deploymentEnded(r3.ID); d3.Result != "rolled_back" || d3.RollsBack != d1.ID || d3.Release == nil || d3.Release.Outcome != "rolled_back" {
		t.Errorf("release 3: deployment %+v (release %+v), want rolled_back restoring %d", d3, d3.Release, d1.ID)
	}

	for _, c := range fake.Calls("") {
		if c.AccessKey != "AKIDECSSERVICE" {
			t.Fatalf("%s signed with %q, want the stage's secret key", c.Op, c.AccessKey)
		}
	}
}

// TestDeployECSServiceAgentKilled: the agent following a service
// deployment is killed (SIGKILL) while the canary takes traffic; the
// stage is re-delivered to another agent, which finds the service
// deployment the first attempt started (by its identity label) and
// follows it to the end: one task definition, one UpdateService, one
// deployment record that succeeds.
func TestDeployECSServiceAgentKilled(t *testing.T) {
	fake := awsfake.New(t)
	ecs := awsfake.NewECS(fake)
	// A minute of the strategy (the canary's interval, the bake) lasts an
	// hour of the fake's clock: the release goes on when the test
	// advances the clock.
	ecs.StageTime, ecs.Minute = 50*time.Millisecond, time.Hour
	td := `{"family": "web", "containerDefinitions": [{"name": "web", "image": "registry.example.com/web:initial"}]}`
	if _, err := ecs.AddService("prod", "web", "ECS", td, ""); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, []string{"ecs-a", "ecs-b"})
	bare, work := repoSetup(t, c.dir)
	c.addRepo("app", bare)
	declareEnvironment(t, c.srv, "app", "production", []string{"main"})
	c.srv.setSecret("app", "AWS_ACCESS_KEY_ID", "AKIDECSSERVICE")
	c.srv.setSecret("app", "AWS_SECRET_ACCESS_KEY", "fake-secret-access-key")
	e := &deployEnv{t: t, srv: c.srv, work: work}
	a := c.startAgent("ecs-a", "", 1)
	c.waitAgents("ecs-a")

	sha := commit(t, work, fmt.Sprintf(ecsServicePipeline, fake.URL, "1m", 1))
	e.trigger("app", sha)
	before := e.waitTraffic(sha, 10)
	a.stop(syscall.SIGKILL)
	c.startAgent("ecs-b", "", 1)
	c.waitAgents("ecs-b")
	r := e.srv.waitRun(sha, 5*time.Minute, func(r run) bool { return len(r.Stages) > 0 && r.Stages[0].Attempt >= 2 && r.Stages[0].Agent == "ecs-b" })
	fake.Advance(2 * time.Hour) // past the canary's and the bake's minute

	r = e.srv.waitRun(sha, 5*time.Minute, terminal)
	log := e.deployLog(r)
	if r.Status != "success" || r.Stages[0].Attempt < 2 {
		t.Fatalf("run after the kill: %s, stage attempt %d on %q; want success on a later attempt\ndeploy log:\n%s\nserver log:\n%s",
			r.Status, r.Stages[0].Attempt, r.Stages[0].Agent, log, e.srv.log())
	}
	if !strings.Contains(log, "following service deployment") {
		t.Errorf("the re-delivered attempt did not follow the first one's service deployment:\n%s", log)
	}
	if u, reg := len(fake.Calls("UpdateService")), len(fake.Calls("RegisterTaskDefinition")); u != 1 || reg != 1 {
		t.Errorf("%d UpdateService and %d RegisterTaskDefinition calls, want one each", u, reg)
	}
	d := e.deployment(r.ID)
	if d.ID != before.ID || d.Result != "success" || d.Release == nil || d.Release.Traffic != 100 {
		t.Errorf("deployment after the kill = %+v (release %+v), want deployment %d ended success at 100%%", d, d.Release, before.ID)
	}
	if got := ecs.ServingImage("prod", "web"); got != "registry.example.com/web:"+sha {
		t.Errorf("ECS serves %s, want the released image", got)
	}
}
