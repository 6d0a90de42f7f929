package serverbus

import (
	"context"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

// Options configure Start.
type Options struct {
	// URL is a nats://... URL of an external NATS; empty starts an
	// embedded one with its state in DataDir/nats, listening on Host
	// and Port (-1: a free port).
	URL     string
	DataDir string
	Host    string
	Port    int
	// Creds are the server's credentials on an external NATS (the
	// embedded one makes its own).
	Creds natsbus.Creds
	// Agents are the credentials agents other than the built-in one
	// connect with (DATA/nats-agents.json): the embedded NATS accepts
	// them, and their labels are what a claim may take.
	Agents []natsserver.AgentCredential
	// Builtin, if set, is the built-in agent's identity.
	Builtin *Builtin
	Install string       // put on jobs (natsserver.DispatcherOptions)
	Logger  *slog.Logger // default: discard
}

// Builtin is the built-in agent's identity: on the embedded NATS a new
// credential named Name (default "builtin") allowing Labels and no
// others; on an external NATS the one of Creds (a parsed agent token),
// whose user is its name.
type Builtin struct {
	Name   string
	Labels map[string]string
	Creds  *natsbus.Creds
}

// Bus is a started NATS (embedded or joined) and its Dispatcher.
type Bus struct {
	// NATS is the embedded server, nil with an external NATS.
	NATS *natsserver.Server
	// Dispatcher is connected with the server's credentials.
	Dispatcher *natsserver.Dispatcher
	// URL is the NATS client URL.
	URL string

	nc      *nats.Conn
	agentC  natsbus.Creds               // the built-in agent's
	builtin *natsserver.AgentCredential // nil without one

	mu     sync.RWMutex
	labels map[string]map[string]string // per credential name
}

// Start starts (or joins) NATS and the dispatcher. On an error it stops
// what it started.
func Start(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bus{}
	if err := b.builtinCred(o); err != nil {
		return nil, err
	}
	creds := o.Creds
	if o.URL == "" {
		srv, err := natsserver.StartEmbedded(natsserver.Options{DataDir: filepath.Join(o.DataDir, "nats"), Host: o.Host, Port: o.Port,
			Agents: b.withBuiltin(o.Agents), Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		b.NATS, b.URL, creds = srv, srv.ClientURL(), srv.ServerCreds()
		o.Logger.Info("embedded NATS started", "url", b.URL)
	} else {
		b.URL = o.URL
	}
	b.setLabels(b.withBuiltin(o.Agents))
	var err error
	if b.nc, err = natsbus.Connect(b.URL, creds); err != nil {
		b.Close()
		return nil, err
	}
	if b.Dispatcher, err = natsserver.NewDispatcher(ctx, b.nc, natsserver.DispatcherOptions{Logger: o.Logger, Install: o.Install}); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// builtinCred makes (embedded) or takes (external) the built-in agent's
// credential.
func (b *Bus) builtinCred(o Options) error {
	if o.Builtin == nil {
		return nil
	}
	if o.URL != "" {
		b.agentC = *o.Builtin.Creds
		b.builtin = &natsserver.AgentCredential{Name: b.agentC.User, Labels: maps.Clone(o.Builtin.Labels)}
		return nil
	}
	name := o.Builtin.Name
	if name == "" {
		name = "builtin"
	}
	tok, cred, err := natsserver.NewAgentCredential(name)
	if err != nil {
		return err
	}
	cred.Labels = maps.Clone(o.Builtin.Labels)
	b.builtin = &cred
	b.agentC, err = natsbus.ParseAgentToken(tok)
	return err
}

func (b *Bus) withBuiltin(agents []natsserver.AgentCredential) []natsserver.AgentCredential {
	agents = slices.Clone(agents)
	if b.builtin != nil {
		agents = append(agents, *b.builtin)
	}
	return agents
}

func (b *Bus) setLabels(agents []natsserver.AgentCredential) {
	m := make(map[string]map[string]string, len(agents))
	for _, a := range agents {
		m[a.Name] = maps.Clone(a.Labels)
	}
	b.mu.Lock()
	b.labels = m
	b.mu.Unlock()
}

// SetAgents replaces the credentials of agents other than the built-in
// one: the embedded NATS accepts them from now on (connections keep the
// permissions they had), and AgentLabels answers with them.
func (b *Bus) SetAgents(agents []natsserver.AgentCredential) error {
	all := b.withBuiltin(agents)
	if b.NATS != nil {
		if err := b.NATS.SetAgents(all); err != nil {
			return err
		}
	}
	b.setLabels(all)
	return nil
}

// AgentLabels returns the labels the credential name allows (it is a
// runner.Credentials).
func (b *Bus) AgentLabels(name string) (map[string]string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	l, ok := b.labels[name]
	return l, ok
}

// ConnectAgent connects to NATS as the built-in agent.
func (b *Bus) ConnectAgent() (*nats.Conn, error) { return natsbus.Connect(b.URL, b.agentC) }

// AgentName is the built-in agent's credential name ("" without one).
func (b *Bus) AgentName() string {
	if b.builtin == nil {
		return ""
	}
	return b.builtin.Name
}

// Close stops the dispatcher, drains the server's connection and shuts
// the embedded NATS down. Stop the event consumer and the built-in
// agent first.
func (b *Bus) Close() {
	if b.Dispatcher != nil {
		b.Dispatcher.Close()
	}
	if b.nc != nil {
		b.nc.Drain()
	}
	if b.NATS != nil {
		b.NATS.Shutdown()
	}
}
