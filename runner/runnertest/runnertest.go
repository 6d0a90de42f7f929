package runnertest

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/agent"
	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/workspace"
	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/internal/serverbus"
	"github.com/runnel-ci/runnel/runner/natsserver"
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
	// AckWait is the agent's lease per job delivery (natsbus default when
	// zero); a short one makes JetStream redeliver a killed agent's job
	// quickly (see KillAgent).
	AckWait time.Duration
	Logger  *slog.Logger // default: discard
	// Wrap, if set, wraps the handler given to Serve (a test making the
	// runner's handling fail).
	Wrap func(natsserver.Handler) natsserver.Handler
}

// Harness is a running NATS, dispatcher and agent. Everything stops when
// the test ends (t.Cleanup), the agent first.
type Harness struct {
	// NATS is the embedded server; Dispatcher is connected to it with the
	// server's credentials and is what the runner takes as its Bus.
	NATS       *natsserver.Server
	Dispatcher *natsserver.Dispatcher
	// Agent is the built-in agent (nil with NoAgent); AgentName its name.
	Agent     *agent.Agent
	AgentName string

	t      testing.TB
	opts   Options
	dir    string
	bus    *serverbus.Bus
	cancel context.CancelFunc // stops Serve and the agent
	ctx    context.Context
	wg     sync.WaitGroup

	mu        sync.Mutex
	killAgent context.CancelFunc           // stops the current agent's Run
	agentDone chan struct{}                // closed when it returned
	added     []natsserver.AgentCredential // by AddCredential
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
	h := &Harness{t: t, opts: o, dir: dir}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	t.Cleanup(h.stop)

	so := serverbus.Options{DataDir: dir, Port: -1, Logger: o.Logger}
	if !o.NoAgent {
		so.Builtin = &serverbus.Builtin{Name: o.AgentName, Labels: o.Labels}
	}
	bus, err := serverbus.Start(h.ctx, so)
	if err != nil {
		t.Fatal(err)
	}
	h.bus, h.NATS, h.Dispatcher = bus, bus.NATS, bus.Dispatcher
	if o.NoAgent {
		return h
	}

	h.AgentName = o.AgentName
	h.StartAgent()
	return h
}

// StartAgent starts the built-in agent (again, after KillAgent) and
// returns once the dispatcher has seen its hello.
func (h *Harness) StartAgent() {
	t, o := h.t, h.opts
	t.Helper()
	if err := os.MkdirAll(filepath.Join(h.dir, "agent"), 0o750); err != nil {
		t.Fatal(err)
	}
	cache, err := gitmirror.NewCache(filepath.Join(h.dir, "git"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{Name: o.AgentName, Labels: maps.Clone(o.Labels), Capacity: o.Capacity, Logger: o.Logger,
		Runner: &workspace.StageRunner{Cache: cache, Engine: local.New(local.Options{Root: filepath.Join(h.dir, "ws"), Logger: o.Logger}),
			WorkDir: filepath.Join(h.dir, "agent"), Logger: o.Logger},
		FlushInterval: 20 * time.Millisecond, PullExpiry: time.Second}
	if o.AckWait > 0 {
		cfg.AckWait, cfg.Progress, cfg.LeaseMargin = o.AckWait, o.AckWait/5, o.AckWait/3
	}
	ag, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	anc, err := h.bus.ConnectAgent()
	if err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(h.ctx)
	done := make(chan struct{})
	h.mu.Lock()
	h.Agent, h.killAgent, h.agentDone = ag, kill, done
	h.mu.Unlock()
	h.wg.Go(func() {
		defer close(done)
		defer anc.Close()
		if err := ag.Run(ctx, anc); err != nil && !errors.Is(err, context.Canceled) {
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
}

// AddCredential gives NATS one more agent credential, allowing labels, and
// returns its NATS user (to connect with natsbus.Connect).
func (h *Harness) AddCredential(name string, labels map[string]string) natsbus.Creds {
	h.t.Helper()
	tok, cred, err := natsserver.NewAgentCredential(name)
	if err != nil {
		h.t.Fatal(err)
	}
	cred.Labels = maps.Clone(labels)
	h.mu.Lock()
	h.added = append(h.added, cred)
	all := slices.Clone(h.added)
	h.mu.Unlock()
	if err := h.bus.SetAgents(all); err != nil {
		h.t.Fatal(err)
	}
	c, err := natsbus.ParseAgentToken(tok)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// AgentLabels returns the labels the credential of agent name allows (the
// runner's Credentials).
func (h *Harness) AgentLabels(name string) (map[string]string, bool) {
	return h.bus.AgentLabels(name)
}

// KillAgent stops the agent the hard way, as if its process died: its
// stages are cancelled without reporting an end, their jobs stay
// unacknowledged, and JetStream redelivers them after AckWait.
func (h *Harness) KillAgent() {
	h.mu.Lock()
	kill, done := h.killAgent, h.agentDone
	h.mu.Unlock()
	if kill == nil {
		return
	}
	kill()
	<-done
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
func (h *Harness) Serve(hd natsserver.Handler) {
	if h.opts.Wrap != nil {
		hd = h.opts.Wrap(hd)
	}
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
	if h.bus != nil {
		h.bus.Close()
	}
}
