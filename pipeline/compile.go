package pipeline

import (
	"container/heap"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Plan compiles the pipeline for one event: it applies the pipeline-level
// when filter (ErrSkipped when it does not match), each stage's when filter,
// expands matrices, resolves needs to stage IDs and orders the stages
// topologically, ready stages in file order.
//
// A need on a stage that the stage filters removed is dropped: the needing
// stage runs without waiting for it. A need on a matrix stage is a need on
// every one of its expansions. When no stage is left, Plan returns
// ErrSkipped.
//
// Plan does not check environments: every stage runs whatever its
// environment (runnel run, lint). The server uses PlanFor.
func (p *Pipeline) Plan(ev Event) (*Plan, error) {
	return p.plan(ev, nil)
}

// PlanFor is Plan for a server that declares environments: a stage whose
// environment is not one of envs makes the file invalid (a Diagnostics
// error with CodeUndeclaredEnvironment), and a stage whose environment
// does not allow ev (see Environment.Allows) is left out as if its when
// filter did not match.
func (p *Pipeline) PlanFor(ev Event, envs []Environment) (*Plan, error) {
	if envs == nil {
		envs = []Environment{}
	}
	return p.plan(ev, envs)
}

func (p *Pipeline) plan(ev Event, envs []Environment) (*Plan, error) {
	if !slices.Contains(eventKinds, ev.Kind) {
		return nil, fmt.Errorf("plan %s: unknown event kind %q", p.Name, ev.Kind)
	}
	if err := p.checkEnvironments(envs); err != nil {
		return nil, err
	}
	if !p.when.match(ev) {
		return nil, ErrSkipped
	}
	ev, err := p.withInputs(ev)
	if err != nil {
		return nil, err
	}
	base := eventEnv(ev)
	unset := p.unsetVars()
	ids := map[string][]string{} // stage name -> IDs of its expansions
	var order []*Stage
	for _, sd := range p.stages {
		if !sd.when.match(ev) || !allows(envs, sd.environment, ev) {
			continue
		}
		for _, st := range sd.expand(p.env, base, unset) {
			ids[sd.name] = append(ids[sd.name], st.ID)
			order = append(order, st)
		}
	}
	if len(order) == 0 {
		return nil, ErrSkipped
	}
	byName := map[string]*stageDef{}
	for _, sd := range p.stages {
		byName[sd.name] = sd
	}
	for _, st := range order {
		sd := byName[st.Name]
		for _, nd := range sd.needs {
			st.Needs = append(st.Needs, ids[nd]...)
		}
		st.Receive = sd.receive(byName, ids)
	}
	sorted, err := topoSort(order)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", p.Name, err)
	}
	return &Plan{Stages: sorted}, nil
}

// topoSort orders stages so that every stage comes after its needs; among
// stages whose needs are all placed, the earliest in the input comes first.
// Kahn's algorithm with a min-heap of input positions: O((V+E) log V).
func topoSort(stages []*Stage) ([]*Stage, error) {
	index := make(map[string]int, len(stages))
	for i, s := range stages {
		index[s.ID] = i
	}
	waiting := make([]int, len(stages))   // unplaced needs per stage
	needers := make([][]int, len(stages)) // stages that need stage i
	ready := &intHeap{}
	for i, s := range stages {
		for _, nd := range s.Needs {
			j, ok := index[nd]
			if !ok {
				return nil, fmt.Errorf("stage %s needs unknown stage %s", s.ID, nd)
			}
			waiting[i]++
			needers[j] = append(needers[j], i)
		}
		if waiting[i] == 0 {
			heap.Push(ready, i)
		}
	}
	out := make([]*Stage, 0, len(stages))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		out = append(out, stages[i])
		for _, k := range needers[i] {
			if waiting[k]--; waiting[k] == 0 {
				heap.Push(ready, k)
			}
		}
	}
	if len(out) != len(stages) {
		// Parse rejects cycles, so this is a bug, not bad input.
		return nil, fmt.Errorf("needs form a cycle")
	}
	return out, nil
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// expand returns the compiled stages of sd: one, or one per matrix
// combination. Env values are expanded (expandEnv) against the stage's
// Runnel and matrix variables, with unset's names empty where the run
// leaves them unset.
func (sd *stageDef) expand(pipelineEnv, eventEnv, unset map[string]string) []*Stage {
	combos := sd.combos
	if len(combos) == 0 {
		combos = [][]string{nil}
	}
	out := make([]*Stage, 0, len(combos))
	for _, c := range combos {
		st := &Stage{
			ID:          sd.name,
			Name:        sd.name,
			Image:       sd.image,
			Labels:      maps.Clone(sd.labels),
			RunOn:       sd.runOn,
			Concurrency: sd.concurrency,
			Approval:    sd.approval,
			Environment: sd.environment,
			Timeout:     sd.timeout,
			Env:         map[string]string{},
			Container:   sd.container,
		}
		vars := maps.Clone(unset)
		if c != nil {
			st.Matrix = map[string]string{}
			parts := make([]string, len(c))
			for i, axis := range sd.axes {
				st.Matrix[axis] = c[i]
				parts[i] = axis + "=" + c[i]
				up := strings.ToUpper(axis)
				vars[up] = c[i]
				vars["MATRIX_"+up] = c[i]
			}
			st.ID = sd.name + "[" + strings.Join(parts, ",") + "]"
		}
		maps.Copy(vars, eventEnv)
		vars["RUNNEL_STAGE"] = st.ID
		maps.Copy(st.Env, expandAll(pipelineEnv, vars))
		maps.Copy(st.Env, expandAll(sd.env, vars))
		for k, v := range vars {
			_, isUnset := unset[k]
			if _, set := eventEnv[k]; isUnset && !set {
				continue // expands to "", but is not set
			}
			st.Env[k] = v
		}
		for _, u := range sd.secrets {
			st.Secrets = append(st.Secrets, u.ref)
		}
		for _, svc := range sd.services {
			svc.Command = slices.Clone(svc.Command)
			svc.Env = expandAll(svc.Env, vars)
			svc.Ready.Command = slices.Clone(svc.Ready.Command)
			st.Services = append(st.Services, svc)
		}
		for _, step := range sd.steps {
			cp := *step
			cp.Env = expandAll(step.Env, vars)
			cp.Retry.ExitCodes = slices.Clone(step.Retry.ExitCodes)
			st.Steps = append(st.Steps, &cp)
		}
		sd.copyTransfers(st)
		if sd.deploy != nil {
			st.Deploy = sd.deploy.compile(st.Env, vars)
			st.Steps = append(st.Steps, &Step{Name: DeployStep, Deploy: true})
		}
		out = append(out, st)
	}
	return out
}

// eventEnv returns the RUNNEL_* variables of ev. These carry untrusted
// text; they only ever reach a step as environment variables.
func eventEnv(ev Event) map[string]string {
	env := map[string]string{
		"CI":                    "true",
		"RUNNEL_EVENT":          ev.Kind,
		"RUNNEL_BRANCH":         ev.Branch,
		"RUNNEL_TAG":            ev.Tag,
		"RUNNEL_COMMIT":         ev.Commit,
		"RUNNEL_COMMIT_MESSAGE": ev.Message,
		"RUNNEL_COMMIT_AUTHOR":  ev.Author,
		"RUNNEL_REPO":           ev.Repo,
		"RUNNEL_REF":            ev.Ref,
	}
	if ev.Schedule != "" {
		env["RUNNEL_SCHEDULE"] = ev.Schedule
	}
	// Sorted, so that when two input names sanitise to the same variable
	// the result does not depend on map order: the last name wins.
	for _, k := range slices.Sorted(maps.Keys(ev.Inputs)) {
		env["RUNNEL_INPUT_"+SanitizeEnvName(k)] = ev.Inputs[k]
	}
	return env
}

// SanitizeEnvName upper-cases name and replaces every character outside
// [A-Z0-9_] with "_". An empty name becomes "_".
func SanitizeEnvName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// match reports whether ev passes every filter that is set.
func (f filter) match(ev Event) bool {
	if len(f.events) > 0 && !slices.Contains(f.events, ev.Kind) {
		return false
	}
	if len(f.branches) > 0 && !matchAny(f.branches, ev.Branch) {
		return false
	}
	if len(f.tags) > 0 && !matchAny(f.tags, ev.Tag) {
		return false
	}
	if (len(f.paths) > 0 || len(f.pathsIgnore) > 0) && ev.Changed != nil {
		hit := false
		for _, c := range ev.Changed {
			if matchAny(f.pathsIgnore, c) {
				continue
			}
			if len(f.paths) == 0 || matchAny(f.paths, c) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// matchAny reports whether s is non-empty and matches one of the globs.
func matchAny(globs []string, s string) bool {
	if s == "" {
		return false
	}
	for _, g := range globs {
		if Match(g, s) {
			return true
		}
	}
	return false
}
