package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/internal/awsfake"
)

const codeDeployPipeline = `version: 1
stages:
  production:
    environment: production
    concurrency: production
    secrets: [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]
    deploy:
      provider: codedeploy
      app: web
      image: registry.example.com/web:${RUNNEL_COMMIT}
      port: 8080
      strategy: {type: canary, percent: 10, interval: 5m}
      health: {interval: 50ms}
      region: us-east-1
      endpoints: {codedeploy: "%[1]s", ecs: "%[1]s"}
      codedeploy: {application: web, deployment_group: prod}
# %[2]d
`

// TestDeployCodeDeployPipeline: git pushes whose pipeline releases an
// image to an ECS service through CodeDeploy (the protocol fake, real SDK
// clients, the stage's secrets as credentials) with the canary config
// CodeDeployDefault.ECSCanary10Percent5Minutes:
//  1. a release succeeds: the log shows 10 % then 100 %; recorded success;
//  2. a lifecycle hook fails after the traffic moved: CodeDeploy rolls
//     back by itself; the run fails and the deployment is rolled_back,
//     restoring the first one;
//  3. the run is cancelled during the canary: the agent stops the
//     deployment (StopDeployment with autoRollbackEnabled) and follows
//     CodeDeploy's rollback to its end; the deployment, in progress
//     until then, is rolled_back, restoring the first one.
func TestDeployCodeDeployPipeline(t *testing.T) {
	fake := awsfake.New(t)
	cdf := awsfake.NewCodeDeploy(fake)
	// A CodeDeploy minute lasts 400 ms: the 5-minute canary holds 2 s, many
	// polls (every 50 ms) even on a busy machine.
	cdf.Step, cdf.Minute = 5*time.Millisecond, 400*time.Millisecond
	td := `{"family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
		"containerDefinitions": [{"name": "web", "image": "registry.example.com/web:v0", "portMappings": [{"containerPort": 8080}]}]}`
	if _, err := awsfake.NewECS(fake).AddService("prod", "web", "CODE_DEPLOY", td, ""); err != nil {
		t.Fatal(err)
	}
	cdf.AddGroup(awsfake.DeploymentGroup{App: "web", Name: "prod", Cluster: "prod", Service: "web", AutoRollback: []string{"DEPLOYMENT_FAILURE"}})

	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": "app", "forge": "git", "clone_url": bare})
	declareEnvironment(t, srv, "app", "production", []string{"main"})
	srv.setSecret("app", "AWS_ACCESS_KEY_ID", "AKIASTAGEEXAMPLE")
	srv.setSecret("app", "AWS_SECRET_ACCESS_KEY", "stage-secret-access-key")
	e := &deployEnv{t: t, srv: srv, work: work}
	push := func(n int) string {
		t.Helper()
		sha := commit(t, work, fmt.Sprintf(codeDeployPipeline, fake.URL, n))
		e.trigger("app", sha)
		return sha
	}

	// 1. Success.
	sha1 := push(1)
	r1 := srv.waitRun(sha1, 5*time.Minute, terminal)
	log1 := e.deployLog(r1)
	if r1.Status != "success" {
		t.Fatalf("release 1: run %s\ndeploy log:\n%s\nserver log:\n%s", r1.Status, log1, srv.log())
	}
	d1 := e.deployment(r1.ID)
	if d1.Result != "success" || d1.Release == nil || d1.Release.Provider != "codedeploy" || d1.Release.Traffic != 100 {
		t.Errorf("release 1: deployment %+v (release %+v), want success by codedeploy at 100%%", d1, d1.Release)
	}
	for _, want := range []string{"[shift] 10% on " + sha1, "[shift] 100% on " + sha1, "[finish]", "CodeDeployDefault.ECSCanary10Percent5Minutes"} {
		if !strings.Contains(log1, want) {
			t.Errorf("release 1 log lacks %q:\n%s", want, log1)
		}
	}
	if calls := fake.Calls("CreateDeployment"); len(calls) != 1 || calls[0].AccessKey != "AKIASTAGEEXAMPLE" {
		t.Errorf("CreateDeployment calls %+v, want one signed with the stage's secret key", calls)
	}

	// 2. A hook fails after the traffic moved: automatic rollback.
	cdf.FailNext("AfterAllowTraffic", "smoke test failed")
	sha2 := push(2)
	r2 := srv.waitRun(sha2, 5*time.Minute, terminal)
	log2 := e.deployLog(r2)
	d2 := e.deployment(r2.ID)
	if r2.Status != "failure" || d2.Result != "rolled_back" || d2.RollsBack != d1.ID || d2.Release == nil || d2.Release.Outcome != "rolled_back" {
		t.Errorf("release 2: run %s, deployment %+v (release %+v), want failure, rolled_back restoring %d\n%s", r2.Status, d2, d2.Release, d1.ID, log2)
	}
	if !strings.Contains(log2, "HOOK_EXECUTION_FAILURE") || !strings.Contains(log2, "CodeDeploy rolls back with deployment") {
		t.Errorf("release 2 log lacks the hook failure and the rollback:\n%s", log2)
	}

	// 3. Cancelled during the canary: stopped and rolled back.
	fake.Do(func() { cdf.Minute = time.Hour })
	sha3 := push(3)
	r3 := srv.waitRun(sha3, 5*time.Minute, func(r run) bool { return r.ID != 0 })
	e.waitTraffic(sha3, 10)
	if code, b := srv.api("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", r3.ID)); code != 200 {
		t.Fatalf("cancel run %d: %d %s", r3.ID, code, b)
	}
	r3 = srv.waitRun(sha3, 5*time.Minute, terminal)
	// The agent stops the deployment and follows CodeDeploy's rollback
	// to its end after the run is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rolledBack := func() bool {
		ds := cdf.DeploymentsLocked()
		stopped, last := ds[len(ds)-2], ds[len(ds)-1]
		return stopped.Status == "Stopped" && stopped.ErrorCode == "MANUAL_STOP" && last.RollbackOf == stopped.ID && last.Status == "Succeeded"
	}
	if err := fake.Wait(ctx, rolledBack); err != nil {
		t.Errorf("after the cancel: deployments %+v, want the last stopped and rolled back: %v", cdf.Deployments(), err)
	}
	var in struct{ AutoRollbackEnabled bool }
	if calls := fake.Calls("StopDeployment"); len(calls) != 1 || json.Unmarshal(calls[0].Body, &in) != nil || !in.AutoRollbackEnabled {
		t.Errorf("StopDeployment calls %+v, want one with autoRollbackEnabled", calls)
	}
	// The deployment ends when the agent reports the rollback's end:
	// rolled_back, restoring the first release (the second rolled back).
	d3 := e.deploymentEnded(r3.ID)
	if r3.Status != "canceled" || d3.Result != "rolled_back" || d3.RollsBack != d1.ID || d3.Release == nil ||
		d3.Release.Outcome != "rolled_back" || d3.Release.Traffic != 0 {
		t.Errorf("release 3: run %s, deployment %+v (release %+v), want canceled, rolled_back restoring %d at 0%%\n%s",
			r3.Status, d3, d3.Release, d1.ID, e.deployLog(r3))
	}
	if n := len(fake.Calls("CreateDeployment")); n != 3 {
		t.Errorf("%d deployments created, want 3 (one per release)", n)
	}
}

// TestDeployCodeDeployAgentKilled: the agent following a CodeDeploy
// release is killed (SIGKILL) in the canary. The deployment goes on in
// CodeDeploy; the stage is re-delivered to another agent, which finds
// the deployment the first attempt created (by the release ID in its
// description) and follows it to its end: one deployment, recorded once.
func TestDeployCodeDeployAgentKilled(t *testing.T) {
	fake := awsfake.New(t)
	cdf := awsfake.NewCodeDeploy(fake)
	cdf.Step, cdf.Minute = 5*time.Millisecond, time.Minute // the canary holds until the test advances the clock
	td := `{"family": "web", "containerDefinitions": [{"name": "web", "image": "registry.example.com/web:v0"}]}`
	if _, err := awsfake.NewECS(fake).AddService("prod", "web", "CODE_DEPLOY", td, ""); err != nil {
		t.Fatal(err)
	}
	cdf.AddGroup(awsfake.DeploymentGroup{App: "web", Name: "prod", Cluster: "prod", Service: "web", AutoRollback: []string{"DEPLOYMENT_FAILURE"}})

	c := newCluster(t, []string{"cd-a", "cd-b"})
	e := &deployEnv{t: t, srv: c.srv}
	bare, work := repoSetup(t, c.dir)
	e.work = work
	c.addRepo("app", bare)
	declareEnvironment(t, c.srv, "app", "production", []string{"main"})
	c.srv.setSecret("app", "AWS_ACCESS_KEY_ID", "AKIASTAGEEXAMPLE")
	c.srv.setSecret("app", "AWS_SECRET_ACCESS_KEY", "stage-secret-access-key")
	a := c.startAgent("cd-a", "", 1)
	c.waitAgents("cd-a")

	sha := commit(t, work, fmt.Sprintf(codeDeployPipeline, fake.URL, 1))
	e.trigger("app", sha)
	before := e.waitTraffic(sha, 10)
	a.stop(syscall.SIGKILL)
	polled := len(fake.Calls("GetDeployment"))
	c.startAgent("cd-b", "", 1)
	c.waitAgents("cd-b")

	// Once the re-delivered stage reads the deployment, end the canary.
	deadline := time.Now().Add(5 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if len(fake.Calls("GetDeployment")) > polled+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agent follows the deployment after the kill\n%s", c.srv.log())
		}
	}
	fake.Advance(time.Hour)

	r := c.srv.waitRun(sha, 5*time.Minute, terminal)
	log := e.deployLog(r)
	if r.Status != "success" || r.Stages[0].Attempt < 2 || r.Stages[0].Agent != "cd-b" {
		t.Fatalf("run after the kill: %s, stage attempt %d on %q; want success, attempt ≥ 2 on cd-b\n%s\n%s", r.Status, r.Stages[0].Attempt, r.Stages[0].Agent, log, c.srv.log())
	}
	if !strings.Contains(log, "created by an earlier attempt") {
		t.Errorf("the re-delivered stage's log does not say it follows the earlier deployment:\n%s", log)
	}
	if n := len(fake.Calls("CreateDeployment")); n != 1 {
		t.Errorf("%d deployments created, want 1", n)
	}
	if d := e.deployment(r.ID); d.ID != before.ID || d.Result != "success" || d.Release.Traffic != 100 {
		t.Errorf("deployment after the kill = %+v (release %+v), want the same deployment %d ended success at 100%%", d, d.Release, before.ID)
	}
}
