package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runnel-ci/runnel/pipeline"
)

const defaultPipelineFile = ".pipeline.yml"

func init() { commands = append(commands, (*app).lintCommand) }

func (a *app) lintCommand() *cobra.Command {
	var allow []string
	cmd := &cobra.Command{
		Use:   "lint [FILE...]",
		Short: "Check pipeline files and print every problem as file:line:col: code: message",
		Long: `Lint parses and validates each FILE (default .pipeline.yml) and prints
every diagnostic, errors and warnings, as file:line:col: code: message.
Container requests that weaken isolation (privileged, host mounts, the
Docker socket, host network or PID namespace, devices, added capabilities)
are errors unless --allow-container grants them, as a repository's setting
does on the server.
It exits 1 if any file has an error, 2 if a file cannot be read, 0 otherwise.`,
		RunE: func(cmd *cobra.Command, files []string) error {
			allowed, err := pipeline.ParsePermissions(allow)
			if err != nil {
				return usageError(fmt.Errorf("--allow-container: %w", err))
			}
			if len(files) == 0 {
				files = []string{defaultPipelineFile}
			}
			failed := false
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					return usageError(fmt.Errorf("lint: %w", err))
				}
				ds, err := lintFile(f, src, allowed)
				if err != nil {
					return fmt.Errorf("lint %s: %w", f, err)
				}
				for _, d := range ds {
					fmt.Fprintln(a.stdout, d.String())
				}
				failed = failed || ds.HasErrors()
			}
			if failed {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&allow, "allow-container", nil, "container permissions the repository has: "+permissionNames())
	return cmd
}

// permissionNames lists the container permissions for flag help.
func permissionNames() string {
	s := make([]string, len(pipeline.Permissions))
	for i, p := range pipeline.Permissions {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// lintFile returns every diagnostic of one file, warnings included. The
// error is for failures other than diagnostics.
func lintFile(name string, src []byte, allowed []pipeline.Permission) (pipeline.Diagnostics, error) {
	p, err := pipeline.Parse(name, src)
	var ds pipeline.Diagnostics
	if errors.As(err, &ds) {
		return ds, nil
	}
	if err != nil {
		return nil, err
	}
	return p.Lint(allowed), nil
}
