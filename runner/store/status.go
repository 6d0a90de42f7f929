package store

import "github.com/runnel-ci/runnel/pipeline/rules"

// Status is the state of a run, stage or step.
//
// Allowed transitions (anything else is refused with ErrConflict):
//
//	pending -> queued | waiting | running | success | failure | canceled | error | skipped
//	waiting -> pending | queued | canceled | error | skipped | failure
//	queued  -> running | canceled | error | skipped | success | failure
//	running -> success | failure | canceled | error
//	terminal (success, failure, canceled, error, skipped) -> nothing
//
// pending -> terminal covers runs and stages decided before they start
// (a pipeline that does not compile, a stage skipped by run_on, an empty
// plan). waiting is a stage held for approval (waiting -> pending once
// approved). The one way back, a stage put on the queue again after its
// agent was lost, is QueueStage, which raises the attempt number so the
// lost agent's late updates are refused with ErrStale.
type Status string

// Statuses.
const (
	StatusPending Status = "pending" // created; waiting for its needs, a plan or a slot
	StatusWaiting Status = "waiting" // stage held for manual approval
	StatusQueued  Status = "queued"  // dispatched to agents, not yet picked up
	StatusRunning Status = "running" // an agent is executing it
	// The terminal ones are spelled as rules.Status, as on the wire and
	// in `runnel run --summary-json`; a step or stage that timed out is
	// stored as failure with rules.ReasonTimeout.
	StatusSuccess  = Status(rules.Success)
	StatusFailure  = Status(rules.Failure)  // a step failed
	StatusCanceled = Status(rules.Canceled) // by a user, a newer run or a lost lease
	StatusError    = Status(rules.Error)    // infrastructure or config error (see Reason)
	StatusSkipped  = Status(rules.Skipped)  // never ran (run_on, when, rejected)
)

// Terminal reports whether s is final.
func (s Status) Terminal() bool {
	switch s {
	case StatusSuccess, StatusFailure, StatusCanceled, StatusError, StatusSkipped:
		return true
	}
	return false
}

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusWaiting, StatusQueued, StatusRunning:
		return true
	}
	return s.Terminal()
}

var transitions = map[Status][]Status{
	StatusPending: {StatusQueued, StatusWaiting, StatusRunning, StatusSuccess, StatusFailure, StatusCanceled, StatusError, StatusSkipped},
	StatusWaiting: {StatusPending, StatusQueued, StatusCanceled, StatusError, StatusSkipped, StatusFailure},
	StatusQueued:  {StatusRunning, StatusCanceled, StatusError, StatusSkipped, StatusSuccess, StatusFailure},
	StatusRunning: {StatusSuccess, StatusFailure, StatusCanceled, StatusError},
}

// CanTransition reports whether a status may change from from to to.
func CanTransition(from, to Status) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// predecessors lists the statuses from which to may be reached.
func predecessors(to Status) []Status {
	var out []Status
	for _, from := range []Status{StatusPending, StatusWaiting, StatusQueued, StatusRunning} {
		if CanTransition(from, to) {
			out = append(out, from)
		}
	}
	return out
}

// Unfinished lists the non-terminal statuses.
var unfinished = []Status{StatusPending, StatusWaiting, StatusQueued, StatusRunning}

// Triggers say what started a run (Run.Trigger).
const (
	TriggerWebhook = "webhook"
	TriggerGitHook = "githook"
	TriggerManual  = "manual"
	TriggerRerun   = "rerun"
	TriggerCron    = "cron" // a tick of a cron schedule
	TriggerAt      = "at"   // a one-off run at a time
)

// Forge kinds (Repo.Forge).
const (
	ForgeGitHub  = "github"
	ForgeGitea   = "gitea"
	ForgeGitLab  = "gitlab"
	ForgeGeneric = "generic"
	ForgeGit     = "git"
)

// Approval is a stage's approval state.
type Approval string

// Approval states. A stage whose plan asks for approval starts with
// ApprovalWaiting; others have ApprovalNone.
const (
	ApprovalNone     Approval = "none"
	ApprovalWaiting  Approval = "waiting"
	ApprovalApproved Approval = "approved"
	ApprovalRejected Approval = "rejected"
)
