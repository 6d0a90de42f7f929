package runner

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/internal/gittest"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/runnertest"
	"github.com/runnel-ci/runnel/runner/secretbox"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

type fixture struct {
	t      *testing.T
	dir    string
	bare   string
	work   string
	store  *store.Store
	logs   *logstore.Store
	bus    *runnertest.Harness
	runner *Runner
	repo   *store.Repo
	reg    *prometheus.Registry // the runner's metrics
}

// git runs git in dir (internal/gittest).
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.Run(t, dir, args...)
}

// newFixture makes a bare repo, a SQLite store and a runner on the real
// bus (runnertest): with agent, a built-in agent named "local" on the
// local shell engine; without, jobs wait in the queue and tests play the
// agent by calling HandleUpdate.
func newFixture(t *testing.T, withAgent bool, lease time.Duration) *fixture {
	t.Helper()
	return newFixtureOpts(t, runnertest.Options{NoAgent: !withAgent}, lease)
}

func newFixtureOpts(t *testing.T, o runnertest.Options, lease time.Duration) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
	f.bare = filepath.Join(f.dir, "repo.git")
	git(t, f.dir, "init", "-q", "--bare", f.bare)
	f.work = filepath.Join(f.dir, "work")
	git(t, f.dir, "clone", "-q", f.bare, f.work)
	ctx := context.Background()
	var err error
	box, err := secretbox.Load(filepath.Join(f.dir, "data"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	f.store, err = store.Open(ctx, filepath.Join(f.dir, "runnel.db"), store.WithSealer(box))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.logs, err = logstore.New(filepath.Join(f.dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	o.Logger = log
	f.bus = runnertest.Start(t, o)
	f.reg = prometheus.NewRegistry()
	mets, err := metrics.New(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	f.runner, err = New(Config{Store: f.store, Bus: f.bus.Dispatcher, Logs: f.logs, Logger: log, CacheDir: filepath.Join(f.dir, "cache"),
		LeaseTimeout: lease, Metrics: mets, Credentials: f.bus})
	if err != nil {
		t.Fatal(err)
	}
	f.bus.Serve(f.runner.Handler())
	if err := f.runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.runner.Close)
	f.repo, err = f.store.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: store.ForgeGit, CloneURL: f.bare, DefaultBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// update applies an update as an agent would send it.
func (f *fixture) update(run *store.Run, u wire.Update) {
	f.t.Helper()
	u.V, u.RunID = wire.Version, strconv.FormatInt(run.ID, 10)
	if u.Time.IsZero() {
		u.Time = time.Now()
	}
	if err := f.runner.HandleUpdate(context.Background(), &u); err != nil {
		f.t.Fatalf("handle %s update: %v", u.Kind, err)
	}
}

// cancels subscribes to the cancellations the runner publishes.
func (f *fixture) cancels() <-chan *wire.Cancel {
	f.t.Helper()
	nc, err := natsbus.Connect(f.bus.NATS.ClientURL(), f.bus.NATS.ServerCreds())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(nc.Close)
	ch := make(chan *wire.Cancel, 64)
	if _, err := nc.Subscribe(wire.CancelWildcard, func(m *nats.Msg) {
		var c wire.Cancel
		if err := wire.Decode(m.Data, &c); err == nil {
			ch <- &c
		}
	}); err != nil {
		f.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		f.t.Fatal(err)
	}
	return ch
}

// push commits files and pushes to main, returning the event.
func (f *fixture) push(files map[string]string) *scm.Event {
	f.t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(f.work, name), []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	git(f.t, f.work, "add", ".")
	git(f.t, f.work, "commit", "-qm", "change")
	sha := git(f.t, f.work, "rev-parse", "HEAD")
	git(f.t, f.work, "push", "-q", "origin", "HEAD:refs/heads/main")
	return &scm.Event{Forge: scm.ForgeGeneric, Kind: scm.KindPush, Repo: "acme/app", Ref: "refs/heads/main", Branch: "main", Commit: sha}
}

func (f *fixture) wait(runID int64, d time.Duration) *store.Run {
	f.t.Helper()
	deadline := time.After(d)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		run, err := f.store.Run(context.Background(), runID)
		if err != nil {
			f.t.Fatal(err)
		}
		if run.Status.Terminal() {
			return run
		}
		select {
		case <-poll.C:
		case <-deadline:
			f.t.Fatalf("run %d still %s after %s", runID, run.Status, d)
		}
	}
}

func stageByKey(run *store.Run, key string) *store.Stage {
	for _, s := range run.Stages {
		if s.Key == key {
			return s
		}
	}
	return nil
}

func (f *fixture) log(run *store.Run, stage string, step int) string {
	st := stageByKey(run, stage)
	r, err := f.logs.Open(LogKey(run.ID, stage, st.Attempt, step))
	if err != nil {
		f.t.Fatalf("open log: %v", err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

const dagPipeline = `version: 1
stages:
  build:
    steps:
      - name: compile
        run: echo "building $RUNNEL_COMMIT"
  test:
    needs: [build]
    steps:
      - name: unit
        run: %s
      - name: flaky lint
        run: exit 3
        allow_failure: true
  notify:
    needs: [test]
    when: {status: failure}
    steps:
      - name: tell
        run: echo "test failed"
  publish:
    needs: [test]
    steps:
      - name: push
        run: echo published
`

func TestRunOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		unit       string
		wantRun    store.Status
		wantStages map[string]store.Status
	}{
		{"success", "echo ok", store.StatusSuccess, map[string]store.Status{
			"build": store.StatusSuccess, "test": store.StatusSuccess, "notify": store.StatusSkipped, "publish": store.StatusSuccess}},
		{"failure", "echo broken; exit 1", store.StatusFailure, map[string]store.Status{
			"build": store.StatusSuccess, "test": store.StatusFailure, "notify": store.StatusSuccess, "publish": store.StatusSkipped}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, true, 0)
			ev := f.push(map[string]string{".pipeline.yml": strings.Replace(dagPipeline, "%s", tt.unit, 1)})
			run, err := f.runner.Trigger(context.Background(), TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
			if err != nil {
				t.Fatal(err)
			}
			run = f.wait(run.ID, 30*time.Second)
			if run.Status != tt.wantRun {
				t.Fatalf("run status = %s (%s, %+v), want %s", run.Status, run.Reason, f.runner.Diagnostics(run), tt.wantRun)
			}
			for key, want := range tt.wantStages {
				st := stageByKey(run, key)
				if st == nil || st.Status != want {
					t.Errorf("stage %s = %+v, want status %s", key, st, want)
				}
			}
			if got := f.log(run, "build", 0); !strings.Contains(got, "building "+ev.Commit) {
				t.Errorf("build log = %q, want it to contain the commit", got)
			}
			if tt.wantRun == store.StatusFailure {
				if got := f.log(run, "test", 0); !strings.Contains(got, "broken") {
					t.Errorf("failing step log = %q, want %q", got, "broken")
				}
			}
			if st := stageByKey(run, "build"); st.Agent != "local" || st.Attempt != 1 {
				t.Errorf("build agent/attempt = %q/%d, want local/1", st.Agent, st.Attempt)
			}
		})
	}
}

func TestInvalidPipeline(t *testing.T) {
	f := newFixture(t, true, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    stepz: []\n"})
	run, err := f.runner.Trigger(context.Background(), TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != store.StatusError || run.Reason != rules.ReasonPipelineInvalid {
		t.Errorf("run = %s/%s, want error/%s", run.Status, run.Reason, rules.ReasonPipelineInvalid)
	}
	ds := f.runner.Diagnostics(run)
	if len(ds) == 0 || ds[0].Line == 0 {
		t.Errorf("diagnostics = %+v, want positioned diagnostics", ds)
	}
}

func TestApproval(t *testing.T) {
	f := newFixture(t, true, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  deploy:\n    approval: true\n    steps:\n      - name: go\n        run: echo deployed\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	st := stageByKey(run, "deploy")
	if st.Status != store.StatusWaiting || st.PendingReason != "waiting for approval" {
		t.Fatalf("deploy = %s (%q), want waiting (waiting for approval)", st.Status, st.PendingReason)
	}
	if err := f.runner.Approve(ctx, run.ID, "deploy", "alice"); err != nil {
		t.Fatal(err)
	}
	run = f.wait(run.ID, 30*time.Second)
	if run.Status != store.StatusSuccess {
		t.Errorf("run = %s, want success", run.Status)
	}
}

// TestAgentLost: an attempt whose agent goes silent for the lease is told
// to stop and the stage is queued as a new attempt; after MaxAttempts
// such attempts the stage ends error/agent_lost.
func TestAgentLost(t *testing.T) {
	f := newFixture(t, false, 2*time.Second)
	cancels := f.cancels()
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: sleep 100\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= MaxAttempts; attempt++ {
		c := &wire.Claim{RunID: strconv.FormatInt(run.ID, 10), StageID: "a", Attempt: attempt, Agent: "ghost", Token: "t" + strconv.Itoa(attempt)}
		if rep := f.runner.HandleClaim(ctx, c); rep == nil || !rep.Granted || rep.Attempt != attempt {
			t.Fatalf("claim of attempt %d: got %+v, want granted", attempt, rep)
		}
		f.update(run, wire.Update{Kind: wire.KindStarted, StageID: "a", Attempt: attempt, Agent: "ghost"})
		select {
		case c := <-cancels:
			if c.StageID != "a" || c.Attempt != attempt || c.RunID != strconv.FormatInt(run.ID, 10) {
				t.Errorf("got cancel %+v, want run %d stage a attempt %d", c, run.ID, attempt)
			}
		case <-time.After(time.Minute):
			t.Fatalf("no cancel published for lost attempt %d", attempt)
		}
		if attempt == MaxAttempts {
			break
		}
		// The new attempt is stored first and marked published once its job
		// is on the bus: wait for both.
		cur := f.waitStage(run.ID, "a", func(st *store.Stage) bool {
			return (st.Attempt > attempt && st.Published > attempt) || st.Status.Terminal()
		})
		if st := stageByKey(cur, "a"); st.Status != store.StatusQueued || st.Attempt != attempt+1 || st.Published != attempt+1 {
			t.Fatalf("after lost attempt %d: stage %s attempt %d published %d; want queued attempt %d, published", attempt, st.Status, st.Attempt, st.Published, attempt+1)
		}
	}
	run = f.wait(run.ID, time.Minute)
	st := stageByKey(run, "a")
	if run.Status != store.StatusFailure || st.Status != store.StatusError || st.Reason != rules.ReasonAgentLost || st.Attempt != MaxAttempts {
		t.Errorf("got run %s, stage %s/%s attempt %d; want failure, error/%s attempt %d", run.Status, st.Status, st.Reason, st.Attempt, rules.ReasonAgentLost, MaxAttempts)
	}
	f.update(run, wire.Update{Kind: wire.KindStepStarted, StageID: "a", Attempt: MaxAttempts, Agent: "ghost", Step: "s"})
	after, _ := f.store.Run(ctx, run.ID)
	if got := stageByKey(after, "a"); got.Status != store.StatusError || got.Steps[0].Status == store.StatusRunning {
		t.Errorf("after a late update: stage %s, step %s; want error and the step not running", got.Status, got.Steps[0].Status)
	}
}

// waitStage waits until cond holds for the stage key of a run.
func (f *fixture) waitStage(runID int64, key string, cond func(*store.Stage) bool) *store.Run {
	f.t.Helper()
	deadline := time.Now().Add(time.Minute)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		run, err := f.store.Run(context.Background(), runID)
		if err != nil {
			f.t.Fatal(err)
		}
		if cond(stageByKey(run, key)) {
			return run
		}
		if time.Now().After(deadline) {
			st := stageByKey(run, key)
			f.t.Fatalf("stage %s: still %s attempt %d after a minute", key, st.Status, st.Attempt)
		}
		<-poll.C
	}
}

// TestRedeliveryAfterAgentDeath: the agent dies in the middle of a stage
// (no end reported, job not acknowledged); JetStream redelivers the job
// to the restarted agent, which runs it as attempt 2; the server makes
// attempt 2 current and the run succeeds on it.
func TestRedeliveryAfterAgentDeath(t *testing.T) {
	f := newFixtureOpts(t, runnertest.Options{AckWait: 2 * time.Second}, 20*time.Second)
	mark := filepath.Join(t.TempDir(), "first-attempt-ran")
	script := "if [ -e " + mark + " ]; then echo resumed; else touch " + mark + "; sleep 60; fi"
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: '" + script + "'\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	f.waitStage(run.ID, "a", func(st *store.Stage) bool {
		_, statErr := os.Stat(mark)
		return st.Status == store.StatusRunning && statErr == nil
	})
	f.bus.KillAgent()
	f.bus.StartAgent()
	run = f.wait(run.ID, 30*time.Second)
	st := stageByKey(run, "a")
	if run.Status != store.StatusSuccess || st.Status != store.StatusSuccess || st.Attempt != 2 || st.Agent != "local" {
		t.Fatalf("got run %s, stage %s/%s attempt %d agent %q; want success, success attempt 2 on local", run.Status, st.Status, st.Reason, st.Attempt, st.Agent)
	}
	if got := f.log(run, "a", 0); !strings.Contains(got, "resumed") {
		t.Errorf("attempt 2 log = %q, want %q", got, "resumed")
	}
}

// TestAttemptFencing follows wire rules 3, 4 and 6: one claim per
// attempt wins (a repeat of it is granted again); a lost attempt makes
// the server queue a new one; updates must match the current attempt,
// and stale ones are answered with a cancel.
func TestAttemptFencing(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	cancels := f.cancels()
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s1\n        run: echo\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	claim := func(attempt int, agent, token string) *wire.Claim {
		return &wire.Claim{RunID: strconv.FormatInt(run.ID, 10), StageID: "a", Attempt: attempt, Agent: agent, Token: token}
	}
	steps := []struct {
		name       string
		claim      *wire.Claim // a claim to make instead of an update
		wantGrant  bool
		lose       bool // the watchdog finds the current attempt silent
		u          wire.Update
		wantStage  store.Status
		wantAtt    int
		wantAgent  string
		wantStep   store.Status
		wantCancel int // attempt a cancel must name, 0 for none
	}{
		{name: "first claim granted", claim: claim(1, "a1", "t1"), wantGrant: true,
			wantStage: store.StatusQueued, wantAtt: 1, wantAgent: "a1", wantStep: store.StatusPending},
		{name: "a copy's claim refused", claim: claim(1, "a2", "t2"),
			wantStage: store.StatusQueued, wantAtt: 1, wantAgent: "a1", wantStep: store.StatusPending},
		{name: "a repeated claim granted again", claim: claim(1, "a1", "t1"), wantGrant: true,
			wantStage: store.StatusQueued, wantAtt: 1, wantAgent: "a1", wantStep: store.StatusPending},
		{name: "the claimant starts", u: wire.Update{Kind: wire.KindStarted, Attempt: 1, Agent: "a1"},
			wantStage: store.StatusRunning, wantAtt: 1, wantAgent: "a1", wantStep: store.StatusPending},
		{name: "lost: a new attempt is queued", lose: true,
			wantStage: store.StatusQueued, wantAtt: 2, wantAgent: "", wantStep: store.StatusPending, wantCancel: 1},
		{name: "a claim of the old attempt refused", claim: claim(1, "a3", "t3"),
			wantStage: store.StatusQueued, wantAtt: 2, wantAgent: "", wantStep: store.StatusPending},
		{name: "the new attempt's claim granted", claim: claim(2, "a2", "t4"), wantGrant: true,
			wantStage: store.StatusQueued, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusPending},
		{name: "new attempt starts", u: wire.Update{Kind: wire.KindStarted, Attempt: 2, Agent: "a2"},
			wantStage: store.StatusRunning, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusPending},
		{name: "old attempt's step is refused", u: wire.Update{Kind: wire.KindStepStarted, Attempt: 1, Agent: "a1", Step: "s1"},
			wantStage: store.StatusRunning, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusPending, wantCancel: 1},
		{name: "old attempt's finish is refused", u: wire.Update{Kind: wire.KindFinished, Attempt: 1, Agent: "a1", Status: rules.Failure},
			wantStage: store.StatusRunning, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusPending},
		{name: "a higher started makes no attempt", u: wire.Update{Kind: wire.KindStarted, Attempt: 3, Agent: "a3"},
			wantStage: store.StatusRunning, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusPending, wantCancel: 3},
		{name: "current attempt's step runs", u: wire.Update{Kind: wire.KindStepStarted, Attempt: 2, Agent: "a2", Step: "s1"},
			wantStage: store.StatusRunning, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusRunning},
		{name: "current attempt's step ends", u: wire.Update{Kind: wire.KindStepFinished, Attempt: 2, Agent: "a2", Step: "s1", Status: rules.Success},
			wantStage: store.StatusRunning, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusSuccess},
		{name: "current attempt finishes", u: wire.Update{Kind: wire.KindFinished, Attempt: 2, Agent: "a2", Status: rules.Success},
			wantStage: store.StatusSuccess, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusSuccess},
		{name: "a claim after the end refused", claim: claim(2, "a4", "t5"),
			wantStage: store.StatusSuccess, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusSuccess},
		{name: "a start after the end is cancelled", u: wire.Update{Kind: wire.KindStarted, Attempt: 2, Agent: "a2"},
			wantStage: store.StatusSuccess, wantAtt: 2, wantAgent: "a2", wantStep: store.StatusSuccess, wantCancel: 2},
	}
	for _, s := range steps {
		switch {
		case s.claim != nil:
			rep := f.runner.HandleClaim(ctx, s.claim)
			if rep == nil || rep.Granted != s.wantGrant || (rep.Granted && rep.Attempt != s.claim.Attempt) {
				t.Errorf("%s: got reply %+v, want granted %v", s.name, rep, s.wantGrant)
			}
		case s.lose:
			cur, err := f.store.Run(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			f.runner.agentLost(ctx, cur, stageByKey(cur, "a"))
		default:
			s.u.StageID = "a"
			f.update(run, s.u)
		}
		cur, err := f.store.Run(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		st := stageByKey(cur, "a")
		if st.Status != s.wantStage || st.Attempt != s.wantAtt || st.Agent != s.wantAgent || st.Steps[0].Status != s.wantStep {
			t.Errorf("%s: got stage %s attempt %d agent %q step %s; want %s attempt %d agent %q step %s", s.name,
				st.Status, st.Attempt, st.Agent, st.Steps[0].Status, s.wantStage, s.wantAtt, s.wantAgent, s.wantStep)
		}
		if s.wantCancel == 0 {
			continue
		}
		select {
		case c := <-cancels:
			if c.StageID != "a" || c.Attempt != s.wantCancel {
				t.Errorf("%s: got cancel of %s attempt %d, want a attempt %d", s.name, c.StageID, c.Attempt, s.wantCancel)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no cancel published", s.name)
		}
	}
	if cur, _ := f.store.Run(ctx, run.ID); cur.Status != store.StatusSuccess {
		t.Errorf("got run %s, want success", cur.Status)
	}
}

// TestForeignAgentIgnored: updates and log chunks for a stage attempt are
// taken only from the agent whose "started" made it run; another agent
// naming the same run, stage and attempt changes nothing (and gets no
// cancel, which would stop the rightful agent).
func TestForeignAgentIgnored(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	cancels := f.cancels()
	ctx := context.Background()
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s1\n        run: echo\n"})
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(agent, data string) {
		t.Helper()
		c := wire.LogChunk{V: wire.Version, RunID: strconv.FormatInt(run.ID, 10), StageID: "a", Attempt: 1, Agent: agent,
			Step: "s1", Seq: 0, Data: []byte(data), EOF: true}
		if err := f.runner.HandleLog(ctx, &c); err != nil {
			t.Fatalf("handle log chunk of %s: %v", agent, err)
		}
	}
	steps := []struct {
		name      string
		u         wire.Update
		wantStage store.Status
		wantAgent string
		wantStep  store.Status
	}{
		{"a step before any start is ignored", wire.Update{Kind: wire.KindStepStarted, Attempt: 1, Agent: "a1", Step: "s1"},
			store.StatusQueued, "", store.StatusPending},
		{"a finish before any start is ignored", wire.Update{Kind: wire.KindFinished, Attempt: 1, Agent: "a1", Status: rules.Success},
			store.StatusQueued, "", store.StatusPending},
		{"the start records the agent", wire.Update{Kind: wire.KindStarted, Attempt: 1, Agent: "a1"},
			store.StatusRunning, "a1", store.StatusPending},
		{"another agent's start is ignored", wire.Update{Kind: wire.KindStarted, Attempt: 1, Agent: "evil"},
			store.StatusRunning, "a1", store.StatusPending},
		{"another agent's step start is ignored", wire.Update{Kind: wire.KindStepStarted, Attempt: 1, Agent: "evil", Step: "s1"},
			store.StatusRunning, "a1", store.StatusPending},
		{"another agent's heartbeat is ignored", wire.Update{Kind: wire.KindHeartbeat, Attempt: 1, Agent: "evil"},
			store.StatusRunning, "a1", store.StatusPending},
		{"the agent's step starts", wire.Update{Kind: wire.KindStepStarted, Attempt: 1, Agent: "a1", Step: "s1"},
			store.StatusRunning, "a1", store.StatusRunning},
		{"another agent's step end is ignored", wire.Update{Kind: wire.KindStepFinished, Attempt: 1, Agent: "evil", Step: "s1", Status: rules.Failure, ExitCode: 1},
			store.StatusRunning, "a1", store.StatusRunning},
		{"another agent's finish is ignored", wire.Update{Kind: wire.KindFinished, Attempt: 1, Agent: "evil", Status: rules.Success},
			store.StatusRunning, "a1", store.StatusRunning},
		{"the agent's step ends", wire.Update{Kind: wire.KindStepFinished, Attempt: 1, Agent: "a1", Step: "s1", Status: rules.Success},
			store.StatusRunning, "a1", store.StatusSuccess},
		{"the agent finishes", wire.Update{Kind: wire.KindFinished, Attempt: 1, Agent: "a1", Status: rules.Success},
			store.StatusSuccess, "a1", store.StatusSuccess},
	}
	for i, s := range steps {
		if i == 7 {
			// Log chunks: the other agent's seq 0 comes first; were it
			// taken, the real seq 0 would be dropped as a redelivery.
			chunk("evil", "forged\n")
			chunk("a1", "real\n")
		}
		s.u.StageID = "a"
		f.update(run, s.u)
		cur, err := f.store.Run(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		st := stageByKey(cur, "a")
		if st.Status != s.wantStage || st.Attempt != 1 || st.Agent != s.wantAgent || st.Steps[0].Status != s.wantStep {
			t.Errorf("%s: got stage %s attempt %d agent %q step %s; want %s attempt 1 agent %q step %s", s.name,
				st.Status, st.Attempt, st.Agent, st.Steps[0].Status, s.wantStage, s.wantAgent, s.wantStep)
		}
	}
	cur, err := f.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Status != store.StatusSuccess {
		t.Errorf("got run %s, want success", cur.Status)
	}
	if got := f.log(cur, "a", 0); got != "real\n" {
		t.Errorf("got log %q, want %q", got, "real\n")
	}
	select {
	case c := <-cancels:
		t.Errorf("got cancel %+v, want none", c)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestStageEnd maps an agent's final status (or the dispatcher's "lost")
// to the stored stage status and reason.
func TestStageEnd(t *testing.T) {
	tests := []struct {
		name       string
		kind       wire.Kind
		attempt    int // of the final update; the stage runs attempt 1
		status     rules.Status
		reason     string
		wantStatus store.Status
		wantReason string
	}{
		{"success", wire.KindFinished, 1, rules.Success, "", store.StatusSuccess, ""},
		{"failure", wire.KindFinished, 1, rules.Failure, "step s failed", store.StatusFailure, "step s failed"},
		{"timeout", wire.KindFinished, 1, rules.Timeout, "", store.StatusFailure, rules.ReasonTimeout},
		{"cancelled", wire.KindFinished, 1, rules.Canceled, "lease lost", store.StatusCanceled, "lease lost"},
		{"error", wire.KindFinished, 1, rules.Error, "", store.StatusError, "error"},
		{"stale finish", wire.KindFinished, 2, rules.Success, "", store.StatusRunning, ""},
		{"lost", wire.KindLost, 1, rules.Error, "no agent finished the stage in 5 deliveries", store.StatusError, rules.ReasonAgentLost},
		// Deliveries make no attempts: a "lost" of another attempt is stale.
		{"lost of another attempt", wire.KindLost, 5, rules.Error, "gave up", store.StatusRunning, ""},
	}
	f := newFixture(t, false, time.Minute)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo\n"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, err := f.runner.Trigger(context.Background(), TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerManual})
			if err != nil {
				t.Fatal(err)
			}
			f.update(run, wire.Update{Kind: wire.KindStarted, StageID: "a", Attempt: 1, Agent: "x"})
			f.update(run, wire.Update{Kind: tt.kind, StageID: "a", Attempt: tt.attempt, Agent: "x", Status: tt.status, Reason: tt.reason})
			cur, _ := f.store.Run(context.Background(), run.ID)
			if st := stageByKey(cur, "a"); st.Status != tt.wantStatus || st.Reason != tt.wantReason {
				t.Errorf("got stage %s/%q, want %s/%q", st.Status, st.Reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestConcurrencyGroupInRunOrder(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	ctx := context.Background()
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  deploy:\n    concurrency: prod\n    steps:\n      - name: s\n        run: echo\n"})
	first, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := stageByKey(first, "deploy"), stageByKey(second, "deploy")
	if s1.Status != store.StatusQueued {
		t.Errorf("first run's deploy = %s, want queued", s1.Status)
	}
	if s2.Status != store.StatusPending || s2.PendingReason != "waiting for concurrency group prod" {
		t.Errorf("second run's deploy = %s (%q), want pending (waiting for concurrency group prod)", s2.Status, s2.PendingReason)
	}
	// The first finishes: the second gets the group.
	f.update(first, wire.Update{Kind: wire.KindStarted, StageID: "deploy", Attempt: 1, Agent: "a"})
	f.update(first, wire.Update{Kind: wire.KindFinished, StageID: "deploy", Attempt: 1, Agent: "a", Status: rules.Success})
	got, _ := f.store.Run(ctx, second.ID)
	if st := stageByKey(got, "deploy"); st.Status != store.StatusQueued {
		t.Errorf("after the first finished, second's deploy = %s, want queued", st.Status)
	}
	if got, _ := f.store.Run(ctx, first.ID); got.Status != store.StatusSuccess {
		t.Errorf("first run = %s, want success", got.Status)
	}
}

func TestCancelPreviousAndReject(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	ctx := context.Background()
	repo := *f.repo
	repo.CancelPrevious = true
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  build:\n    steps:\n      - name: s\n        run: echo\n  ship:\n    needs: [build]\n    approval: true\n    steps:\n      - name: s\n        run: echo\n"})
	old, err := f.runner.Trigger(ctx, TriggerRequest{Repo: &repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := f.runner.Trigger(ctx, TriggerRequest{Repo: &repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.Run(ctx, old.ID); got.Status != store.StatusCanceled || got.Reason != rules.ReasonSuperseded {
		t.Errorf("older run = %s/%s, want canceled/superseded", got.Status, got.Reason)
	}
	if st := stageByKey(cur, "ship"); st.Status != store.StatusPending || st.PendingReason != "waiting for needs: build" {
		t.Errorf("ship = %s (%q), want pending (waiting for needs: build)", st.Status, st.PendingReason)
	}
	f.update(cur, wire.Update{Kind: wire.KindStarted, StageID: "build", Attempt: 1, Agent: "a"})
	f.update(cur, wire.Update{Kind: wire.KindFinished, StageID: "build", Attempt: 1, Agent: "a", Status: rules.Success})
	got, _ := f.store.Run(ctx, cur.ID)
	if st := stageByKey(got, "ship"); st.Status != store.StatusWaiting {
		t.Fatalf("ship = %s, want waiting", st.Status)
	}
	if err := f.runner.Reject(ctx, cur.ID, "ship", "bob"); err != nil {
		t.Fatal(err)
	}
	got, _ = f.store.Run(ctx, cur.ID)
	st := stageByKey(got, "ship")
	if st.Status != store.StatusCanceled || st.Reason != rules.ReasonApprovalRejected || got.Status != store.StatusFailure {
		t.Errorf("after reject: ship %s/%s, run %s; want canceled/approval_rejected, run failure", st.Status, st.Reason, got.Status)
	}
}

// TestStepAttemptsRecorded: a step that succeeds on its second try is
// recorded with two attempts, carried from the agent in the step_finished
// update.
func TestStepAttemptsRecorded(t *testing.T) {
	f := newFixture(t, true, 0)
	ev := f.push(map[string]string{".pipeline.yml": `version: 1
stages:
  flaky:
    steps:
      - name: second-time-lucky
        retry: 2
        run: |
          if [ -f tried ]; then echo ok; else touch tried; exit 1; fi
`})
	run, err := f.runner.Trigger(context.Background(), TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	run = f.wait(run.ID, 30*time.Second)
	if run.Status != store.StatusSuccess {
		t.Fatalf("run status = %s (%s), want success", run.Status, run.Reason)
	}
	st := stageByKey(run, "flaky")
	if st == nil || len(st.Steps) != 1 {
		t.Fatalf("stage flaky = %+v, want one step", st)
	}
	if got := st.Steps[0].Attempts; got != 2 {
		t.Errorf("step attempts = %d, want 2", got)
	}
}

// TestEventCloneURLNeverLocal: for a repo registered without a clone URL,
// the payload's clone URL must not make the server read a repository on
// its own host (a path or file:// URL), even one that exists: the run
// ends error/source_refused, saying why, and nothing was read.
func TestEventCloneURLNeverLocal(t *testing.T) {
	f := newFixture(t, false, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - run: echo hi\n"})
	ctx := context.Background()
	for _, forge := range []string{store.ForgeGeneric, store.ForgeGitHub} {
		repo, err := f.store.CreateRepo(ctx, store.Repo{Name: "acme/nourl-" + forge, Forge: forge, DefaultBranch: "main"})
		if err != nil {
			t.Fatal(err)
		}
		for _, url := range []string{f.bare, "file://" + f.bare, "FILE://" + f.bare} {
			e := *ev
			e.CloneURL = url
			run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: repo, Event: &e, Trigger: store.TriggerWebhook})
			if err != nil || run.Status != store.StatusError || run.Reason != rules.ReasonSourceRefused || run.SourceURL != "" || run.Plan != nil {
				t.Errorf("%s repo, clone URL %q: got run %+v, err %v; want error/%s without source or plan", forge, url, run, err, rules.ReasonSourceRefused)
				continue
			}
			if d := f.runner.Diagnostics(run); len(d) != 1 || !strings.Contains(d[0].Message, "no clone URL") {
				t.Errorf("%s repo, clone URL %q: diagnostics %+v, want why", forge, url, d)
			}
		}
	}
}

// TestPullRequestOrigin: a run records whether its pull request came from
// the repository itself (as the forge's payload said), and a rerun keeps
// it.
func TestPullRequestOrigin(t *testing.T) {
	f := newFixture(t, false, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - run: echo hi\n"})
	ctx := context.Background()
	for _, same := range []bool{true, false} {
		e := *ev
		e.Kind = scm.KindPullRequest
		e.PullRequest = &scm.PullRequest{Number: 1, HeadSHA: ev.Commit, BaseRef: "main", SameRepo: same}
		run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: &e, Trigger: store.TriggerWebhook})
		if err != nil {
			t.Fatal(err)
		}
		again, err := f.runner.Rerun(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if run.SameRepo != same || again.SameRepo != same {
			t.Errorf("pull request with SameRepo %v: run %v, rerun %v", same, run.SameRepo, again.SameRepo)
		}
	}
}

// TestResolveSource is the rule of where a run's code is fetched from.
func TestResolveSource(t *testing.T) {
	gh := &store.Repo{Name: "acme/web", Forge: store.ForgeGitHub}
	ghe := &store.Repo{Name: "acme/web", Forge: store.ForgeGitHub, ForgeURL: "https://git.example.com/ghe"}
	gitea := &store.Repo{Name: "acme/web", Forge: store.ForgeGitea}
	registered := &store.Repo{Name: "acme/web", Forge: store.ForgeGitHub, CloneURL: "https://github.com/acme/web.git"}
	bare := &store.Repo{Name: "web", Forge: store.ForgeGit, CloneURL: "/srv/git/web.git"}
	generic := &store.Repo{Name: "web", Forge: store.ForgeGeneric}
	for _, tc := range []struct {
		name  string
		repo  *store.Repo
		event string // the event's clone URL
		want  string // "" when refused
	}{
		{"registered clone URL wins over the event's", registered, "https://evil.example/x.git", "https://github.com/acme/web.git"},
		{"bare repository path", bare, "", "/srv/git/web.git"},
		{"github event on github.com", gh, "https://github.com/acme/web.git", "https://github.com/acme/web.git"},
		{"github event on another host", gh, "https://evil.example/acme/web.git", ""},
		{"loopback", gh, "http://127.0.0.1:8080/acme/web.git", ""},
		{"host suffix trick", gh, "https://github.com.evil/acme/web.git", ""},
		{"user info trick", gh, "https://github.com@evil/acme/web.git", ""},
		{"plain http to an https forge", gh, "http://github.com/acme/web.git", ""},
		{"local path", gh, "/srv/git/web.git", ""},
		{"file URL", gh, "file:///srv/git/web.git", ""},
		{"no clone URL at all", gh, "", ""},
		{"forge URL with a path", ghe, "https://git.example.com/ghe/acme/web.git", "https://git.example.com/ghe/acme/web.git"},
		{"outside the forge URL's path", ghe, "https://git.example.com/other/web.git", ""},
		{"gitea without forge URL", gitea, "https://gitea.example/acme/web.git", ""},
		{"generic repo without clone URL", generic, "https://github.com/acme/web.git", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveSource(tc.repo, &scm.Event{CloneURL: tc.event})
			if got != tc.want || (tc.want == "") != errors.Is(err, scm.ErrForeignSource) {
				t.Errorf("ResolveSource = %q, %v; want %q (refused: %v)", got, err, tc.want, tc.want == "")
			}
		})
	}
}

// cancelOnQueued cancels a context when a stage's "Queued" status is
// reported, which the runner does just before it publishes the job.
type cancelOnQueued struct{ cancel context.CancelFunc }

func (c cancelOnQueued) Enqueue(s scm.Status) error {
	if s.Description == "Queued" {
		c.cancel()
	}
	return nil
}

// TestTriggerSurvivesCallerCancel: a caller (an HTTP request) going away
// after the run was created must not leave a stage queued without a job.
func TestTriggerSurvivesCallerCancel(t *testing.T) {
	f := newFixture(t, true, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.runner.cfg.Statuses = cancelOnQueued{cancel}
	if _, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerManual}); err != nil {
		t.Errorf("trigger: %v", err)
	}
	// The fixture's store is new: the run is number 1.
	if got := f.wait(1, 20*time.Second); got.Status != store.StatusSuccess {
		t.Errorf("run = %s/%s, want success", got.Status, got.Reason)
	}
}

// TestSilentStageOfBusyAgentLost: an agent that is connected and busy
// with one stage does not keep another of its stages alive: a stage whose
// heartbeats stop is queued as a new attempt within the lease, while the
// stage that keeps heartbeating (a long step that reports nothing else)
// runs on.
func TestSilentStageOfBusyAgentLost(t *testing.T) {
	const lease = 2 * time.Second
	// The agent extends its leases (and heartbeats) every 600 ms.
	f := newFixtureOpts(t, runnertest.Options{AckWait: 3 * time.Second}, lease)
	// "silent" needs a label the agent lacks, so its job stays queued and
	// the test plays its start on the same agent, then says nothing more.
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n" +
		"  busy:\n    steps:\n      - name: s\n        run: sleep 60\n" +
		"  silent:\n    labels: {gpu: nvidia}\n    steps:\n      - name: s\n        run: echo\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the agent runs "busy" and its presence says so (presence
	// comes every 5 s): from then on the agent counts as busy.
	f.waitStage(run.ID, "busy", func(st *store.Stage) bool {
		busy := false
		for _, a := range f.bus.Dispatcher.Agents() {
			busy = busy || (a.Name == f.bus.AgentName && !a.Lost && a.Running > 0)
		}
		return st.Status == store.StatusRunning && busy
	})
	started := time.Now()
	f.update(run, wire.Update{Kind: wire.KindStarted, StageID: "silent", Attempt: 1, Agent: f.bus.AgentName})
	cur := f.waitStage(run.ID, "silent", func(st *store.Stage) bool { return st.Status.Terminal() || st.Attempt > 1 })
	if st := stageByKey(cur, "silent"); st.Status != store.StatusQueued || st.Attempt != 2 {
		t.Fatalf("got silent stage %s/%s attempt %d, want queued attempt 2", st.Status, st.Reason, st.Attempt)
	}
	// The watchdog looks every lease/5 (at least 1 s).
	if bound := lease + 2*time.Second; time.Since(started) > bound {
		t.Errorf("silent stage re-queued %v after its start, want within %v", time.Since(started).Round(time.Millisecond), bound)
	}
	// The heartbeating stage must still run once the runner has taken its
	// heartbeats over two more lease periods (the watchdog looked at it
	// meanwhile, every second).
	requeued := time.Now()
	f.waitStage(run.ID, "busy", func(st *store.Stage) bool {
		f.runner.seenMu.Lock()
		last := f.runner.seen[stageRef{run.ID, "busy"}].last
		f.runner.seenMu.Unlock()
		return st.Status != store.StatusRunning || st.Attempt != 1 || last.Sub(requeued) >= 2*lease
	})
	cur, err = f.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := stageByKey(cur, "busy"); st.Status != store.StatusRunning || st.Attempt != 1 {
		t.Errorf("got busy stage %s/%s attempt %d, want running attempt 1", st.Status, st.Reason, st.Attempt)
	}
	if err := f.runner.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
}

// TestStageEndAppliedWhenCallerGoesAway: an update handed to the runner
// is applied to the end even if the handler's context is already over (a
// shutdown): the stage, its steps and the run all end, and the bus is not
// asked to deliver it again.
func TestStageEndAppliedWhenCallerGoesAway(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo\n"})
	run, err := f.runner.Trigger(context.Background(), TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	f.update(run, wire.Update{Kind: wire.KindStarted, StageID: "a", Attempt: 1, Agent: "x"})
	f.update(run, wire.Update{Kind: wire.KindStepStarted, StageID: "a", Attempt: 1, Agent: "x", Step: "s"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	u := wire.Update{V: wire.Version, RunID: strconv.FormatInt(run.ID, 10), StageID: "a", Attempt: 1, Agent: "x",
		Kind: wire.KindFinished, Status: rules.Failure, Reason: "step s failed", Time: time.Now()}
	if err := f.runner.HandleUpdate(ctx, &u); err != nil {
		t.Fatalf("handle finished with an ended context: got %v, want nil", err)
	}
	cur, err := f.store.Run(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := stageByKey(cur, "a")
	if cur.Status != store.StatusFailure || st.Status != store.StatusFailure || st.Steps[0].Status != store.StatusFailure {
		t.Errorf("got run %s, stage %s, step %s; want failure, failure, failure", cur.Status, st.Status, st.Steps[0].Status)
	}
}

// TestStageEndRedeliveryCompletesRun: a stage end that was stored but
// whose follow-up (scheduling, the run's end) was not, as after a store
// failure, is completed when the bus delivers the "finished" again.
func TestStageEndRedeliveryCompletesRun(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	f.update(run, wire.Update{Kind: wire.KindStarted, StageID: "a", Attempt: 1, Agent: "x"})
	// Half applied: the stage's end is stored, nothing after it.
	if err := f.store.UpdateStage(ctx, stageByKey(run, "a").ID, 1, store.StageUpdate{Status: store.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	f.update(run, wire.Update{Kind: wire.KindFinished, StageID: "a", Attempt: 1, Agent: "x", Status: rules.Success})
	cur, err := f.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Status != store.StatusSuccess {
		t.Errorf("got run %s after the end was delivered again, want success", cur.Status)
	}
}

// records is a slog.Handler that keeps the records at or above Warn.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (h *records) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	h.mu.Lock()
	h.msgs = append(h.msgs, s)
	h.mu.Unlock()
	return nil
}
func (h *records) WithAttrs(as []slog.Attr) slog.Handler { return &withAttrs{h, as} }
func (h *records) WithGroup(string) slog.Handler         { return h }

type withAttrs struct {
	h  *records
	as []slog.Attr
}

func (w *withAttrs) Enabled(ctx context.Context, l slog.Level) bool { return w.h.Enabled(ctx, l) }
func (w *withAttrs) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(w.as...)
	return w.h.Handle(ctx, r)
}
func (w *withAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{w.h, append(slices.Clip(w.as), as...)}
}
func (w *withAttrs) WithGroup(string) slog.Handler { return w }

// TestStepEndFailureLogged: when the store fails to end a step with its
// stage (here a SQLite trigger refuses every move of a step to skipped),
// the runner logs a warning naming the step instead of dropping the
// error; the stage and run still end.
func TestStepEndFailureLogged(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n" +
		"  a:\n    steps:\n      - name: compile\n        run: exit 1\n      - name: never\n        run: echo\n" +
		"  b:\n    needs: [a]\n    steps:\n      - name: deploy\n        run: echo\n"})
	db, err := sql.Open("sqlite", filepath.Join(f.dir, "runnel.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER no_skip BEFORE UPDATE OF status ON steps WHEN NEW.status = 'skipped'
		BEGIN SELECT RAISE(ABORT, 'injected step failure'); END`); err != nil {
		t.Fatal(err)
	}
	// A runner of its own (no watchdog) whose warnings the test sees.
	rec := &records{}
	r, err := New(Config{Store: f.store, Bus: f.bus.Dispatcher, Logs: f.logs, Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run, err := r.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []wire.Update{
		{Kind: wire.KindStarted, StageID: "a", Attempt: 1, Agent: "x"},
		{Kind: wire.KindStepStarted, StageID: "a", Attempt: 1, Agent: "x", Step: "compile"},
		{Kind: wire.KindStepFinished, StageID: "a", Attempt: 1, Agent: "x", Step: "compile", Status: rules.Failure, ExitCode: 1},
		{Kind: wire.KindFinished, StageID: "a", Attempt: 1, Agent: "x", Status: rules.Failure, Reason: "step compile failed"},
	} {
		u.V, u.RunID, u.Time = wire.Version, strconv.FormatInt(run.ID, 10), time.Now()
		if err := r.HandleUpdate(ctx, &u); err != nil {
			t.Fatalf("handle %s: %v", u.Kind, err)
		}
	}
	cur, err := f.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Status != store.StatusFailure || stageByKey(cur, "b").Status != store.StatusSkipped {
		t.Errorf("got run %s, stage b %s; want failure, skipped", cur.Status, stageByKey(cur, "b").Status)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, step := range []string{"never", "deploy"} { // ended with stage a; skipped with stage b
		found := false
		for _, m := range rec.msgs {
			found = found || (strings.HasPrefix(m, "WARN ") && strings.Contains(m, "step="+step) && strings.Contains(m, "injected step failure"))
		}
		if !found {
			t.Errorf("no warning about step %s failing to end; got %q", step, rec.msgs)
		}
	}
}
