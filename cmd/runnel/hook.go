package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runnel-ci/runnel/runner/store"
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
	flush := &cobra.Command{
		Use:   "flush [PATH.git...]",
		Short: "Send the pushes a post-receive hook spooled while the server did not answer",
		Long: `Flush sends the pushes that "runnel hook post-receive" spooled in a bare
repository (PATH.git/` + githook.SpoolDir + `) because the server did not answer,
oldest first. Each becomes exactly one run, however often it is sent. The
default repository is $GIT_DIR, else the working directory. It exits 1
when pushes are still spooled or the server refused one.`,
		Args: usageArgs(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return a.hookFlush(cmd.Context(), args) },
	}
	cmd.AddCommand(install, postReceive, flush)
	return cmd
}

func (a *app) hookFlush(ctx context.Context, repos []string) error {
	if len(repos) == 0 {
		repos = []string{a.envDefault("GIT_DIR", ".")}
	}
	var errs []error
	for _, path := range repos {
		cfg, err := githook.LoadConfig(path, func(k string) string { return a.env[k] })
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg.Out = a.stdout
		res, err := githook.Flush(ctx, cfg)
		fmt.Fprintf(a.stdout, "runnel: %s: %d sent, %d still spooled, %d refused\n", path, res.Sent, res.Left, res.Failed)
		if err != nil {
			errs = append(errs, err)
		}
		if res.Left > 0 {
			errs = append(errs, fmt.Errorf("%s: %d pushes still spooled: the server did not take them", path, res.Left))
		}
	}
	return errors.Join(errs...)
}

// drainHookSpools sends, in the background, what the post-receive hooks
// of the server's bare repositories (forge git) spooled while it did not
// answer, through the server's own listener at addr; the hook settings
// (token) come from each repository's git config. The returned function
// waits for it; cancel ctx to stop it early.
func drainHookSpools(ctx context.Context, st *store.Store, addr net.Addr, log *slog.Logger) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		repos, err := st.Repos(ctx)
		if err != nil {
			log.Error("drain hook spools: list repositories", "err", err)
			return
		}
		for _, r := range repos {
			path := r.CloneURL
			if r.Forge != store.ForgeGit || !filepath.IsAbs(path) {
				continue
			}
			if _, err := os.Stat(filepath.Join(path, githook.SpoolDir)); err != nil {
				continue
			}
			cfg, err := githook.LoadConfig(path, func(string) string { return "" })
			if err != nil {
				log.Warn("drain hook spool", "repo", r.Name, "err", err)
				continue
			}
			cfg.ServerURL = loopbackURL(addr)
			var out strings.Builder
			cfg.Out = &out
			res, err := githook.Flush(ctx, cfg)
			log.Info("drained hook spool", "repo", r.Name, "sent", res.Sent, "left", res.Left, "refused", res.Failed,
				"err", err, "output", out.String())
		}
	}()
	return func() { <-done }
}

// loopbackURL is the http URL of a listener at addr, on loopback when it
// listens on every address.
func loopbackURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
