package pipeline

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

const inputsFile = `version: 1
inputs:
  version:
    description: what to release
  target:
    type: choice
    options: [staging, production]
    default: staging
  dry_run:
    type: boolean
    default: false
stages:
  release:
    when: {event: [manual, cron, push]}
    steps:
      - name: go
        run: echo "$RUNNEL_INPUT_VERSION"
`

func TestInputsDeclared(t *testing.T) {
	p, err := Parse("p.yml", []byte(inputsFile))
	if err != nil {
		t.Fatal(err)
	}
	got := p.Inputs()
	if len(got) != 3 || got[0].Name != "version" || !got[0].Required || got[0].Type != InputString ||
		got[1].Type != InputChoice || got[1].Default != "staging" || got[1].Required ||
		got[2].Type != InputBoolean || got[2].Default != "false" {
		t.Fatalf("Inputs() = %+v", got)
	}
}

func TestCheckInputs(t *testing.T) {
	p, err := Parse("p.yml", []byte(inputsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		given    map[string]string
		required bool
		want     map[string]string // nil: problems expected
		problem  string            // an input named in the problems
	}{
		{"defaults added", map[string]string{"version": "1.2"}, true,
			map[string]string{"version": "1.2", "target": "staging", "dry_run": "false"}, ""},
		{"all given", map[string]string{"version": "1.2", "target": "production", "dry_run": "true"}, true,
			map[string]string{"version": "1.2", "target": "production", "dry_run": "true"}, ""},
		{"required missing", map[string]string{}, true, nil, "version"},
		{"required missing, not required here", map[string]string{}, false,
			map[string]string{"target": "staging", "dry_run": "false"}, ""},
		{"not an option", map[string]string{"version": "1", "target": "prod"}, true, nil, "target"},
		{"not a boolean", map[string]string{"version": "1", "dry_run": "yes"}, true, nil, "dry_run"},
		{"undeclared", map[string]string{"version": "1", "versoin": "2"}, true, nil, "versoin"},
	} {
		out, problems := p.CheckInputs(c.given, c.required)
		switch {
		case c.want != nil && (problems != nil || !maps.Equal(out, c.want)):
			t.Errorf("%s: got %v, problems %v; want %v", c.name, out, problems, c.want)
		case c.want == nil && problems[c.problem] == "":
			t.Errorf("%s: problems %v, want one about %s", c.name, problems, c.problem)
		}
	}
	// A pipeline without declared inputs takes any.
	q, _ := Parse("q.yml", []byte("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: x\n"))
	if out, problems := q.CheckInputs(map[string]string{"free": "x"}, true); problems != nil || out["free"] != "x" {
		t.Errorf("undeclared inputs: %v %v", out, problems)
	}
}

func TestPlanInputs(t *testing.T) {
	p, err := Parse("p.yml", []byte(inputsFile))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan(Event{Kind: EventManual, Branch: "main", Inputs: map[string]string{"version": "1.2"}})
	if err != nil {
		t.Fatal(err)
	}
	env := plan.Stages[0].Env
	if env["RUNNEL_INPUT_VERSION"] != "1.2" || env["RUNNEL_INPUT_TARGET"] != "staging" || env["RUNNEL_INPUT_DRY_RUN"] != "false" {
		t.Errorf("env = %v", env)
	}
	_, err = p.Plan(Event{Kind: EventManual, Branch: "main", Inputs: map[string]string{"target": "prod"}})
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 2 || ds[0].Code != CodeBadInput || ds[0].Line != 3 ||
		!strings.Contains(ds[1].Message, "target") || ds[1].Line != 5 {
		t.Errorf("bad inputs: %v", err)
	}
	if _, err := p.Plan(Event{Kind: EventPush, Branch: "main"}); err != nil {
		t.Errorf("push without inputs: %v", err)
	}
}

func TestInputsRefused(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"  x:\n    type: number\n", "4:11: bad-value"},
		{"  x:\n    type: choice\n", "4:5: missing-field"},
		{"  x:\n    type: choice\n    options: [a, b]\n    default: c\n", "6:14: bad-value"},
		{"  x:\n    type: choice\n    options: [a, a]\n", "5:14: duplicate-name"},
		{"  x:\n    type: boolean\n    default: maybe\n", "5:14: bad-value"},
		{"  x:\n    options: [a]\n", "4:14: bad-value"},
		{"  x:\n    typ: string\n", "4:5: unknown-key"},
		{"  9x: {}\n", "3:3: bad-name"},
		{"  a-b: {}\n  a_b: {}\n", "4:3: duplicate-name"},
	} {
		src := "version: 1\ninputs:\n" + c.body + "stages:\n  a:\n    steps:\n      - name: s\n        run: x\n"
		_, err := Parse("f.yml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %s", c.body, err, c.want)
		}
	}
}
