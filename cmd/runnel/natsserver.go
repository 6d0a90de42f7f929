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
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

// The runner links no bus; the one it runs on is wired here.
var (
	_ runner.Bus         = (*natsserver.Dispatcher)(nil)
	_ natsserver.Handler = runner.BusHandler{}
)

// natsSetup is the server's NATS side: an embedded or external NATS, the
// dispatcher, its event consumer and, unless --no-agent, the built-in
// agent as a NATS agent.
type natsSetup struct {
	log    *slog.Logger
	srv    *natsserver.Server // nil for an external NATS
	url    string
	nc     *nats.Conn
	d      *natsserver.Dispatcher
	agentC natsbus.Creds
	// builtin is the built-in agent's credential (with an external NATS
	// its name and labels only); a reload of the agent credentials keeps
	// it.
	builtin *natsserver.AgentCredential
	data    string // the server's data directory (absolute)
	// creds are the labels each credential allows, for the runner's
	// check of claims; loaded with the embedded or an external NATS.
	creds credLabels

	cancel context.CancelFunc
	wg     sync.WaitGroup
	ag     *agent.Agent
	agNC   *nats.Conn
}

// startNATS starts (or joins) NATS; the built-in agent's credential on the
// embedded NATS allows its labels (--agent-labels) and no others.
func startNATS(ctx context.Context, f serverFlags, data, inst string, labels map[string]string, log *slog.Logger) (*natsSetup, error) {
	n := &natsSetup{log: log, data: data}
	var creds natsbus.Creds
	if f.natsURL == "embedded" {
		agents, err := loadAgentCredentials(data)
		if err != nil {
			return nil, err
		}
		if !f.noAgent {
			tok, cred, err := natsserver.NewAgentCredential("builtin")
			if err != nil {
				return nil, err
			}
			cred.Labels = labels
			agents = append(agents, cred)
			n.builtin = &cred
			if n.agentC, err = natsbus.ParseAgentToken(tok); err != nil {
				return nil, err
			}
		}
		n.srv, err = natsserver.StartEmbedded(natsserver.Options{DataDir: filepath.Join(data, "nats"), Host: f.natsHost, Port: f.natsPort, Agents: agents, Logger: log})
		if err != nil {
			return nil, err
		}
		n.creds.set(agents)
		n.url = n.srv.ClientURL()
		creds = n.srv.ServerCreds()
		log.Info("embedded NATS started", "url", n.url)
	} else {
		n.url = f.natsURL
		creds = natsbus.Creds{User: f.natsUser, Password: f.natsPassword}
		if !f.noAgent {
			if f.agentToken == "" {
				return nil, usageError(errors.New("--agent-token is required for the built-in agent with an external NATS (or use --no-agent)"))
			}
			c, err := natsbus.ParseAgentToken(f.agentToken)
			if err != nil {
				return nil, usageError(err)
			}
			n.agentC = c
			n.builtin = &natsserver.AgentCredential{Name: c.User, Labels: labels}
		}
		// The server checks claims against DATA/nats-agents.json here
		// too: the credentials the cluster's users were made from.
		if err := n.reloadAgents(); err != nil {
			return nil, err
		}
	}
	var err error
	n.nc, err = natsbus.Connect(n.url, creds)
	if err != nil {
		n.close()
		return nil, err
	}
	n.d, err = natsserver.NewDispatcher(ctx, n.nc, natsserver.DispatcherOptions{Logger: log, Install: inst})
	if err != nil {
		n.close()
		return nil, err
	}
	return n, nil
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
	if n.builtin != nil {
		agents = append(agents, *n.builtin)
	}
	if n.srv != nil {
		if err := n.srv.SetAgents(agents); err != nil {
			return err
		}
	}
	n.creds.set(agents)
	return nil
}

// credsPoll is how often the server looks for a changed agent
// credentials file.
const credsPoll = time.Second

// run starts consuming agents' events into rn and the built-in agent.
// A change to the agent credentials file (written by `runnel agent
// token`) is loaded within credsPoll, and SIGHUP loads it at once.
func (n *natsSetup) run(ctx context.Context, rn *runner.Runner, f serverFlags, eng engine.Engine, labels map[string]string, allowed []pipeline.Permission, workDir string, log *slog.Logger) error {
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
		if err := n.d.Run(ctx, rn.Handler()); err != nil {
			log.Error("event consumer stopped", "err", err)
		}
	}()
	if eng == nil {
		return nil
	}
	ag, err := newNATSAgent(n.agentC.User, labels, f.agentCapacity, eng, allowed, workDir, log)
	if err != nil {
		return err
	}
	n.agNC, err = natsbus.Connect(n.url, n.agentC)
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
	if n.d != nil {
		n.d.Close()
	}
	if n.nc != nil {
		n.nc.Drain()
	}
	if n.srv != nil {
		n.srv.Shutdown()
	}
}
