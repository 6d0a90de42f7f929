package runner

import (
	"errors"
	"fmt"
	"testing"

	"github.com/runnel-ci/runnel/runner/store"
)

func TestFindStepLog(t *testing.T) {
	run := &store.Run{ID: 7, Stages: []*store.Stage{
		{Key: "build", Attempt: 2, Steps: []*store.Step{{Name: "1", Position: 0}, {Name: "test", Position: 1}}},
	}}
	tests := []struct {
		stage, step string
		byName      bool
		attempt     string
		want        string // "position/attempt" or the error
	}{
		{"build", "1", false, "", "1/2"},
		{"build", "1", true, "", "0/2"}, // the first step matching name or position
		{"build", "test", true, "1", "1/1"},
		{"build", "test", false, "", "no such step"},
		{"build", "2", false, "", "no such step"},
		{"deploy", "0", false, "", "no such stage"},
		{"build", "0", false, "0", "attempt must be a positive number"},
		{"build", "0", false, "x", "attempt must be a positive number"},
		{"build", "0", false, "3", "no such attempt"},
	}
	for _, tt := range tests {
		l, err := FindStepLog(run, tt.stage, tt.step, tt.byName, tt.attempt)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = fmt.Sprintf("%d/%d", l.Step.Position, l.Attempt)
			if want := LogKey(7, "build", l.Attempt, l.Step.Position); l.Key != want {
				t.Errorf("%+v: key %v, want %v", tt, l.Key, want)
			}
		}
		if got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt, got, tt.want)
		}
	}
	if _, err := FindStepLog(run, "build", "0", false, "9"); !errors.Is(err, ErrNoAttempt) {
		t.Errorf("got %v, want ErrNoAttempt", err)
	}
}

func TestStepEnded(t *testing.T) {
	stage := func(status store.Status, attempt int, step store.Status) *store.Stage {
		return &store.Stage{Status: status, Attempt: attempt, Steps: []*store.Step{{Position: 0, Status: step}}}
	}
	R, P, S, F := store.StatusRunning, store.StatusPending, store.StatusSuccess, store.StatusFailure
	tests := []struct {
		name         string
		st           *store.Stage
		attempt, pos int
		want         bool
	}{
		{"running step", stage(R, 1, R), 1, 0, false},
		{"step not started", stage(R, 1, P), 1, 0, false},
		{"stage not started", stage(P, 1, P), 1, 0, false},
		{"step ended", stage(R, 1, S), 1, 0, true},
		{"stage ended", stage(F, 1, R), 1, 0, true},
		{"later attempt began", stage(R, 2, R), 1, 0, true},
		{"no such step", stage(R, 1, R), 1, 3, true},
	}
	for _, tt := range tests {
		if got := StepEnded(tt.st, tt.attempt, tt.pos); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
