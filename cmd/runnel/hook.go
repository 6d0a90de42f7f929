package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/runnel-ci/runnel/scm/githook"
)

func init() { commands = append(commands, (*app).hookCommand) }

func (a *app) hookCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Install and run git server-side hooks",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var server, repo, token string
	install := &cobra.Command{
		Use:   "install PATH.git",
		Short: "Make a bare repository report pushes to the server (post-receive hook)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if server == "" || repo == "" || token == "" {
				return usageError(errors.New("--server, --repo and --token are required"))
			}
			if err := githook.Install(args[0], server, repo, token, ""); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "post-receive hook installed in %s for repo %s\n", args[0], repo)
			return nil
		},
	}
	install.Flags().StringVar(&server, "server", a.envDefault("RUNNEL_SERVER", ""), "server URL ($RUNNEL_SERVER)")
	install.Flags().StringVar(&repo, "repo", "", "repository name on the server")
	install.Flags().StringVar(&token, "token", "", "the repository's hook token (from runnel repo add)")
	postReceive := &cobra.Command{
		Use:    "post-receive",
		Short:  "The post-receive hook body (run by git)",
		Hidden: true,
		Args:   usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return githook.Run(cmd.Context(), cmd.InOrStdin(), a.stdout, func(k string) string { return a.env[k] })
		},
	}
	cmd.AddCommand(install, postReceive)
	return cmd
}
