package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, (*app).scheduleCommand) }

// scheduleView is the part of the API's schedule the CLI shows.
type scheduleView struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Cron     string            `json:"cron"`
	Timezone string            `json:"timezone"`
	Branch   string            `json:"branch"`
	Inputs   map[string]string `json:"inputs"`
	Missed   string            `json:"missed"`
	NextAt   time.Time         `json:"next_at"`
	Last     *struct {
		At    time.Time `json:"at"`
		State string    `json:"state"`
		RunID int64     `json:"run_id"`
		Error string    `json:"error"`
	} `json:"last"`
}

type scheduleFlags struct {
	client                   clientFlags
	cron, tz, branch, missed string
	inputs                   []string
}

func (a *app) scheduleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Manage cron schedules and one-off runs of a repository",
		Long: `Schedules live on the server, per repository (like environments): a
cron schedule runs the head of a branch at each tick as event "cron", with
RUNNEL_SCHEDULE set to its name; a one-off run (runnel trigger --at) runs
once at a time as event "manual". Exactly one run is made per tick, also
across restarts and servers sharing PostgreSQL. A tick missed while no
server ran runs once, late (--missed run, the default), or is skipped
(--missed skip).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var f scheduleFlags
	add := &cobra.Command{
		Use:   "add REPO NAME --cron EXPR",
		Short: "Add a cron schedule (admin)",
		Example: `  runnel schedule add acme/web nightly --cron "0 3 * * *" --timezone Europe/Berlin --input target=staging
  runnel schedule add acme/web often --cron "*/30 * * * * *"   # six fields: seconds first`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			inputs, err := parseInputs(f.inputs)
			if err != nil {
				return usageError(err)
			}
			c, err := a.client(f.client)
			if err != nil {
				return err
			}
			body := map[string]any{"name": args[1], "cron": f.cron, "timezone": f.tz, "branch": f.branch,
				"missed": f.missed, "inputs": inputs}
			var sc scheduleView
			if err := c.call(cmd.Context(), "POST", repoPath(args[0])+"/schedules", body, &sc); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "schedule %s of %s added; next run %s\n", sc.Name, args[0], sc.NextAt.Local().Format(time.RFC3339))
			return nil
		},
	}
	a.addClientFlags(add, &f.client)
	fl := add.Flags()
	fl.StringVar(&f.cron, "cron", "", "cron expression: m h dom mon dow, s m h dom mon dow, or @daily, @every 1h...")
	fl.StringVar(&f.tz, "timezone", "UTC", "IANA time zone of the expression")
	fl.StringVar(&f.branch, "branch", "", "branch to run (default: the repository's default branch)")
	fl.StringVar(&f.missed, "missed", "run", "a tick missed while no server ran: run (once, late) or skip")
	fl.StringArrayVar(&f.inputs, "input", nil, "input NAME=VALUE (repeatable)")
	_ = add.MarkFlagRequired("cron")

	var lf clientFlags
	list := &cobra.Command{
		Use:   "list REPO",
		Short: "List a repository's schedules and pending one-off runs",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.scheduleList(cmd.Context(), lf, args[0])
		},
	}
	a.addClientFlags(list, &lf)
	var rf clientFlags
	rm := &cobra.Command{
		Use:   "rm REPO NAME",
		Short: "Remove a schedule (admin) or a one-off run (operator)",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(rf)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", repoPath(args[0])+"/schedules/"+args[1], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "schedule %s of %s removed\n", args[1], args[0])
			return nil
		},
	}
	a.addClientFlags(rm, &rf)
	cmd.AddCommand(add, list, rm)
	return cmd
}

func (a *app) scheduleList(ctx context.Context, f clientFlags, repo string) error {
	c, err := a.client(f)
	if err != nil {
		return err
	}
	var out struct {
		Schedules []scheduleView `json:"schedules"`
	}
	if err := c.call(ctx, "GET", repoPath(repo)+"/schedules", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tWHEN\tBRANCH\tMISSED\tNEXT\tLAST")
	for _, sc := range out.Schedules {
		when := "once"
		if sc.Kind == "cron" {
			when = sc.Cron + " " + sc.Timezone
		}
		next := "-"
		if !sc.NextAt.IsZero() {
			next = sc.NextAt.Local().Format("2006-01-02 15:04:05")
		}
		last := "-"
		if l := sc.Last; l != nil {
			last = l.At.Local().Format("2006-01-02 15:04:05") + " " + l.State
			if l.RunID != 0 {
				last += fmt.Sprintf(" run %d", l.RunID)
			}
			if l.Error != "" {
				last += ": " + l.Error
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sc.Name, when, sc.Branch, sc.Missed, next, last)
	}
	return tw.Flush()
}
