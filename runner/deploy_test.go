package runner

import (
	"testing"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
)

func TestDeploymentResult(t *testing.T) {
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := func(status store.Status, ran bool) *store.Stage {
		s := &store.Stage{Status: status}
		if ran {
			s.StartedAt = started
		}
		return s
	}
	tests := []struct {
		name   string
		stages []*store.Stage
		want   string
		ok     bool
	}{
		{"one stage ok", []*store.Stage{st(store.StatusSuccess, true)}, store.DeploySuccess, true},
		{"one stage failed", []*store.Stage{st(store.StatusFailure, true)}, store.DeployFailure, true},
		{"errored counts as failed", []*store.Stage{st(store.StatusError, true)}, store.DeployFailure, true},
		{"matrix both ok: one deployment", []*store.Stage{st(store.StatusSuccess, true), st(store.StatusSuccess, true)}, store.DeploySuccess, true},
		{"matrix one failed: failed", []*store.Stage{st(store.StatusSuccess, true), st(store.StatusFailure, true)}, store.DeployFailure, true},
		{"matrix one still running: not yet", []*store.Stage{st(store.StatusFailure, true), st(store.StatusRunning, true)}, "", false},
		{"matrix one queued: not yet", []*store.Stage{st(store.StatusSuccess, true), st(store.StatusQueued, false)}, "", false},
		{"skipped after a failed test: none", []*store.Stage{st(store.StatusSkipped, false)}, "", false},
		{"canceled before start: none", []*store.Stage{st(store.StatusCanceled, false)}, "", false},
		{"canceled while running: none", []*store.Stage{st(store.StatusCanceled, true)}, "", false},
		{"one failed, other canceled: failed", []*store.Stage{st(store.StatusFailure, true), st(store.StatusCanceled, true)}, store.DeployFailure, true},
		{"one ok, other canceled: success", []*store.Stage{st(store.StatusSuccess, true), st(store.StatusCanceled, false)}, store.DeploySuccess, true},
		{"no stages: none", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := deploymentResult(tt.stages)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v, want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestReleaseResult(t *testing.T) {
	tests := []struct{ result, outcome, want string }{
		{store.DeploySuccess, "succeeded", store.DeploySuccess},
		{store.DeployFailure, "rolled_back", store.DeployRolledBack},
		{store.DeployFailure, "failed", store.DeployFailure},
		{store.DeployFailure, "", store.DeployFailure},               // lost before any report of its end
		{store.DeploySuccess, "rolled_back", store.DeployRolledBack}, // another variant's release rolled back
		{store.DeployFailure, "succeeded", store.DeployFailure},      // released, but a later step failed
	}
	for _, tt := range tests {
		if got := releaseResult(tt.result, tt.outcome); got != tt.want {
			t.Errorf("releaseResult(%q, %q) = %q, want %q", tt.result, tt.outcome, got, tt.want)
		}
	}
}
