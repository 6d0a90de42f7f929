package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/runnel-ci/runnel/agents/agent"
	"github.com/runnel-ci/runnel/agents/deployer"
	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/logs"
	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/transfer"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/agents/workspace"
	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/internal/install"
	"github.com/runnel-ci/runnel/internal/private"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

func init() { commands = append(commands, (*app).agentCommand) }

type agentFlags struct {
	natsURL, token, credsFile, name, labels, backend, workDir string
	stepLogMax                                                string
	capacity                                                  int
	drainTimeout                                              time.Duration
	container                                                 containerFlags
}

func (a *app) agentCommand() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run an agent that takes stages from the server over NATS",
		Long: `Agent connects to the server's NATS (--nats-url) with a token made by
"runnel agent token NAME" on the server host, announces its labels and
capacity, and runs the stages it is given. The first SIGINT/SIGTERM stops
taking jobs and waits up to --drain-timeout for running stages.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runAgent(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.natsURL, "nats-url", a.envDefault("RUNNEL_NATS_URL", "nats://127.0.0.1:4222"), "NATS URL ($RUNNEL_NATS_URL)")
	fl.StringVar(&f.token, "token", a.envDefault("RUNNEL_AGENT_TOKEN", ""), "agent token NAME:SECRET ($RUNNEL_AGENT_TOKEN)")
	fl.StringVar(&f.credsFile, "creds", a.envDefault("RUNNEL_AGENT_CREDS", ""), "file holding the agent token ($RUNNEL_AGENT_CREDS)")
	fl.StringVar(&f.name, "name", a.envDefault("RUNNEL_AGENT_NAME", ""), "agent name (default: the token's)")
	fl.StringVar(&f.labels, "labels", a.envDefault("RUNNEL_AGENT_LABELS", ""), "labels k=v,... ($RUNNEL_AGENT_LABELS)")
	a.addCapacityFlag(fl, &f.capacity, "capacity", "stages the agent runs at once")
	fl.StringVar(&f.backend, "backend", a.envDefault("RUNNEL_BACKEND", "docker"), "executor: docker or local ($RUNNEL_BACKEND)")
	fl.StringVar(&f.workDir, "work-dir", a.envDefault("RUNNEL_AGENT_DIR", filepath.Join(os.TempDir(), "runnel-agent")), "git cache and workspaces ($RUNNEL_AGENT_DIR)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", a.envDuration("RUNNEL_DRAIN_TIMEOUT", 2*time.Minute), "how long shutdown waits for running stages")
	a.addStepLogMaxFlag(fl, &f.stepLogMax, "bytes of one step's log the agent sends")
	a.addContainerFlags(fl, &f.container, "", "RUNNEL_")

	var data, tokenLabels string
	tokenCmd := &cobra.Command{
		Use:   "token NAME",
		Short: "Make a NATS credential for an agent of the embedded NATS server (a running server loads it within a second)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		Long: `Token makes a NATS credential for agent NAME. --labels fixes the labels
the agent may take jobs for: only jobs whose required labels are among
them (its NATS permissions reach only the job queues of those label
sets), whatever labels it announces. Without --labels the agent takes only
jobs that need no labels; an agent announcing labels its credential does
not allow stops at start and names this command.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(tokenLabels)
			if err != nil {
				return usageError(fmt.Errorf("--labels: %w", err))
			}
			if err := wire.ValidateLabels(labels); err != nil {
				return usageError(fmt.Errorf("--labels: %w", err))
			}
			tok, err := addAgentCredential(data, args[0], labels)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "agent token (shown once): %s\n", tok)
			return nil
		},
	}
	tokenCmd.Flags().StringVar(&data, "data", a.envDefault("RUNNEL_DATA", "./runnel-data"), "server data directory ($RUNNEL_DATA)")
	tokenCmd.Flags().StringVar(&tokenLabels, "labels", "", "fix the labels the agent may take jobs for, k=v,... (empty: only jobs without labels)")
	cmd.AddCommand(tokenCmd)
	return cmd
}

// addCapacityFlag defines an agent's capacity flag: the built-in agent's
// --agent-capacity and runnel agent's --capacity share its default, one
// stage per CPU (the stages of one machine share its CPUs, and a fixed
// default left most machines idle or overloaded), and its variable.
func (a *app) addCapacityFlag(fl *pflag.FlagSet, p *int, name, what string) {
	fl.IntVar(p, name, a.envInt("RUNNEL_AGENT_CAPACITY", runtime.NumCPU()), what+"; default: the number of CPUs ($RUNNEL_AGENT_CAPACITY)")
}

// addStepLogMaxFlag defines --step-log-max, the cap on one step's log:
// runnel agent's (what it sends) and runnel server's (what it stores and
// its built-in agent sends) share the name, the default and the variable.
func (a *app) addStepLogMaxFlag(fl *pflag.FlagSet, p *string, what string) {
	fl.StringVar(p, "step-log-max", a.envDefault("RUNNEL_STEP_LOG_MAX", fmt.Sprintf("%dm", logs.DefaultStepMax>>20)),
		what+" (512k, 100m, 1g); past it the step keeps running and its log says it was truncated ($RUNNEL_STEP_LOG_MAX)")
}

// stepLogMaxProblem checks a --step-log-max value.
func stepLogMaxProblem(s string) []string {
	if _, err := parseSize(s); err != nil {
		return []string{fmt.Sprintf("--step-log-max %q: want a size like 512k, 100m or 1g", s)}
	}
	return nil
}

const agentCredsFile = "nats-agents.json"

// loadAgentCredentials reads the agent credentials the embedded NATS
// server accepts (bcrypt hashes only).
func loadAgentCredentials(data string) ([]natsserver.AgentCredential, error) {
	b, err := os.ReadFile(filepath.Join(data, agentCredsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var creds []natsserver.AgentCredential
	if err := json.Unmarshal(b, &creds); err != nil {
		return nil, fmt.Errorf("read %s: %w", agentCredsFile, err)
	}
	return creds, nil
}

// addAgentCredential adds (or replaces) the credential of agent name,
// allowing jobs of labels (nil: only jobs that need no labels).
func addAgentCredential(data, name string, labels map[string]string) (string, error) {
	creds, err := loadAgentCredentials(data)
	if err != nil {
		return "", err
	}
	tok, cred, err := natsserver.NewAgentCredential(name)
	if err != nil {
		return "", err
	}
	cred.Labels = labels
	out := []natsserver.AgentCredential{cred}
	for _, c := range creds {
		if c.Name != name {
			out = append(out, c)
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return "", err
	}
	if err := private.MkdirAll(data); err != nil {
		return "", err
	}
	tmp := filepath.Join(data, agentCredsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", err
	}
	return tok, os.Rename(tmp, filepath.Join(data, agentCredsFile))
}

func (a *app) runAgent(ctx context.Context, f agentFlags) error {
	if err := refuseFlags(append(a.envProblems(), agentFlagProblems(f)...)); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(a.stderr, nil))
	tok := f.token
	if tok == "" && f.credsFile != "" {
		b, err := os.ReadFile(f.credsFile)
		if err != nil {
			return err
		}
		tok = string(trimSpace(b))
	}
	if tok == "" {
		return usageError(errors.New("--token or --creds is required"))
	}
	creds, err := natsbus.ParseAgentToken(tok)
	if err != nil {
		return usageError(err)
	}
	name := f.name
	if name == "" {
		name = creds.User
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return usageError(fmt.Errorf("--labels: %w", err))
	}
	allowed, limits, err := f.container.parse("")
	if err != nil {
		return err
	}
	inst, err := install.Load(f.workDir)
	if err != nil {
		return err
	}
	log = log.With("install", inst)
	bg := context.WithoutCancel(ctx)
	eng, closeEngine, err := serverEngine(bg, f.backend, inst, limits, log)
	if err != nil {
		return err
	}
	defer closeEngine()
	stepLogMax, _ := parseSize(f.stepLogMax) // checked by agentFlagProblems
	ag, err := newAgent(name, labels, f.capacity, eng, allowed, f.workDir, stepLogMax, log)
	if err != nil {
		return err
	}
	nc, err := connectAgent(ctx, f.natsURL, creds, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	runCtx, stop := context.WithCancel(bg)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- ag.Run(runCtx, nc) }()
	log.Info("agent connected", "agent", name, "nats", f.natsURL)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("draining", "deadline", f.drainTimeout)
	dctx, cancel := context.WithTimeout(bg, f.drainTimeout)
	defer cancel()
	derr := ag.Drain(dctx)
	stop()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return derr
}

// authWait is how long a new agent keeps trying while the server does
// not know its token yet: the server loads tokens made by `runnel agent
// token` within a second (credsPoll).
const authWait = 15 * time.Second

// connectAgent connects to NATS, retrying an authorization error for
// authWait so an agent started right after its token was made joins.
func connectAgent(ctx context.Context, url string, creds natsbus.Creds, log *slog.Logger) (*nats.Conn, error) {
	deadline := time.Now().Add(authWait)
	for {
		nc, err := natsbus.Connect(url, creds)
		if err == nil || !errors.Is(err, nats.ErrAuthorization) || time.Now().After(deadline) {
			if err != nil && errors.Is(err, nats.ErrAuthorization) {
				err = fmt.Errorf("%w (is the token from \"runnel agent token\" on this server's host, with the server's --data?)", err)
			}
			return nc, err
		}
		log.Warn("NATS does not accept the agent token yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// newAgent builds an agent loop running stages with the workspace
// StageRunner on eng, capping each step's log at stepLogMax bytes (0: the
// default).
func newAgent(name string, labels map[string]string, capacity int, eng engine.Engine, allowed []pipeline.Permission, workDir string, stepLogMax int64, log *slog.Logger) (*agent.Agent, error) {
	if err := private.MkdirAll(workDir); err != nil {
		return nil, err
	}
	cache, err := gitmirror.NewCache(filepath.Join(workDir, "git"))
	if err != nil {
		return nil, err
	}
	fetcher := &artifact.Fetcher{Dir: filepath.Join(workDir, "fetch"), Client: transfer.FetchClient(), MaxBytes: maxFetch, Logger: log}
	return agent.New(agent.Config{Name: name, Labels: labels, Capacity: capacity, Logger: log,
		Runner: &workspace.StageRunner{Cache: cache, Engine: eng, WorkDir: workDir, Logger: log, Fetcher: fetcher, AllowContainer: allowed, StepLogMax: stepLogMax,
			Deployer: &deployer.Deployer{ProxyToken: os.Getenv("RUNNEL_PROXY_TOKEN"), Logger: log}}})
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
