package stage

import (
	"time"

	"github.com/runnel-ci/runnel/pipeline/rules"
)

// StepResult is the outcome of one step after all of its attempts.
type StepResult struct {
	Name   string       `json:"name"`
	Status rules.Status `json:"status"`
	// AllowedFailure is set when the step failed but has allow_failure, so
	// its failure did not fail the stage.
	AllowedFailure bool      `json:"allowed_failure,omitempty"`
	ExitCode       int       `json:"exit_code"`
	Attempts       int       `json:"attempts"`
	Started        time.Time `json:"started_at,omitzero"`
	Finished       time.Time `json:"finished_at,omitzero"`
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
	StageID  string       `json:"id"`
	Status   rules.Status `json:"status"`
	Started  time.Time    `json:"started_at,omitzero"`
	Finished time.Time    `json:"finished_at,omitzero"`
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
