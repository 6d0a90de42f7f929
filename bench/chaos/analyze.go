package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// span is one step container's life, from Docker's start and die events.
type span struct {
	id         string
	run, stage string
	attempt    int
	pid        string // the agent process that made it (runnel.pid)
	start, end time.Time
	ended      bool
	exit       string
}

// stageKey names a stage of a run.
type stageKey struct{ run, stage string }

func (k stageKey) String() string { return "run " + k.run + " stage " + k.stage }

// byStage groups spans by stage, each group by start time.
func byStage(spans []span) map[stageKey][]span {
	m := map[stageKey][]span{}
	for _, s := range spans {
		k := stageKey{s.run, s.stage}
		m[k] = append(m[k], s)
	}
	for _, ss := range m {
		sort.Slice(ss, func(i, j int) bool { return ss[i].start.Before(ss[j].start) })
	}
	return m
}

// doubled lists the stages that ran in two places at once: two of their
// step containers were running at the same moment. A stage's steps run
// one after another, so any overlap is two copies of the stage. A span
// without an end counts as running until end.
func doubled(spans []span, end time.Time) []string {
	var out []string
	for k, ss := range byStage(spans) {
		last := time.Time{} // the latest end so far
		for i, s := range ss {
			e := s.end
			if !s.ended {
				e = end
			}
			if i > 0 && s.start.Before(last) {
				out = append(out, fmt.Sprintf("%s: attempt %d (pid %s) started while an earlier container ran", k, s.attempt, s.pid))
				break
			}
			if e.After(last) {
				last = e
			}
		}
	}
	sort.Strings(out)
	return out
}

// sighting is the first sign of a stage attempt on Docker: its first
// container was created (by agent process pid) at at.
type sighting struct {
	run, stage string
	attempt    int
	pid        string
	at         time.Time
}

// rerunWhileAlive lists stage attempts that began while the agent process
// of the previous attempt was still alive: deaths holds when each agent
// process (by pid) was killed; an absent pid never was.
func rerunWhileAlive(seen []sighting, deaths map[string]time.Time) []string {
	byStage := map[stageKey][]sighting{}
	for _, s := range seen {
		k := stageKey{s.run, s.stage}
		byStage[k] = append(byStage[k], s)
	}
	var out []string
	for k, ss := range byStage {
		sort.Slice(ss, func(i, j int) bool { return ss[i].attempt < ss[j].attempt })
		for i := 1; i < len(ss); i++ {
			prev, next := ss[i-1], ss[i]
			died, dead := deaths[prev.pid]
			if !dead || died.After(next.at) {
				out = append(out, fmt.Sprintf("%s: attempt %d began while pid %s of attempt %d was alive", k, next.attempt, prev.pid, prev.attempt))
			}
		}
	}
	sort.Strings(out)
	return out
}

// kill is one SIGKILL of an agent process.
type kill struct {
	pid string
	at  time.Time
}

// recovery is how long after an agent's SIGKILL the stages it was running
// started their next attempt; lost counts stages that never did.
type recovery struct {
	delays []time.Duration
	lost   int
}

// killToNextAttempt measures, for every stage attempt that was under way
// in a killed agent process at the kill (its first container made by that
// process before the kill, its step container not ended before it; each
// chaos stage has one step), the time from the kill to the first
// container of a later attempt of that stage.
func killToNextAttempt(seen []sighting, spans []span, kills []kill) recovery {
	var r recovery
	endedAt := map[attemptKey]time.Time{}
	for _, s := range spans {
		if s.ended {
			endedAt[attemptKey{s.run, s.stage, s.attempt}] = s.end
		}
	}
	for _, kl := range kills {
		for _, s := range seen {
			k := attemptKey{s.run, s.stage, s.attempt}
			if e, ok := endedAt[k]; s.pid != kl.pid || s.at.After(kl.at) || ok && e.Before(kl.at) {
				continue
			}
			next := time.Time{}
			for _, n := range seen {
				if n.run == s.run && n.stage == s.stage && n.attempt > s.attempt && n.at.After(kl.at) && (next.IsZero() || n.at.Before(next)) {
					next = n.at
				}
			}
			if next.IsZero() {
				r.lost++
				continue
			}
			r.delays = append(r.delays, next.Sub(kl.at))
		}
	}
	sort.Slice(r.delays, func(i, j int) bool { return r.delays[i] < r.delays[j] })
	return r
}

func (r recovery) String() string {
	if len(r.delays) == 0 {
		return fmt.Sprintf("no stage was running in a killed agent (%d not retried)", r.lost)
	}
	med := r.delays[len(r.delays)/2]
	return fmt.Sprintf("n=%d min %s median %s max %s (%d not retried)", len(r.delays),
		r.delays[0].Round(100*time.Millisecond), med.Round(100*time.Millisecond),
		r.delays[len(r.delays)-1].Round(100*time.Millisecond), r.lost)
}

// runInfo is what the harness knows of a run from the API.
type runInfo struct {
	id     int64
	commit string
	status string
	reason string
	stages []stageInfo
}

type stageInfo struct {
	id, status, reason string
	attempt            int
	steps              []stepInfo
}

type stepInfo struct {
	name, status string
	exit         *int
	log          string // the stored log, read for successful runs
}

// outcome is the verdict over every accepted push and delivery.
type outcome struct {
	lost, stuck, duplicates, falselyFailed, logsShort []string
}

// judge compares the accepted commits (each should have exactly one run)
// with the runs. Every step of the chaos pipeline succeeds on its own, so
// a finished run that is not a success failed falsely. want gives the
// exact log of each stage's one step.
func judge(accepted []string, runs []runInfo, want func(stage string) string) outcome {
	var o outcome
	byCommit := map[string][]runInfo{}
	for _, r := range runs {
		byCommit[r.commit] = append(byCommit[r.commit], r)
	}
	for _, c := range accepted {
		switch n := len(byCommit[c]); {
		case n == 0:
			o.lost = append(o.lost, "commit "+c[:12])
		case n > 1:
			o.duplicates = append(o.duplicates, fmt.Sprintf("commit %s: %d runs", c[:12], n))
		}
	}
	for _, r := range runs {
		switch {
		case !terminal(r.status):
			o.stuck = append(o.stuck, fmt.Sprintf("run %d %s", r.id, r.status))
		case r.status != "success":
			o.falselyFailed = append(o.falselyFailed, fmt.Sprintf("run %d %s (%s)", r.id, r.status, failedStages(r)))
		default:
			for _, st := range r.stages {
				for _, sp := range st.steps {
					if sp.log != want(st.id) {
						o.logsShort = append(o.logsShort, fmt.Sprintf("run %d stage %s attempt %d: %d of %d lines",
							r.id, st.id, st.attempt, strings.Count(sp.log, "\n"), strings.Count(want(st.id), "\n")))
					}
				}
			}
		}
	}
	return o
}

func failedStages(r runInfo) string {
	var parts []string
	if r.reason != "" {
		parts = append(parts, r.reason)
	}
	for _, st := range r.stages {
		if st.status == "success" {
			continue
		}
		p := fmt.Sprintf("%s %s/%s attempt %d", st.id, st.status, st.reason, st.attempt)
		for _, sp := range st.steps {
			if sp.exit != nil && *sp.exit != 0 {
				p += fmt.Sprintf(" %s exit %d", sp.name, *sp.exit)
			}
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func terminal(status string) bool {
	switch status {
	case "success", "failure", "canceled", "error", "skipped":
		return true
	}
	return false
}
