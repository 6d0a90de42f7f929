package runner

import (
	"errors"
	"strconv"

	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/store"
)

// StepLog is one step attempt's log, as the API's and the UI's log URLs
// name it.
type StepLog struct {
	Stage   *store.Stage
	Step    *store.Step
	Attempt int
	Key     logstore.Key
}

// Why FindStepLog found no log; each caller answers them in its own way.
var (
	ErrNoStage    = errors.New("no such stage")
	ErrNoStep     = errors.New("no such step")
	ErrBadAttempt = errors.New("attempt must be a positive number")
	ErrNoAttempt  = errors.New("no such attempt")
)

// FindStepLog finds the log of run's stage stageKey, step step (its
// position, or with byName also its name: the first step in plan order
// that matches) and attempt ("" means the stage's latest).
func FindStepLog(run *store.Run, stageKey, step string, byName bool, attempt string) (StepLog, error) {
	var l StepLog
	for _, st := range run.Stages {
		if st.Key == stageKey {
			l.Stage = st
		}
	}
	if l.Stage == nil {
		return l, ErrNoStage
	}
	for _, s := range l.Stage.Steps {
		if strconv.Itoa(s.Position) == step || (byName && s.Name == step) {
			l.Step = s
			break
		}
	}
	if l.Step == nil {
		return l, ErrNoStep
	}
	l.Attempt = l.Stage.Attempt
	if attempt != "" {
		n, err := strconv.Atoi(attempt)
		if err != nil || n < 1 {
			return l, ErrBadAttempt
		}
		if n > l.Stage.Attempt {
			return l, ErrNoAttempt
		}
		l.Attempt = n
	}
	l.Key = LogKey(run.ID, l.Stage.Key, l.Attempt, l.Step.Position)
	return l, nil
}

// StepEnded reports whether attempt of the step at position pos of st
// can no longer write its log: a later attempt began, the stage or the
// step ended, or the stage has no such step. A reader of the log uses it
// to know the log is complete even when its writer went away (a crashed
// process), so a follower still ends.
func StepEnded(st *store.Stage, attempt, pos int) bool {
	if st.Attempt != attempt || st.Status.Terminal() {
		return true
	}
	for _, s := range st.Steps {
		if s.Position == pos {
			return s.Status.Terminal()
		}
	}
	return true
}
