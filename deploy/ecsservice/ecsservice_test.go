package ecsservice

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/internal/awsfake"
)

// taskDef is the service's first task definition: version v1 of web.
const taskDef = `{"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
 "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
 "containerDefinitions": [{"name": "web", "image": "web:v1", "essential": true, "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
  "environment": [{"name": "MODE", "value": "prod"}], "dockerLabels": {"runnel.deploy.version": "v1"}}],
 "tags": [{"key": "team", "value": "a"}]}`

// rig is a fake ECS with service web of cluster c, and a client of it.
type rig struct {
	srv *awsfake.Server
	ecs *awsfake.ECS
	api *awsecs.Client
}

// newRig starts the fake. Its lifecycle stages take 5 ms; a strategy's
// minute lasts an hour, so a test moves traffic steps on by advancing
// the fake's clock.
func newRig(t *testing.T, controller string) *rig {
	t.Helper()
	srv := awsfake.New(t)
	f := awsfake.NewECS(srv)
	f.Minute, f.StageTime = time.Hour, 5*time.Millisecond
	if _, err := f.AddService("c", "web", controller, taskDef, ""); err != nil {
		t.Fatal(err)
	}
	return &rig{srv: srv, ecs: f, api: awsecs.NewFromConfig(srv.Config("us-east-1", "AKIDTEST"))}
}

func (r *rig) provider(t *testing.T) *Provider {
	t.Helper()
	p, err := New(Config{ECS: r.api, Cluster: "c", Service: "web", PollInterval: 2 * time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// canary is a release of version v: 10 % for a minute, then all.
func canary(v string) deploy.Release {
	return deploy.Release{App: "web", ID: "run1/deploy", Attempt: 1, Version: v, Image: "web:" + v, Port: 8080, Env: map[string]string{"COLOR": "green"},
		TrafficSteps: []int{10}, Interval: time.Minute}
}

// events records a release's events; on the first one at weight 10 it
// calls at10 (nil: advance the fake past the canary's minute).
type events struct {
	r     *rig
	at10  func()
	lines []string
	seen  map[int]bool
}

func (e *events) add(ev deploy.Event) {
	e.lines = append(e.lines, fmt.Sprintf("[%s] %d%% %s", ev.Phase, ev.Weight, ev.Message))
	if e.seen == nil {
		e.seen = map[int]bool{}
	}
	if ev.Weight == 10 && !e.seen[10] {
		e.seen[10] = true
		if e.at10 != nil {
			e.at10()
		} else {
			e.r.srv.Advance(time.Hour)
		}
	}
	e.seen[ev.Weight] = true
}

// TestDeploySucceeds: a canary release registers a labelled copy of the
// task definition with the new image, updates the service once, reports
// 10 % then 100 %, and ends with the new version serving; the same
// release again changes nothing.
func TestDeploySucceeds(t *testing.T) {
	r := newRig(t, "ECS")
	p := r.provider(t)
	ev := &events{r: r}
	res, err := p.Deploy(context.Background(), canary("v2"), ev.add)
	if err != nil || res.Outcome != deploy.Succeeded || res.From != "v1" || res.To != "v2" {
		t.Fatalf("deploy: %+v, %v\n%s", res, err, strings.Join(ev.lines, "\n"))
	}
	if !ev.seen[10] || !ev.seen[100] || len(res.Steps) != 2 || res.Steps[0].Weight != 10 || res.Steps[1].Weight != 100 || !res.Steps[0].Healthy {
		t.Errorf("steps %+v, weights seen %v, want 10 then 100", res.Steps, ev.seen)
	}
	if got := r.ecs.ServingImage("c", "web"); got != "web:v2" {
		t.Errorf("serving %s, want web:v2", got)
	}
	td, err := r.api.DescribeTaskDefinition(context.Background(), &awsecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	c := td.TaskDefinition.ContainerDefinitions[0]
	if c.DockerLabels[LabelVersion] != "v2" || c.DockerLabels[LabelID] != "run1/deploy" || len(c.Environment) != 2 ||
		aws.ToString(td.TaskDefinition.ExecutionRoleArn) == "" || len(c.PortMappings) != 1 {
		t.Errorf("registered task definition %+v, want the service's with labels and env added", c)
	}
	cfg := r.srv.Calls("UpdateService")
	if len(cfg) != 1 || !strings.Contains(string(cfg[0].Body), `"strategy":"CANARY"`) || !strings.Contains(string(cfg[0].Body), `"canaryPercent":10`) {
		t.Errorf("UpdateService calls %v, want one with the canary strategy", cfg)
	}

	res, err = r.provider(t).Deploy(context.Background(), canary("v2"), nil)
	if err != nil || res.Outcome != deploy.Succeeded || len(r.srv.Calls("UpdateService")) != 1 {
		t.Errorf("again: %+v, %v, %d updates; want succeeded without an update", res, err, len(r.srv.Calls("UpdateService")))
	}
}

// TestHookFailureRollsBack: ECS rolls back a deployment whose lifecycle
// hook fails; after traffic moved it is rolled_back, before it failed.
func TestHookFailureRollsBack(t *testing.T) {
	for _, tt := range []struct {
		name, stage   string
		slow          bool // polls too rarely to see the traffic move
		rollbackFails bool
		want          deploy.Outcome
		serving       string
	}{
		{"after traffic", "POST_PRODUCTION_TRAFFIC_SHIFT", false, false, deploy.RolledBack, "web:v1"},
		{"after traffic, unseen", "POST_PRODUCTION_TRAFFIC_SHIFT", true, false, deploy.RolledBack, "web:v1"},
		{"before traffic", "POST_SCALE_UP", false, false, deploy.Failed, "web:v1"},
		{"rollback failed", "POST_PRODUCTION_TRAFFIC_SHIFT", false, true, deploy.Failed, "web:bad"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, "ECS")
			r.ecs.FailHook("web:bad", tt.stage, "smoke test failed")
			if tt.rollbackFails {
				r.ecs.FailRollback("web:bad")
			}
			ev := &events{r: r}
			rel := canary("bad")
			if tt.slow {
				// All at once (5 ms a stage): rolled back before the first poll.
				rel.TrafficSteps, rel.Health.Interval = nil, 300*time.Millisecond
			}
			res, err := r.provider(t).Deploy(context.Background(), rel, ev.add)
			want := map[deploy.Outcome]error{deploy.RolledBack: deploy.ErrRolledBack, deploy.Failed: deploy.ErrFailed}[tt.want]
			if res.Outcome != tt.want || !errors.Is(err, want) || !strings.Contains(res.Reason, "smoke test failed") {
				t.Fatalf("deploy: %+v, %v; want %s\n%s", res, err, tt.want, strings.Join(ev.lines, "\n"))
			}
			if got := r.ecs.ServingImage("c", "web"); got != tt.serving {
				t.Errorf("serving %s, want %s", got, tt.serving)
			}
			if n := len(r.srv.Calls("StopServiceDeployment")); n != 0 {
				t.Errorf("%d StopServiceDeployment calls, want none (ECS rolls back by itself)", n)
			}
		})
	}
}

// TestCancelStops: a release cancelled while the canary takes traffic
// asks ECS to roll back (StopServiceDeployment ROLLBACK) and waits for it.
func TestCancelStops(t *testing.T) {
	r := newRig(t, "ECS")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := &events{r: r, at10: cancel}
	res, err := r.provider(t).Deploy(ctx, canary("v2"), ev.add)
	if res.Outcome != deploy.RolledBack || !errors.Is(err, deploy.ErrRolledBack) || !errors.Is(err, context.Canceled) {
		t.Fatalf("deploy: %+v, %v; want rolled back, cancelled\n%s", res, err, strings.Join(ev.lines, "\n"))
	}
	stops := r.srv.Calls("StopServiceDeployment")
	if len(stops) != 1 || !strings.Contains(string(stops[0].Body), `"stopType":"ROLLBACK"`) {
		t.Errorf("stop calls %v, want one ROLLBACK", stops)
	}
	if got := r.ecs.ServingImage("c", "web"); got != "web:v1" {
		t.Errorf("serving %s, want web:v1", got)
	}
}

// TestTimeoutStops: a service deployment that runs longer than its
// strategy's times and Health.StartTimeout is stopped with a rollback;
// it never took traffic, so the release failed.
func TestTimeoutStops(t *testing.T) {
	r := newRig(t, "ECS")
	r.ecs.StageTime = time.Hour // every stage takes an hour of the fake's clock
	rel := canary("v2")
	rel.TrafficSteps, rel.Interval, rel.Health.StartTimeout = nil, 0, 30*time.Millisecond
	var lines []string
	res, err := r.provider(t).Deploy(context.Background(), rel, func(ev deploy.Event) {
		lines = append(lines, fmt.Sprintf("[%s] %d%% %s", ev.Phase, ev.Weight, ev.Message))
		if ev.Phase == deploy.PhaseRollback {
			r.srv.Advance(time.Hour) // on through the rollback's stages
		}
	})
	if res.Outcome != deploy.Failed || !errors.Is(err, deploy.ErrFailed) || !strings.Contains(res.Reason, "not finished after 30ms") {
		t.Fatalf("deploy: %+v, %v; want failed by the timeout\n%s", res, err, strings.Join(lines, "\n"))
	}
	if n := len(r.srv.Calls("StopServiceDeployment")); n != 1 {
		t.Errorf("%d StopServiceDeployment calls, want 1", n)
	}
	if got := r.ecs.ServingImage("c", "web"); got != "web:v1" {
		t.Errorf("serving %s, want web:v1", got)
	}
}

// TestStoppedByOperator: someone else stopping the service deployment
// (console, CLI) ends the release rolled_back.
func TestStoppedByOperator(t *testing.T) {
	r := newRig(t, "ECS")
	ev := &events{r: r}
	ev.at10 = func() {
		out, err := r.api.ListServiceDeployments(context.Background(), &awsecs.ListServiceDeploymentsInput{Cluster: aws.String("c"), Service: aws.String("web")})
		if err != nil || len(out.ServiceDeployments) != 1 {
			t.Errorf("list: %v, %v", out, err)
			return
		}
		if _, err := r.api.StopServiceDeployment(context.Background(), &awsecs.StopServiceDeploymentInput{ServiceDeploymentArn: out.ServiceDeployments[0].ServiceDeploymentArn}); err != nil {
			t.Error(err)
		}
	}
	res, err := r.provider(t).Deploy(context.Background(), canary("v2"), ev.add)
	if res.Outcome != deploy.RolledBack || !errors.Is(err, deploy.ErrRolledBack) || !strings.Contains(res.Reason, "StopServiceDeployment") {
		t.Fatalf("deploy: %+v, %v; want rolled back by the stop\n%s", res, err, strings.Join(ev.lines, "\n"))
	}
}

// TestResume: a release whose agent went away (here: cancelled with
// on_failure stop, which leaves ECS going) is found again by the next
// attempt, which follows the same service deployment to its end.
func TestResume(t *testing.T) {
	r := newRig(t, "ECS")
	ctx, cancel := context.WithCancel(context.Background())
	rel := canary("v2")
	rel.StopOnFailure = true
	res, err := r.provider(t).Deploy(ctx, rel, (&events{r: r, at10: cancel}).add)
	if res.Outcome != deploy.Failed || !errors.Is(err, context.Canceled) {
		t.Fatalf("first attempt: %+v, %v; want failed, cancelled", res, err)
	}
	ev := &events{r: r}
	rel = canary("v2")
	rel.Attempt = 2
	res, err = r.provider(t).Deploy(context.Background(), rel, ev.add)
	if err != nil || res.Outcome != deploy.Succeeded || res.From != "v1" {
		t.Fatalf("second attempt: %+v, %v\n%s", res, err, strings.Join(ev.lines, "\n"))
	}
	if n := len(r.srv.Calls("UpdateService")); n != 1 || !strings.Contains(ev.lines[0], "following service deployment") {
		t.Errorf("%d UpdateService calls, first event %q; want one, followed", n, ev.lines[0])
	}
}

// TestLeftoverRolledBack: a deployment of another release still in
// progress is rolled back before the new release starts its own.
func TestLeftoverRolledBack(t *testing.T) {
	r := newRig(t, "ECS")
	ctx, cancel := context.WithCancel(context.Background())
	rel := canary("v2")
	rel.StopOnFailure = true
	if _, err := r.provider(t).Deploy(ctx, rel, (&events{r: r, at10: cancel}).add); !errors.Is(err, context.Canceled) {
		t.Fatalf("first release: %v", err)
	}
	rel = canary("v3")
	rel.ID = "run2/deploy"
	ev := &events{r: r}
	res, err := r.provider(t).Deploy(context.Background(), rel, ev.add)
	if err != nil || res.Outcome != deploy.Succeeded || res.From != "v1" {
		t.Fatalf("second release: %+v, %v\n%s", res, err, strings.Join(ev.lines, "\n"))
	}
	if u, s := len(r.srv.Calls("UpdateService")), len(r.srv.Calls("StopServiceDeployment")); u != 2 || s != 1 {
		t.Errorf("%d updates, %d stops; want 2 and 1", u, s)
	}
}

// TestExternalControllerRefused: a task-set service is for provider ecs.
func TestExternalControllerRefused(t *testing.T) {
	r := newRig(t, "EXTERNAL")
	res, err := r.provider(t).Deploy(context.Background(), canary("v2"), nil)
	if res.Outcome != deploy.Failed || err == nil || !strings.Contains(err.Error(), "EXTERNAL") {
		t.Errorf("deploy: %+v, %v; want failed naming the controller", res, err)
	}
}

// TestStaleAttemptDoesNotStop: the first attempt of a release, cut off
// while a second attempt follows the same service deployment, neither
// stops it when its context ends nor updates the service: the service's
// tags name the later attempt.
func TestStaleAttemptDoesNotStop(t *testing.T) {
	r := newRig(t, "ECS")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	second := make(chan error, 1)
	first := &events{r: r}
	first.at10 = func() {
		rel := canary("v2")
		rel.Attempt = 2
		p2 := r.provider(t)
		go func() {
			_, err := p2.Deploy(context.Background(), rel, (&events{r: r, at10: func() {}}).add)
			second <- err
		}()
		waitCalls(t, r.srv, "TagResource", 2)
		cancel() // the first attempt's lease is lost
	}
	res, err := r.provider(t).Deploy(ctx, canary("v2"), first.add)
	if res.Outcome != deploy.Failed || !errors.Is(err, ErrSuperseded) {
		t.Fatalf("first attempt: %+v, %v; want failed, superseded\n%s", res, err, strings.Join(first.lines, "\n"))
	}
	if n := len(r.srv.Calls("StopServiceDeployment")); n != 0 {
		t.Errorf("%d StopServiceDeployment calls, want none from the stale attempt", n)
	}
	r.srv.Advance(time.Hour)
	if err := <-second; err != nil {
		t.Errorf("second attempt: %v", err)
	}
	if u := len(r.srv.Calls("UpdateService")); u != 1 {
		t.Errorf("%d UpdateService calls, want 1", u)
	}
}

// waitCalls waits until the fake has n calls of op.
func waitCalls(t *testing.T, srv *awsfake.Server, op string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for len(srv.Calls(op)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s calls after 30 s, want %d", len(srv.Calls(op)), op, n)
		}
		<-tick.C
	}
}
