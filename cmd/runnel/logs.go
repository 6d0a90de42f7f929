package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, (*app).logsCommand) }

type logsFlags struct {
	client clientFlags
	follow bool
}

func (a *app) logsCommand() *cobra.Command {
	var f logsFlags
	cmd := &cobra.Command{
		Use:   "logs RUN [STAGE [STEP]]",
		Short: "Print the logs of a run's steps; -f follows them live until they end",
		Long: `Logs prints the log of every step of RUN in plan order, or of one STAGE
(a matrix stage's name selects all its variants) or one STEP (a name or a
position from 0). With -f it follows steps that are still running, through
the same endpoint as the web UI, waits for stages that have not started,
and exits once every selected step has ended.`,
		Args: usageArgs(cobra.RangeArgs(1, 3)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := runID(args[0])
			if err != nil {
				return err
			}
			c, err := a.client(f.client)
			if err != nil {
				return err
			}
			var stage, step string
			if len(args) > 1 {
				stage = args[1]
			}
			if len(args) > 2 {
				step = args[2]
			}
			return a.logs(cmd.Context(), c, id, stage, step, f.follow)
		},
	}
	a.addClientFlags(cmd, &f.client)
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "follow running steps until they end")
	return cmd
}

// stepRef names one step of a run.
type stepRef struct{ stage, step string }

func (a *app) getRun(ctx context.Context, c *apiClient, id int64) (runView, error) {
	var r runView
	err := c.call(ctx, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &r)
	return r, err
}

// selectSteps returns the steps of r that stage and step select.
func selectSteps(r runView, stage, step string) ([]stepRef, error) {
	var out []stepRef
	for _, st := range r.Stages {
		if stage != "" && st.ID != stage && !strings.HasPrefix(st.ID, stage+"[") {
			continue
		}
		for _, sp := range st.Steps {
			if step != "" && sp.Name != step && strconv.Itoa(sp.Position) != step {
				continue
			}
			out = append(out, stepRef{st.ID, strconv.Itoa(sp.Position)})
		}
	}
	if len(out) == 0 {
		switch {
		case stage == "":
			return nil, fmt.Errorf("run %d has no steps", r.ID)
		case step == "":
			return nil, fmt.Errorf("run %d has no stage %q", r.ID, stage)
		default:
			return nil, fmt.Errorf("run %d has no step %q in stage %q", r.ID, step, stage)
		}
	}
	return out, nil
}

func findStep(r runView, ref stepRef) (stageView, stepView, bool) {
	for _, st := range r.Stages {
		if st.ID != ref.stage {
			continue
		}
		for _, sp := range st.Steps {
			if strconv.Itoa(sp.Position) == ref.step {
				return st, sp, true
			}
		}
	}
	return stageView{}, stepView{}, false
}

func (a *app) logs(ctx context.Context, c *apiClient, id int64, stage, step string, follow bool) error {
	r, err := a.getRun(ctx, c, id)
	if err != nil {
		return err
	}
	refs, err := selectSteps(r, stage, step)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if len(refs) > 1 {
			_, sp, _ := findStep(r, ref)
			fmt.Fprintf(a.stdout, "==> %s / %s <==\n", ref.stage, sp.Name)
		}
		if follow {
			if r, err = a.followStep(ctx, c, id, ref); err != nil {
				return err
			}
			continue
		}
		if err := a.copyLog(ctx, c, id, ref, 0, false); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	if stage != "" {
		for _, ref := range refs {
			st, sp, _ := findStep(r, ref)
			fmt.Fprintf(a.stderr, "%s / %s: %s\n", st.ID, sp.Name, sp.Status)
		}
		return nil
	}
	// Following a whole run ends with the run.
	for wait := 100 * time.Millisecond; !terminalStatus(r.Status); wait = min(2*wait, time.Second) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if r, err = a.getRun(ctx, c, id); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stderr, "run %d: %s\n", r.ID, describeRun(r, ""))
	return nil
}

// followStep waits until the step's stage has an attempt, then follows
// its log until the step ends; when the stage moved on to a new attempt
// meanwhile (its agent was lost), it follows that one too. It returns the
// run as last seen.
func (a *app) followStep(ctx context.Context, c *apiClient, id int64, ref stepRef) (runView, error) {
	followed := 0
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		r, err := a.getRun(ctx, c, id)
		if err != nil {
			return r, err
		}
		st, sp, ok := findStep(r, ref)
		if !ok {
			return r, fmt.Errorf("run %d: step %s/%s is gone", id, ref.stage, ref.step)
		}
		switch {
		case st.Attempt > followed:
			if followed > 0 {
				fmt.Fprintf(a.stdout, "--- %s: attempt %d ---\n", ref.stage, st.Attempt)
			}
			followed = st.Attempt
			if err := a.copyLog(ctx, c, id, ref, st.Attempt, true); err != nil {
				return r, err
			}
			wait = 100 * time.Millisecond
			continue
		case terminalStatus(st.Status), terminalStatus(sp.Status) && st.Attempt == followed:
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// copyLog writes a step's log to stdout: the whole text, or with follow
// the live stream of an attempt until the server ends it.
func (a *app) copyLog(ctx context.Context, c *apiClient, id int64, ref stepRef, attempt int, follow bool) error {
	path := fmt.Sprintf("/api/v1/runs/%d/stages/%s/steps/%s/log", id, pathEscape(ref.stage), ref.step)
	var q []string
	if attempt > 0 {
		q = append(q, "attempt="+strconv.Itoa(attempt))
	}
	if follow {
		q = append(q, "follow=1")
	}
	if len(q) > 0 {
		path += "?" + strings.Join(q, "&")
	}
	resp, err := c.request(ctx, "GET", path, nil)
	if err != nil {
		if ae, ok := err.(*apiError); ok && ae.code == 404 && ae.msg == "no log yet" {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(a.stdout, resp.Body)
	return err
}

// pathEscape escapes a stage id for a path element.
func pathEscape(s string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F", "?", "%3F", "#", "%23", " ", "%20").Replace(s)
}
