package transfers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/agents/transfer"
	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/artifact/fs"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/transfers"
)

// rig is a server side (database, filesystem store, the service behind a
// real HTTP server) and agents on the local engine that reach it only
// through the grants of their jobs.
type rig struct {
	t     *testing.T
	db    *store.Store
	store *fs.Store
	svc   *transfers.Service
	srv   *httptest.Server
	reg   *prometheus.Registry
	repo  *store.Repo
	clock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	c := &clock{t: time.Now()}
	db, err := store.Open(context.Background(), filepath.Join(dir, "runnel.db"), store.WithClock(c.now), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := fs.New(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, db: db, store: st, reg: prometheus.NewRegistry(), clock: c}
	r.srv = httptest.NewServer(nil)
	t.Cleanup(r.srv.Close)
	r.svc, err = transfers.New(transfers.Config{DB: db, Store: st, BaseURL: r.srv.URL, Key: []byte(strings.Repeat("k", 32)),
		Registerer: r.reg, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	r.srv.Config.Handler = r.svc.Handler()
	r.repo, err = db.CreateRepo(context.Background(), store.Repo{Name: "acme/app", Forge: store.ForgeGit})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newRun creates a run of plan for event kind.
func (r *rig) newRun(kind string, stages ...*pipeline.Stage) *store.Run {
	r.t.Helper()
	return r.createRun(store.NewRun{Event: pipeline.Event{Kind: kind}}, stages...)
}

// createRun stores nr (of the rig's repository, branch main) with stages.
func (r *rig) createRun(nr store.NewRun, stages ...*pipeline.Stage) *store.Run {
	r.t.Helper()
	nr.RepoID, nr.Event.Branch, nr.Event.Commit, nr.Plan = r.repo.ID, "main", strings.Repeat("a", 40), &pipeline.Plan{Stages: stages}
	run, err := r.db.CreateRun(context.Background(), nr)
	if err != nil {
		r.t.Fatal(err)
	}
	return run
}

// agent runs stages like an agent: it starts the stage in the database
// (queued, running), executes it with a Transfer whose Remote is the job's
// grant, and ends the stage.
type agent struct {
	r       *rig
	eng     *local.Engine
	fetcher *artifact.Fetcher
	src     string
}

func (r *rig) agent() *agent {
	dir := r.t.TempDir()
	return &agent{r: r, eng: local.New(local.Options{Root: dir, StopGrace: time.Second}),
		fetcher: &artifact.Fetcher{Dir: filepath.Join(dir, "fetch"), Client: transfer.FetchClient()}, src: r.t.TempDir()}
}

// run runs stage id of run and returns its result and log.
func (a *agent) run(run *store.Run, id string) (stage.Result, string) {
	t := a.r.t
	t.Helper()
	ctx := context.Background()
	full, err := a.r.db.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var st *store.Stage
	var ps *pipeline.Stage
	for i, s := range full.Stages {
		if s.Key == id {
			st, ps = s, full.Plan.Stages[i]
		}
	}
	attempt, err := a.r.db.QueueStage(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.r.db.UpdateStage(ctx, st.ID, attempt, store.StageUpdate{Status: store.StatusRunning, Agent: "a"}); err != nil {
		t.Fatal(err)
	}
	grant := a.r.svc.Grant(full, ps, attempt)
	if grant == nil {
		t.Fatalf("no grant for stage %s", id)
	}
	var log strings.Builder
	var mu sync.Mutex
	x := &stage.Executor{Engine: a.eng, Transfer: &transfer.Transfer{Files: a.eng, Remote: transfer.NewHTTP(*grant, nil),
		Fetcher: a.fetcher, TempDir: t.TempDir()},
		Output: func(*pipeline.Stage, *pipeline.Step, int) io.Writer { return lockedWriter{&mu, &log} }}
	res := x.Run(ctx, &engine.Spec{RunID: fmt.Sprint(run.ID), Attempt: attempt, Stage: ps, Source: a.src})
	end := store.StatusSuccess
	if res.Status != rules.Success {
		end = store.StatusFailure
	}
	if err := a.r.db.UpdateStage(ctx, st.ID, attempt, store.StageUpdate{Status: end}); err != nil {
		t.Fatal(err)
	}
	return res, log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func stageOf(id, script string) *pipeline.Stage {
	return &pipeline.Stage{ID: id, Name: id, Timeout: pipeline.Duration(time.Minute),
		Steps: []*pipeline.Step{{Name: "s", Run: script}}}
}

func mustContain(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("lacks %q:\n%s", w, s)
		}
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
