package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/store"
)

func init() { commands = append(commands, (*app).tokenCommand) }

type tokenView struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	Token     string    `json:"token"`
}

// tokenFlags: the API client's, or --data/--db to work on the server's
// store directly (on the server's host, e.g. when no admin token is left).
type tokenFlags struct {
	client   clientFlags
	data, db string
	role     string
}

func (a *app) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (roles: admin, operator, read)",
		Long: `API tokens authenticate the API, the CLI and the web UI. Their role says
what they may do: read (runs, logs, repositories), operator (also trigger,
cancel, re-run, approve and schedule one-off runs) or admin (also
repositories, environments, cron schedules and tokens). Through the API an
admin token is needed; on the server's host --data DIR (and --db for
PostgreSQL) works on the store directly, so an admin can always make a new
admin token.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var f tokenFlags
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Make a token and print it once",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.tokenCreate(cmd.Context(), f, args[0])
		},
	}
	create.Flags().StringVar(&f.role, "role", "read", "admin, operator or read")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their values)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.tokenList(cmd.Context(), f)
		},
	}
	rm := &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"revoke"},
		Short:   "Revoke a token; it is refused from the next request on",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return usageError(fmt.Errorf("token id %q is not a number", args[0]))
			}
			return a.tokenRevoke(cmd.Context(), f, id)
		},
	}
	for _, c := range []*cobra.Command{create, list, rm} {
		a.addClientFlags(c, &f.client)
		c.Flags().StringVar(&f.data, "data", "", "server data directory: use its store directly instead of the API")
		c.Flags().StringVar(&f.db, "db", a.env["RUNNEL_DB"], "with --data: the server's database DSN when not DATA/runnel.db ($RUNNEL_DB)")
		cmd.AddCommand(c)
	}
	return cmd
}

// localStore opens the server's store named by --data/--db.
func (f tokenFlags) localStore(ctx context.Context) (*store.Store, error) {
	dsn := f.db
	if dsn == "" {
		dsn = filepath.Join(f.data, "runnel.db")
	}
	return store.Open(ctx, dsn, store.WithLogger(slog.New(slog.DiscardHandler)))
}

func (a *app) tokenCreate(ctx context.Context, f tokenFlags, name string) error {
	role, err := access.Parse(f.role)
	if err != nil {
		return usageError(err)
	}
	var t tokenView
	if f.data != "" {
		st, err := f.localStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		plain, tok, err := st.CreateToken(ctx, name, role)
		if err != nil {
			return err
		}
		t = tokenView{ID: tok.ID, Name: tok.Name, Role: string(tok.Role), Token: plain}
	} else {
		c, err := a.client(f.client)
		if err != nil {
			return err
		}
		if err := c.call(ctx, "POST", "/api/v1/tokens", map[string]string{"name": name, "role": string(role)}, &t); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stdout, "token %d %q (%s) created; shown once, only its hash is stored:\n%s\n", t.ID, t.Name, t.Role, t.Token)
	return nil
}

func (a *app) tokenList(ctx context.Context, f tokenFlags) error {
	var toks []tokenView
	if f.data != "" {
		st, err := f.localStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		list, err := st.Tokens(ctx)
		if err != nil {
			return err
		}
		for _, t := range list {
			toks = append(toks, tokenView{ID: t.ID, Name: t.Name, Role: string(t.Role), CreatedAt: t.CreatedAt})
		}
	} else {
		c, err := a.client(f.client)
		if err != nil {
			return err
		}
		var out struct {
			Tokens []tokenView `json:"tokens"`
		}
		if err := c.call(ctx, "GET", "/api/v1/tokens", nil, &out); err != nil {
			return err
		}
		toks = out.Tokens
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED")
	for _, t := range toks {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

func (a *app) tokenRevoke(ctx context.Context, f tokenFlags, id int64) error {
	if f.data != "" {
		st, err := f.localStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.DeleteToken(ctx, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no token %d", id)
			}
			return err
		}
	} else {
		c, err := a.client(f.client)
		if err != nil {
			return err
		}
		if err := c.call(ctx, "DELETE", fmt.Sprintf("/api/v1/tokens/%d", id), nil, nil); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stdout, "token %d revoked\n", id)
	return nil
}
