package natsserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

func start(t *testing.T, agents ...string) (*Server, map[string]natsbus.Creds) {
	t.Helper()
	creds := map[string]natsbus.Creds{}
	var ac []AgentCredential
	for _, a := range agents {
		tok, c, err := NewAgentCredential(a)
		if err != nil {
			t.Fatal(err)
		}
		if creds[a], err = natsbus.ParseAgentToken(tok); err != nil {
			t.Fatal(err)
		}
		ac = append(ac, c)
	}
	srv, err := StartEmbedded(Options{DataDir: t.TempDir(), Port: -1, Agents: ac})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, creds
}

func dispatcher(t *testing.T, srv *Server, l StreamLimits) (*Dispatcher, *nats.Conn) {
	t.Helper()
	nc, err := natsbus.Connect(srv.ClientURL(), srv.ServerCreds())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	d, err := NewDispatcher(context.Background(), nc, DispatcherOptions{Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, nc
}

func TestAgentPermissions(t *testing.T) {
	srv, creds := start(t, "a", "b")
	_, snc := dispatcher(t, srv, StreamLimits{})

	var mu sync.Mutex
	var asyncErrs []error
	nc, err := natsbus.Connect(srv.ClientURL(), creds["a"], nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		asyncErrs = append(asyncErrs, err)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Forbidden: publishing a job (through JetStream or core NATS), a cancel,
	// another agent's presence, updates or logs in another agent's (or
	// the server's, or nobody's) name; reading another agent's inbox or
	// the logs.
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	if _, err := js.Publish(pctx, wire.JobSubject(nil), []byte(`{}`)); err == nil {
		t.Error("agent published a job through JetStream, want a permissions error")
	}
	forged, _ := wire.Encode(&wire.Update{RunID: "r", StageID: "s", Attempt: 1, Agent: "b", Kind: wire.KindFinished, Status: rules.Success})
	if _, err := js.Publish(pctx, wire.UpdatesSubject("r", "b"), forged); err == nil {
		t.Error("agent a published an update on b's subject through JetStream, want a permissions error")
	}
	forbidden := []string{wire.JobSubject(nil), wire.CancelSubject("r"), wire.PresenceSubject("b"),
		wire.UpdatesSubject("r", "b"), wire.LogsSubject("r", "b"), wire.UpdatesSubject("r", ServerUser),
		wire.Prefix + "runs.r.updates", wire.Prefix + "runs.r.logs"}
	for _, subj := range forbidden {
		if err := nc.Publish(subj, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, subj := range []string{natsbus.InboxPrefix("b") + ".x", wire.LogsWildcard, "$JS.API.>"} {
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The server reports each violation asynchronously, to the error handler.
	want := len(forbidden) + 3
	waitFor(t, 10*time.Second, fmt.Sprintf("%d permission violations", want), func() bool {
		mu.Lock()
		defer mu.Unlock()
		violations := 0
		for _, e := range asyncErrs {
			if errors.Is(e, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(e.Error()), "permissions violation") {
				violations++
			}
		}
		return violations >= want
	})

	// Nothing reached the job queue.
	sjs, _ := jetstream.New(snc)
	st, err := sjs.Stream(ctx, natsbus.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("got %v jobs (err %v), want 0", info.State.Msgs, err)
	}

	// None of the forged updates or logs reached the events stream.
	ev, err := sjs.Stream(ctx, natsbus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := ev.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("got %v events (err %v), want 0", info.State.Msgs, err)
	}

	// Allowed: reporting an update and a log chunk in its own name.
	b, _ := wire.Encode(&wire.Update{RunID: "r", StageID: "s", Attempt: 1, Agent: "a", Kind: wire.KindStarted})
	if _, err := js.Publish(ctx, wire.UpdatesSubject("r", "a"), b); err != nil {
		t.Errorf("agent could not publish an update: %v", err)
	}
	b, _ = wire.Encode(&wire.LogChunk{RunID: "r", StageID: "s", Attempt: 1, Agent: "a", Step: "x", Data: []byte("hi")})
	if _, err := js.Publish(ctx, wire.LogsSubject("r", "a"), b); err != nil {
		t.Errorf("agent could not publish a log chunk: %v", err)
	}

	// A wrong password is refused.
	if _, err := natsbus.Connect(srv.ClientURL(), natsbus.Creds{User: "a", Password: "wrong"}, nats.MaxReconnects(0)); err == nil {
		t.Error("connected with a wrong password")
	}
}

func TestPublishQueueFull(t *testing.T) {
	srv, _ := start(t)
	d, _ := dispatcher(t, srv, StreamLimits{JobsMaxMsgs: 2})
	ctx := context.Background()
	mk := func(i int) *wire.Job {
		return &wire.Job{RunID: "r", StageID: "s", Attempt: i, Stage: &pipeline.Stage{ID: "s"}}
	}
	for i := 1; i <= 2; i++ {
		if err := d.Publish(ctx, mk(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Same attempt again: deduplicated, not an error and not stored.
	if err := d.Publish(ctx, mk(2)); err != nil {
		t.Errorf("republish of the same attempt: got %v, want nil", err)
	}
	if err := d.Publish(ctx, mk(3)); !errors.Is(err, ErrQueueFull) {
		t.Errorf("got %v, want ErrQueueFull", err)
	}
	tooMany := mk(4)
	tooMany.Stage.Labels = map[string]string{"a": "", "b": "", "c": "", "d": "", "e": "", "f": "", "g": ""}
	if err := d.Publish(ctx, tooMany); !errors.Is(err, ErrUnschedulable) {
		t.Errorf("got %v, want ErrUnschedulable", err)
	}
}

func TestPresence(t *testing.T) {
	srv, creds := start(t, "a")
	d, _ := dispatcher(t, srv, StreamLimits{})
	nc, err := natsbus.Connect(srv.ClientURL(), creds["a"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b, _ := wire.Encode(&wire.Presence{Kind: wire.PresenceHello, Name: "a", Capacity: 2, Interval: pipeline.Duration(100 * time.Millisecond)})
	if err := nc.Publish(wire.PresenceSubject("a"), b); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	waitFor(t, 5*time.Second, "the agent's presence", func() bool { return len(d.Agents()) > 0 })
	got := d.Agents()
	if len(got) != 1 || got[0].Name != "a" || got[0].Capacity != 2 || got[0].Lost {
		t.Fatalf("got agents %+v, want a with capacity 2, not lost", got)
	}
	// No more heartbeats come: the agent counts as lost after 3 missed ones.
	waitFor(t, 5*time.Second, "the agent lost", func() bool { return d.Agents()[0].Lost })
}

func TestIntakeRejectsTooManyLabels(t *testing.T) {
	srv, creds := start(t, "a")
	dispatcher(t, srv, StreamLimits{})
	nc, err := natsbus.Connect(srv.ClientURL(), creds["a"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	labels := map[string]string{"a": "", "b": "", "c": "", "d": "", "e": "", "f": "", "g": ""}
	if _, err := natsbus.NewIntake(context.Background(), nc, natsbus.IntakeOptions{Name: "a", Labels: labels, Capacity: 1}); err == nil {
		t.Error("got no error for 7 labels, want one")
	}
}

type eventRecorder struct{ events chan string }

func (r eventRecorder) Update(_ context.Context, u *wire.Update) error {
	r.events <- fmt.Sprintf("update %s %s %s", u.StageID, u.Kind, u.Agent)
	return nil
}
func (r eventRecorder) Log(_ context.Context, c *wire.LogChunk) error {
	r.events <- fmt.Sprintf("log %s %s", c.StageID, c.Agent)
	return nil
}
func (r eventRecorder) Claim(_ context.Context, c *wire.Claim) *wire.ClaimReply {
	r.events <- fmt.Sprintf("claim %s %s", c.StageID, c.Agent)
	return &wire.ClaimReply{Granted: true, Attempt: c.Attempt}
}

// TestDispatchBindsSender: the dispatcher hands updates and log chunks to
// the handler only when their agent is the one their subject names (the
// subject is what NATS permissions authenticate), and sets a log chunk's
// agent from its subject. The messages are published with the server's
// credentials, which may use any subject.
func TestDispatchBindsSender(t *testing.T) {
	srv, _ := start(t)
	d, snc := dispatcher(t, srv, StreamLimits{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	rec := eventRecorder{events: make(chan string, 16)}
	wg.Go(func() { _ = d.Run(ctx, rec) })
	js, err := jetstream.New(snc)
	if err != nil {
		t.Fatal(err)
	}
	upd := func(stage, agent string, k wire.Kind) wire.Message {
		return &wire.Update{RunID: "r", StageID: stage, Attempt: 1, Agent: agent, Kind: k}
	}
	logc := func(stage, agent string) wire.Message {
		return &wire.LogChunk{RunID: "r", StageID: stage, Attempt: 1, Agent: agent, Step: "x", Data: []byte("hi")}
	}
	tests := []struct {
		subject string
		msg     wire.Message
		want    string // "" when dropped
	}{
		{wire.UpdatesSubject("r", "b"), upd("forged-update", "a", wire.KindFinished), ""},
		{wire.UpdatesSubject("r", "b"), upd("unnamed-update", "", wire.KindFinished), ""},
		{wire.UpdatesSubject("r", "a"), upd("agent-lost", "a", wire.KindLost), ""},
		{wire.UpdatesSubject("r", ServerUser), upd("server-finished", ServerUser, wire.KindFinished), ""},
		{wire.LogsSubject("r", "b"), logc("forged-log", "a"), ""},
		{wire.LogsSubject("r", ServerUser), logc("server-log", ""), ""},
		{wire.Prefix + "runs.r.updates", upd("old-subject", "a", wire.KindStarted), ""},
		{wire.UpdatesSubject("r", "a"), upd("own-update", "a", wire.KindStarted), "update own-update started a"},
		{wire.UpdatesSubject("r", ServerUser), upd("server-lost", ServerUser, wire.KindLost), "update server-lost lost " + ServerUser},
		{wire.LogsSubject("r", "a"), logc("own-log", "a"), "log own-log a"},
		{wire.LogsSubject("r", "a"), logc("unnamed-log", ""), "log unnamed-log a"},
	}
	var want []string
	for _, tt := range tests {
		b, err := wire.Encode(tt.msg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, tt.subject, b); err != nil {
			t.Fatalf("publish on %s: %v", tt.subject, err)
		}
		if tt.want != "" {
			want = append(want, tt.want)
		}
	}
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case e := <-rec.events:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("got events %q within 10s, want %q", got, want)
		}
	}
	select {
	case e := <-rec.events:
		got = append(got, e)
	case <-time.After(300 * time.Millisecond):
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got events %q, want %q", got, want)
	}
}

type lostRecorder struct{ lost chan *wire.Update }

func (r lostRecorder) Update(_ context.Context, u *wire.Update) error {
	if u.Kind == wire.KindLost {
		r.lost <- u
	}
	return nil
}
func (r lostRecorder) Log(context.Context, *wire.LogChunk) error { return nil }
func (r lostRecorder) Claim(context.Context, *wire.Claim) *wire.ClaimReply {
	return &wire.ClaimReply{Reason: "test"}
}

// TestMaxDeliver: a job nobody acks is delivered MaxDeliver times, then
// reported lost and removed from the queue.
func TestMaxDeliver(t *testing.T) {
	srv, creds := start(t, "a")
	d, snc := dispatcher(t, srv, StreamLimits{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := lostRecorder{lost: make(chan *wire.Update, 1)}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = d.Run(ctx, rec) })

	nc, err := natsbus.Connect(srv.ClientURL(), creds["a"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	in, err := natsbus.NewIntake(ctx, nc, natsbus.IntakeOptions{Name: "a", Capacity: 1, AckWait: 300 * time.Millisecond, MaxDeliver: 2, PullExpiry: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var attempts []uint64
	wg.Go(func() {
		_ = in.Run(ctx, func(_ context.Context, dl *natsbus.Delivery) {
			mu.Lock()
			attempts = append(attempts, dl.Delivered)
			mu.Unlock()
		})
	})
	if err := d.Publish(ctx, &wire.Job{RunID: "r", StageID: "s", Attempt: 3, Stage: &pipeline.Stage{ID: "s"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-rec.lost:
		if u.RunID != "r" || u.StageID != "s" || u.Attempt != 3 {
			t.Errorf("got lost update %+v, want r/s attempt 3 (the job's: deliveries make no attempts)", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no lost update within 10s")
	}
	mu.Lock()
	if len(attempts) != 2 || attempts[0] != 1 || attempts[1] != 2 {
		t.Errorf("got delivery counts %v, want [1 2]", attempts)
	}
	mu.Unlock()
	sjs, _ := jetstream.New(snc)
	st, _ := sjs.Stream(ctx, natsbus.JobsStream)
	waitFor(t, 5*time.Second, "the lost job removed from the queue", func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
}

func TestSetAgents(t *testing.T) {
	srv, creds := start(t, "a")
	tok, cred, err := NewAgentCredential("b")
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := natsbus.ParseAgentToken(tok)
	if _, err := natsbus.Connect(srv.ClientURL(), bc, nats.MaxReconnects(0)); err == nil {
		t.Fatal("unknown agent b connected")
	}
	_, aCred, _ := NewAgentCredential("a") // a's old token stops working
	if err := srv.SetAgents([]AgentCredential{aCred, cred}); err != nil {
		t.Fatal(err)
	}
	nc, err := natsbus.Connect(srv.ClientURL(), bc, nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("agent b after SetAgents: %v", err)
	}
	defer nc.Close()
	// b has b's permissions.
	perm := make(chan error, 1)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { perm <- err })
	_ = nc.Publish(wire.JobSubject(nil), []byte("{}"))
	select {
	case err := <-perm:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("got %v, want a permissions violation", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("b published a job without a permissions violation")
	}
	if _, err := natsbus.Connect(srv.ClientURL(), creds["a"], nats.MaxReconnects(0)); err == nil {
		t.Error("a's replaced token still connects")
	}
}

// TestPublishStampsInstall: jobs carry the server's install id, so agents
// label Docker resources with it; a job naming its own keeps it, and the
// caller's job is not changed.
func TestPublishStampsInstall(t *testing.T) {
	srv, creds := start(t, "a")
	nc, err := natsbus.Connect(srv.ClientURL(), srv.ServerCreds())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := NewDispatcher(ctx, nc, DispatcherOptions{Install: "srv-install"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	plain := &wire.Job{RunID: "r", StageID: "s", Attempt: 1, Stage: &pipeline.Stage{ID: "s"}}
	named := &wire.Job{RunID: "r", StageID: "t", Attempt: 1, Stage: &pipeline.Stage{ID: "t"}, Install: "other"}
	for _, j := range []*wire.Job{plain, named} {
		if err := d.Publish(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if plain.Install != "" {
		t.Errorf("Publish changed the caller's job: Install %q", plain.Install)
	}

	anc, err := natsbus.Connect(srv.ClientURL(), creds["a"])
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	in, err := natsbus.NewIntake(ctx, anc, natsbus.IntakeOptions{Name: "a", Capacity: 2, PullExpiry: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *wire.Job, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = in.Run(ctx, func(_ context.Context, dl *natsbus.Delivery) { got <- dl.Job }) })
	want := map[string]string{"s": "srv-install", "t": "other"}
	for range want {
		select {
		case j := <-got:
			if j.Install != want[j.StageID] {
				t.Errorf("job %s: Install %q, want %q", j.StageID, j.Install, want[j.StageID])
			}
		case <-time.After(10 * time.Second):
			t.Fatal("job not delivered within 10s")
		}
	}
}

// TestFixedLabels: an agent whose credential fixes os=linux can pull the
// jobs of os=linux and of no label, but cannot receive a job that needs
// secure=prod, whatever labels it announces.
func TestFixedLabels(t *testing.T) {
	tok, cred, err := NewAgentCredential("linux")
	if err != nil {
		t.Fatal(err)
	}
	cred.Labels = map[string]string{"os": "linux"}
	srv, err := StartEmbedded(Options{DataDir: t.TempDir(), Port: -1, Agents: []AgentCredential{cred}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	d, snc := dispatcher(t, srv, StreamLimits{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod := map[string]string{"os": "linux", "secure": "prod"}
	if err := d.Publish(ctx, &wire.Job{RunID: "r", StageID: "deploy", Attempt: 1, Stage: &pipeline.Stage{ID: "deploy", Labels: prod}}); err != nil {
		t.Fatal(err)
	}
	prodKey := wire.LabelSetKey(prod)
	// The secure=prod consumer exists, as a prod agent would have made it.
	sjs, err := jetstream.New(snc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sjs.CreateOrUpdateConsumer(ctx, natsbus.JobsStream, jetstream.ConsumerConfig{Durable: wire.ConsumerName(prodKey),
		FilterSubject: wire.JobsPrefix + prodKey, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	creds, err := natsbus.ParseAgentToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsbus.Connect(srv.ClientURL(), creds)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// Announcing secure=prod does not help: the intake cannot make (or
	// use) the consumer of that label set.
	// (A refused request gets no answer: short deadlines.)
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	if _, err := natsbus.NewIntake(dctx, nc, natsbus.IntakeOptions{Name: "linux", Labels: prod, Capacity: 1}); err == nil {
		t.Fatal("intake with labels beyond the credential's was allowed")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dctx2, dcancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel2()
	if _, err := js.Consumer(dctx2, natsbus.JobsStream, wire.ConsumerName(prodKey)); err == nil {
		t.Error("agent read the secure=prod consumer")
	}
	if _, err := nc.Request("$JS.API.CONSUMER.MSG.NEXT."+natsbus.JobsStream+"."+wire.ConsumerName(prodKey), []byte(`{"batch":1,"expires":1000000000}`), 3*time.Second); err == nil {
		t.Error("agent pulled from the secure=prod consumer")
	}
	// Its own labels work.
	in, err := natsbus.NewIntake(ctx, nc, natsbus.IntakeOptions{Name: "linux", Labels: map[string]string{"os": "linux"}, Capacity: 1})
	if err != nil {
		t.Fatalf("intake with the credential's labels: %v", err)
	}
	in.Stop()
}

// TestLabelLessCredential: a credential made without labels fails closed.
// Its agent announcing secure=prod does not start (the message names the
// command that remakes the credential) and cannot receive a job that needs
// secure=prod; announcing no labels it starts and takes label-less jobs.
func TestLabelLessCredential(t *testing.T) {
	tok, cred, err := NewAgentCredential("plain")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartEmbedded(Options{DataDir: t.TempDir(), Port: -1, Agents: []AgentCredential{cred}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	d, snc := dispatcher(t, srv, StreamLimits{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod := map[string]string{"secure": "prod"}
	if err := d.Publish(ctx, &wire.Job{RunID: "r", StageID: "deploy", Attempt: 1, Stage: &pipeline.Stage{ID: "deploy", Labels: prod}}); err != nil {
		t.Fatal(err)
	}
	prodKey := wire.LabelSetKey(prod)
	sjs, err := jetstream.New(snc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sjs.CreateOrUpdateConsumer(ctx, natsbus.JobsStream, jetstream.ConsumerConfig{Durable: wire.ConsumerName(prodKey),
		FilterSubject: wire.JobsPrefix + prodKey, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	creds, err := natsbus.ParseAgentToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsbus.Connect(srv.ClientURL(), creds)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	_, err = natsbus.NewIntake(dctx, nc, natsbus.IntakeOptions{Name: "plain", Labels: prod, Capacity: 1})
	if err == nil {
		t.Fatal("intake with secure=prod was allowed to a credential made without labels")
	}
	if want := "runnel agent token plain --labels secure=prod"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}
	if _, err := nc.Request("$JS.API.CONSUMER.MSG.NEXT."+natsbus.JobsStream+"."+wire.ConsumerName(prodKey), []byte(`{"batch":1,"expires":1000000000}`), 3*time.Second); err == nil {
		t.Error("agent pulled from the secure=prod consumer")
	}
	if err := d.Publish(ctx, &wire.Job{RunID: "r", StageID: "build", Attempt: 1, Stage: &pipeline.Stage{ID: "build"}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 2)
	in, err := natsbus.NewIntake(ctx, nc, natsbus.IntakeOptions{Name: "plain", Capacity: 1})
	if err != nil {
		t.Fatalf("intake without labels: %v", err)
	}
	defer in.Stop()
	go func() {
		_ = in.Run(ctx, func(_ context.Context, dl *natsbus.Delivery) { got <- dl.Job.StageID; _ = dl.Ack(ctx) })
	}()
	select {
	case id := <-got:
		if id != "build" {
			t.Errorf("got job %s, want build", id)
		}
	case <-ctx.Done():
		t.Fatal("label-less job not delivered")
	}
}
