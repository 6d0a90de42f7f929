package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// Causes of a stage context's cancellation (see context.Cause).
var (
	ErrCanceled      = errors.New("canceled by the server")
	ErrLeaseLost     = errors.New("lease lost: could not reach NATS to extend it")
	ErrDrainDeadline = errors.New("agent drain deadline passed")
)

// Result is the outcome of a stage.
type Result struct {
	Status   rules.Status
	ExitCode int
	Reason   string
}

// EventSink is where a StageRunner reports a stage's progress. Its methods
// are safe for concurrent use and never fail: delivery problems are the
// agent's (it retries while it holds the lease).
type EventSink interface {
	StepStarted(step string)
	StepFinished(step string, status rules.Status, exitCode, attempts int, reason string)
	// Log returns the writer for a step's output. Close sends what is
	// buffered and the end-of-log mark; call it when the step ends.
	Log(step string) io.WriteCloser
	// Deploying reports the progress of a deploy step.
	Deploying(step string, p wire.DeployProgress)
}

// StageRunner runs one stage attempt to completion. job.Attempt is the
// attempt to run as (the one the server granted). When ctx ends
// (cancellation, lease loss, drain deadline; see context.Cause) it must
// stop the stage promptly (well within the lease margin) and return.
// RunStage is called concurrently for different jobs.
type StageRunner interface {
	RunStage(ctx context.Context, job *wire.Job, sink EventSink) Result
}

// RunnerFunc adapts a function to StageRunner.
type RunnerFunc func(ctx context.Context, job *wire.Job, sink EventSink) Result

// RunStage calls f.
func (f RunnerFunc) RunStage(ctx context.Context, job *wire.Job, sink EventSink) Result {
	return f(ctx, job, sink)
}

// DefaultProgress is the default lease extension interval (Config.Progress),
// which is also how often a running stage's heartbeat reaches the server.
const DefaultProgress = 5 * time.Second

// DefaultLease is the server's lease of a claimed attempt when its grant
// names none (the server's default --lease-timeout).
const DefaultLease = 45 * time.Second

// Config configure an Agent. Zero durations take the defaults.
type Config struct {
	Name     string            // must be wire.ValidName and match the NATS user
	Labels   map[string]string // at most wire.MaxLabels
	Capacity int               // stages at once; default 1
	Runner   StageRunner
	Logger   *slog.Logger
	Software string // build version, reported in presence

	Heartbeat time.Duration // presence interval; default 5 s
	// Progress is how often the agent extends the JetStream lease of a
	// job it is claiming and sends a claimed stage's heartbeat update
	// (wire.KindHeartbeat), by which the server knows the stage is alive;
	// default 5 s.
	Progress      time.Duration
	LeaseMargin   time.Duration // stop this long before the lease ends; default 10 s
	FlushInterval time.Duration // log flush delay; default 100 ms
	// AckWait, MaxDeliver and PullExpiry: see natsbus.IntakeOptions.
	AckWait    time.Duration
	MaxDeliver int
	PullExpiry time.Duration
}

// Agent takes jobs from NATS and runs them with its StageRunner.
type Agent struct {
	cfg Config
	log *slog.Logger

	nc       *nats.Conn // Run's
	mu       sync.Mutex
	intake   *natsbus.Intake
	draining bool
	jobs     map[*running]struct{}
	done     chan struct{} // closed when Run returns
}

type running struct {
	job    *wire.Job
	cancel context.CancelCauseFunc
}

// New checks cfg and makes an Agent.
func New(cfg Config) (*Agent, error) {
	if !wire.ValidName(cfg.Name) {
		return nil, fmt.Errorf("agent name %q: want 1-64 of [A-Za-z0-9_-]", cfg.Name)
	}
	if err := wire.ValidateLabels(cfg.Labels); err != nil {
		return nil, fmt.Errorf("agent %s: labels: %w", cfg.Name, err)
	}
	if cfg.Runner == nil {
		return nil, fmt.Errorf("agent %s: no stage runner", cfg.Name)
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Heartbeat, 5*time.Second)
	def(&cfg.Progress, DefaultProgress)
	def(&cfg.LeaseMargin, 10*time.Second)
	def(&cfg.FlushInterval, 100*time.Millisecond)
	def(&cfg.AckWait, natsbus.DefaultAckWait)
	if cfg.LeaseMargin+cfg.Progress >= cfg.AckWait {
		return nil, fmt.Errorf("agent %s: lease margin %v + progress %v must be below ack wait %v", cfg.Name, cfg.LeaseMargin, cfg.Progress, cfg.AckWait)
	}
	return &Agent{
		cfg: cfg, log: cfg.Logger.With("agent", cfg.Name),
		jobs: map[*running]struct{}{}, done: make(chan struct{}),
	}, nil
}

// Run announces the agent, takes and runs jobs until Drain completes or
// ctx ends (then running stages are cancelled, and the server queues them
// again once their lease ends), and says bye. nc carries the agent's
// credentials. Run may be called once.
func (a *Agent) Run(ctx context.Context, nc *nats.Conn) error {
	defer close(a.done)
	a.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("agent %s: %w", a.cfg.Name, err)
	}
	in, err := natsbus.NewIntake(ctx, nc, natsbus.IntakeOptions{
		Name: a.cfg.Name, Labels: a.cfg.Labels, Capacity: a.cfg.Capacity, Logger: a.log,
		AckWait: a.cfg.AckWait, MaxDeliver: a.cfg.MaxDeliver, PullExpiry: a.cfg.PullExpiry,
	})
	if err != nil {
		return err
	}
	sub, err := nc.Subscribe(wire.CancelWildcard, a.onCancel)
	if err != nil {
		return fmt.Errorf("agent %s: subscribe cancel: %w", a.cfg.Name, err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	a.mu.Lock()
	a.intake = in
	if a.draining {
		in.Stop()
	}
	a.mu.Unlock()

	a.presence(nc, wire.PresenceHello, in)
	a.log.Info("agent started", "agent", a.cfg.Name, "labels", a.cfg.Labels, "capacity", a.cfg.Capacity)
	hbCtx, stopHB := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(a.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				a.presence(nc, wire.PresenceHeartbeat, in)
			}
		}
	})
	err = in.Run(ctx, func(ctx context.Context, d *natsbus.Delivery) { a.handle(ctx, js, d) })
	stopHB()
	wg.Wait()
	a.presence(nc, wire.PresenceBye, in)
	_ = nc.Flush()
	return err
}

// Drain stops taking jobs and waits for the running stages; when ctx ends
// first, it cancels them (cause ErrDrainDeadline) and waits for them to
// return. It returns once Run has returned.
func (a *Agent) Drain(ctx context.Context) error {
	a.mu.Lock()
	a.draining = true
	if a.intake != nil {
		a.intake.Stop()
	}
	a.mu.Unlock()
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
	}
	a.cancelMatching(func(*wire.Job) bool { return true }, ErrDrainDeadline)
	<-a.done
	return fmt.Errorf("agent %s: drain: %w", a.cfg.Name, ErrDrainDeadline)
}

func (a *Agent) presence(nc *nats.Conn, kind string, in *natsbus.Intake) {
	b, err := wire.Encode(&wire.Presence{
		Kind: kind, Name: a.cfg.Name, Labels: a.cfg.Labels, Capacity: a.cfg.Capacity,
		Running: in.Running(), Software: a.cfg.Software,
		Interval: pipeline.Duration(a.cfg.Heartbeat), Time: time.Now(),
	})
	if err == nil {
		err = nc.Publish(wire.PresenceSubject(a.cfg.Name), b)
	}
	if err != nil {
		a.log.Warn("send presence", "kind", kind, "err", err)
	}
}

func (a *Agent) onCancel(m *nats.Msg) {
	var c wire.Cancel
	if err := wire.Decode(m.Data, &c); err != nil {
		a.log.Warn("bad cancel", "err", err)
		return
	}
	a.cancelMatching(func(j *wire.Job) bool { return c.Matches(j.RunID, j.StageID, j.Attempt) }, ErrCanceled)
}

func (a *Agent) cancelMatching(match func(*wire.Job) bool, cause error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for r := range a.jobs {
		if match(r.job) {
			r.cancel(cause)
		}
	}
}

// handle runs one delivery: see the wire package on leases and claims.
func (a *Agent) handle(ctx context.Context, js jetstream.JetStream, d *natsbus.Delivery) {
	job := *d.Job
	log := a.log.With("run", job.RunID, "stage", job.StageID, "attempt", job.Attempt, "delivered", d.Delivered)
	grant, ok := a.claim(ctx, d, log)
	if !ok {
		return
	}
	job.Attempt = grant.Attempt
	log = log.With("attempt", job.Attempt)
	rep := &reporter{a: a, js: js, job: &job, log: log}

	// leaseCtx ends when the lease is lost; jobCtx also on cancel/drain.
	leaseCtx, loseLease := context.WithCancelCause(ctx)
	defer loseLease(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	leaseDone := make(chan struct{})
	defer close(leaseDone)
	fence := grant.Lease.D() - min(a.cfg.LeaseMargin, grant.Lease.D()/3)
	wg.Go(func() { a.keepAlive(leaseCtx, fence, loseLease, leaseDone, rep.heartbeat) })

	rep.ctx = leaseCtx
	// "started" is stored while the stage already begins: every later
	// message of the attempt waits for it (rep.started), so the order holds.
	rep.started = make(chan struct{})
	wg.Go(func() {
		defer close(rep.started)
		rep.publishUpdate(wire.Update{Kind: wire.KindStarted})
	})
	if !job.Deadline.IsZero() && time.Now().After(job.Deadline) {
		rep.send(wire.Update{Kind: wire.KindFinished, Status: rules.Timeout, Reason: "deadline passed before start"})
		return
	}

	jobCtx, cancel := context.WithCancelCause(leaseCtx)
	defer cancel(nil)
	if !job.Deadline.IsZero() {
		var stop context.CancelFunc
		jobCtx, stop = context.WithDeadline(jobCtx, job.Deadline)
		defer stop()
	}
	r := &running{job: &job, cancel: cancel}
	a.mu.Lock()
	a.jobs[r] = struct{}{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.jobs, r)
		a.mu.Unlock()
	}()

	res := a.cfg.Runner.RunStage(jobCtx, &job, rep)
	if leaseCtx.Err() != nil {
		// Not ours any more (or a hard stop): the server gives the
		// stage to a new attempt when its lease ends.
		log.Warn("stage stopped without lease", "cause", context.Cause(leaseCtx))
		return
	}
	if res.Status == "" {
		res.Status = rules.Error
		res.Reason = "stage runner returned no status"
	}
	rep.finishing.Store(true)
	rep.send(wire.Update{Kind: wire.KindFinished, Status: res.Status, ExitCode: res.ExitCode, Reason: res.Reason})
}

// claim holds d (its JetStream lease extended at once and then every
// Progress) while it asks the server for the job's attempt, and settles
// the message: acked when granted (the server owns the attempt from then
// on), terminated when refused (a copy, or an attempt that is over),
// handed back when the server says so (another agent is to run it). ok
// is false when the job is not to run here: refused, or the lease or ctx
// ended first (then JetStream delivers the job again).
func (a *Agent) claim(ctx context.Context, d *natsbus.Delivery, log *slog.Logger) (grant *wire.ClaimReply, ok bool) {
	holdCtx, loseHold := context.WithCancelCause(ctx)
	defer loseHold(nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { a.keepLease(holdCtx, d, loseHold, done) })
	defer wg.Wait()
	defer close(done)

	c := &wire.Claim{RunID: d.Job.RunID, StageID: d.Job.StageID, Attempt: d.Job.Attempt, Agent: a.cfg.Name, Token: newToken()}
	req, err := wire.Encode(c)
	if err != nil {
		log.Error("encode claim", "err", err)
		return nil, false
	}
	wait := 100 * time.Millisecond
	for {
		rctx, cancel := context.WithTimeout(holdCtx, 5*time.Second)
		m, err := a.nc.RequestWithContext(rctx, wire.ClaimSubject(a.cfg.Name), req)
		cancel()
		if err == nil {
			var rep wire.ClaimReply
			if err = wire.Decode(m.Data, &rep); err == nil {
				grant = &rep
				break
			}
		}
		if holdCtx.Err() != nil {
			log.Warn("claim not answered; the job comes back", "cause", context.Cause(holdCtx), "err", err)
			return nil, false
		}
		log.Debug("claim, retrying", "err", err)
		sleep(holdCtx, wait)
		wait = min(2*wait, time.Second)
	}
	if !grant.Granted && grant.Release > 0 {
		log.Warn("claim refused; job handed back", "reason", grant.Reason)
		if err := d.Release(grant.Release.D()); err != nil {
			log.Warn("hand back refused job", "err", err)
		}
		return nil, false
	}
	if !grant.Granted {
		log.Info("claim refused; job dropped", "reason", grant.Reason)
		if err := d.Term("claim refused: " + grant.Reason); err != nil {
			log.Warn("terminate refused job", "err", err)
		}
		return nil, false
	}
	if grant.Lease.D() <= 0 {
		grant.Lease = pipeline.Duration(DefaultLease)
	}
	// A lost ack only lets JetStream deliver a copy, whose claim is refused.
	for range 3 {
		actx, cancel := context.WithTimeout(holdCtx, 5*time.Second)
		err = d.Ack(actx)
		cancel()
		if err == nil || holdCtx.Err() != nil {
			break
		}
		log.Warn("ack claimed job", "err", err)
	}
	return grant, true
}

// newToken returns a claim token: 128 random bits in hex.
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// keepLease extends d's JetStream lease at once and then every Progress,
// and cancels ctx (cause ErrLeaseLost) when the lease would end within
// LeaseMargin.
func (a *Agent) keepLease(ctx context.Context, d *natsbus.Delivery, lose context.CancelCauseFunc, done <-chan struct{}) {
	last := d.Leased
	next := time.Now()
	for {
		deadline := last.Add(d.AckWait - a.cfg.LeaseMargin)
		wake := next
		if deadline.Before(wake) {
			wake = deadline
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-done:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		now := time.Now()
		if !now.Before(deadline) {
			lose(ErrLeaseLost)
			return
		}
		if now.Before(next) {
			continue
		}
		next = now.Add(a.cfg.Progress)
		rctx, cancel := context.WithDeadline(ctx, deadline)
		err := d.Extend(rctx)
		cancel()
		if err == nil {
			last = now
		} else {
			a.log.Warn("extend lease", "run", d.Job.RunID, "stage", d.Job.StageID, "err", err)
		}
	}
}

// keepAlive sends beat every Progress while a claimed stage runs, and
// cancels ctx (cause ErrLeaseLost) when no beat was stored for fence: the
// server would soon give the stage to another attempt.
func (a *Agent) keepAlive(ctx context.Context, fence time.Duration, lose context.CancelCauseFunc, done <-chan struct{}, beat func(ctx context.Context) error) {
	last := time.Now() // the grant is the lease's start
	t := time.NewTicker(a.cfg.Progress)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		deadline := last.Add(fence)
		now := time.Now()
		if !now.Before(deadline) {
			lose(ErrLeaseLost)
			return
		}
		// Bounded so a beat never delays the next one.
		bdl := now.Add(a.cfg.Progress)
		if deadline.Before(bdl) {
			bdl = deadline
		}
		bctx, cancel := context.WithDeadline(ctx, bdl)
		err := beat(bctx)
		cancel()
		if err == nil {
			last = now
		} else if !errors.Is(err, errFinishing) {
			a.log.Warn("stage heartbeat", "err", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// reporter is the EventSink of one stage attempt.
type reporter struct {
	a   *Agent
	js  jetstream.JetStream
	job *wire.Job
	log *slog.Logger
	ctx context.Context // the lease context: publishing stops when it ends
	seq atomic.Uint64
	// started is closed once the "started" update is stored (or given up).
	started chan struct{}
	// finishing is set before "finished" is sent: no heartbeat after it.
	finishing atomic.Bool

	logsMu sync.Mutex
	logs   map[string]*logWriter // by step, until the step's end is sent
}

// errFinishing: the stage's "finished" is on its way; no more beats.
var errFinishing = errors.New("stage finishing")

// heartbeat publishes one KindHeartbeat update of the attempt, once
// "started" is stored (the server takes an update of an attempt it has
// not seen start for a stale one) and until "finished" is on its way.
// It is not retried: the next one follows. While "started" is not stored
// it sends nothing and fails, so an agent that cannot reach NATS stops.
func (r *reporter) heartbeat(ctx context.Context) error {
	if r.finishing.Load() {
		return errFinishing
	}
	select {
	case <-r.started:
	default:
		return errors.New("started not stored yet")
	}
	u := wire.Update{Kind: wire.KindHeartbeat}
	r.stamp(&u)
	b, err := wire.Encode(&u)
	if err != nil {
		return err
	}
	if _, err := r.js.Publish(ctx, wire.UpdatesSubject(u.RunID, u.Agent), b, jetstream.WithMsgID(wire.UpdateMsgID(&u)), jetstream.WithRetryAttempts(0)); err != nil {
		return fmt.Errorf("send stage heartbeat: %w", err)
	}
	return nil
}

func (r *reporter) StepStarted(step string) {
	r.send(wire.Update{Kind: wire.KindStepStarted, Step: step})
}

func (r *reporter) StepFinished(step string, status rules.Status, exitCode, attempts int, reason string) {
	r.logsMu.Lock()
	w := r.logs[step]
	delete(r.logs, step)
	r.logsMu.Unlock()
	var chunks uint64
	if w != nil {
		chunks = w.sent()
	}
	r.send(wire.Update{Kind: wire.KindStepFinished, Step: step, Status: status, ExitCode: exitCode, Attempts: attempts, Reason: reason, LogChunks: chunks})
}

func (r *reporter) Deploying(step string, p wire.DeployProgress) {
	r.send(wire.Update{Kind: wire.KindDeploy, Step: step, Deploy: &p})
}

func (r *reporter) Log(step string) io.WriteCloser {
	w := newLogWriter(r, step)
	r.logsMu.Lock()
	defer r.logsMu.Unlock()
	if r.logs == nil {
		r.logs = map[string]*logWriter{}
	}
	r.logs[step] = w
	return w
}

// send publishes u after "started" has been stored.
func (r *reporter) send(u wire.Update) {
	r.waitStarted()
	r.publishUpdate(u)
}

func (r *reporter) waitStarted() {
	if r.started != nil {
		<-r.started
	}
}

// stamp fills in the attempt's identity, the next Seq and the time.
func (r *reporter) stamp(u *wire.Update) {
	u.RunID, u.StageID, u.Attempt, u.Agent = r.job.RunID, r.job.StageID, r.job.Attempt, r.a.cfg.Name
	u.Seq = r.seq.Add(1) - 1
	u.Time = time.Now()
}

func (r *reporter) publishUpdate(u wire.Update) {
	r.stamp(&u)
	b, err := wire.Encode(&u)
	if err != nil {
		r.log.Error("encode update", "err", err)
		return
	}
	r.publish(wire.UpdatesSubject(u.RunID, u.Agent), wire.UpdateMsgID(&u), b)
}

// publish stores b in JetStream, retrying (same message id, so never
// twice) until it succeeds or the lease ends.
func (r *reporter) publish(subject, id string, b []byte) {
	wait := 50 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		_, err := r.js.Publish(pctx, subject, b, jetstream.WithMsgID(id), jetstream.WithRetryAttempts(0))
		cancel()
		if err == nil {
			return
		}
		if r.ctx.Err() != nil {
			r.log.Warn("drop message: lease ended", "subject", subject, "err", err)
			return
		}
		r.log.Debug("publish, retrying", "subject", subject, "err", err)
		sleep(r.ctx, wait)
		wait = min(2*wait, time.Second)
	}
}
