package runner

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/runner/logstore"
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
	bus    Bus
	runner *Runner
	repo   *store.Repo
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// newFixture makes a bare repo, a SQLite store and a runner; bus nil means
// a LocalBus with the local (host shell) engine.
func newFixture(t *testing.T, bus Bus, lease time.Duration) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
	f.bare = filepath.Join(f.dir, "repo.git")
	git(t, f.dir, "init", "-q", "--bare", f.bare)
	f.work = filepath.Join(f.dir, "work")
	git(t, f.dir, "clone", "-q", f.bare, f.work)
	ctx := context.Background()
	var err error
	f.store, err = store.Open(ctx, filepath.Join(f.dir, "runnel.db"))
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
	var lb *LocalBus
	if bus == nil {
		lb, err = NewLocalBus(LocalBusOptions{Name: "local", Engine: local.New(local.Options{Root: filepath.Join(f.dir, "ws")}),
			WorkDir: filepath.Join(f.dir, "agent"), Logger: log, Capacity: 2})
		if err != nil {
			t.Fatal(err)
		}
		bus = lb
	}
	f.bus = bus
	f.runner, err = New(Config{Store: f.store, Bus: bus, Logs: f.logs, Logger: log, CacheDir: filepath.Join(f.dir, "cache"), LeaseTimeout: lease})
	if err != nil {
		t.Fatal(err)
	}
	if lb != nil {
		lb.SetHandler(f.runner.HandleUpdate)
		t.Cleanup(func() { lb.Drain(context.Background()) })
	}
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
	deadline := time.Now().Add(d)
	for {
		run, err := f.store.Run(context.Background(), runID)
		if err != nil {
			f.t.Fatal(err)
		}
		if run.Status.Terminal() {
			return run
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("run %d still %s after %s", runID, run.Status, d)
		}
		time.Sleep(50 * time.Millisecond)
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
			f := newFixture(t, nil, 0)
			ev := f.push(map[string]string{".pipeline.yml": strings.Replace(dagPipeline, "%s", tt.unit, 1)})
			run, err := f.runner.Trigger(context.Background(), f.repo, ev, store.TriggerGitHook, 0)
			if err != nil {
				t.Fatal(err)
			}
			run = f.wait(run.ID, 30*time.Second)
			if run.Status != tt.wantRun {
				t.Fatalf("run status = %s (%s, %+v), want %s", run.Status, run.Reason, f.runner.Diagnostics(run.ID), tt.wantRun)
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
	f := newFixture(t, nil, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    stepz: []\n"})
	run, err := f.runner.Trigger(context.Background(), f.repo, ev, store.TriggerGitHook, 0)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != store.StatusError || run.Reason != store.ReasonPipelineInvalid {
		t.Errorf("run = %s/%s, want error/%s", run.Status, run.Reason, store.ReasonPipelineInvalid)
	}
	ds := f.runner.Diagnostics(run.ID)
	if len(ds) == 0 || ds[0].Line == 0 {
		t.Errorf("diagnostics = %+v, want positioned diagnostics", ds)
	}
}

func TestApproval(t *testing.T) {
	f := newFixture(t, nil, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  deploy:\n    approval: true\n    steps:\n      - name: go\n        run: echo deployed\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, f.repo, ev, store.TriggerGitHook, 0)
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

// silentBus accepts jobs and never runs them: an agent that died.
type silentBus struct {
	mu       sync.Mutex
	jobs     []*Job
	canceled []int
}

func (b *silentBus) Dispatch(ctx context.Context, j *Job) error {
	b.mu.Lock()
	b.jobs = append(b.jobs, j)
	b.mu.Unlock()
	return nil
}

func (b *silentBus) Cancel(ctx context.Context, runID int64, stageID string, attempt int) error {
	b.mu.Lock()
	b.canceled = append(b.canceled, attempt)
	b.mu.Unlock()
	return nil
}

func (b *silentBus) Agents() []AgentInfo { return []AgentInfo{{Name: "ghost", Capacity: 1}} }

func TestAgentLostAndFencing(t *testing.T) {
	bus := &silentBus{}
	f := newFixture(t, bus, 2*time.Second)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: sleep 100\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, f.repo, ev, store.TriggerGitHook, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.runner.HandleUpdate(ctx, Update{Kind: UpdateStageStarted, RunID: run.ID, Stage: "a", Attempt: 1, Agent: "ghost"})
	// No more updates: the lease runs out and attempt 2 is queued.
	deadline := time.Now().Add(20 * time.Second)
	for {
		cur, _ := f.store.Run(ctx, run.ID)
		if st := stageByKey(cur, "a"); st.Attempt == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("attempt 2 not queued after the lease ran out")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Attempt 2 starts on another agent that dies as well.
	f.runner.HandleUpdate(ctx, Update{Kind: UpdateStageStarted, RunID: run.ID, Stage: "a", Attempt: 2, Agent: "ghost2"})
	run = f.wait(run.ID, 30*time.Second)
	st := stageByKey(run, "a")
	if run.Status != store.StatusFailure || st.Status != store.StatusError || st.Reason != store.ReasonAgentLost {
		t.Errorf("run %s, stage %s/%s; want failure, error/%s", run.Status, st.Status, st.Reason, store.ReasonAgentLost)
	}
	bus.mu.Lock()
	njobs := len(bus.jobs)
	bus.mu.Unlock()
	if njobs != 2 || st.Attempt != 2 {
		t.Errorf("dispatched %d jobs, attempt %d; want 2 jobs, attempt 2", njobs, st.Attempt)
	}
	// A late update of attempt 1 changes nothing.
	f.runner.HandleUpdate(ctx, Update{Kind: UpdateStageStarted, RunID: run.ID, Stage: "a", Attempt: 1, Agent: "ghost"})
	after, _ := f.store.Run(ctx, run.ID)
	if got := stageByKey(after, "a"); got.Status != store.StatusError || got.Agent != st.Agent {
		t.Errorf("after stale update stage = %s agent %q, want unchanged", got.Status, got.Agent)
	}
}

func TestCancel(t *testing.T) {
	f := newFixture(t, nil, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: sleep 30\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, f.repo, ev, store.TriggerGitHook, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := f.runner.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	run = f.wait(run.ID, 5*time.Second)
	if run.Status != store.StatusCanceled || run.Reason != store.ReasonCanceledByUser {
		t.Errorf("run = %s/%s, want canceled/%s", run.Status, run.Reason, store.ReasonCanceledByUser)
	}
}

func TestConcurrencyGroupInRunOrder(t *testing.T) {
	bus := &silentBus{}
	f := newFixture(t, bus, time.Minute)
	ctx := context.Background()
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  deploy:\n    concurrency: prod\n    steps:\n      - name: s\n        run: echo\n"})
	first, err := f.runner.Trigger(ctx, f.repo, ev, store.TriggerGitHook, 0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.runner.Trigger(ctx, f.repo, ev, store.TriggerManual, 0)
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
	f.runner.HandleUpdate(ctx, Update{Kind: UpdateStageStarted, RunID: first.ID, Stage: "deploy", Attempt: 1, Agent: "a"})
	f.runner.HandleUpdate(ctx, Update{Kind: UpdateStageFinished, RunID: first.ID, Stage: "deploy", Attempt: 1, Agent: "a",
		Result: &stage.Result{Status: stage.StatusSuccess}})
	got, _ := f.store.Run(ctx, second.ID)
	if st := stageByKey(got, "deploy"); st.Status != store.StatusQueued {
		t.Errorf("after the first finished, second's deploy = %s, want queued", st.Status)
	}
	if got, _ := f.store.Run(ctx, first.ID); got.Status != store.StatusSuccess {
		t.Errorf("first run = %s, want success", got.Status)
	}
}

func TestCancelPreviousAndReject(t *testing.T) {
	bus := &silentBus{}
	f := newFixture(t, bus, time.Minute)
	ctx := context.Background()
	repo := *f.repo
	repo.CancelPrevious = true
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  build:\n    steps:\n      - name: s\n        run: echo\n  ship:\n    needs: [build]\n    approval: true\n    steps:\n      - name: s\n        run: echo\n"})
	old, err := f.runner.Trigger(ctx, &repo, ev, store.TriggerGitHook, 0)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := f.runner.Trigger(ctx, &repo, ev, store.TriggerGitHook, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.Run(ctx, old.ID); got.Status != store.StatusCanceled || got.Reason != store.ReasonSuperseded {
		t.Errorf("older run = %s/%s, want canceled/superseded", got.Status, got.Reason)
	}
	if st := stageByKey(cur, "ship"); st.Status != store.StatusPending || st.PendingReason != "waiting for needs: build" {
		t.Errorf("ship = %s (%q), want pending (waiting for needs: build)", st.Status, st.PendingReason)
	}
	f.runner.HandleUpdate(ctx, Update{Kind: UpdateStageStarted, RunID: cur.ID, Stage: "build", Attempt: 1, Agent: "a"})
	f.runner.HandleUpdate(ctx, Update{Kind: UpdateStageFinished, RunID: cur.ID, Stage: "build", Attempt: 1, Agent: "a",
		Result: &stage.Result{Status: stage.StatusSuccess}})
	got, _ := f.store.Run(ctx, cur.ID)
	if st := stageByKey(got, "ship"); st.Status != store.StatusWaiting {
		t.Fatalf("ship = %s, want waiting", st.Status)
	}
	if err := f.runner.Reject(ctx, cur.ID, "ship", "bob"); err != nil {
		t.Fatal(err)
	}
	got, _ = f.store.Run(ctx, cur.ID)
	st := stageByKey(got, "ship")
	if st.Status != store.StatusCanceled || st.Reason != store.ReasonApprovalRejected || got.Status != store.StatusFailure {
		t.Errorf("after reject: ship %s/%s, run %s; want canceled/approval_rejected, run failure", st.Status, st.Reason, got.Status)
	}
}
