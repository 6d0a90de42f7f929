package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, (*app).completionCommand) }

func (a *app) completionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Completion prints the completion script of a shell. Load it with

  bash:  source <(runnel completion bash)      (needs the bash-completion package)
  zsh:   runnel completion zsh > "${fpath[1]}/_runnel"
  fish:  runnel completion fish > ~/.config/fish/completions/runnel.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      usageArgs(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			}
			return usageError(fmt.Errorf("unknown shell %q", args[0]))
		},
	}
}
