package pipeline

import (
	"errors"
	"slices"
	"testing"
)

func TestEnvironmentAllows(t *testing.T) {
	prod := Environment{Name: "production", Branches: []string{"main", "release/*"}, Tags: []string{"v*"}}
	tests := []struct {
		ev   Event
		want bool
	}{
		{Event{Kind: EventPush, Branch: "main"}, true},
		{Event{Kind: EventPush, Branch: "release/1.2"}, true},
		{Event{Kind: EventPush, Branch: "feature/x"}, false},
		{Event{Kind: EventManual, Branch: "main"}, true},
		{Event{Kind: EventCron, Branch: "feature/x"}, false},
		{Event{Kind: EventPullRequest, Branch: "main"}, false}, // a PR's branch is its target: never deploys
		{Event{Kind: EventTag, Tag: "v1.0"}, true},
		{Event{Kind: EventTag, Tag: "nightly"}, false},
		{Event{Kind: EventPush}, false},
	}
	for _, tt := range tests {
		if got := prod.Allows(tt.ev); got != tt.want {
			t.Errorf("Allows(%+v) = %v, want %v", tt.ev, got, tt.want)
		}
	}
	if (Environment{Name: "tags-only", Tags: []string{"v*"}}).Allows(Event{Kind: EventPush, Branch: "main"}) {
		t.Error("an environment without branches allowed a push")
	}
}

const envPipeline = `version: 1
stages:
  build:
    steps:
      - name: b
        run: make
  deploy:
    needs: [build]
    environment: production
    matrix:
      region: [eu, us]
    steps:
      - name: d
        run: ./deploy
  smoke:
    needs: [deploy]
    steps:
      - name: s
        run: ./smoke
`

func TestPlanForEnvironments(t *testing.T) {
	p, err := Parse("p.yml", []byte(envPipeline))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(pl *Plan) []string {
		var out []string
		for _, s := range pl.Stages {
			out = append(out, s.ID)
		}
		return out
	}
	envs := []Environment{{Name: "production", Branches: []string{"main"}}}
	main := Event{Kind: EventPush, Branch: "main"}
	pl, err := p.PlanFor(main, envs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(pl), []string{"build", "deploy[region=eu]", "deploy[region=us]", "smoke"}; !slices.Equal(got, want) {
		t.Errorf("main: stages %v, want %v", got, want)
	}
	// A branch the environment does not allow: the deploy stages are
	// left out as if their when did not match; smoke runs without them.
	pl, err = p.PlanFor(Event{Kind: EventPush, Branch: "feature/x"}, envs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(pl), []string{"build", "smoke"}; !slices.Equal(got, want) {
		t.Errorf("feature/x: stages %v, want %v", got, want)
	}
	// An undeclared environment is refused with its position.
	for _, declared := range [][]Environment{nil, {{Name: "staging", Branches: []string{"*"}}}} {
		_, err = p.PlanFor(main, declared)
		var ds Diagnostics
		if !errors.As(err, &ds) || len(ds) != 1 || ds[0].Code != CodeUndeclaredEnvironment || ds[0].Line != 9 || ds[0].Col != 18 {
			t.Errorf("PlanFor with %v: err %v, want one %s at 9:18", declared, err, CodeUndeclaredEnvironment)
		}
	}
	// Plan (runnel run, lint) does not check environments.
	if _, err := p.Plan(Event{Kind: EventPush, Branch: "feature/x"}); err != nil {
		t.Errorf("Plan: %v", err)
	}
}
