package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-ci/runnel/runner/secretbox"
	"github.com/runnel-ci/runnel/runner/store"
)

func init() { commands = append(commands, (*app).secretCommand) }

// secretView is the API's view of a secret (it never has the value).
type secretView struct {
	Name         string    `json:"name"`
	Repo         string    `json:"repo"`
	Events       []string  `json:"events"`
	Branches     []string  `json:"branches"`
	Environments []string  `json:"environments"`
	UpdatedAt    time.Time `json:"updated_at"`
	UpdatedBy    string    `json:"updated_by"`
}

type secretFlags struct {
	client                         clientFlags
	repo, file                     string
	events, branches, environments []string
}

// secretPath is the API path of a secret (name "" for the list).
func secretPath(name, repo string) string {
	p := "/api/v1/secrets"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	if repo != "" {
		p += "?repo=" + url.QueryEscape(repo)
	}
	return p
}

func (a *app) secretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage pipeline secrets (admin)",
		Long: `Secrets live on the server, encrypted at rest, per repository (--repo) or
global (no --repo; a repository's own secret of the same name wins). A
stage gets one only by naming it (secrets: [NAME] in .pipeline.yml), and
only on the events, branches and environments the secret allows. Values
are never shown again: not by the API, the UI or this command.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.secretSetCommand(), a.secretListCommand(), a.secretRmCommand(), a.secretRotateCommand())
	return cmd
}

// secretSetCommand is `runnel secret set`.
func (a *app) secretSetCommand() *cobra.Command {
	var sf secretFlags
	set := &cobra.Command{
		Use:   "set NAME [--repo REPO] [--from-file FILE]",
		Short: "Create or replace a secret; the value comes from stdin or a file, never a flag",
		Long: `The value is read from standard input (one trailing newline removed), or
byte for byte from --from-file (keys, certificates). It must be at least 6
bytes: shorter values cannot be masked in logs usefully.`,
		Example: `  printf %s "$TOKEN" | runnel secret set DEPLOY_TOKEN --repo acme/web --branch main --event push
  runnel secret set TLS_KEY --repo acme/web --from-file key.pem --environment prod
  runnel secret set REGISTRY_PASSWORD < password.txt      # global`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := readSecretValue(cmd.InOrStdin(), sf.file)
			if err != nil {
				return err
			}
			c, err := a.client(sf.client)
			if err != nil {
				return err
			}
			body := map[string]any{"value": value, "events": sf.events, "branches": sf.branches, "environments": sf.environments}
			var v secretView
			if err := c.call(cmd.Context(), "PUT", secretPath(args[0], sf.repo), body, &v); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "secret %s set (%s)\n", v.Name, scopeName(sf.repo))
			return nil
		},
	}
	a.addClientFlags(set, &sf.client)
	fl := set.Flags()
	fl.StringVar(&sf.repo, "repo", "", "repository (default: a global secret)")
	fl.StringVar(&sf.file, "from-file", "", "read the value from this file instead of stdin")
	fl.StringArrayVar(&sf.events, "event", nil, "only for this event: push, pull_request, tag, cron, manual (repeatable)")
	fl.StringArrayVar(&sf.branches, "branch", nil, "only on branches matching this glob (repeatable)")
	fl.StringArrayVar(&sf.environments, "environment", nil, "only for stages deploying to this environment (repeatable)")
	return set
}

// secretListCommand is `runnel secret list`.
func (a *app) secretListCommand() *cobra.Command {
	var lf secretFlags
	list := &cobra.Command{
		Use:   "list [--repo REPO]",
		Short: "List secrets (names and limits, never values)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(lf.client)
			if err != nil {
				return err
			}
			var out struct {
				Secrets []secretView `json:"secrets"`
			}
			if err := c.call(cmd.Context(), "GET", secretPath("", lf.repo), nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tEVENTS\tBRANCHES\tENVIRONMENTS\tUPDATED\tBY")
			for _, s := range out.Secrets {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, anyOf(s.Events), anyOf(s.Branches), anyOf(s.Environments),
					s.UpdatedAt.Local().Format("2006-01-02 15:04"), s.UpdatedBy)
			}
			return tw.Flush()
		},
	}
	a.addClientFlags(list, &lf.client)
	list.Flags().StringVar(&lf.repo, "repo", "", "repository (default: the global secrets)")
	return list
}

// secretRmCommand is `runnel secret rm`.
func (a *app) secretRmCommand() *cobra.Command {
	var rf secretFlags
	rm := &cobra.Command{
		Use:   "rm NAME [--repo REPO]",
		Short: "Remove a secret",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(rf.client)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", secretPath(args[0], rf.repo), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "secret %s removed (%s)\n", args[0], scopeName(rf.repo))
			return nil
		},
	}
	a.addClientFlags(rm, &rf.client)
	rm.Flags().StringVar(&rf.repo, "repo", "", "repository (default: a global secret)")
	return rm
}

// secretRotateCommand is `runnel secret rotate-key`.
func (a *app) secretRotateCommand() *cobra.Command {
	var data, db string
	rotate := &cobra.Command{
		Use:   "rotate-key --data DIR",
		Short: "Encrypt every stored secret, webhook secret and forge token under a new key",
		Long: `Makes a new key in DATA/secret.key (the old one is kept until every value
is sealed again, then dropped), and seals every value under it, in one
transaction. A running server keeps working: it reads the key file again
when it meets a value sealed by a key it does not know.

With the key in RUNNEL_SECRET_KEY instead, rotate by running this command
with the new key in RUNNEL_SECRET_KEY and the old one in
RUNNEL_SECRET_KEY_PREVIOUS, then restart the server with only the new key.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.rotateKey(cmd.Context(), data, db)
		},
	}
	rotate.Flags().StringVar(&data, "data", "", "server data directory (required)")
	rotate.Flags().StringVar(&db, "db", a.env["RUNNEL_DB"], "the server's database DSN when not DATA/runnel.db ($RUNNEL_DB)")
	_ = rotate.MarkFlagRequired("data")
	return rotate
}

func scopeName(repo string) string {
	if repo == "" {
		return "global"
	}
	return "repo " + repo
}

func anyOf(xs []string) string {
	if len(xs) == 0 {
		return "any"
	}
	return strings.Join(xs, ",")
}

// readSecretValue reads a value from file, or from stdin with one
// trailing newline removed (echo and here-strings add one).
func readSecretValue(stdin io.Reader, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return "", usageError(errors.New("the value comes from stdin (pipe it in) or --from-file, never from a flag or the terminal"))
		}
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read the value from stdin: %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

func (a *app) rotateKey(ctx context.Context, data, db string) error {
	box, err := secretbox.Load(data, func(k string) string { return a.env[k] })
	if err != nil {
		return err
	}
	if db == "" {
		db = filepath.Join(data, "runnel.db")
	}
	// Opening the store seals what is still in the clear under the
	// current key; then the rotation moves everything to a new one.
	st, err := store.Open(ctx, db, store.WithLogger(slog.New(slog.DiscardHandler)), store.WithSealer(box))
	if err != nil {
		return err
	}
	defer st.Close()
	old := box.KeyID()
	if box.FromFile() {
		if err := box.BeginRotation(); err != nil {
			return err
		}
	}
	n, err := st.Reseal(ctx)
	if err != nil {
		return fmt.Errorf("%w (the key file still holds the old key too; run the command again)", err)
	}
	if err := box.EndRotation(); err != nil {
		return err
	}
	if old != box.KeyID() {
		fmt.Fprintf(a.stdout, "key %s replaced by %s; ", old, box.KeyID())
	}
	fmt.Fprintf(a.stdout, "%d values sealed again under key %s\n", n, box.KeyID())
	return nil
}
