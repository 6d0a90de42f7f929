package stage

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// Scheduler runs every stage of a Plan with an Executor, as a DAG: a stage
// starts the moment all of its needs are done, so independent stages run in
// parallel and no stage waits for an unrelated "level" to finish. This is
// the scheduler of `runnel run`; the server schedules onto agents itself.
type Scheduler struct {
	Executor *Executor
	// Spec builds the engine Spec of a stage; required.
	Spec func(st *pipeline.Stage) *engine.Spec
	// StageStarted and StageFinished, when set, are called from the
	// scheduler's goroutine (never concurrently with each other).
	// StageFinished is called for skipped and cancelled stages too.
	StageStarted  func(st *pipeline.Stage)
	StageFinished func(st *pipeline.Stage, res Result)
	// MaxParallel bounds the stages running at once; 0 means no bound.
	MaxParallel int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RunResult is the outcome of a whole plan.
type RunResult struct {
	// Status is success when no stage failed (allowed step failures and
	// skipped stages do not count), canceled when the run was cancelled,
	// failure otherwise.
	Status rules.Status `json:"status"`
	Stages []Result     `json:"stages"` // in plan order
}

// Run executes plan and returns when every stage has finished or been
// skipped. Cancelling ctx stops running stages (they are torn down) and
// marks stages that had not started as canceled. The error is non-nil
// only for a malformed plan (a need that is not in the plan, a cycle).
func (s *Scheduler) Run(ctx context.Context, plan *pipeline.Plan) (RunResult, error) {
	if err := checkDAG(plan); err != nil {
		return RunResult{}, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	type done struct {
		idx int
		res Result
	}
	var (
		n        = len(plan.Stages)
		results  = make([]*Result, n)
		started  = make([]bool, n)
		index    = make(map[string]int, n)
		finished = make(chan done, n)
		wg       sync.WaitGroup
		running  int
	)
	defer wg.Wait()
	for i, st := range plan.Stages {
		index[st.ID] = i
	}
	finish := func(i int, res Result) {
		results[i] = &res
		if s.StageFinished != nil {
			s.StageFinished(plan.Stages[i], res)
		}
	}
	for {
		progressed := true
		for progressed {
			progressed = false
			for i, st := range plan.Stages {
				if started[i] {
					continue
				}
				d := rules.Next(ruleStage(st, index, results))
				switch {
				case d.Action == rules.Wait:
					continue
				case ctx.Err() != nil:
					started[i] = true
					finish(i, notRun(st, rules.Canceled, rules.ReasonCanceledByUser, now()))
					progressed = true
					continue
				case d.Action == rules.Skip:
					started[i] = true
					finish(i, notRun(st, rules.Skipped, d.Reason, now()))
					progressed = true
					continue
				}
				if s.MaxParallel > 0 && running >= s.MaxParallel {
					continue
				}
				started[i] = true
				running++
				if s.StageStarted != nil {
					s.StageStarted(st)
				}
				wg.Add(1)
				go func(i int, st *pipeline.Stage) {
					defer wg.Done()
					finished <- done{i, s.Executor.Run(ctx, s.Spec(st))}
				}(i, st)
			}
		}
		if running == 0 {
			break
		}
		d := <-finished
		running--
		finish(d.idx, d.res)
	}

	out := RunResult{Status: rules.Success, Stages: make([]Result, n)}
	for i, r := range results {
		out.Stages[i] = *r
		if r.Status.Failed() {
			out.Status = rules.Failure
		}
	}
	if ctx.Err() != nil {
		out.Status = rules.Canceled
	}
	return out, nil
}

// ruleStage describes st for rules.Next from the results so far. `runnel
// run` asks no one for approval: a stage that asks for it runs.
func ruleStage(st *pipeline.Stage, index map[string]int, results []*Result) rules.Stage {
	rs := rules.Stage{RunOn: st.RunOn, Needs: make([]rules.Need, len(st.Needs))}
	for i, need := range st.Needs {
		rs.Needs[i] = rules.Need{ID: need}
		if r := results[index[need]]; r != nil {
			rs.Needs[i] = rules.Need{ID: need, Done: true, Status: rules.Status(r.Status), Reason: r.Reason}
		}
	}
	return rs
}

func notRun(st *pipeline.Stage, status rules.Status, reason string, at time.Time) Result {
	res := Result{StageID: st.ID, Status: status, Reason: reason, Started: at, Finished: at,
		Steps: make([]StepResult, len(st.Steps))}
	for i, step := range st.Steps {
		res.Steps[i] = StepResult{Name: step.Name, Status: rules.Skipped}
	}
	return res
}

// checkDAG verifies that every need names a stage of the plan and that the
// needs form no cycle, so Run cannot wait forever.
func checkDAG(plan *pipeline.Plan) error {
	index := make(map[string]int, len(plan.Stages))
	for i, st := range plan.Stages {
		if _, dup := index[st.ID]; dup {
			return fmt.Errorf("plan: duplicate stage id %q", st.ID)
		}
		index[st.ID] = i
	}
	for _, st := range plan.Stages {
		for _, need := range st.Needs {
			if _, ok := index[need]; !ok {
				return fmt.Errorf("plan: stage %q needs unknown stage %q", st.ID, need)
			}
		}
	}
	const (
		unseen = iota
		visiting
		visited
	)
	state := make([]int, len(plan.Stages))
	var visit func(i int, path []string) error
	visit = func(i int, path []string) error {
		st := plan.Stages[i]
		switch state[i] {
		case visiting:
			return fmt.Errorf("plan: needs cycle: %s", strings.Join(append(path, st.ID), " -> "))
		case visited:
			return nil
		}
		state[i] = visiting
		for _, need := range st.Needs {
			if err := visit(index[need], append(path, st.ID)); err != nil {
				return err
			}
		}
		state[i] = visited
		return nil
	}
	for i := range plan.Stages {
		if err := visit(i, nil); err != nil {
			return err
		}
	}
	return nil
}

// Select returns a plan with only the named stages and, transitively,
// every stage they need. A name matches a stage's ID or its Name, so
// "test" selects every matrix expansion of the test stage. Stage order is
// kept. It is an error if a name matches nothing.
func Select(plan *pipeline.Plan, names []string) (*pipeline.Plan, error) {
	if len(names) == 0 {
		return plan, nil
	}
	index := make(map[string]*pipeline.Stage, len(plan.Stages))
	for _, st := range plan.Stages {
		index[st.ID] = st
	}
	keep := make(map[string]bool)
	var add func(id string)
	add = func(id string) {
		if keep[id] {
			return
		}
		keep[id] = true
		if st, ok := index[id]; ok {
			for _, need := range st.Needs {
				add(need)
			}
		}
	}
	for _, name := range names {
		matched := false
		for _, st := range plan.Stages {
			if st.ID == name || st.Name == name {
				add(st.ID)
				matched = true
			}
		}
		if !matched {
			ids := make([]string, 0, len(plan.Stages))
			for _, st := range plan.Stages {
				ids = append(ids, st.ID)
			}
			return nil, fmt.Errorf("select stage %q: no such stage in the plan (have %s)", name, strings.Join(ids, ", "))
		}
	}
	out := &pipeline.Plan{}
	for _, st := range plan.Stages {
		if keep[st.ID] {
			out.Stages = append(out.Stages, st)
		}
	}
	return out, nil
}
