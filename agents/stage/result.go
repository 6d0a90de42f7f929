package stage

import (
	"time"
)

// Status is the outcome of a step or a stage.
type Status string

// Statuses. A step or stage ends in exactly one of them.
const (
	StatusSuccess  Status = "success"
	StatusFailure  Status = "failure"  // a step exited non-zero
	StatusTimeout  Status = "timeout"  // a step or the stage ran out of time
	StatusError    Status = "error"    // the engine failed (setup, image missing, ...)
	StatusCanceled Status = "canceled" // the run was cancelled
	StatusSkipped  Status = "skipped"  // never started
)

// Failed reports whether s counts as a failure of the step or stage
// (skipped is not a failure by itself).
func (s Status) Failed() bool {
	switch s {
	case StatusFailure, StatusTimeout, StatusError, StatusCanceled:
		return true
	}
	return false
}

// StepResult is the outcome of one step after all of its attempts.
type StepResult struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// AllowedFailure is set when the step failed but has allow_failure, so
	// its failure did not fail the stage.
	AllowedFailure bool      `json:"allowed_failure,omitempty"`
	ExitCode       int       `json:"exit_code"`
	Attempts       int       `json:"attempts"`
	Started        time.Time `json:"started,omitzero"`
	Finished       time.Time `json:"finished,omitzero"`
	Reason         string    `json:"reason,omitempty"` // why it did not succeed
}

// Duration is how long the step ran, over all attempts.
func (r StepResult) Duration() time.Duration {
	if r.Started.IsZero() || r.Finished.IsZero() {
		return 0
	}
	return r.Finished.Sub(r.Started)
}

// Result is the outcome of one stage.
type Result struct {
	StageID  string       `json:"stage"`
	Status   Status       `json:"status"`
	Started  time.Time    `json:"started,omitzero"`
	Finished time.Time    `json:"finished,omitzero"`
	Reason   string       `json:"reason,omitempty"`
	Steps    []StepResult `json:"steps"`
	// TeardownError is set when removing the stage's resources failed; it
	// does not change Status, since the steps' outcome stands.
	TeardownError string `json:"teardown_error,omitempty"`
}

// Duration is how long the stage ran (setup to teardown).
func (r Result) Duration() time.Duration {
	if r.Started.IsZero() || r.Finished.IsZero() {
		return 0
	}
	return r.Finished.Sub(r.Started)
}
