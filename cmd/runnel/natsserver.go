package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runnel-ci/runnel/agents/agent"
	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/internal/serverbus"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

// The runner links no bus; the one it runs on is wired here.
var (
	_ runner.Bus         = (*natsserver.Dispatcher)(nil)
	_ natsserver.Handler = runner.BusHandler{}
	_ runner.Credentials = (*serverbus.Bus)(nil)
)

// natsSetup is the server's NATS side (internal/serverbus: an embedded or
// external NATS and the dispatcher), its event consumer and, unless
// --no-agent, the built-in agent as a NATS agent.
type natsSetup struct {
	log  *slog.Logger
	bus  *serverbus.Bus
	d    *natsserver.Dispatcher // bus.Dispatcher
	data string                 // the server's data directory (absolute)

	cancel context.CancelFunc
	wg     sync.WaitGroup
	ag     *agent.Agent
	agNC   *nats.Conn
}

// startNATS starts (or joins) NATS; the built-in agent's credential on the
// embedded NATS allows its labels (--agent-labels) and no others. The
// server checks claims against DATA/nats-agents.json with an external
// NATS too: the credentials the cluster's users were made from.
func startNATS(ctx context.Context, f serverFlags, data, inst string, labels map[string]string, log *slog.Logger) (*natsSetup, error) {
	agents, err := loadAgentCredentials(data)
	if err != nil {
		return nil, err
	}
	o := serverbus.Options{DataDir: data, Host: f.natsHost, Port: f.natsPort, Agents: agents, Install: inst, Logger: log}
	if !f.noAgent {
		o.Builtin = &serverbus.Builtin{Name: "builtin", Labels: labels}
	}
	if f.natsURL != "embedded" {
		o.URL, o.Creds = f.natsURL, natsbus.Creds{User: f.natsUser, Password: f.natsPassword}
		if !f.noAgent {
			if f.agentToken == "" {
				return nil, usageError(errors.New("--agent-token is required for the built-in agent with an external NATS (or use --no-agent)"))
			}
			c, err := natsbus.ParseAgentToken(f.agentToken)
			if err != nil {
				return nil, usageError(err)
			}
			o.Builtin.Creds = &c
		}
	}
	bus, err := serverbus.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return &natsSetup{log: log, bus: bus, d: bus.Dispatcher, data: data}, nil
}

// reloadAgents re-reads the agent credentials (written by `runnel agent
// token`) into the embedded NATS server, so a new agent can join without a
// restart, and into the labels the runner checks claims against (also
// with an external NATS). Existing connections keep their permissions.
func (n *natsSetup) reloadAgents() error {
	agents, err := loadAgentCredentials(n.data)
	if err != nil {
		return err
	}
	return n.bus.SetAgents(agents)
}

// credsPoll is how often the server looks for a changed agent
// credentials file.
const credsPoll = time.Second

// run starts consuming agents' events into h (the runner's) and the
// built-in agent.
// A change to the agent credentials file (written by `runnel agent
// token`) is loaded within credsPoll, and SIGHUP loads it at once.
func (n *natsSetup) run(ctx context.Context, h natsserver.Handler, f serverFlags, eng engine.Engine, labels map[string]string, allowed []pipeline.Permission, workDir string, log *slog.Logger) error {
	ctx, n.cancel = context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	path := filepath.Join(n.data, agentCredsFile)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer signal.Stop(hup)
		tick := time.NewTicker(credsPoll)
		defer tick.Stop()
		last := fileStamp(path)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			case <-tick.C:
				if st := fileStamp(path); st != last {
					last = st
				} else {
					continue
				}
			}
			if err := n.reloadAgents(); err != nil {
				log.Error("reload agent credentials", "err", err)
			} else {
				log.Info("agent credentials reloaded")
			}
		}
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.d.Run(ctx, h); err != nil {
			log.Error("event consumer stopped", "err", err)
		}
	}()
	if eng == nil {
		return nil
	}
	stepLogMax, _ := parseSize(f.stepLogMax) // checked by serverFlagProblems
	ag, err := newAgent(n.bus.AgentName(), labels, f.agentCapacity, eng, allowed, workDir, stepLogMax, log)
	if err != nil {
		return err
	}
	n.agNC, err = n.bus.ConnectAgent()
	if err != nil {
		return fmt.Errorf("built-in agent: %w", err)
	}
	n.ag = ag
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := ag.Run(ctx, n.agNC); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("built-in agent stopped", "err", err)
		}
	}()
	return nil
}

// stamp identifies a version of a file: a rewrite (a new file renamed
// into place) changes its inode, an edit its size or time.
type stamp struct {
	ino, size int64
	mod       time.Time
}

// fileStamp returns path's stamp; the zero stamp when it does not exist.
func fileStamp(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	st := stamp{size: fi.Size(), mod: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = int64(sys.Ino)
	}
	return st
}

// drain lets the built-in agent finish its stages until ctx ends.
func (n *natsSetup) drain(ctx context.Context) {
	if n.ag != nil {
		if err := n.ag.Drain(ctx); err != nil {
			n.log.Warn("built-in agent drain", "err", err)
		}
	}
}

func (n *natsSetup) close() {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	if n.agNC != nil {
		n.agNC.Close()
	}
	n.bus.Close()
}
