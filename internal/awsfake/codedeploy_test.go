package awsfake

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cd "github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
)

const testAppSpec = `{"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
	"TaskDefinition": "arn:aws:ecs:us-east-1:000000000000:task-definition/web:2",
	"LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}}]}`

func newCodeDeploy(t *testing.T, rollback ...string) (*Server, *CodeDeploy, *cd.Client) {
	t.Helper()
	s := New(t)
	c := NewCodeDeploy(s)
	// Long steps: only Advance moves a deployment, however slow the
	// machine (real time adds microseconds).
	s.Do(func() { c.Step, c.Minute = time.Minute, time.Hour })
	c.AddGroup(DeploymentGroup{App: "web", Name: "prod", Cluster: "prod", Service: "web", AutoRollback: rollback})
	return s, c, cd.NewFromConfig(s.Config("us-east-1", "AK"))
}

func create(t *testing.T, client *cd.Client, config string) string {
	t.Helper()
	out, err := client.CreateDeployment(context.Background(), &cd.CreateDeploymentInput{
		ApplicationName: aws.String("web"), DeploymentGroupName: aws.String("prod"), DeploymentConfigName: aws.String(config),
		Revision: &cdtypes.RevisionLocation{RevisionType: cdtypes.RevisionLocationTypeAppSpecContent,
			AppSpecContent: &cdtypes.AppSpecContent{Content: aws.String(testAppSpec)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.DeploymentId)
}

func info(t *testing.T, client *cd.Client, id string) *cdtypes.DeploymentInfo {
	t.Helper()
	out, err := client.GetDeployment(context.Background(), &cd.GetDeploymentInput{DeploymentId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return out.DeploymentInfo
}

// green returns green's traffic weight and the running lifecycle event.
func green(t *testing.T, client *cd.Client, id string) (float64, string) {
	t.Helper()
	out, err := client.GetDeploymentTarget(context.Background(), &cd.GetDeploymentTargetInput{DeploymentId: aws.String(id), TargetId: aws.String("prod:web")})
	if err != nil {
		t.Fatal(err)
	}
	var w float64
	for _, ts := range out.DeploymentTarget.EcsTarget.TaskSetsInfo {
		if ts.TaskSetLabel == cdtypes.TargetLabelGreen {
			w = ts.TrafficWeight
		}
	}
	running := ""
	for _, e := range out.DeploymentTarget.EcsTarget.LifecycleEvents {
		if e.Status == cdtypes.LifecycleEventStatusInProgress {
			running = aws.ToString(e.LifecycleEventName)
		}
	}
	return w, running
}

// TestCodeDeployCanary: a canary deployment walks the ECS lifecycle, holds
// 10 % for five (fake) minutes, then 100 %, and succeeds; a second one
// is refused while it is active.
func TestCodeDeployCanary(t *testing.T) {
	s, c, client := newCodeDeploy(t)
	id := create(t, client, "CodeDeployDefault.ECSCanary10Percent5Minutes")
	if got := info(t, client, id).Status; got != cdtypes.DeploymentStatusCreated {
		t.Errorf("got %s, want Created", got)
	}
	_, err := client.CreateDeployment(context.Background(), &cd.CreateDeploymentInput{ApplicationName: aws.String("web"), DeploymentGroupName: aws.String("prod"),
		Revision: &cdtypes.RevisionLocation{RevisionType: cdtypes.RevisionLocationTypeAppSpecContent, AppSpecContent: &cdtypes.AppSpecContent{Content: aws.String(testAppSpec)}}})
	var limit *cdtypes.DeploymentLimitExceededException
	if !errors.As(err, &limit) {
		t.Errorf("second deployment: got %v, want DeploymentLimitExceededException", err)
	}
	s.Advance(c.Step)
	if w, ev := green(t, client, id); w != 0 || ev != "BeforeInstall" || info(t, client, id).Status != cdtypes.DeploymentStatusInProgress {
		t.Errorf("after one step: green %v%% in %s, want 0%% in BeforeInstall, InProgress", w, ev)
	}
	s.Advance(6 * c.Step) // six events later: AllowTraffic
	if w, ev := green(t, client, id); w != 10 || ev != "AllowTraffic" {
		t.Errorf("in the canary: green %v%% in %s, want 10%% in AllowTraffic", w, ev)
	}
	s.Advance(5 * c.Minute)
	if w, _ := green(t, client, id); w != 100 {
		t.Errorf("after the canary's five minutes: green %v%%, want 100%%", w)
	}
	s.Advance(time.Hour)
	if d := info(t, client, id); d.Status != cdtypes.DeploymentStatusSucceeded || d.CompleteTime == nil || d.RollbackInfo != nil {
		t.Errorf("got %s completed %v rollback %+v, want Succeeded, completed, no rollback", d.Status, d.CompleteTime, d.RollbackInfo)
	}
}

// TestCodeDeployFailureRollsBack: a failing hook fails the deployment and
// starts a rollback deployment that routes the traffic back to blue.
func TestCodeDeployFailureRollsBack(t *testing.T) {
	s, c, client := newCodeDeploy(t, "DEPLOYMENT_FAILURE")
	c.FailNext("AfterAllowTraffic", "smoke test failed")
	id := create(t, client, "CodeDeployDefault.ECSAllAtOnce")
	s.Advance(time.Hour)
	d := info(t, client, id)
	if d.Status != cdtypes.DeploymentStatusFailed || d.ErrorInformation == nil || d.ErrorInformation.Code != cdtypes.ErrorCodeHookExecutionFailure || d.RollbackInfo == nil {
		t.Fatalf("got %s %+v rollback %+v, want Failed HOOK_EXECUTION_FAILURE with a rollback", d.Status, d.ErrorInformation, d.RollbackInfo)
	}
	rb := info(t, client, aws.ToString(d.RollbackInfo.RollbackDeploymentId))
	if rb.Creator != cdtypes.DeploymentCreatorCodeDeployRollback || aws.ToString(rb.RollbackInfo.RollbackTriggeringDeploymentId) != id {
		t.Errorf("rollback deployment %s by %s of %+v, want by codeDeployRollback of %s", aws.ToString(rb.DeploymentId), rb.Creator, rb.RollbackInfo, id)
	}
	s.Advance(time.Hour)
	if rb := info(t, client, aws.ToString(rb.DeploymentId)); rb.Status != cdtypes.DeploymentStatusSucceeded {
		t.Errorf("rollback %s, want Succeeded", rb.Status)
	}
	if w, _ := green(t, client, id); w != 0 {
		t.Errorf("after the rollback green has %v%%, want 0", w)
	}
}

// TestCodeDeployStop: StopDeployment stops an active deployment and rolls
// it back when asked; a finished deployment cannot be stopped.
func TestCodeDeployStop(t *testing.T) {
	s, c, client := newCodeDeploy(t)
	id := create(t, client, "CodeDeployDefault.ECSLinear10PercentEvery1Minutes")
	s.Advance(7*c.Step + c.Minute) // AllowTraffic at 20 %
	if w, _ := green(t, client, id); w != 20 {
		t.Errorf("linear after one minute: green %v%%, want 20%%", w)
	}
	ctx := context.Background()
	if _, err := client.StopDeployment(ctx, &cd.StopDeploymentInput{DeploymentId: aws.String(id), AutoRollbackEnabled: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	d := info(t, client, id)
	if d.Status != cdtypes.DeploymentStatusStopped || d.ErrorInformation.Code != cdtypes.ErrorCodeManualStop || d.RollbackInfo == nil {
		t.Errorf("got %s %+v rollback %+v, want Stopped MANUAL_STOP with a rollback", d.Status, d.ErrorInformation, d.RollbackInfo)
	}
	_, err := client.StopDeployment(ctx, &cd.StopDeploymentInput{DeploymentId: aws.String(id)})
	var done *cdtypes.DeploymentAlreadyCompletedException
	if !errors.As(err, &done) {
		t.Errorf("stopping again: got %v, want DeploymentAlreadyCompletedException", err)
	}
	_, err = client.GetDeployment(ctx, &cd.GetDeploymentInput{DeploymentId: aws.String("d-NOTTHERE1")})
	var nf *cdtypes.DeploymentDoesNotExistException
	if !errors.As(err, &nf) {
		t.Errorf("unknown deployment: got %v, want DeploymentDoesNotExistException", err)
	}
	ids, err := client.ListDeployments(ctx, &cd.ListDeploymentsInput{ApplicationName: aws.String("web"), DeploymentGroupName: aws.String("prod"),
		IncludeOnlyStatuses: []cdtypes.DeploymentStatus{cdtypes.DeploymentStatusStopped}})
	if err != nil || len(ids.Deployments) != 1 || ids.Deployments[0] != id {
		t.Errorf("stopped deployments: %v %v, want [%s]", ids.Deployments, err, id)
	}
}
