package deployer

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/internal/awsfake"
	"github.com/runnel-ci/runnel/pipeline"
)

// TestECSServiceDeploy: a stage's ecs-service block releases through the
// ECS API at its endpoint, signed with the stage's secrets, labelled with
// the stage's identity, and reports its progress and outcome.
func TestECSServiceDeploy(t *testing.T) {
	srv := awsfake.New(t)
	f := awsfake.NewECS(srv)
	f.StageTime = 2 * time.Millisecond
	td := `{"family": "web", "containerDefinitions": [{"name": "web", "image": "web:v1", "dockerLabels": {"runnel.deploy.version": "v1"}}]}`
	if _, err := f.AddService("prod", "web", "ECS", td, ""); err != nil {
		t.Fatal(err)
	}
	pd := &pipeline.Deploy{Provider: pipeline.ProviderECSService, App: "web", Version: "v2", Image: "web:v2", Port: 8080,
		Strategy: pipeline.Strategy{Type: pipeline.StrategyAllAtOnce}, Health: pipeline.DeployHealth{Interval: pipeline.Duration(time.Millisecond)},
		OnFailure: pipeline.OnFailureRollback, Region: "us-east-1", Endpoints: map[string]string{"ecs": srv.URL},
		ECSService: &pipeline.ECSServiceTarget{Cluster: "prod", Service: "web"}}
	spec := &engine.Spec{Install: "i1", RunID: "7", Stage: &pipeline.Stage{ID: "production", Deploy: pd},
		Secrets: []engine.Secret{{Env: "AWS_ACCESS_KEY_ID", Value: "AKIDSTAGE"}, {Env: "AWS_SECRET_ACCESS_KEY", Value: "secret"}}}
	var reports []wire.DeployProgress
	var out bytes.Buffer
	err := (&Deployer{}).Job(func(p wire.DeployProgress) { reports = append(reports, p) }).Deploy(context.Background(), spec, &out)
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	last := reports[len(reports)-1]
	if last.Outcome != "succeeded" || last.Weight != 100 || last.From != "v1" || last.Provider != "ecs-service" {
		t.Errorf("last report %+v, want succeeded from v1 at 100%%", last)
	}
	if !strings.Contains(out.String(), "100% of production traffic on v2") {
		t.Errorf("log lacks the traffic on v2:\n%s", out.String())
	}
	for _, op := range []string{"RegisterTaskDefinition", "UpdateService"} {
		calls := srv.Calls(op)
		if len(calls) != 1 || calls[0].AccessKey != "AKIDSTAGE" {
			t.Errorf("%s calls %+v, want one signed with the stage's key", op, calls)
		}
	}
	if reg := string(srv.Calls("RegisterTaskDefinition")[0].Body); !strings.Contains(reg, `"runnel.deploy.id":"i1/7/production"`) {
		t.Errorf("registered %s, want the label runnel.deploy.id i1/7/production", reg)
	}
}
