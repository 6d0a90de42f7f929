package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// repoView is the part of the API's repository that the CLI shows.
type repoView struct {
	Name           string `json:"name"`
	Forge          string `json:"forge"`
	CloneURL       string `json:"clone_url"`
	DefaultBranch  string `json:"default_branch"`
	CancelPrevious bool   `json:"cancel_previous"`
	Private        bool   `json:"private"`
}

func (a *app) repoListCommand() *cobra.Command {
	var f clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the repositories of the server",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(f)
			if err != nil {
				return err
			}
			var out struct {
				Repos []repoView `json:"repos"`
			}
			if err := c.call(cmd.Context(), "GET", "/api/v1/repos", nil, &out); err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFORGE\tDEFAULT BRANCH\tCLONE URL")
			for _, r := range out.Repos {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Forge, r.DefaultBranch, r.CloneURL)
			}
			return tw.Flush()
		},
	}
	a.addClientFlags(cmd, &f)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return cmd
}

type repoUpdateFlags struct {
	client                                      clientFlags
	cloneURL, bare, secret, branch, statusToken string
	statusAPIURL, forgeURL                      string
	cancelPrevious, private, newHookToken       bool
	genericHook, forkPipelineFromBase           bool
	allowContainer                              []string
}

func (a *app) repoUpdateCommand() *cobra.Command {
	var f repoUpdateFlags
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a repository's settings, or give it a new hook token",
		Long: `Update changes the settings named by the flags given; others keep their
values. --new-hook-token makes a new hook token and prints it once; the old
one is refused from then on (re-install git hooks with it).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.repoUpdate(cmd, args[0], f)
		},
	}
	a.addClientFlags(cmd, &f.client)
	fl := cmd.Flags()
	fl.StringVar(&f.cloneURL, "clone-url", "", "clone URL of the repository")
	fl.StringVar(&f.bare, "bare", "", "path of a bare repository on the server's host (sets --clone-url)")
	fl.StringVar(&f.secret, "secret", "", "webhook secret of the forge")
	fl.StringVar(&f.branch, "default-branch", "", "default branch")
	fl.BoolVar(&f.cancelPrevious, "cancel-previous", false, "cancel older unfinished runs of a branch when a new one starts")
	fl.BoolVar(&f.private, "private", false, "badges need the badge token")
	fl.StringVar(&f.statusToken, "status-token", "", "forge API token for commit statuses")
	fl.StringVar(&f.statusAPIURL, "status-api-url", "", "forge API base URL for statuses")
	fl.StringVar(&f.forgeURL, "forge-url", "", "forge instance the repository's events must name")
	fl.BoolVar(&f.genericHook, "generic-hook", false, "let a forge repository also take the generic hook")
	fl.BoolVar(&f.newHookToken, "new-hook-token", false, "make a new hook token (printed once)")
	fl.BoolVar(&f.forkPipelineFromBase, "fork-pipeline-from-base", false, "pull requests from forks run the base branch's pipeline file, not their own")
	fl.StringSliceVar(&f.allowContainer, "allow-container", nil, "container permissions the repository's pipelines may ask for (replaces the list; \"none\" for none): "+permissionNames())
	return cmd
}

func (a *app) repoUpdate(cmd *cobra.Command, name string, f repoUpdateFlags) error {
	ctx := cmd.Context()
	c, err := a.client(f.client)
	if err != nil {
		return err
	}
	if f.bare != "" {
		abs, err := filepath.Abs(f.bare)
		if err != nil {
			return err
		}
		f.cloneURL = abs
		_ = cmd.Flags().Set("clone-url", abs)
	}
	body := map[string]any{}
	changed := cmd.Flags().Changed
	for flag, field := range map[string]any{"clone-url": f.cloneURL, "secret": f.secret, "default-branch": f.branch,
		"cancel-previous": f.cancelPrevious, "private": f.private, "status-token": f.statusToken, "status-api-url": f.statusAPIURL,
		"forge-url": f.forgeURL, "generic-hook": f.genericHook, "allow-container": f.allowContainer,
		"fork-pipeline-from-base": f.forkPipelineFromBase} {
		if changed(flag) {
			body[jsonField(flag)] = field
		}
	}
	if len(body) == 0 && !f.newHookToken {
		return usageError(fmt.Errorf("nothing to change: give a setting flag or --new-hook-token"))
	}
	if len(body) > 0 {
		if err := c.call(ctx, "PATCH", repoPath(name), body, nil); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "repo %s updated\n", name)
	}
	if f.newHookToken {
		var out struct {
			HookToken string `json:"hook_token"`
		}
		if err := c.call(ctx, "POST", repoPath(name)+"/hook-token", nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "new hook token of %s (shown once): %s\n", name, out.HookToken)
	}
	return nil
}

// jsonField maps a flag name to its API field.
func jsonField(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

func (a *app) repoRemoveCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a repository with its runs, schedules and deployments",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.repoRemove(cmd.Context(), f, args[0])
		},
	}
	a.addClientFlags(cmd, &f)
	return cmd
}

func (a *app) repoRemove(ctx context.Context, f clientFlags, name string) error {
	c, err := a.client(f)
	if err != nil {
		return err
	}
	if err := c.call(ctx, "DELETE", repoPath(name), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "repo %s removed\n", name)
	return nil
}
