package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runnel-ci/runnel/agents/wire"
)

// Defaults of the job consumers. Every agent must use the same AckWait and
// MaxDeliver: the consumers are shared and the last agent to start wins.
const (
	DefaultAckWait    = 30 * time.Second
	DefaultMaxDeliver = 5
	DefaultPullExpiry = 5 * time.Second
)

// IntakeOptions configure an agent's job intake.
type IntakeOptions struct {
	Name     string            // agent name, for logs
	Labels   map[string]string // at most wire.MaxLabels
	Capacity int               // stages at once, ≥ 1
	Logger   *slog.Logger
	// AckWait is the lease JetStream grants per delivery; default 30 s.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of a job; default 5.
	MaxDeliver int
	// PullExpiry is how long a pull request waits on the server; it is
	// not a polling interval (a waiting request gets a job at once) but
	// bounds how long Stop waits. Default 5 s.
	PullExpiry time.Duration
}

// Intake pulls the jobs an agent may run, never holding more than
// Capacity at once. For each label-set consumer it keeps up to the free
// capacity of pull requests waiting on the server, so an idle agent gets a
// job as soon as it is published. With several label sets, two consumers
// may deliver at the same instant beyond the free capacity; the surplus
// job is held (its lease extended) and started when a slot frees, and no
// new pull request is made while one is held. Handing it back with a nak
// instead would count as a delivery and could exhaust MaxDeliver.
type Intake struct {
	nc      *nats.Conn
	cons    []jetstream.Consumer
	prio    []bool // cons[i] is a priority consumer
	opts    IntakeOptions
	log     *slog.Logger
	mu      sync.Mutex
	cond    *sync.Cond
	running int
	pending []int // outstanding pull requests per consumer
	held    []*Delivery
	stopped bool
	stopCh  chan struct{} // closed by Stop
	wg      sync.WaitGroup
	handle  func(context.Context, *Delivery)
	ctx     context.Context // Run's, for handlers started by release
}

// NewIntake creates (or joins) the durable consumers, normal and
// priority, of every subset of the agent's labels.
func NewIntake(ctx context.Context, nc *nats.Conn, o IntakeOptions) (*Intake, error) {
	if o.Capacity < 1 {
		return nil, fmt.Errorf("intake %s: capacity %d, want ≥ 1", o.Name, o.Capacity)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.PullExpiry <= 0 {
		o.PullExpiry = DefaultPullExpiry
	}
	keys, err := wire.Subsets(o.Labels)
	if err != nil {
		return nil, fmt.Errorf("intake %s: labels: %w", o.Name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("intake %s: %w", o.Name, err)
	}
	in := &Intake{nc: nc, opts: o, log: o.Logger, pending: make([]int, 2*len(keys)), stopCh: make(chan struct{})}
	in.cond = sync.NewCond(&in.mu)
	// Each label set's priority consumer first: with a slot free, both
	// deliver, and the priority job is the one that comes at once.
	for _, k := range keys {
		for _, sub := range []struct{ name, filter string }{
			{wire.PriorityConsumerName(k), wire.JobsPrefix + k + wire.PrioritySuffix},
			{wire.ConsumerName(k), wire.JobsPrefix + k},
		} {
			c, err := js.CreateOrUpdateConsumer(ctx, JobsStream, jetstream.ConsumerConfig{
				Durable:           sub.name,
				FilterSubject:     sub.filter,
				AckPolicy:         jetstream.AckExplicitPolicy,
				AckWait:           o.AckWait,
				MaxDeliver:        o.MaxDeliver,
				MaxAckPending:     10_000,
				DeliverPolicy:     jetstream.DeliverAllPolicy,
				InactiveThreshold: 24 * time.Hour,
			})
			if err != nil {
				return nil, consumerError(nc, o, sub.name, err)
			}
			in.cons = append(in.cons, c)
			in.prio = append(in.prio, sub.name == wire.PriorityConsumerName(k))
		}
	}
	return in, nil
}

// Delivery is one job handed to the agent with its lease.
type Delivery struct {
	Job *wire.Job
	// Leased is a moment no later than JetStream started the lease (when
	// the pull request was sent); the lease lasts AckWait from there
	// unless extended.
	Leased  time.Time
	AckWait time.Duration
	// Delivered is how often JetStream has delivered the message, this
	// time included (for logs; attempts come from the server's claims).
	Delivered uint64
	msg       jetstream.Msg
	nc        *nats.Conn
}

// Extend renews the lease and returns once the server confirmed it.
func (d *Delivery) Extend(ctx context.Context) error {
	if _, err := d.nc.RequestWithContext(ctx, d.msg.Reply(), []byte("+WPI")); err != nil {
		return fmt.Errorf("extend lease of %s/%s: %w", d.Job.RunID, d.Job.StageID, err)
	}
	return nil
}

// Ack ends the job for good and returns once the server confirmed it.
func (d *Delivery) Ack(ctx context.Context) error {
	if err := d.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("ack %s/%s: %w", d.Job.RunID, d.Job.StageID, err)
	}
	return nil
}

// Term ends the job for good without running it (no redelivery).
func (d *Delivery) Term(reason string) error {
	if err := d.msg.TermWithReason(reason); err != nil {
		return fmt.Errorf("term %s/%s: %w", d.Job.RunID, d.Job.StageID, err)
	}
	return nil
}

// Release hands the job back to its queue unrun: JetStream delivers it
// again after delay (each delivery counts towards MaxDeliver).
func (d *Delivery) Release(delay time.Duration) error {
	if err := d.msg.NakWithDelay(delay); err != nil {
		return fmt.Errorf("release %s/%s: %w", d.Job.RunID, d.Job.StageID, err)
	}
	return nil
}

// Running is the number of deliveries being handled.
func (in *Intake) Running() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.running
}

// Stop stops pulling new jobs; pull requests still waiting end within
// PullExpiry, and a job they deliver is handed back (nak) at once. Run
// then returns once every handler has returned.
func (in *Intake) Stop() {
	in.mu.Lock()
	if !in.stopped {
		in.stopped = true
		close(in.stopCh)
	}
	in.mu.Unlock()
	in.cond.Broadcast()
}

// Run pulls jobs and calls handle for each in its own goroutine, holding a
// capacity slot until handle returns. It returns after Stop or when ctx
// ends (waiting pull requests are then abandoned; a job in flight comes
// back after AckWait), in both cases once every handle call returned.
// Undecodable jobs and jobs of another protocol version are terminated.
func (in *Intake) Run(ctx context.Context, handle func(context.Context, *Delivery)) error {
	stop := context.AfterFunc(ctx, in.Stop)
	defer stop()
	in.mu.Lock()
	in.handle, in.ctx = handle, ctx
	in.mu.Unlock()
	for i := range in.cons {
		for range in.opts.Capacity {
			in.wg.Go(func() { in.fetchLoop(ctx, i) })
		}
	}
	in.wg.Go(func() { in.extendHeld(ctx) })
	in.wg.Wait()
	return nil
}

func (in *Intake) fetchLoop(ctx context.Context, i int) {
	for {
		in.mu.Lock()
		for !in.stopped && in.running+len(in.held)+in.pending[i] >= in.opts.Capacity {
			in.cond.Wait()
		}
		if in.stopped {
			in.mu.Unlock()
			return
		}
		in.pending[i]++
		in.mu.Unlock()

		leased := time.Now()
		msg, err := in.fetchOne(ctx, i)
		if err != nil && ctx.Err() == nil {
			in.log.Debug("pull job", "agent", in.opts.Name, "err", err)
			sleep(ctx, 100*time.Millisecond) // the connection is down: do not spin
		}
		var d *Delivery
		if msg != nil {
			if d, err = in.delivery(msg, leased); err != nil {
				in.log.Warn("terminate bad job", "agent", in.opts.Name, "subject", msg.Subject(), "err", err)
				_ = msg.TermWithReason(err.Error())
			}
		}

		var first *Delivery
		if d != nil && !in.prio[i] {
			first = in.readyPriority()
		}

		in.mu.Lock()
		in.pending[i]--
		for _, x := range []*Delivery{first, d} {
			switch {
			case x == nil:
			case in.stopped:
				in.mu.Unlock()
				if err := x.msg.Nak(); err != nil {
					in.log.Warn("hand back job", "agent", in.opts.Name, "err", err)
				}
				in.mu.Lock()
			case in.running < in.opts.Capacity:
				in.running++
				in.startLocked(x)
			case x == first:
				in.held = slices.Insert(in.held, 0, x)
			default:
				in.held = append(in.held, x)
			}
		}
		in.mu.Unlock()
		in.cond.Broadcast()
	}
}

// readyPriority takes a priority job that is waiting in the stream now,
// if there is one, without waiting: a normal job just pulled does not go
// ahead of it when the priority consumers' own pull requests are not on
// the server yet. (A priority job already handed to such a pull request
// arrives on its own and is held ahead of other held jobs.)
func (in *Intake) readyPriority() *Delivery {
	for j, c := range in.cons {
		if !in.prio[j] {
			continue
		}
		leased := time.Now()
		batch, err := c.FetchNoWait(1)
		if err != nil {
			in.log.Debug("look for a priority job", "agent", in.opts.Name, "err", err)
			continue
		}
		for m := range batch.Messages() {
			d, err := in.delivery(m, leased)
			if err != nil {
				in.log.Warn("terminate bad job", "agent", in.opts.Name, "subject", m.Subject(), "err", err)
				_ = m.TermWithReason(err.Error())
				break
			}
			return d
		}
	}
	return nil
}

// startLocked runs the handler for d; in.running already counts it.
func (in *Intake) startLocked(d *Delivery) {
	handle, ctx := in.handle, in.ctx
	in.wg.Go(func() {
		defer in.release()
		handle(ctx, d)
	})
}

func (in *Intake) release() {
	in.mu.Lock()
	in.running--
	if len(in.held) > 0 && !in.stopped {
		d := in.held[0]
		in.held = in.held[1:]
		in.running++
		in.startLocked(d)
	}
	in.mu.Unlock()
	in.cond.Broadcast()
}

// extendHeld keeps the leases of held jobs and hands them back on Stop.
func (in *Intake) extendHeld(ctx context.Context) {
	t := time.NewTicker(in.opts.AckWait / 4)
	defer t.Stop()
	for {
		in.mu.Lock()
		for !in.stopped && len(in.held) == 0 {
			in.cond.Wait()
		}
		held := append([]*Delivery(nil), in.held...)
		stopped := in.stopped
		if stopped {
			in.held = nil
		}
		in.mu.Unlock()
		if stopped {
			for _, d := range held {
				if err := d.msg.Nak(); err != nil {
					in.log.Warn("hand back held job", "agent", in.opts.Name, "err", err)
				}
			}
			return
		}
		select {
		case <-t.C:
		case <-in.stopCh:
			continue
		}
		for _, d := range held {
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, in.opts.AckWait/4)
			if err := d.Extend(rctx); err == nil {
				in.mu.Lock()
				if slices.Contains(in.held, d) { // not yet handed to a handler
					d.Leased = sent
				}
				in.mu.Unlock()
			}
			cancel()
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
func (in *Intake) fetchOne(ctx context.Context, i int) (jetstream.Msg, error) {
	fctx, cancel := context.WithTimeout(ctx, in.opts.PullExpiry)
	defer cancel()
	batch, err := in.cons[i].Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		return nil, err
	}
	for m := range batch.Messages() {
		return m, nil
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return nil, nil
}

func (in *Intake) delivery(m jetstream.Msg, leased time.Time) (*Delivery, error) {
	var j wire.Job
	if err := wire.Decode(m.Data(), &j); err != nil {
		return nil, err
	}
	if j.Stage == nil {
		return nil, errors.New("job without stage")
	}
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("job metadata: %w", err)
	}
	return &Delivery{
		Job: &j, Delivered: md.NumDelivered, Leased: leased, AckWait: in.opts.AckWait, msg: m, nc: in.nc,
	}, nil
}

// consumerError says why the intake could not make consumer name. NATS
// refusing it means the agent's credential does not allow the labels it
// announces: the message names the command that remakes the credential.
func consumerError(nc *nats.Conn, o IntakeOptions, name string, err error) error {
	last := nc.LastError()
	if !errors.Is(last, nats.ErrPermissionViolation) || !strings.Contains(last.Error(), name) {
		return fmt.Errorf("intake %s: consumer %s: %w", o.Name, name, err)
	}
	kv := make([]string, 0, len(o.Labels))
	for k, v := range o.Labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return fmt.Errorf("agent %s: its credential does not allow the labels %s it announces (a credential made without --labels takes only jobs that need no labels): announce fewer labels, or remake the credential on the server host with: runnel agent token %s --labels %s",
		o.Name, strings.Join(kv, ","), nc.Opts.User, strings.Join(kv, ","))
}
