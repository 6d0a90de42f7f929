package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

func init() { commands = append(commands, (*app).runCommand) }

// runFlags are the flags of `runnel run`.
type runFlags struct {
	dir         string
	file        string
	event       string
	branch      string
	tag         string
	stages      []string
	backend     string
	env         []string
	pull        string
	parallel    int
	summaryJSON string
	verbose     bool
	cacheDir    string
	allow       []string
	secretsFile string
}

func (a *app) runCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline of the working tree on this machine",
		Long: `Run compiles .pipeline.yml for an event and runs its stages here, as an
agent would: each stage gets a copy of the working tree as its workspace,
stages start as soon as their needs are done, and independent stages run in
parallel. It prints every step's output prefixed with stage/step, then a
summary. Exit status: 0 if the run succeeded (allowed failures included),
1 if it failed, 2 for usage errors, 130 if interrupted.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runPipeline(cmd.Context(), cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.dir, "dir", "C", ".", "working tree to run (copied into each stage's workspace)")
	fl.StringVarP(&f.file, "file", "f", defaultPipelineFile, "pipeline file, relative to --dir")
	fl.StringVar(&f.event, "event", pipeline.EventPush, "event kind: push, pull_request, tag, cron or manual")
	fl.StringVar(&f.branch, "branch", "", "branch of the event (default: the current git branch, else main)")
	fl.StringVar(&f.tag, "tag", "", "tag of the event (implies --event tag unless --event is given)")
	fl.StringArrayVar(&f.stages, "stage", nil, "run only this stage and what it needs (repeatable; a stage name selects all its matrix variants)")
	fl.StringVar(&f.backend, "backend", "docker", "executor: docker or local (sh on this host; services unsupported)")
	fl.StringArrayVar(&f.env, "env", nil, "K=V added to every stage's env (repeatable)")
	fl.StringVar(&f.pull, "pull", string(engine.PullIfNotPresent), "image pull policy: never, if-not-present or always")
	fl.IntVar(&f.parallel, "parallel", 0, "run at most this many stages at once (0: no limit)")
	fl.StringVar(&f.summaryJSON, "summary-json", "", "also write the run's result as JSON to this file")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log engine operations to stderr (warnings are always logged)")
	fl.StringVar(&f.cacheDir, "cache-dir", a.userCacheDir(), "artifacts, caches and fetched files of runs on this machine")
	fl.StringVar(&f.secretsFile, "secrets-file", "", "secrets the stages ask for, as dotenv lines NAME=value; masked in the output")
	fl.StringSliceVar(&f.allow, "allow-container", nil, "container permissions granted to the pipeline: "+permissionNames())
	return cmd
}

// runInputs are the flags of `runnel run` checked and read.
type runInputs struct {
	extraEnv map[string]string
	pull     engine.PullPolicy
	allowed  []pipeline.Permission
	dir      string // absolute
	secrets  map[string]string
}

// checkRunFlags checks f (setting --event from --tag) and reads what the
// flags name; its errors are usage errors.
func checkRunFlags(cmd *cobra.Command, f *runFlags) (runInputs, error) {
	var in runInputs
	var err error
	if in.extraEnv, err = parseEnvFlags(f.env); err != nil {
		return in, usageError(err)
	}
	if in.pull, err = engine.ParsePullPolicy(f.pull); err != nil {
		return in, usageError(err)
	}
	if in.allowed, err = pipeline.ParsePermissions(f.allow); err != nil {
		return in, usageError(fmt.Errorf("--allow-container: %w", err))
	}
	if in.dir, err = filepath.Abs(f.dir); err != nil {
		return in, usageError(fmt.Errorf("--dir: %w", err))
	}
	if !cmd.Flags().Changed("event") && f.tag != "" {
		f.event = pipeline.EventTag
	}
	if !slices.Contains(eventKinds, f.event) {
		return in, usageError(fmt.Errorf("--event %q: want one of %s", f.event, strings.Join(eventKinds, ", ")))
	}
	if in.secrets, err = readSecretsFile(f.secretsFile); err != nil {
		return in, usageError(err)
	}
	return in, nil
}

func (a *app) runPipeline(ctx context.Context, cmd *cobra.Command, f runFlags) error {
	in, err := checkRunFlags(cmd, &f)
	if err != nil {
		return err
	}
	plan, err := a.loadPlan(ctx, in.dir, f, in.allowed, in.secrets)
	if err != nil || plan == nil {
		return err
	}
	for _, st := range plan.Stages {
		if st.Env == nil {
			st.Env = map[string]string{}
		}
		maps.Copy(st.Env, in.extraEnv)
	}

	// Operational records go to stderr, apart from the build output:
	// warnings always, everything with -v.
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	eng, closeEngine, err := newEngine(ctx, f.backend, in.pull, logger)
	if err != nil {
		return err
	}
	defer closeEngine()

	runID, err := newRunID()
	if err != nil {
		return err
	}
	con := newConsole(a.stdout, a.env)
	for _, v := range in.secrets {
		con.secrets.Add(v)
	}
	x := &stage.Executor{Engine: eng, Output: con.stepOutput, Reporter: con, Logger: logger, AllowContainer: in.allowed}
	if usesTransfers(plan) {
		tr, done, err := localTransfer(ctx, f.cacheDir, in.dir, runID, eng, logger)
		if err != nil {
			return err
		}
		defer done()
		x.Transfer = tr
	}
	sched := &stage.Scheduler{
		Executor: x,
		Spec: func(st *pipeline.Stage) *engine.Spec {
			return &engine.Spec{RunID: runID, Attempt: 1, Stage: st, Source: in.dir, Secrets: stageSecrets(st, in.secrets)}
		},
		StageStarted:  con.stageStarted,
		StageFinished: con.stageFinished,
		MaxParallel:   f.parallel,
	}
	res, err := sched.Run(ctx, plan)
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	if err := writeSummary(a.stdout, res); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if f.summaryJSON != "" {
		if err := writeSummaryJSON(f.summaryJSON, res); err != nil {
			return err
		}
	}
	switch res.Status {
	case rules.Success:
		return nil
	case rules.Canceled:
		return &exitError{code: exitCanceled}
	}
	return &exitError{code: exitFailure}
}

var eventKinds = []string{pipeline.EventPush, pipeline.EventPullRequest, pipeline.EventTag, pipeline.EventCron, pipeline.EventManual}

// loadPlan parses the pipeline file of dir, compiles it for the event the
// flags and git describe, and keeps the selected stages. A nil plan with a
// nil error means there is nothing to run (it has said so).
func (a *app) loadPlan(ctx context.Context, dir string, f runFlags, allowed []pipeline.Permission, secrets map[string]string) (*pipeline.Plan, error) {
	file := f.file
	if !filepath.IsAbs(file) {
		file = filepath.Join(dir, file)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, usageError(fmt.Errorf("read pipeline: %w", err))
	}
	p, err := pipeline.Parse(f.file, src)
	var ds pipeline.Diagnostics
	if errors.As(err, &ds) {
		for _, d := range ds {
			fmt.Fprintln(a.stderr, d.String())
		}
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s has errors; nothing was run", f.file)}
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", f.file, err)
	}
	ds = p.Lint(allowed)
	for _, d := range ds {
		fmt.Fprintln(a.stderr, d.String())
	}
	if ds.HasErrors() {
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s asks for container permissions that --allow-container does not grant; nothing was run", f.file)}
	}
	known := map[string]bool{}
	for k := range secrets {
		known[k] = true
	}
	if err := p.CheckSecrets(known); errors.As(err, &ds) {
		for _, d := range ds {
			fmt.Fprintln(a.stderr, d.String())
		}
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s asks for secrets that --secrets-file does not hold; nothing was run", f.file)}
	}

	ev := a.event(ctx, dir, f)
	plan, err := p.Plan(ev)
	if errors.Is(err, pipeline.ErrSkipped) {
		fmt.Fprintf(a.stdout, "nothing to run: no stage of %s runs for %s on %q\n", f.file, ev.Kind, refName(ev))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("compile %s for %s on %q: %w", f.file, ev.Kind, refName(ev), err)
	}
	if plan, err = stage.Select(plan, f.stages); err != nil {
		return nil, usageError(err)
	}
	return plan, nil
}

// event describes the working tree as the event the plan is compiled for.
// Git facts reach the steps only as environment variables.
func (a *app) event(ctx context.Context, dir string, f runFlags) pipeline.Event {
	g := readGit(ctx, dir)
	ev := pipeline.Event{
		Kind:    f.event,
		Branch:  f.branch,
		Tag:     f.tag,
		Commit:  g.Commit,
		Message: g.Message,
		Author:  g.Author,
		Repo:    filepath.Base(dir),
	}
	if ev.Branch == "" {
		ev.Branch = g.Branch
	}
	if ev.Branch == "" {
		ev.Branch = "main"
	}
	if ev.Tag != "" {
		ev.Ref = "refs/tags/" + ev.Tag
	} else {
		ev.Ref = "refs/heads/" + ev.Branch
	}
	return ev
}

func refName(ev pipeline.Event) string {
	if ev.Tag != "" {
		return ev.Tag
	}
	return ev.Branch
}

func parseEnvFlags(kvs []string) (map[string]string, error) {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

func newRunID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make run id: %w", err)
	}
	return "local-" + hex.EncodeToString(b), nil
}
