package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/docker/docker/client"
)

// report is everything the harness prints.
type report struct {
	load                    *load
	runs                    int
	outcome                 outcome
	doubled, rerun          []string
	recovery                recovery
	left                    leftovers
	agentKills, serverKills int
	elapsed                 time.Duration
	spoolLeft               int
	steps, recentSteps      int // step containers started, in all and in the last minute
}

// broken reports whether the promise was broken: something lost, stuck,
// run twice or failed although nothing it ran failed.
func (r *report) broken() bool {
	o := r.outcome
	return len(o.lost)+len(o.stuck)+len(o.duplicates)+len(r.doubled)+len(o.falselyFailed) > 0
}

func (r *report) print(w io.Writer) {
	spooled, acceptedPushes := 0, 0
	for _, p := range r.load.pushes {
		if p.spooled {
			spooled++
		}
		if p.accepted {
			acceptedPushes++
		}
	}
	firstOK, retried := 0, 0
	for _, d := range r.load.deliveries {
		if d.firstOK {
			firstOK++
		}
		retried += d.retries
	}
	fmt.Fprintf(w, "chaos: %d pushes (%d accepted, %d of them spooled), %d deliveries in bursts (%d accepted at once, %d resends), %d agent SIGKILLs, %d server SIGKILLs, %s\n",
		len(r.load.pushes), acceptedPushes, spooled, len(r.load.deliveries), firstOK, retried, r.agentKills, r.serverKills, r.elapsed.Round(time.Second))
	fmt.Fprintf(w, "runs: %d; step containers: %d (%.1f a minute), %d in the last minute\n",
		r.runs, r.steps, float64(r.steps)/r.elapsed.Minutes(), r.recentSteps)
	line := func(name string, items []string) {
		fmt.Fprintf(w, "%-32s %d\n", name, len(items))
		for i, it := range items {
			if i == 10 {
				fmt.Fprintf(w, "    … %d more\n", len(items)-10)
				break
			}
			fmt.Fprintf(w, "    %s\n", it)
		}
	}
	o := r.outcome
	line("lost", o.lost)
	line("stuck", o.stuck)
	line("duplicate runs", o.duplicates)
	line("doubled (stage in two places)", r.doubled)
	line("falsely failed", o.falselyFailed)
	line("re-run while its agent was alive", r.rerun)
	line("stored logs missing lines", o.logsShort)
	fmt.Fprintf(w, "%-32s %d\n", "pushes left in the hook spool", r.spoolLeft)
	fmt.Fprintf(w, "%-32s containers %d, networks %d, volumes %d\n", "docker resources left", r.left.containers, r.left.networks, r.left.volumes)
	fmt.Fprintf(w, "%-32s %s\n", "agent SIGKILL -> next attempt", r.recovery)
	verdict := "PASS"
	if r.broken() {
		verdict = "FAIL: lost, stuck, duplicate, doubled or falsely failed runs"
	}
	fmt.Fprintln(w, "chaos:", verdict)
}

// settle waits until every accepted push and delivery has a finished run,
// then reads every run. It gives up settle after the last kill, or after
// the last container event if that is later (a loaded machine still
// working through a backlog is not stuck), but at most 4×settle after the
// last kill.
func settle(ctx context.Context, o options, c *cluster, l *load, lastKill time.Time, lastEvent func() time.Time) (*report, error) {
	want := l.accepted()
	limit := lastKill.Add(4 * o.settle)
	var runs []runInfo
	for {
		var err error
		runs, err = listRuns(ctx, c)
		if err != nil {
			return nil, err
		}
		deadline := lastKill
		if e := lastEvent(); e.After(deadline) {
			deadline = e
		}
		if done(want, runs) || time.Now().After(deadline.Add(o.settle)) || time.Now().After(limit) {
			break
		}
		if !sleepCtx(ctx, 2*time.Second) {
			return nil, ctx.Err()
		}
	}
	for i := range runs {
		if err := readRun(ctx, c, &runs[i]); err != nil {
			return nil, err
		}
	}
	rep := &report{load: l, runs: len(runs), outcome: judge(want, runs, wantLog)}
	rep.spoolLeft = countSpool(filepath.Join(c.dir, "chaos.git", "runnel-spool"))
	return rep, nil
}

// done: every wanted commit has a run and every run has finished.
func done(want []string, runs []runInfo) bool {
	have := map[string]bool{}
	for _, r := range runs {
		if !terminal(r.status) {
			return false
		}
		have[r.commit] = true
	}
	for _, c := range want {
		if !have[c] {
			return false
		}
	}
	return true
}

// listRuns pages through every run.
func listRuns(ctx context.Context, c *cluster) ([]runInfo, error) {
	var out []runInfo
	before := ""
	for {
		var page struct {
			Runs []struct {
				ID     int64  `json:"id"`
				Commit string `json:"commit"`
				Status string `json:"status"`
			} `json:"runs"`
		}
		if err := c.getRetry(ctx, "/api/v1/runs?limit=1000"+before, &page); err != nil {
			return nil, err
		}
		for _, r := range page.Runs {
			out = append(out, runInfo{id: r.ID, commit: r.Commit, status: r.Status})
		}
		if len(page.Runs) < 1000 {
			return out, nil
		}
		before = fmt.Sprintf("&before=%d", page.Runs[len(page.Runs)-1].ID)
	}
}

// readRun fills r's stages, and the logs of a successful run.
func readRun(ctx context.Context, c *cluster, r *runInfo) error {
	var d struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
		Stages []struct {
			ID      string `json:"id"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Attempt int    `json:"attempt"`
			Steps   []struct {
				Name     string `json:"name"`
				Status   string `json:"status"`
				ExitCode *int   `json:"exit_code"`
				Log      string `json:"log"`
			} `json:"steps"`
		} `json:"stages"`
	}
	if err := c.getRetry(ctx, fmt.Sprintf("/api/v1/runs/%d", r.id), &d); err != nil {
		return err
	}
	r.status, r.reason = d.Status, d.Reason
	for _, st := range d.Stages {
		si := stageInfo{id: st.ID, status: st.Status, reason: st.Reason, attempt: st.Attempt}
		for _, sp := range st.Steps {
			step := stepInfo{name: sp.Name, status: sp.Status, exit: sp.ExitCode}
			if d.Status == "success" && sp.Log != "" {
				b, err := c.get(ctx, sp.Log)
				if err != nil {
					return err
				}
				step.log = string(b)
			}
			si.steps = append(si.steps, step)
		}
		r.stages = append(r.stages, si)
	}
	return nil
}

// waitLeftovers gives teardowns up to 30 s, then counts what the install
// left on Docker.
func waitLeftovers(ctx context.Context, cli *client.Client, install string) (leftovers, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := countLeft(ctx, cli, install)
		if err != nil || l.total() == 0 || time.Now().After(deadline) {
			return l, err
		}
		if !sleepCtx(ctx, time.Second) {
			return l, ctx.Err()
		}
	}
}
