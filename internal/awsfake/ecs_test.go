package awsfake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// ecsRig is a fake ECS whose stages and minutes last an hour of its
// clock, so a test moves a deployment on only by advancing the clock.
func ecsRig(t *testing.T, config string) (*Server, *ECS, *awsecs.Client) {
	t.Helper()
	s := New(t)
	f := NewECS(s)
	f.StageTime, f.Minute = time.Hour, time.Hour
	td := `{"family": "web", "containerDefinitions": [{"name": "web", "image": "web:v1"}]}`
	if _, err := f.AddService("c", "web", "ECS", td, config); err != nil {
		t.Fatal(err)
	}
	return s, f, awsecs.NewFromConfig(s.Config("us-east-1", "AKIDTEST"))
}

// update registers web:v and updates the service to it; it returns the
// service deployment's ARN.
func update(t *testing.T, c *awsecs.Client, v string) string {
	t.Helper()
	ctx := context.Background()
	td, err := c.RegisterTaskDefinition(ctx, &awsecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("web"), Image: aws.String("web:" + v)}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.UpdateService(ctx, &awsecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("web"), TaskDefinition: td.TaskDefinition.TaskDefinitionArn})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Service.CurrentServiceDeployment)
}

// TestECSLinearLifecycle: a LINEAR deployment passes through the
// lifecycle stages in order, shifting production traffic 25 % a step,
// bakes and ends SUCCESSFUL with the service on the new task definition;
// timestamps arrive as the SDK's times.
func TestECSLinearLifecycle(t *testing.T) {
	s, f, c := ecsRig(t, `{"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 1}, "bakeTimeInMinutes": 1}`)
	start := s.Now()
	arn := update(t, c, "v2")
	var got []string
	for range 20 {
		out, err := c.DescribeServiceDeployments(context.Background(), &awsecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{arn}})
		if err != nil {
			t.Fatal(err)
		}
		sd := out.ServiceDeployments[0]
		if sd.CreatedAt == nil || sd.CreatedAt.Sub(start).Abs() > time.Second {
			t.Fatalf("createdAt %v, want about %v", sd.CreatedAt, start)
		}
		got = append(got, fmt.Sprintf("%s/%s/%v", sd.Status, sd.LifecycleStage, aws.ToFloat64(sd.TargetServiceRevision.RequestedProductionTrafficWeight)))
		if sd.Status == ecstypes.ServiceDeploymentStatusSuccessful {
			if sd.FinishedAt == nil {
				t.Error("a finished deployment without finishedAt")
			}
			break
		}
		s.Advance(time.Hour)
	}
	want := "PENDING//0 IN_PROGRESS/RECONCILE_SERVICE/0 IN_PROGRESS/PRE_SCALE_UP/0 IN_PROGRESS/SCALE_UP/0 IN_PROGRESS/POST_SCALE_UP/0 " +
		"IN_PROGRESS/TEST_TRAFFIC_SHIFT/0 IN_PROGRESS/POST_TEST_TRAFFIC_SHIFT/0 IN_PROGRESS/PRODUCTION_TRAFFIC_SHIFT/25 " +
		"IN_PROGRESS/PRODUCTION_TRAFFIC_SHIFT/50 IN_PROGRESS/PRODUCTION_TRAFFIC_SHIFT/75 IN_PROGRESS/PRODUCTION_TRAFFIC_SHIFT/100 " +
		"IN_PROGRESS/POST_PRODUCTION_TRAFFIC_SHIFT/100 IN_PROGRESS/BAKE_TIME/100 IN_PROGRESS/CLEAN_UP/100 SUCCESSFUL/CLEAN_UP/100"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("deployment went\n%s\nwant\n%s", g, want)
	}
	if img := f.ServingImage("c", "web"); img != "web:v2" {
		t.Errorf("serving %s, want web:v2", img)
	}
}

// TestECSErrors: the fake answers with the typed errors the SDK knows.
func TestECSErrors(t *testing.T) {
	s, _, c := ecsRig(t, "")
	ctx := context.Background()
	arn := update(t, c, "v2")
	var notFound *ecstypes.ServiceNotFoundException
	if _, err := c.UpdateService(ctx, &awsecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("nope")}); !errors.As(err, &notFound) {
		t.Errorf("update of an unknown service: %v, want ServiceNotFoundException", err)
	}
	var invalid *ecstypes.InvalidParameterException
	if _, err := c.UpdateService(ctx, &awsecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("web"), TaskDefinition: aws.String("web:1")}); !errors.As(err, &invalid) {
		t.Errorf("update during a deployment: %v, want InvalidParameterException", err)
	}
	var noDeployment *ecstypes.ServiceDeploymentNotFoundException
	if _, err := c.StopServiceDeployment(ctx, &awsecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(arn + "x")}); !errors.As(err, &noDeployment) {
		t.Errorf("stop of an unknown deployment: %v, want ServiceDeploymentNotFoundException", err)
	}
	s.Advance(24 * time.Hour) // BLUE_GREEN: done
	var conflict *ecstypes.ConflictException
	if _, err := c.StopServiceDeployment(ctx, &awsecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(arn)}); !errors.As(err, &conflict) {
		t.Errorf("stop of a finished deployment: %v, want ConflictException", err)
	}
	var client *ecstypes.ClientException
	if _, err := c.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("other:1")}); !errors.As(err, &client) {
		t.Errorf("describe of an unknown task definition: %v, want ClientException", err)
	}
}

// TestECSStop: a stop request rolls the deployment back from where it is
// (ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL) and the
// service runs its previous task definition again.
func TestECSStop(t *testing.T) {
	s, f, c := ecsRig(t, "")
	ctx := context.Background()
	arn := update(t, c, "v2")
	s.Advance(8 * time.Hour) // all production traffic on v2
	if _, err := c.StopServiceDeployment(ctx, &awsecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(arn), StopType: ecstypes.StopServiceDeploymentStopTypeRollback}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		st, _ := f.DeploymentStatus(arn)
		got = append(got, st)
		s.Advance(time.Hour)
	}
	if g := strings.Join(got, " "); g != "ROLLBACK_REQUESTED ROLLBACK_IN_PROGRESS ROLLBACK_SUCCESSFUL" {
		t.Errorf("after the stop: %s", g)
	}
	out, err := c.DescribeServiceDeployments(ctx, &awsecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{arn}})
	if err != nil {
		t.Fatal(err)
	}
	if sd := out.ServiceDeployments[0]; sd.Rollback == nil || !strings.Contains(aws.ToString(sd.Rollback.Reason), "StopServiceDeployment") || sd.Rollback.StartedAt == nil {
		t.Errorf("rollback %+v, want its reason and start", sd.Rollback)
	}
	if img := f.ServingImage("c", "web"); img != "web:v1" {
		t.Errorf("serving %s, want web:v1", img)
	}
}
