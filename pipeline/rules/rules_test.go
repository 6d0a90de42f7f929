package rules_test

import (
	"slices"
	"testing"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

func done(id string, s rules.Status, reason string) rules.Need {
	return rules.Need{ID: id, Done: true, Status: s, Reason: reason}
}

func TestNext(t *testing.T) {
	running := rules.Need{ID: "build"}
	ok := done("build", rules.Success, "")
	failed := done("lint", rules.Failure, "")
	tests := []struct {
		name  string
		stage rules.Stage
		want  rules.Decision
	}{
		{"no needs", rules.Stage{}, rules.Decision{Action: rules.Start}},
		{"need running", rules.Stage{Needs: []rules.Need{running, failed}}, rules.Decision{Action: rules.Wait, Needs: []string{"build"}}},
		{"needs running before approval", rules.Stage{Needs: []rules.Need{running}, Approval: true},
			rules.Decision{Action: rules.Wait, Needs: []string{"build"}}},
		{"needs met", rules.Stage{Needs: []rules.Need{ok}}, rules.Decision{Action: rules.Start}},
		{"need failed", rules.Stage{Needs: []rules.Need{ok, failed}}, rules.Decision{Action: rules.Skip, Reason: rules.ReasonNeedsFailed, Needs: []string{"lint"}}},
		{"need failed, explicit success", rules.Stage{RunOn: pipeline.RunOnSuccess, Needs: []rules.Need{done("a", rules.Timeout, "")}},
			rules.Decision{Action: rules.Skip, Reason: rules.ReasonNeedsFailed, Needs: []string{"a"}}},
		{"need canceled", rules.Stage{Needs: []rules.Need{done("a", rules.Canceled, "")}},
			rules.Decision{Action: rules.Skip, Reason: rules.ReasonNeedsFailed, Needs: []string{"a"}}},
		{"need errored", rules.Stage{Needs: []rules.Need{done("a", rules.Error, "agent_lost")}},
			rules.Decision{Action: rules.Skip, Reason: rules.ReasonNeedsFailed, Needs: []string{"a"}}},
		{"skip passes failure down", rules.Stage{Needs: []rules.Need{done("a", rules.Skipped, rules.ReasonNeedsFailed)}},
			rules.Decision{Action: rules.Skip, Reason: rules.ReasonNeedsFailed, Needs: []string{"a"}}},
		{"skip without failure is fine", rules.Stage{Needs: []rules.Need{done("a", rules.Skipped, rules.ReasonNoNeedFailed)}},
			rules.Decision{Action: rules.Start}},
		{"on failure, none failed", rules.Stage{RunOn: pipeline.RunOnFailure, Needs: []rules.Need{ok}},
			rules.Decision{Action: rules.Skip, Reason: rules.ReasonNoNeedFailed}},
		{"on failure, failure further up", rules.Stage{RunOn: pipeline.RunOnFailure, Needs: []rules.Need{done("a", rules.Skipped, rules.ReasonNeedsFailed)}},
			rules.Decision{Action: rules.Start}},
		{"on failure, no needs", rules.Stage{RunOn: pipeline.RunOnFailure}, rules.Decision{Action: rules.Skip, Reason: rules.ReasonNoNeedFailed}},
		{"always, need failed", rules.Stage{RunOn: pipeline.RunOnAlways, Needs: []rules.Need{failed}}, rules.Decision{Action: rules.Start}},
		{"approval after needs", rules.Stage{Needs: []rules.Need{ok}, Approval: true}, rules.Decision{Action: rules.AwaitApproval}},
		{"skip before approval", rules.Stage{Needs: []rules.Need{failed}, Approval: true},
			rules.Decision{Action: rules.Skip, Reason: rules.ReasonNeedsFailed, Needs: []string{"lint"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rules.Next(tt.stage)
			if got.Action != tt.want.Action || got.Reason != tt.want.Reason || !slices.Equal(got.Needs, tt.want.Needs) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestGroupFree(t *testing.T) {
	tests := []struct {
		name   string
		run    int64
		others []rules.GroupHolder
		want   bool
	}{
		{"alone", 5, nil, true},
		{"later run waiting", 5, []rules.GroupHolder{{RunNumber: 6}}, true},
		{"earlier run not started", 5, []rules.GroupHolder{{RunNumber: 4}}, false},
		{"later run holds it", 5, []rules.GroupHolder{{RunNumber: 6, Started: true}}, false},
		{"same run holds it", 5, []rules.GroupHolder{{RunNumber: 5, Started: true}}, false},
		{"same run waiting", 5, []rules.GroupHolder{{RunNumber: 5}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rules.GroupFree(tt.run, tt.others); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPendingReason(t *testing.T) {
	linux := map[string]string{"os": "linux"}
	gpu := map[string]string{"gpu": "yes", "os": "linux"}
	tests := []struct {
		name   string
		hold   rules.Hold
		agents []rules.AgentLoad
		want   string
	}{
		{"needs first", rules.Hold{Needs: []string{"build", "lint"}, Approval: true, Queued: true}, nil, "waiting for needs: build, lint"},
		{"approval", rules.Hold{Approval: true, Concurrency: "prod"}, nil, "waiting for approval"},
		{"concurrency", rules.Hold{Concurrency: "prod"}, nil, "waiting for concurrency group prod"},
		{"not queued, nothing holds it", rules.Hold{}, nil, ""},
		{"no agent at all", rules.Hold{Queued: true}, nil, "no agent connected"},
		{"no agent with the labels", rules.Hold{Queued: true, Labels: gpu},
			[]rules.AgentLoad{{Labels: linux, Capacity: 4}}, "no agent with labels gpu=yes,os=linux"},
		{"all capable busy", rules.Hold{Queued: true, Labels: linux},
			[]rules.AgentLoad{{Labels: linux, Capacity: 2, Running: 2}, {Labels: gpu, Capacity: 1, Running: 1}, {Capacity: 8}},
			"all capable agents busy (3 running, capacity 3)"},
		{"one capable agent has room", rules.Hold{Queued: true, Labels: linux},
			[]rules.AgentLoad{{Labels: linux, Capacity: 2, Running: 2}, {Labels: gpu, Capacity: 2, Running: 1}}, ""},
		{"no labels wanted, one agent busy", rules.Hold{Queued: true}, []rules.AgentLoad{{Capacity: 1, Running: 1}},
			"all capable agents busy (1 running, capacity 1)"},
		{"unknown capacity is never busy", rules.Hold{Queued: true}, []rules.AgentLoad{{Running: 5}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rules.PendingReason(tt.hold, tt.agents); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
