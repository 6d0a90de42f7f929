package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitCanceled = 130 // 128 + SIGINT, what shells report for Ctrl-C
)

// exitError makes a command end with a specific exit code. A nil err means
// the command already said what there was to say.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError marks bad flags or arguments (exit status 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// run is the composition root: it builds the command tree and maps its
// outcome to an exit status. The first SIGINT/SIGTERM cancels ctx so that
// commands stop and clean up; a second one exits at once.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(stderr, "runnel: interrupted; stopping and cleaning up (interrupt again to force)")
		cancel()
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "runnel: forced exit; resources may be left behind")
			os.Exit(exitCanceled)
		case <-done:
		}
	}()

	a := &app{env: envMap(env), stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "runnel: %v\n", ee.err)
			if ee.code == exitUsage {
				fmt.Fprintln(stderr, "Run 'runnel --help' for usage.")
			}
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "runnel: %v\n", err)
	return exitFailure
}

// app carries what every command needs: the process environment and
// output streams. Commands get it instead of reading globals, so tests can
// run them in-process.
type app struct {
	env    map[string]string
	stdout io.Writer
	stderr io.Writer
	// badEnv holds why RUNNEL_* variables could not be read (by name);
	// server and agent refuse to start with any (envProblems).
	badEnv map[string]string
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				m[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	return m
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "runnel",
		Short:         "Runnel is a self-hosted CI/CD pipeline runner",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.CompletionOptions.DisableDefaultCmd = true
	for _, add := range commands {
		root.AddCommand(add(a))
	}
	return root
}

// commands are the subcommand constructors; each command's file adds
// itself in an init function, so new commands need no edit here.
var commands []func(*app) *cobra.Command

// usageArgs makes an argument validator report usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError(err)
		}
		return nil
	}
}
