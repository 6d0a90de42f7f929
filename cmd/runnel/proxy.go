package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-ci/runnel/deploy/docker"
)

func init() { commands = append(commands, (*app).proxyCommand) }

type proxyFlags struct {
	listen, control, tokenFile, state string
}

func (a *app) proxyCommand() *cobra.Command {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Serve one app's blue/green traffic switch for the docker deploy provider",
		Long: `Proxy serves an app's traffic on --listen and splits it between its blue
and green containers as the docker deploy provider sets them through the
control API on --control (GET/PUT /routes). It runs apart from the agent,
so traffic keeps flowing while an agent restarts or is killed.

A control address that is not loopback needs --token-file: every control
request must then carry "Authorization: Bearer <token>" (agents read it
from $RUNNEL_PROXY_TOKEN). With --state, the routes survive a restart of
the proxy. SIGINT/SIGTERM stop it, letting requests in flight finish.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runProxy(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", ":8080", "address the app's traffic is served on")
	fl.StringVar(&f.control, "control", "127.0.0.1:9000", "address of the control API")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the control API's bearer token")
	fl.StringVar(&f.state, "state", "", "file the routes are kept in across restarts")
	return cmd
}

func (a *app) runProxy(ctx context.Context, f proxyFlags) error {
	log := slog.New(slog.NewTextHandler(a.stderr, nil))
	token := ""
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return usageError(fmt.Errorf("proxy: %w", err))
		}
		if token = strings.TrimSpace(string(b)); len(token) < 16 {
			return usageError(fmt.Errorf("proxy: token in %s is shorter than 16 characters", f.tokenFile))
		}
	}
	if token == "" && !loopback(f.control) {
		return usageError(fmt.Errorf("proxy: control address %s is not loopback: give --token-file", f.control))
	}
	p := docker.NewProxy(log)
	if f.state != "" {
		if err := docker.LoadState(p, f.state); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	cln, err := net.Listen("tcp", f.control)
	if err != nil {
		ln.Close()
		return fmt.Errorf("proxy control: %w", err)
	}
	log.Info("proxy serving", "listen", ln.Addr().String(), "control", cln.Addr().String())
	ctl := &http.Server{Handler: &docker.Control{Proxy: p, Token: token, StateFile: f.state}, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- ctl.Serve(cln) }()
	err = p.Serve(ctx, ln)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = errors.Join(err, ctl.Shutdown(sctx))
	if cerr := <-ctlDone; !errors.Is(cerr, http.ErrServerClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}

// loopback reports whether addr (host:port) listens on a loopback
// address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
