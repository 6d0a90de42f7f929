package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, (*app).triggerCommand) }

type triggerFlags struct {
	client         clientFlags
	branch, commit string
	inputs         []string
	follow         bool
	at             string
}

func (a *app) triggerCommand() *cobra.Command {
	var f triggerFlags
	cmd := &cobra.Command{
		Use:   "trigger REPO",
		Short: "Start a manual run of a repository's branch (or commit) with inputs",
		Long: `Trigger starts a run of event "manual" on --branch (default: the
repository's default branch) at its head, or at --commit. Each --input
NAME=VALUE becomes the environment variable RUNNEL_INPUT_<NAME> of every
step; a pipeline that declares inputs checks them (type, choices) and adds
defaults before the run starts.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			inputs, err := parseInputs(f.inputs)
			if err != nil {
				return usageError(err)
			}
			c, err := a.client(f.client)
			if err != nil {
				return err
			}
			return a.trigger(cmd.Context(), c, args[0], inputs, f)
		},
	}
	a.addClientFlags(cmd, &f.client)
	fl := cmd.Flags()
	fl.StringVar(&f.branch, "branch", "", "branch to run (default: the repository's default branch)")
	fl.StringVar(&f.commit, "commit", "", "full commit SHA to run (default: the branch's head)")
	fl.StringArrayVar(&f.inputs, "input", nil, "input NAME=VALUE (repeatable)")
	fl.BoolVarP(&f.follow, "follow", "f", false, "follow the run's logs until it ends")
	fl.StringVar(&f.at, "at", "", "run once at this time instead of now: RFC 3339 (2026-12-24T03:00:00+01:00), or +DURATION (+5m)")
	return cmd
}

// parseInputs turns NAME=VALUE arguments into a map.
func parseInputs(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--input %q: want NAME=VALUE", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--input %s given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

func (a *app) trigger(ctx context.Context, c *apiClient, repo string, inputs map[string]string, f triggerFlags) error {
	body := map[string]any{"branch": f.branch, "commit": f.commit, "inputs": inputs}
	if f.at != "" {
		at, err := parseAt(f.at, time.Now())
		if err != nil {
			return usageError(err)
		}
		body["at"] = at
		var sc scheduleView
		if err := c.call(ctx, "POST", repoPath(repo)+"/trigger", body, &sc); err != nil {
			return withInputErrors(err)
		}
		fmt.Fprintf(a.stdout, "one-off run %s of %s scheduled at %s (runnel schedule rm %s %s to cancel)\n",
			sc.Name, repo, sc.NextAt.Local().Format(time.RFC3339), repo, sc.Name)
		return nil
	}
	var r runView
	if err := c.call(ctx, "POST", repoPath(repo)+"/trigger", body, &r); err != nil {
		return withInputErrors(err)
	}
	fmt.Fprintf(a.stdout, "run %d started (%s #%d, %s at %.7s): %s\n", r.ID, r.Repo, r.Number, r.Branch, r.Commit, describeRun(r, ""))
	if !f.follow || terminalStatus(r.Status) {
		return nil
	}
	return a.logs(ctx, c, r.ID, "", "", true)
}

// withInputErrors adds the per-input errors of a refused trigger to err.
func withInputErrors(err error) error {
	var ae *apiError
	if errors.As(err, &ae) && len(ae.body) > 0 {
		if fields := inputErrors(ae.body); fields != "" {
			return fmt.Errorf("%w\n%s", err, fields)
		}
	}
	return err
}

// parseAt reads --at: an RFC 3339 time or +DURATION from now.
func parseAt(s string, now time.Time) (time.Time, error) {
	if d, ok := strings.CutPrefix(s, "+"); ok {
		dur, err := time.ParseDuration(d)
		if err != nil || dur <= 0 {
			return time.Time{}, fmt.Errorf("--at %q: want +DURATION such as +5m", s)
		}
		return now.Add(dur), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q: want an RFC 3339 time such as 2026-12-24T03:00:00Z, or +5m", s)
	}
	return t, nil
}

// inputErrors formats the per-input errors of a refused trigger, one line
// each, or returns "".
func inputErrors(body []byte) string {
	var e struct {
		Fields map[string]string `json:"fields"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Fields) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
		fmt.Fprintf(&b, "  --input %s: %s\n", k, e.Fields[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}
