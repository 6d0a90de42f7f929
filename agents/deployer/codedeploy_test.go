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

// TestCodeDeployDeploy: a stage's codedeploy block releases through the
// CodeDeploy and ECS APIs at their endpoints, signed with the stage's
// secrets, recording the stage's identity in the deployment, and reports
// its progress and outcome.
func TestCodeDeployDeploy(t *testing.T) {
	srv := awsfake.New(t)
	f := awsfake.NewCodeDeploy(srv)
	f.Step, f.Minute = time.Millisecond, 20*time.Millisecond
	td := `{"family": "web", "containerDefinitions": [{"name": "web", "image": "web:v1"}]}`
	if _, err := awsfake.NewECS(srv).AddService("prod", "web", "CODE_DEPLOY", td, ""); err != nil {
		t.Fatal(err)
	}
	f.AddGroup(awsfake.DeploymentGroup{App: "web", Name: "prod", Cluster: "prod", Service: "web"})
	pd := &pipeline.Deploy{Provider: pipeline.ProviderCodeDeploy, App: "web", Version: "v2", Image: "web:v2", Port: 8080,
		Strategy: pipeline.Strategy{Type: pipeline.StrategyCanary, Percent: 10, Interval: pipeline.Duration(5 * time.Minute)},
		Health:   pipeline.DeployHealth{Interval: pipeline.Duration(time.Millisecond)}, OnFailure: pipeline.OnFailureRollback,
		Region: "us-east-1", Endpoints: map[string]string{"codedeploy": srv.URL, "ecs": srv.URL},
		CodeDeploy: &pipeline.CodeDeployTarget{Application: "web", DeploymentGroup: "prod"}}
	spec := &engine.Spec{Install: "i1", RunID: "7", Stage: &pipeline.Stage{ID: "production", Deploy: pd},
		Secrets: []engine.Secret{{Env: "AWS_ACCESS_KEY_ID", Value: "AKIDSTAGE"}, {Env: "AWS_SECRET_ACCESS_KEY", Value: "secret"}}}
	var reports []wire.DeployProgress
	var out bytes.Buffer
	err := (&Deployer{}).Job(func(p wire.DeployProgress) { reports = append(reports, p) }).Deploy(context.Background(), spec, &out)
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	if last := reports[len(reports)-1]; last.Outcome != "succeeded" || last.Weight != 100 || last.Provider != "codedeploy" {
		t.Errorf("last report %+v, want succeeded at 100%%", last)
	}
	if !strings.Contains(out.String(), "[shift] 10% on v2") {
		t.Errorf("log lacks the canary step:\n%s", out.String())
	}
	for _, op := range []string{"RegisterTaskDefinition", "CreateDeployment"} {
		if calls := srv.Calls(op); len(calls) != 1 || calls[0].AccessKey != "AKIDSTAGE" {
			t.Errorf("%s calls %+v, want one signed with the stage's key", op, calls)
		}
	}
	if ds := f.Deployments(); len(ds) != 1 || ds[0].Description != "runnel release v2 id i1/7/production" || ds[0].Config != "CodeDeployDefault.ECSCanary10Percent5Minutes" {
		t.Errorf("deployments %+v, want one canary described with the stage's identity", ds)
	}
}
