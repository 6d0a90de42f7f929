package natsserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// EventsConsumer is the server's durable consumer of the EVENTS stream.
const EventsConsumer = "runnel-server"

// Errors of Publish.
var (
	// ErrQueueFull reports that the JOBS stream is at its limits (it
	// discards new messages, never old ones).
	ErrQueueFull = errors.New("job queue full")
	// ErrUnschedulable reports a job no agent can ever match.
	ErrUnschedulable = errors.New("job requires more labels than an agent may have")
)

// StreamLimits bound the streams; zero fields take the defaults.
type StreamLimits struct {
	JobsMaxMsgs    int64         // default 100,000
	JobsMaxBytes   int64         // default 1 GiB
	EventsMaxBytes int64         // default 4 GiB: logs buffered while the server is away
	Duplicates     time.Duration // Nats-Msg-Id window, default 2 min
}

func (l StreamLimits) withDefaults() StreamLimits {
	if l.JobsMaxMsgs == 0 {
		l.JobsMaxMsgs = 100_000
	}
	if l.JobsMaxBytes == 0 {
		l.JobsMaxBytes = 1 << 30
	}
	if l.EventsMaxBytes == 0 {
		l.EventsMaxBytes = 4 << 30
	}
	if l.Duplicates == 0 {
		l.Duplicates = 2 * time.Minute
	}
	return l
}

// EnsureStreams creates or updates the JOBS and EVENTS streams. Both are
// work queues on file storage that refuse new messages when full (so
// nothing unconsumed is ever dropped): JOBS is consumed by agents, EVENTS
// (updates and logs) by the server alone, so logs wait in the stream while
// the server restarts.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, l StreamLimits) error {
	l = l.withDefaults()
	cfgs := []jetstream.StreamConfig{{
		Name:       natsbus.JobsStream,
		Subjects:   []string{wire.JobsWildcard},
		Retention:  jetstream.WorkQueuePolicy,
		Discard:    jetstream.DiscardNew,
		Storage:    jetstream.FileStorage,
		MaxMsgs:    l.JobsMaxMsgs,
		MaxBytes:   l.JobsMaxBytes,
		Duplicates: l.Duplicates,
	}, {
		Name:       natsbus.EventsStream,
		Subjects:   []string{wire.RunsWildcard},
		Retention:  jetstream.WorkQueuePolicy,
		Discard:    jetstream.DiscardNew,
		Storage:    jetstream.FileStorage,
		MaxBytes:   l.EventsMaxBytes,
		Duplicates: l.Duplicates,
	}}
	for _, c := range cfgs {
		if _, err := js.CreateOrUpdateStream(ctx, c); err != nil {
			return fmt.Errorf("ensure stream %s: %w", c.Name, err)
		}
	}
	return nil
}

// Handler receives what agents report, in stream order. An error makes
// the message come again about a second later (possibly after later ones).
// Delivery is at least once (a server that crashes before its ack sees a
// message again), so handlers deduplicate: an Update by (run, stage,
// attempt, Seq), a LogChunk by (run, stage, attempt, step, Seq). The
// sender is authenticated: Update.Agent and LogChunk.Agent are the agent
// the subject names (wire.ServerAgent for KindLost); see dispatch.
type Handler interface {
	// Update is called for every Update, including KindLost ones made by
	// the Dispatcher when JetStream gave up on a job.
	Update(ctx context.Context, u *wire.Update) error
	// Log is called for every log chunk.
	Log(ctx context.Context, c *wire.LogChunk) error
	// Claim answers an agent's claim of a job (wire rule 3); c.Agent is
	// the agent its subject names. nil means no answer (the agent asks
	// again).
	Claim(ctx context.Context, c *wire.Claim) *wire.ClaimReply
}

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	Limits StreamLimits
	Logger *slog.Logger
	// Install is the server's install id, put on every job that names
	// none (wire.Job.Install).
	Install string
	// LostAfter is how many heartbeat intervals an agent may be silent
	// before Agents reports it lost; default 3.
	LostAfter int
}

// Dispatcher is the server's side of the bus: it publishes jobs and
// cancellations, consumes updates and logs, and tracks agent presence.
// It is safe for concurrent use.
type Dispatcher struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	opts DispatcherOptions
	subs []*nats.Subscription

	mu     sync.Mutex
	agents map[string]*wire.AgentStatus
}

// NewDispatcher ensures the streams and starts tracking presence and
// jobs JetStream gave up on. nc must have the server's credentials.
func NewDispatcher(ctx context.Context, nc *nats.Conn, o DispatcherOptions) (*Dispatcher, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LostAfter <= 0 {
		o.LostAfter = 3
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	if err := EnsureStreams(ctx, js, o.Limits); err != nil {
		return nil, err
	}
	d := &Dispatcher{nc: nc, js: js, log: o.Logger, opts: o, agents: map[string]*wire.AgentStatus{}}
	sub, err := nc.Subscribe(wire.PresenceWildcard, d.presence)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: subscribe presence: %w", err)
	}
	d.subs = append(d.subs, sub)
	sub, err = nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+natsbus.JobsStream+".*", d.maxDeliveries)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("dispatcher: subscribe advisories: %w", err)
	}
	d.subs = append(d.subs, sub)
	if err := flush(ctx, nc); err != nil {
		d.Close()
		return nil, fmt.Errorf("dispatcher: flush: %w", err)
	}
	return d, nil
}

// Close stops presence and advisory tracking (not a running Run).
func (d *Dispatcher) Close() {
	for _, s := range d.subs {
		_ = s.Unsubscribe()
	}
}

// Publish enqueues a job on the subject of its stage's labels with message
// id wire.JobMsgID, so retrying a failed Publish of the same attempt is
// safe. It returns once JetStream has stored the job; errors wrap
// ErrQueueFull or ErrUnschedulable where they apply.
func (d *Dispatcher) Publish(ctx context.Context, job *wire.Job) error {
	if job.Stage == nil {
		return fmt.Errorf("publish job %s/%s: no stage", job.RunID, job.StageID)
	}
	if err := wire.ValidateLabels(job.Stage.Labels); err != nil {
		return fmt.Errorf("publish job %s/%s: %w: %w", job.RunID, job.StageID, ErrUnschedulable, err)
	}
	if job.Install == "" && d.opts.Install != "" {
		cp := *job
		cp.Install = d.opts.Install
		job = &cp
	}
	b, err := wire.Encode(job)
	if err != nil {
		return err
	}
	subject := wire.JobSubject(job.Stage.Labels)
	if job.Priority {
		subject = wire.PriorityJobSubject(job.Stage.Labels)
	}
	_, err = d.js.Publish(ctx, subject, b,
		jetstream.WithMsgID(wire.JobMsgID(job.RunID, job.StageID, job.Attempt)),
		jetstream.WithExpectStream(natsbus.JobsStream))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == 10077 { // JSStreamStoreFailedF: limits with DiscardNew
			err = fmt.Errorf("%w: %w", ErrQueueFull, err)
		}
		return fmt.Errorf("publish job %s/%s attempt %d: %w", job.RunID, job.StageID, job.Attempt, err)
	}
	return nil
}

// Cancel tells the agents running c's stages to stop. It is core NATS:
// see the wire package on repeating it.
func (d *Dispatcher) Cancel(ctx context.Context, c wire.Cancel) error {
	b, err := wire.Encode(&c)
	if err != nil {
		return err
	}
	if err := d.nc.Publish(wire.CancelSubject(c.RunID), b); err != nil {
		return fmt.Errorf("cancel run %s: %w", c.RunID, err)
	}
	if err := flush(ctx, d.nc); err != nil {
		return fmt.Errorf("cancel run %s: flush: %w", c.RunID, err)
	}
	return nil
}

// eventsBuffer bounds the bytes of events pulled and not yet handled. It
// must stay below the subscription's pending limit (nats.go's default 64
// MiB): beyond it the client drops messages as a slow consumer, JetStream
// redelivers them only after AckWait, and by then the step's later chunks
// and its end have closed the log without them. A count bound does not
// do: 256 log chunks of wire.MaxChunk are 90 MB once encoded.
const eventsBuffer = 16 << 20

// Run consumes updates and logs with the durable consumer EventsConsumer
// and hands them to h one at a time, acking each after h returns nil; a
// restarted server continues where the last one stopped. It answers
// agents' claims with h.Claim. It returns when ctx ends.
func (d *Dispatcher) Run(ctx context.Context, h Handler) error {
	claims, err := d.nc.Subscribe(wire.ClaimsWildcard, func(m *nats.Msg) { d.claim(ctx, h, m) })
	if err != nil {
		return fmt.Errorf("subscribe claims: %w", err)
	}
	defer func() { _ = claims.Unsubscribe() }()
	cons, err := d.js.CreateOrUpdateConsumer(ctx, natsbus.EventsStream, jetstream.ConsumerConfig{
		Durable:       EventsConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4096,
	})
	if err != nil {
		return fmt.Errorf("events consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { d.handle(ctx, h, m) },
		jetstream.PullMaxBytes(eventsBuffer),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			d.log.Debug("events consume", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	<-ctx.Done()
	cc.Drain()
	<-cc.Closed()
	return nil
}

// claim answers one claim request. A claim whose agent is not the one
// its subject names, or that does not decode, gets no answer.
func (d *Dispatcher) claim(ctx context.Context, h Handler, m *nats.Msg) {
	var c wire.Claim
	if err := wire.Decode(m.Data, &c); err != nil {
		d.log.Warn("drop bad claim", "subject", m.Subject, "err", err)
		return
	}
	if m.Subject != wire.ClaimSubject(c.Agent) || c.Agent == wire.ServerAgent || m.Reply == "" {
		d.log.Warn("drop claim whose agent does not match its subject", "subject", m.Subject, "agent", c.Agent)
		return
	}
	rep := h.Claim(ctx, &c)
	if rep == nil {
		return
	}
	b, err := wire.Encode(rep)
	if err == nil {
		err = m.Respond(b)
	}
	if err != nil {
		d.log.Warn("answer claim", "run", c.RunID, "stage", c.StageID, "err", err)
	}
}

func (d *Dispatcher) handle(ctx context.Context, h Handler, m jetstream.Msg) {
	if err := d.dispatch(ctx, h, m.Subject(), m.Data()); err != nil {
		d.log.Warn("event handler failed; redelivering", "subject", m.Subject(), "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	if err := m.Ack(); err != nil {
		d.log.Warn("ack event", "err", err)
	}
}

// dispatch decodes one event and hands it to h, binding it to the sender
// its subject names (see the wire package, "Senders"): an update whose
// Agent differs from the subject's, a log chunk naming another agent, an
// agent's KindLost and anything but KindLost from ServerAgent are
// dropped (nil: the message is done). Malformed messages are dropped too.
func (d *Dispatcher) dispatch(ctx context.Context, h Handler, subject string, data []byte) error {
	e, ok := wire.ParseEventSubject(subject)
	if !ok {
		d.log.Warn("drop event on an unknown subject", "subject", subject)
		return nil
	}
	if e.Logs {
		var c wire.LogChunk
		if err := wire.Decode(data, &c); err != nil {
			d.log.Warn("drop bad log chunk", "subject", subject, "err", err)
			return nil
		}
		if (c.Agent != "" && c.Agent != e.Agent) || e.Agent == wire.ServerAgent {
			d.log.Warn("drop log chunk whose agent does not match its subject", "subject", subject, "agent", c.Agent)
			return nil
		}
		c.Agent = e.Agent
		return h.Log(ctx, &c)
	}
	var u wire.Update
	if err := wire.Decode(data, &u); err != nil {
		d.log.Warn("drop bad update", "subject", subject, "err", err)
		return nil
	}
	fromServer := e.Agent == wire.ServerAgent
	if u.Agent != e.Agent || fromServer != (u.Kind == wire.KindLost) {
		d.log.Warn("drop update whose agent does not match its subject", "subject", subject, "agent", u.Agent, "kind", u.Kind)
		return nil
	}
	return h.Update(ctx, &u)
}

func (d *Dispatcher) presence(m *nats.Msg) {
	var p wire.Presence
	if err := wire.Decode(m.Data, &p); err != nil {
		d.log.Warn("bad presence", "subject", m.Subject, "err", err)
		return
	}
	if m.Subject != wire.PresenceSubject(p.Name) {
		d.log.Warn("presence name does not match subject", "subject", m.Subject, "agent", p.Name)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.agents[p.Name] = &wire.AgentStatus{Presence: p, LastSeen: time.Now(), Lost: p.Kind == wire.PresenceBye}
}

// Agents lists the agents seen, by name.
func (d *Dispatcher) Agents() []wire.AgentStatus {
	now := time.Now()
	d.mu.Lock()
	out := make([]wire.AgentStatus, 0, len(d.agents))
	for _, a := range d.agents {
		s := *a
		if iv := s.Interval.D(); iv > 0 && now.Sub(s.LastSeen) > time.Duration(d.opts.LostAfter)*iv {
			s.Lost = true
		}
		out = append(out, s)
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// maxDeliveries turns JetStream giving up on a job into a durable KindLost
// update and removes the job (work-queue messages that hit MaxDeliver
// otherwise stay forever).
func (d *Dispatcher) maxDeliveries(m *nats.Msg) {
	var adv struct {
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if err := json.Unmarshal(m.Data, &adv); err != nil {
		d.log.Warn("bad max-deliveries advisory", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := d.js.Stream(ctx, natsbus.JobsStream)
	if err != nil {
		d.log.Warn("max deliveries: stream", "err", err)
		return
	}
	raw, err := st.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		d.log.Warn("max deliveries: get job", "seq", adv.StreamSeq, "err", err)
		return
	}
	var job wire.Job
	if err := wire.Decode(raw.Data, &job); err != nil {
		d.log.Warn("max deliveries: bad job", "seq", adv.StreamSeq, "err", err)
		_ = st.DeleteMsg(ctx, adv.StreamSeq)
		return
	}
	u := &wire.Update{
		RunID: job.RunID, StageID: job.StageID, Agent: wire.ServerAgent,
		Attempt: job.Attempt,
		Kind:    wire.KindLost, Status: rules.Error,
		Reason: fmt.Sprintf("no agent finished the stage in %d deliveries", adv.Deliveries),
		Time:   time.Now(),
	}
	b, err := wire.Encode(u)
	if err != nil {
		d.log.Warn("max deliveries: encode", "err", err)
		return
	}
	if _, err := d.js.Publish(ctx, wire.UpdatesSubject(job.RunID, wire.ServerAgent), b,
		jetstream.WithMsgID(fmt.Sprintf("lost/%s/%s/%d", job.RunID, job.StageID, job.Attempt))); err != nil {
		d.log.Warn("max deliveries: publish lost", "run", job.RunID, "stage", job.StageID, "err", err)
		return
	}
	if err := st.DeleteMsg(ctx, adv.StreamSeq); err != nil {
		d.log.Warn("max deliveries: delete job", "seq", adv.StreamSeq, "err", err)
	}
}

// flush waits for the server to have seen everything published on nc,
// for at most 5 s when ctx has no deadline.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}
