package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, (*app).repoCommand) }

type repoFlags struct {
	client                                clientFlags
	cloneURL, forge, secret, bare, branch string
	forgeURL, statusToken, statusAPIURL   string
	cancelPrevious, private, genericHook  bool
}

func (a *app) repoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Manage the repositories a server builds",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var f repoFlags
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Register a repository with the server (through its API)",
		Long: `Add registers a repository and prints its hook token once (the generic
hook and git post-receive hooks authenticate with it). For a bare repository
on the server's host use --bare PATH (forge git); for a forge, --secret (the
webhook secret) and --clone-url, or --forge-url: without a clone URL the
server fetches only from the forge's scheme and host (github.com and
gitlab.com by default). A forge repository takes only its forge's signed
webhooks unless --generic-hook. A private repository also gets a badge token.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.repoAdd(cmd.Context(), args[0], f)
		},
	}
	fl := add.Flags()
	a.addClientFlags(add, &f.client)
	fl.StringVar(&f.cloneURL, "clone-url", "", "clone URL of the repository")
	fl.StringVar(&f.forge, "forge", "", "github, gitea, gitlab, generic or git (default: git with --bare, else generic)")
	fl.StringVar(&f.secret, "secret", "", "webhook secret of the forge")
	fl.StringVar(&f.forgeURL, "forge-url", "", "forge instance, e.g. https://gitea.example.com (default: https://github.com, https://gitlab.com)")
	fl.BoolVar(&f.genericHook, "generic-hook", false, "let a forge repository also take the generic hook with its hook token")
	fl.StringVar(&f.bare, "bare", "", "path of a bare repository on the server's host (sets --clone-url)")
	fl.StringVar(&f.branch, "default-branch", "main", "default branch (badges, manual triggers)")
	fl.BoolVar(&f.cancelPrevious, "cancel-previous", false, "cancel older unfinished runs of a branch when a new one starts")
	fl.BoolVar(&f.private, "private", false, "badges need the badge token")
	fl.StringVar(&f.statusToken, "status-token", a.envDefault("RUNNEL_STATUS_TOKEN", ""), "forge API token for commit statuses (github, gitea, gitlab) ($RUNNEL_STATUS_TOKEN)")
	fl.StringVar(&f.statusAPIURL, "status-api-url", "", "forge API base URL for statuses (empty: github.com; gitea, gitlab: --forge-url)")
	cmd.AddCommand(add, a.repoListCommand(), a.repoUpdateCommand(), a.repoRemoveCommand())
	return cmd
}

func (a *app) repoAdd(ctx context.Context, name string, f repoFlags) error {
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
		if f.forge == "" {
			f.forge = "git"
		}
	}
	if f.forge == "" {
		f.forge = "generic"
	}
	body := map[string]any{"name": name, "forge": f.forge, "clone_url": f.cloneURL, "secret": f.secret,
		"forge_url": f.forgeURL, "generic_hook": f.genericHook,
		"default_branch": f.branch, "cancel_previous": f.cancelPrevious, "private": f.private,
		"status_token": f.statusToken, "status_api_url": f.statusAPIURL}
	var out struct {
		Name       string `json:"name"`
		HookToken  string `json:"hook_token"`
		BadgeToken string `json:"badge_token"`
	}
	if err := c.call(ctx, http.MethodPost, "/api/v1/repos", body, &out); err != nil {
		return fmt.Errorf("add repo %s: %w", name, err)
	}
	fmt.Fprintf(a.stdout, "repo %s added\nhook token (shown once): %s\n", out.Name, out.HookToken)
	if out.BadgeToken != "" {
		fmt.Fprintf(a.stdout, "badge token (shown once): %s\n", out.BadgeToken)
	}
	return nil
}
