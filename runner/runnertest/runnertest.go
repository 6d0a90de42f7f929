package runnertest

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runnel-ci/runnel/agents/agent"
	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/workspace"
)

// Options configure Start. The zero value gives one agent named "local"
// with capacity 2 and no labels.
type Options struct {
	AgentName string            // default "local"
	Labels    map[string]string // the agent's labels
	Capacity  int               // default 2
	// NoAgent starts NATS and the dispatcher only: published jobs wait in
	// the queue, as with `runnel server --no-agent`.
	NoAgent bool
	Logger  *slog.Logger // default: discard
}

// Harness is a running NATS, dispatcher and agent. Everything stops when
// the test ends (t.Cleanup), the agent first.
type Harness struct {
	// NATS is the embedded server; Dispatcher is connected to it with the
	// server's credentials and is what the runner takes as its Bus.
	NATS       *natsbus.Server
	Dispatcher *natsbus.Dispatcher
	// Agent is the built-in agent (nil with NoAgent); AgentName its name.
	Agent     *agent.Agent
	AgentName string

	t      testing.TB
	log    *slog.Logger
	nc     *nats.Conn
	cancel context.CancelFunc // stops Serve and the agent
	ctx    context.Context
	wg     sync.WaitGroup
}

// Start starts NATS, the dispatcher and (unless o.NoAgent) the agent, and
// returns once the dispatcher has seen the agent's hello. Call Serve with
// the runner's handler to receive the agent's updates and logs.
func Start(t testing.TB, o Options) *Harness {
	t.Helper()
	if o.AgentName == "" {
		o.AgentName = "local"
	}
	if o.Capacity <= 0 {
		o.Capacity = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	dir := t.TempDir()
	h := &Harness{t: t, log: o.Logger}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	t.Cleanup(h.stop)

	var creds []natsbus.AgentCredential
	var agentCreds natsbus.Creds
	if !o.NoAgent {
		tok, cred, err := natsbus.NewAgentCredential(o.AgentName)
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, cred)
		if agentCreds, err = natsbus.ParseAgentToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := natsbus.StartEmbedded(natsbus.Options{DataDir: filepath.Join(dir, "nats"), Port: -1, Agents: creds, Logger: o.Logger})
	if err != nil {
		t.Fatal(err)
	}
	h.NATS = srv
	h.nc, err = natsbus.Connect(srv.ClientURL(), srv.ServerCreds())
	if err != nil {
		t.Fatal(err)
	}
	h.Dispatcher, err = natsbus.NewDispatcher(h.ctx, h.nc, natsbus.DispatcherOptions{Logger: o.Logger})
	if err != nil {
		t.Fatal(err)
	}
	if o.NoAgent {
		return h
	}

	if err := os.MkdirAll(filepath.Join(dir, "agent"), 0o750); err != nil {
		t.Fatal(err)
	}
	cache, err := workspace.NewCache(filepath.Join(dir, "git"))
	if err != nil {
		t.Fatal(err)
	}
	eng := local.New(local.Options{Root: filepath.Join(dir, "ws"), Logger: o.Logger})
	h.AgentName = o.AgentName
	h.Agent, err = agent.New(agent.Config{Name: o.AgentName, Labels: maps.Clone(o.Labels), Capacity: o.Capacity, Logger: o.Logger,
		Runner:        &workspace.StageRunner{Cache: cache, Engine: eng, WorkDir: filepath.Join(dir, "agent"), Logger: o.Logger},
		FlushInterval: 20 * time.Millisecond, PullExpiry: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	anc, err := natsbus.Connect(srv.ClientURL(), agentCreds)
	if err != nil {
		t.Fatal(err)
	}
	h.wg.Go(func() {
		defer anc.Close()
		if err := h.Agent.Run(h.ctx, anc); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("agent %s: %v", o.AgentName, err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !h.present() {
		if time.Now().After(deadline) {
			t.Fatalf("agent %s: no hello within 10s", o.AgentName)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return h
}

func (h *Harness) present() bool {
	for _, a := range h.Dispatcher.Agents() {
		if a.Name == h.AgentName && !a.Lost {
			return true
		}
	}
	return false
}

// Serve hands the agents' updates and log chunks to hd (the runner's
// Handler) until the test ends.
func (h *Harness) Serve(hd natsbus.Handler) {
	h.wg.Go(func() {
		if err := h.Dispatcher.Run(h.ctx, hd); err != nil {
			h.t.Errorf("dispatcher run: %v", err)
		}
	})
}

// stop cancels the agent's stages and the event consumer, waits for
// both, and shuts NATS down.
func (h *Harness) stop() {
	h.cancel()
	h.wg.Wait()
	if h.Dispatcher != nil {
		h.Dispatcher.Close()
	}
	if h.nc != nil {
		h.nc.Close()
	}
	if h.NATS != nil {
		h.NATS.Shutdown()
	}
}
