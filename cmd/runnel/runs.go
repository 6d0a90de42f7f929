package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() {
	commands = append(commands, (*app).runsCommand, (*app).cancelCommand, (*app).rerunCommand,
		approveCommand(true), approveCommand(false))
}

// runView is the part of the API's run that the CLI shows.
type runView struct {
	ID            int64             `json:"id"`
	Number        int64             `json:"number"`
	Repo          string            `json:"repo"`
	Event         string            `json:"event"`
	Branch        string            `json:"branch"`
	Tag           string            `json:"tag"`
	Commit        string            `json:"commit"`
	Status        string            `json:"status"`
	Reason        string            `json:"reason"`
	PendingReason string            `json:"pending_reason"`
	Trigger       string            `json:"trigger"`
	Schedule      string            `json:"schedule"`
	Inputs        map[string]string `json:"inputs"`
	CreatedAt     time.Time         `json:"created_at"`
	FinishedAt    time.Time         `json:"finished_at"`
	Stages        []stageView       `json:"stages"`
}

type stageView struct {
	ID            string     `json:"id"`
	Status        string     `json:"status"`
	Reason        string     `json:"reason"`
	PendingReason string     `json:"pending_reason"`
	Attempt       int        `json:"attempt"`
	Steps         []stepView `json:"steps"`
}

type stepView struct {
	Name     string `json:"name"`
	Position int    `json:"position"`
	Status   string `json:"status"`
	Log      string `json:"log"`
}

func terminalStatus(s string) bool {
	switch s {
	case "success", "failure", "canceled", "error", "skipped":
		return true
	}
	return false
}

type runsFlags struct {
	client                      clientFlags
	repo, branch, status, event string
	limit                       int
	json                        bool
}

func (a *app) runsCommand() *cobra.Command {
	var f runsFlags
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs, newest first",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(f.client)
			if err != nil {
				return err
			}
			return a.listRuns(cmd.Context(), c, f)
		},
	}
	a.addClientFlags(cmd, &f.client)
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", "", "only runs of this repository")
	fl.StringVar(&f.branch, "branch", "", "only runs of this branch")
	fl.StringVar(&f.status, "status", "", "only runs with these statuses (comma-separated: pending,running,success,...)")
	fl.StringVar(&f.event, "event", "", "only runs of this event: push, pull_request, tag, cron or manual")
	fl.IntVar(&f.limit, "limit", 20, "at most this many runs (1..1000)")
	fl.BoolVar(&f.json, "json", false, "print the API's JSON")
	return cmd
}

func (a *app) listRuns(ctx context.Context, c *apiClient, f runsFlags) error {
	q := url.Values{}
	for k, v := range map[string]string{"repo": f.repo, "branch": f.branch, "status": f.status, "event": f.event} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(f.limit))
	var out struct {
		Runs []json.RawMessage `json:"runs"`
	}
	if err := c.call(ctx, "GET", "/api/v1/runs?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	if f.json {
		return printJSON(a.stdout, out)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tREPO\t#\tSTATUS\tEVENT\tREF\tCOMMIT\tCREATED")
	for _, raw := range out.Runs {
		var r runView
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		ref := r.Branch
		if r.Tag != "" {
			ref = r.Tag
		}
		status := r.Status
		if r.Reason != "" {
			status += " (" + r.Reason + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%.7s\t%s\n", r.ID, r.Repo, r.Number, status, r.Event, ref, r.Commit,
			r.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// runID parses a run id argument.
func runID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError(fmt.Errorf("run id %q is not a positive number", s))
	}
	return id, nil
}

func (a *app) cancelCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runAction(cmd.Context(), f, args[0], "cancel", "")
		},
	}
	a.addClientFlags(cmd, &f)
	return cmd
}

func (a *app) rerunCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "rerun RUN",
		Short: "Start a new run of the same commit and event as RUN",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runAction(cmd.Context(), f, args[0], "rerun", "")
		},
	}
	a.addClientFlags(cmd, &f)
	return cmd
}

// approveCommand makes `approve RUN STAGE` or `reject RUN STAGE`; `approve
// RUN` alone approves the head commit of a fork's pull request
// (runner/trust), --commit naming the commit the maintainer reviewed.
func approveCommand(ok bool) func(*app) *cobra.Command {
	verb, short := "approve", "Approve a stage that waits for approval, or the head commit of a pull request from a fork"
	use, args := "approve RUN [STAGE]", cobra.RangeArgs(1, 2)
	if !ok {
		verb, short = "reject", "Reject a stage that waits for approval (it is canceled)"
		use, args = "reject RUN STAGE", cobra.ExactArgs(2)
	}
	return func(a *app) *cobra.Command {
		var f clientFlags
		var commit string
		cmd := &cobra.Command{
			Use:   use,
			Short: short,
			Long: short + ".\n\nWith RUN alone, approve approves the head commit of RUN, a pull request from a fork: its\n" +
				"stages that ask for secrets or deploy run, with their secrets. A new push to the pull request is\n" +
				"a new head and waits for a new approval. --commit makes sure RUN's head is the commit you reviewed.",
			Args: usageArgs(args),
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) == 1 {
					return a.approveHead(cmd.Context(), f, args[0], commit)
				}
				if commit != "" {
					return usageError(errors.New("--commit approves a pull request's head: give RUN alone"))
				}
				return a.runAction(cmd.Context(), f, args[0], verb, args[1])
			},
		}
		if ok {
			cmd.Flags().StringVar(&commit, "commit", "", "the full head commit you reviewed (RUN alone); refused if RUN's head is another")
		}
		a.addClientFlags(cmd, &f)
		return cmd
	}
}

// approveHead approves the head commit of run arg, a fork's pull request.
func (a *app) approveHead(ctx context.Context, f clientFlags, arg, commit string) error {
	id, err := runID(arg)
	if err != nil {
		return err
	}
	c, err := a.client(f)
	if err != nil {
		return err
	}
	var r struct {
		runView
		HeadApproval struct {
			ApprovedBy string `json:"approved_by"`
		} `json:"head_approval"`
	}
	if err := c.call(ctx, "POST", fmt.Sprintf("/api/v1/runs/%d/approve", id), map[string]string{"commit": commit}, &r); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "run %d: head %s approved by %s; %s\n", r.ID, r.Commit, r.HeadApproval.ApprovedBy, describeRun(r.runView, ""))
	return nil
}

// runAction POSTs a run action (cancel, rerun) or a stage's (approve,
// reject) and prints the resulting run's status.
func (a *app) runAction(ctx context.Context, f clientFlags, arg, action, stage string) error {
	id, err := runID(arg)
	if err != nil {
		return err
	}
	c, err := a.client(f)
	if err != nil {
		return err
	}
	path := fmt.Sprintf("/api/v1/runs/%d/%s", id, action)
	if stage != "" {
		path = fmt.Sprintf("/api/v1/runs/%d/stages/%s/%s", id, url.PathEscape(stage), action)
	}
	var r runView
	if err := c.call(ctx, "POST", path, nil, &r); err != nil {
		return err
	}
	switch action {
	case "rerun":
		fmt.Fprintf(a.stdout, "run %d started (%s #%d), re-running %d\n", r.ID, r.Repo, r.Number, id)
	default:
		fmt.Fprintf(a.stdout, "run %d: %s\n", r.ID, describeRun(r, stage))
	}
	return nil
}

// describeRun says a run's status, or a stage's when stage is set.
func describeRun(r runView, stage string) string {
	for _, st := range r.Stages {
		if st.ID == stage {
			return fmt.Sprintf("stage %s %s", stage, strings.TrimSpace(st.Status+" "+st.PendingReason))
		}
	}
	s := r.Status
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	return s
}
