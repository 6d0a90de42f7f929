package codedeploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cd "github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/codedeploy"
	"github.com/runnel-ci/runnel/internal/awsfake"
)

const taskDef = `{"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
	"containerDefinitions": [{"name": "web", "image": "registry.example.com/web:v0", "portMappings": [{"containerPort": 8080}]}]}`

type world struct {
	s   *awsfake.Server
	cd  *awsfake.CodeDeploy
	ecs *awsfake.ECS
}

func newWorld(t *testing.T, rollback ...string) *world {
	t.Helper()
	s := awsfake.New(t)
	w := &world{s: s, cd: awsfake.NewCodeDeploy(s), ecs: awsfake.NewECS(s)}
	// A step of the canary or linear routings holds for 5 and 2 (fake)
	// minutes: long enough for polls every 2 ms to see it on a busy machine.
	w.cd.Step, w.cd.Minute = 2*time.Millisecond, 200*time.Millisecond
	if _, err := w.ecs.AddService("prod", "web", "CODE_DEPLOY", taskDef, ""); err != nil {
		t.Fatal(err)
	}
	w.cd.AddGroup(awsfake.DeploymentGroup{App: "web", Name: "prod", Cluster: "prod", Service: "web", AutoRollback: rollback})
	return w
}

func (w *world) provider(t *testing.T) *codedeploy.Provider {
	t.Helper()
	cfg := w.s.Config("us-east-1", "AKIDTEST")
	p, err := codedeploy.New(codedeploy.Config{CodeDeploy: cd.NewFromConfig(cfg), ECS: awsecs.NewFromConfig(cfg),
		Application: "web", DeploymentGroup: "prod", PollInterval: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func release(version string, steps ...int) deploy.Release {
	return deploy.Release{App: "web", Version: version, ID: "run-1/production", Image: "registry.example.com/web:" + version, Port: 8080,
		TrafficSteps: steps, Interval: 5 * time.Minute}
}

// log collects a release's progress events.
type log struct {
	mu     sync.Mutex
	events []deploy.Event
}

func (l *log) add(e deploy.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		fmt.Fprintln(&b, e)
	}
	return b.String()
}

func weights(res deploy.Result) []int {
	var out []int
	for _, s := range res.Steps {
		out = append(out, s.Weight)
	}
	return out
}

// TestCanary: a canary release registers the new image, deploys it with
// CodeDeployDefault.ECSCanary10Percent5Minutes and an inline AppSpec,
// reports 10 % then 100 %, and the next release knows what it replaces.
func TestCanary(t *testing.T) {
	w := newWorld(t)
	p := w.provider(t)
	ctx := context.Background()
	var l log
	res, err := p.Deploy(ctx, release("v1", 10), l.add)
	if err != nil || res.Outcome != deploy.Succeeded {
		t.Fatalf("got %s %v, want succeeded\n%s", res.Outcome, err, &l)
	}
	if got := fmt.Sprint(weights(res)); got != "[10 100]" {
		t.Errorf("got steps %s, want [10 100]\n%s", got, &l)
	}
	ds := w.cd.Deployments()
	if len(ds) != 1 || ds[0].Config != "CodeDeployDefault.ECSCanary10Percent5Minutes" || !strings.HasSuffix(ds[0].TaskDefinition, "task-definition/web:2") {
		t.Fatalf("got deployments %+v, want one canary of task definition web:2", ds)
	}
	var spec struct {
		Resources []map[string]struct {
			Properties struct {
				LoadBalancerInfo struct {
					ContainerName string
					ContainerPort int
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(ds[0].AppSpec), &spec); err != nil || spec.Resources[0]["TargetService"].Properties.LoadBalancerInfo.ContainerName != "web" {
		t.Errorf("AppSpec %s (%v), want container web", ds[0].AppSpec, err)
	}
	for _, want := range []string{"[shift] green=10%", "[shift] green=100%", "AfterAllowTraffic Succeeded", "[finish]"} {
		if !strings.Contains(l.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, &l)
		}
	}
	if calls := w.s.Calls("CreateDeployment"); calls[0].AccessKey != "AKIDTEST" {
		t.Errorf("signed with %q, want AKIDTEST", calls[0].AccessKey)
	}

	rel := release("v2")
	rel.ID = "run-2/production"
	res, err = p.Deploy(ctx, rel, nil)
	if err != nil || res.From != "v1" || fmt.Sprint(weights(res)) != "[100]" {
		t.Errorf("second release: got %s from %q steps %v (%v), want succeeded from v1 in one step", res.Outcome, res.From, weights(res), err)
	}
	if ds := w.cd.Deployments(); ds[1].Config != "CodeDeployDefault.ECSAllAtOnce" {
		t.Errorf("second release config %s, want CodeDeployDefault.ECSAllAtOnce", ds[1].Config)
	}
}

// TestCustomConfig: steps no predefined config has get a deployment
// config of Runnel's, created once.
func TestCustomConfig(t *testing.T) {
	w := newWorld(t)
	p := w.provider(t)
	for i, v := range []string{"v1", "v2"} {
		rel := release(v, 25, 50, 75)
		rel.ID, rel.Interval = fmt.Sprintf("run-%d/production", i), 2*time.Minute
		if res, err := p.Deploy(context.Background(), rel, nil); err != nil || fmt.Sprint(weights(res)) != "[25 50 75 100]" {
			t.Fatalf("%s: got %s %v steps %v, want succeeded in [25 50 75 100]", v, res.Outcome, err, weights(res))
		}
	}
	ds := w.cd.Deployments()
	if ds[1].Config != "Runnel.ECSLinear25PercentEvery2Minutes" {
		t.Errorf("got config %s, want Runnel.ECSLinear25PercentEvery2Minutes", ds[1].Config)
	}
	calls := w.s.Calls("CreateDeploymentConfig")
	if len(calls) != 2 || calls[0].Error != "" || calls[1].Error != "DeploymentConfigAlreadyExistsException" {
		t.Errorf("got CreateDeploymentConfig calls %+v, want one created and one already existing", calls)
	}
}

// TestFailureRollsBack: a hook failing after the traffic moved fails the
// deployment; CodeDeploy's automatic rollback makes it rolled_back. A
// failure before any production traffic is a plain failure.
func TestFailureRollsBack(t *testing.T) {
	for _, tt := range []struct {
		event    string
		outcome  deploy.Outcome
		sentinel error
	}{
		{"AfterAllowTraffic", deploy.RolledBack, deploy.ErrRolledBack},
		{"AfterAllowTestTraffic", deploy.Failed, deploy.ErrFailed},
	} {
		t.Run(tt.event, func(t *testing.T) {
			w := newWorld(t)
			w.cd.FailNext(tt.event, "smoke test failed")
			var l log
			res, err := w.provider(t).Deploy(context.Background(), release("v1", 10), l.add)
			if res.Outcome != tt.outcome || !errors.Is(err, tt.sentinel) || !strings.Contains(res.Reason, "HOOK_EXECUTION_FAILURE") {
				t.Fatalf("got %s (%s) %v, want %s with HOOK_EXECUTION_FAILURE\n%s", res.Outcome, res.Reason, err, tt.outcome, &l)
			}
			ds := w.cd.Deployments()
			if len(ds) != 2 || ds[0].Status != "Failed" || ds[1].RollbackOf != ds[0].ID || ds[1].Status != "Succeeded" {
				t.Errorf("got deployments %+v, want the failed one and its succeeded rollback", ds)
			}
			if !strings.Contains(l.String(), "CodeDeploy rolls back with deployment "+ds[1].ID) {
				t.Errorf("progress does not name the rollback:\n%s", &l)
			}
		})
	}
}

// TestStopOnFailure: with on_failure stop the deployment is created
// without automatic rollback and a failure leaves the traffic where it is.
func TestStopOnFailure(t *testing.T) {
	w := newWorld(t, "DEPLOYMENT_FAILURE")
	w.cd.FailNext("AfterAllowTraffic", "smoke test failed")
	rel := release("v1", 10)
	rel.StopOnFailure = true
	res, err := w.provider(t).Deploy(context.Background(), rel, nil)
	if res.Outcome != deploy.Failed || !errors.Is(err, deploy.ErrFailed) || !strings.Contains(res.Reason, "not rolled back") {
		t.Fatalf("got %s (%s) %v, want failed, not rolled back", res.Outcome, res.Reason, err)
	}
	if ds := w.cd.Deployments(); len(ds) != 1 || ds[0].Weight != 100 {
		t.Errorf("got deployments %+v, want one, green still at 100%%", ds)
	}
}

// TestCancelStops: cancelling a release in its canary stops the
// deployment with a rollback: rolled_back, wrapping context.Canceled.
func TestCancelStops(t *testing.T) {
	w := newWorld(t)
	w.cd.Minute = time.Hour // the canary holds until stopped
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var l log
	res, err := w.provider(t).Deploy(ctx, release("v1", 10), func(e deploy.Event) {
		l.add(e)
		if e.Phase == deploy.PhaseShift && e.Weight == 10 {
			cancel()
		}
	})
	if res.Outcome != deploy.RolledBack || !errors.Is(err, context.Canceled) || !errors.Is(err, deploy.ErrRolledBack) {
		t.Fatalf("got %s %v, want rolled_back wrapping context.Canceled\n%s", res.Outcome, err, &l)
	}
	ds := w.cd.Deployments()
	if len(ds) != 2 || ds[0].Status != "Stopped" || ds[0].ErrorCode != "MANUAL_STOP" || ds[1].Status != "Succeeded" || ds[0].Weight != 0 {
		t.Errorf("got deployments %+v, want the stopped one (green 0%%) and its succeeded rollback", ds)
	}
	var in struct{ AutoRollbackEnabled bool }
	if calls := w.s.Calls("StopDeployment"); len(calls) != 1 || json.Unmarshal(calls[0].Body, &in) != nil || !in.AutoRollbackEnabled {
		t.Errorf("got StopDeployment calls %+v, want one with autoRollbackEnabled", calls)
	}
}

// TestResume: a re-delivered stage (same release ID) running while the
// first attempt still follows the deployment follows the same one: one
// deployment, both attempts succeed.
func TestResume(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := w.provider(t).Deploy(ctx, release("v1", 10), nil)
		first <- err
	}()
	if err := w.s.Wait(ctx, func() bool { ds := w.cd.DeploymentsLocked(); return len(ds) == 1 && ds[0].Weight == 10 }); err != nil {
		t.Fatal(err)
	}
	var l log
	res, err := w.provider(t).Deploy(ctx, release("v1", 10), l.add)
	if err != nil || res.Outcome != deploy.Succeeded {
		t.Fatalf("second attempt: got %s %v\n%s", res.Outcome, err, &l)
	}
	if err := <-first; err != nil {
		t.Errorf("first attempt: %v", err)
	}
	if n := len(w.s.Calls("CreateDeployment")); n != 1 || !strings.Contains(l.String(), "created by an earlier attempt") {
		t.Errorf("got %d deployments created, want 1 followed by the second attempt\n%s", n, &l)
	}
	// Once it succeeded, the same release again changes nothing.
	if res, err := w.provider(t).Deploy(ctx, release("v1", 10), nil); err != nil || !slices.Equal(weights(res), []int{100}) && len(res.Steps) != 0 {
		t.Errorf("third attempt: got %s steps %v (%v), want succeeded", res.Outcome, weights(res), err)
	}
	if n := len(w.s.Calls("CreateDeployment")); n != 1 {
		t.Errorf("got %d deployments created, want still 1", n)
	}
}

// TestLeftovers: before a release starts, CodeDeploy's rollback of an
// earlier release still running is waited for (not stopped), and an
// active deployment of an earlier Runnel release is stopped and rolled
// back; one Runnel did not start fails the release untouched.
func TestLeftovers(t *testing.T) {
	w := newWorld(t, "DEPLOYMENT_FAILURE")
	w.cd.Step = time.Hour // nothing moves until the test advances the clock
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := cd.NewFromConfig(w.s.Config("us-east-1", "AK"))
	create := func(desc, config string) {
		t.Helper()
		spec := `{"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {"TaskDefinition": "web:1", "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}}]}`
		if _, err := client.CreateDeployment(ctx, &cd.CreateDeploymentInput{ApplicationName: aws.String("web"), DeploymentGroupName: aws.String("prod"),
			DeploymentConfigName: aws.String(config), Description: aws.String(desc), Revision: &cdtypes.RevisionLocation{RevisionType: cdtypes.RevisionLocationTypeAppSpecContent,
				AppSpecContent: &cdtypes.AppSpecContent{Content: aws.String(spec)}}}); err != nil {
			t.Fatal(err)
		}
	}
	w.cd.FailNext("BeforeInstall", "abandoned")
	create("runnel release v0 id run-0/production", "CodeDeployDefault.ECSAllAtOnce")
	w.s.Advance(2 * time.Hour) // v0 fails; its rollback is created, not yet started
	if _, err := client.ListDeployments(ctx, &cd.ListDeploymentsInput{ApplicationName: aws.String("web"), DeploymentGroupName: aws.String("prod")}); err != nil {
		t.Fatal(err) // a request makes the fake catch up with its clock
	}
	w.s.Do(func() { w.cd.Step = 2 * time.Millisecond })

	done := make(chan error, 1)
	var l log
	go func() {
		_, err := w.provider(t).Deploy(ctx, release("v1"), l.add)
		done <- err
	}()
	// Once the release waits for the rollback, let the rollback run.
	if err := w.s.Wait(ctx, func() bool {
		ds := w.cd.DeploymentsLocked()
		return len(ds) == 2 && strings.Contains(l.String(), "waiting for deployment "+ds[1].ID)
	}); err != nil {
		t.Fatal(err)
	}
	w.s.Advance(time.Hour)
	if err := <-done; err != nil {
		t.Fatalf("release after a running rollback: %v\n%s", err, &l)
	}
	if n := len(w.s.Calls("StopDeployment")); n != 0 {
		t.Errorf("%d StopDeployment calls, want none (the rollback was waited for)", n)
	}

	w.s.Do(func() { w.cd.Minute = time.Hour })
	create("runnel release v2 id run-2/production", "CodeDeployDefault.ECSCanary10Percent5Minutes") // held in its canary
	res, err := w.provider(t).Deploy(ctx, release("v3"), nil)
	ds := w.cd.Deployments()
	if err != nil || ds[3].Status != "Stopped" || ds[4].RollbackOf != ds[3].ID || ds[5].Description != "runnel release v3 id run-1/production" {
		t.Errorf("release after an abandoned one: %s %v, deployments %+v, want the abandoned one stopped and rolled back, then v3", res.Outcome, err, ds[3:])
	}

	create("deployed by hand", "CodeDeployDefault.ECSCanary10Percent5Minutes")
	if res, err := w.provider(t).Deploy(ctx, release("v4"), nil); res.Outcome != deploy.Failed || !strings.Contains(fmt.Sprint(err), "not started by runnel") {
		t.Errorf("release beside a foreign deployment: %s %v, want failed, not touching it", res.Outcome, err)
	}
}
