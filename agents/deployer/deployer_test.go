package deployer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
)

// TestRelease: a deploy block becomes the release its docs promise.
func TestRelease(t *testing.T) {
	tests := []struct {
		strategy pipeline.Strategy
		onFail   string
		steps    string
		stop     bool
	}{
		{pipeline.Strategy{Type: pipeline.StrategyAllAtOnce}, pipeline.OnFailureRollback, "[100]", false},
		{pipeline.Strategy{Type: pipeline.StrategyCanary, Percent: 10, Interval: pipeline.Duration(5 * time.Minute)}, pipeline.OnFailureStop, "[10 100]", true},
		{pipeline.Strategy{Type: pipeline.StrategyLinear, Percent: 30, Interval: pipeline.Duration(time.Minute)}, pipeline.OnFailureRollback, "[30 60 90 100]", false},
		{pipeline.Strategy{Type: pipeline.StrategyLinear, Percent: 50, Interval: pipeline.Duration(time.Minute)}, pipeline.OnFailureRollback, "[50 100]", false},
	}
	for _, tt := range tests {
		pd := &pipeline.Deploy{Provider: "docker", App: "web", Version: "v2", Image: "web:v2", Port: 8080, Strategy: tt.strategy,
			Health: pipeline.DeployHealth{Path: "/healthz", Failures: 3}, Bake: pipeline.Duration(time.Minute), OnFailure: tt.onFail}
		rel := Release(pd)
		if got := fmt.Sprint(rel.TrafficSteps); got != tt.steps || rel.StopOnFailure != tt.stop || rel.Interval != tt.strategy.Interval.D() ||
			rel.BakeTime != time.Minute || rel.Health.Path != "/healthz" || rel.Health.Failures != 3 {
			t.Errorf("%+v: release %+v, want steps %s, stop %v", tt.strategy, rel, tt.steps, tt.stop)
		}
		if err := rel.Validate(); err != nil {
			t.Errorf("%+v: %v", tt.strategy, err)
		}
	}
}

// TestAWSConfigFromSecrets: the AWS providers take the region from the
// block or the stage's env and their credentials from the stage's
// secrets only, never from its plain env (which is in the repository).
func TestAWSConfigFromSecrets(t *testing.T) {
	creds := []engine.Secret{{Env: "AWS_ACCESS_KEY_ID", Value: "key-id"}, {Env: "AWS_SECRET_ACCESS_KEY", Value: "secret-key"}}
	for _, tt := range []struct {
		name    string
		region  string
		env     map[string]string
		secrets []engine.Secret
		want    string // error text, or "region key secret session"
	}{
		{"no region", "", nil, creds, "no region"},
		{"region from the stage env", "", map[string]string{"AWS_REGION": "eu-west-1"}, creds, "eu-west-1 key-id secret-key "},
		{"block region wins", "us-east-1", map[string]string{"AWS_REGION": "eu-west-1"}, creds, "us-east-1 key-id secret-key "},
		{"session token", "us-east-1", nil, append(slices.Clone(creds), engine.Secret{Env: "AWS_SESSION_TOKEN", Value: "session"}),
			"us-east-1 key-id secret-key session"},
		{"stage env credentials are not used", "us-east-1",
			map[string]string{"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, nil, "needs the secrets"},
		{"a file secret is not a credential", "us-east-1", nil,
			[]engine.Secret{creds[0], {Env: "AWS_SECRET_ACCESS_KEY", File: "aws.key", Value: "secret-key"}}, "needs the secrets"},
	} {
		pd := &pipeline.Deploy{Provider: "ecs", Region: tt.region}
		spec := &engine.Spec{Stage: &pipeline.Stage{Env: tt.env}, Secrets: tt.secrets}
		cfg, err := awsConfig(pd, spec)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			c, err := cfg.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got = strings.Join([]string{cfg.Region, c.AccessKeyID, c.SecretAccessKey, c.SessionToken}, " ")
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
