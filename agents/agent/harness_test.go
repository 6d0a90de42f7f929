package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

// bus is an embedded NATS server with a dispatcher and a recording handler.
type bus struct {
	t      *testing.T
	dir    string
	port   int
	srv    *natsserver.Server
	creds  []natsserver.AgentCredential
	tokens map[string]string
	nc     *nats.Conn
	d      *natsserver.Dispatcher
	rec    *recorder
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

func newBus(t *testing.T, agents ...string) *bus {
	t.Helper()
	b := &bus{t: t, dir: t.TempDir(), port: -1, tokens: map[string]string{}, rec: newRecorder()}
	for _, a := range agents {
		tok, cred, err := natsserver.NewAgentCredential(a)
		if err != nil {
			t.Fatal(err)
		}
		b.tokens[a] = tok
		b.creds = append(b.creds, cred)
	}
	b.start()
	t.Cleanup(b.close)
	return b
}

func (b *bus) start() {
	t := b.t
	srv, err := natsserver.StartEmbedded(natsserver.Options{DataDir: b.dir, Port: b.port, Agents: b.creds, ServerPassword: "server-secret"})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = srv
	b.port = srv.Port()
	if b.nc != nil {
		return // the server's client reconnects by itself
	}
	b.nc, err = natsbus.Connect(srv.ClientURL(), srv.ServerCreds())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	b.d, err = natsserver.NewDispatcher(ctx, b.nc, natsserver.DispatcherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.wg.Go(func() {
		if err := b.d.Run(ctx, b.rec); err != nil {
			t.Errorf("dispatcher run: %v", err)
		}
	})
}

func (b *bus) close() {
	b.stop()
	b.wg.Wait()
	b.d.Close()
	b.nc.Close()
	b.srv.Shutdown()
}

// connect connects as agent name.
func (b *bus) connect(name string) *nats.Conn {
	b.t.Helper()
	creds, err := natsbus.ParseAgentToken(b.tokens[name])
	if err != nil {
		b.t.Fatal(err)
	}
	nc, err := natsbus.Connect(b.srv.ClientURL(), creds)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(nc.Close)
	return nc
}

// agent starts an agent with its own connection; it is stopped at cleanup.
func (b *bus) agent(cfg Config) (*Agent, *nats.Conn) {
	b.t.Helper()
	b.allowLabels(cfg.Name, cfg.Labels)
	nc := b.connect(cfg.Name)
	a, err := New(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx, nc); err != nil {
			b.t.Errorf("agent %s: %v", cfg.Name, err)
		}
	}()
	b.t.Cleanup(func() { cancel(); <-done })
	return a, nc
}

// allowLabels makes agent name's credential allow labels (a credential
// fixes the labels its agent may take jobs for).
func (b *bus) allowLabels(name string, labels map[string]string) {
	b.t.Helper()
	for i := range b.creds {
		if b.creds[i].Name == name && !maps.Equal(b.creds[i].Labels, labels) {
			b.creds[i].Labels = maps.Clone(labels)
			if err := b.srv.SetAgents(b.creds); err != nil {
				b.t.Fatal(err)
			}
		}
	}
}

func (b *bus) publish(ctx context.Context, run, stage string, labels map[string]string, steps ...*pipeline.Step) {
	b.t.Helper()
	if err := b.d.Publish(ctx, job(run, stage, labels, steps...)); err != nil {
		b.t.Fatal(err)
	}
}

func job(run, stage string, labels map[string]string, steps ...*pipeline.Step) *wire.Job {
	return &wire.Job{RunID: run, StageID: stage, Attempt: 1,
		Stage: &pipeline.Stage{ID: stage, Name: stage, Labels: labels, Steps: steps}}
}

// recorder is a natsserver.Handler that keeps everything. It grants claims
// as the server does: the first token of each run/stage/attempt.
type recorder struct {
	mu      sync.Mutex
	updates []wire.Update
	logs    map[string]*logStream // by run/stage/attempt/step
	claims  map[string]string     // run/stage/attempt -> token
	refused int                   // claims refused
	// release refuses every claim of these agents, asking them to hand
	// the job back after the delay (a credential that does not allow it).
	release map[string]time.Duration
	lease   time.Duration // of granted claims; 0: the agent's default
	changed chan struct{}
}

func (r *recorder) Claim(_ context.Context, c *wire.Claim) *wire.ClaimReply {
	key := fmt.Sprintf("%s/%s/%d", c.RunID, c.StageID, c.Attempt)
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.release[c.Agent]; ok {
		r.refused++
		return &wire.ClaimReply{Reason: "not for you", Release: pipeline.Duration(d)}
	}
	if r.claims == nil {
		r.claims = map[string]string{}
	}
	if tok, ok := r.claims[key]; ok && tok != c.Token {
		r.refused++
		return &wire.ClaimReply{Reason: "claimed"}
	}
	r.claims[key] = c.Token
	return &wire.ClaimReply{Granted: true, Attempt: c.Attempt, Lease: pipeline.Duration(r.lease)}
}

type logStream struct {
	h       hash.Hash
	n       int64
	nextSeq uint64
	eof     bool
	err     error
}

func newRecorder() *recorder {
	return &recorder{logs: map[string]*logStream{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) Update(_ context.Context, u *wire.Update) error {
	r.mu.Lock()
	r.updates = append(r.updates, *u)
	r.mu.Unlock()
	r.poke()
	return nil
}

func (r *recorder) Log(_ context.Context, c *wire.LogChunk) error {
	key := fmt.Sprintf("%s/%s/%d/%s", c.RunID, c.StageID, c.Attempt, c.Step)
	r.mu.Lock()
	s := r.logs[key]
	if s == nil {
		s = &logStream{h: sha256.New()}
		r.logs[key] = s
	}
	switch {
	case s.err != nil:
	case c.Seq != s.nextSeq:
		s.err = fmt.Errorf("got chunk %d, want %d", c.Seq, s.nextSeq)
	case len(c.Data) > wire.MaxChunk:
		s.err = fmt.Errorf("chunk %d has %d bytes, more than %d", c.Seq, len(c.Data), wire.MaxChunk)
	default:
		s.h.Write(c.Data)
		s.n += int64(len(c.Data))
		s.nextSeq++
		s.eof = c.EOF
	}
	r.mu.Unlock()
	r.poke()
	return nil
}

func (r *recorder) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// wait waits until cond (called under the lock) holds.
func (r *recorder) wait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// finds returns the updates of a kind for run/stage, under the lock.
func (r *recorder) find(kind wire.Kind, run, stage string) []wire.Update {
	var out []wire.Update
	for _, u := range r.updates {
		if u.Kind == kind && u.RunID == run && (stage == "" || u.StageID == stage) {
			out = append(out, u)
		}
	}
	return out
}

func (r *recorder) count(kind wire.Kind) int {
	n := 0
	for _, u := range r.updates {
		if u.Kind == kind {
			n++
		}
	}
	return n
}

func (r *recorder) dump(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.updates {
		t.Logf("%s %s/%s#%d %s %s", u.Agent, u.RunID, u.StageID, u.Attempt, u.Kind, u.Status)
	}
}
