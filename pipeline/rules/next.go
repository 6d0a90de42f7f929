package rules

import "github.com/runnel-ci/runnel/pipeline"

// Need is one of a stage's needs as the stage sees it.
type Need struct {
	ID     string
	Done   bool   // it has finished; Status and Reason say how
	Status Status // its final status (Done)
	Reason string // why it ended so (Done)
}

// Stage is what Next decides on: a stage that has not started.
type Stage struct {
	RunOn    pipeline.RunOn // "" means pipeline.RunOnSuccess
	Needs    []Need
	Approval bool // a person must approve it before it starts
}

// Action is what a stage that has not started does next.
type Action int

// Actions.
const (
	// Wait: some needs have not finished (Decision.Needs).
	Wait Action = iota
	// Skip: it never runs (Decision.Reason; Decision.Needs lists the
	// failed needs for ReasonNeedsFailed).
	Skip
	// AwaitApproval: it waits for a person's approval.
	AwaitApproval
	// Start: nothing in the plan holds it. The server still waits for its
	// concurrency group (GroupFree) and for an agent with its labels.
	Start
)

// Decision is Next's answer.
type Decision struct {
	Action Action
	Reason string
	Needs  []string
}

// Next decides what a stage that has not started does, in this order:
// it waits until every need has finished; then `when.status` (RunOn)
// decides whether it runs at all, a need counting as failed when
// FailsDependents says so; then approval holds it.
func Next(s Stage) Decision {
	var waiting, failed []string
	for _, n := range s.Needs {
		switch {
		case !n.Done:
			waiting = append(waiting, n.ID)
		case FailsDependents(n.Status, n.Reason):
			failed = append(failed, n.ID)
		}
	}
	if len(waiting) > 0 {
		return Decision{Action: Wait, Needs: waiting}
	}
	switch s.RunOn {
	case pipeline.RunOnAlways:
	case pipeline.RunOnFailure:
		if len(failed) == 0 {
			return Decision{Action: Skip, Reason: ReasonNoNeedFailed}
		}
	default: // success, and the zero value
		if len(failed) > 0 {
			return Decision{Action: Skip, Reason: ReasonNeedsFailed, Needs: failed}
		}
	}
	if s.Approval {
		return Decision{Action: AwaitApproval}
	}
	return Decision{Action: Start}
}

// FailsDependents reports whether a finished stage counts as failed for
// the stages that need it: it failed (Status.Failed), or it was skipped
// because a need of its own failed, so a `when: {status: failure}` stage
// sees failures further up the graph.
func FailsDependents(s Status, reason string) bool {
	return s.Failed() || s == Skipped && reason == ReasonNeedsFailed
}

// GroupHolder is another unfinished stage of the same concurrency group
// in the same repository, as GroupFree sees it.
type GroupHolder struct {
	RunNumber int64 // the number of its run in the repository
	Started   bool  // queued or running: it holds the group
}

// GroupFree reports whether a stage of run number run may take its
// concurrency group: no other stage of the group is queued or running,
// and no earlier run still has an unfinished stage of the group, so the
// group is taken in commit order.
func GroupFree(run int64, others []GroupHolder) bool {
	for _, o := range others {
		if o.Started || o.RunNumber < run {
			return false
		}
	}
	return true
}
