package ui

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/artifact/fs"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/httpapi"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/transfers"
)

// Hostile strings that reach the UI from commits, branches and logs.
const (
	evilMessage = `<script>alert("msg")</script> fix "quotes" & things` + "\nsecond line"
	evilBranch  = `feat/<img src=x onerror=alert(1)>`
	evilLog     = "\x1b[31m<script>alert('log')</script>\x1b[0m done\n"
)

// quietBus is a runner.Bus without agents: dispatches are accepted and
// never run, so stages keep the statuses a test gives them.
type quietBus struct {
	mu       sync.Mutex
	canceled []string
}

func (b *quietBus) Publish(ctx context.Context, j *wire.Job) error { return nil }
func (b *quietBus) Cancel(ctx context.Context, c wire.Cancel) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.canceled = append(b.canceled, c.StageID)
	return nil
}
func (b *quietBus) Agents() []wire.AgentStatus {
	return []wire.AgentStatus{{Presence: wire.Presence{Name: "agent-1", Labels: map[string]string{"os": "linux", "arch": "amd64"}, Capacity: 4, Running: 1}}}
}

// env is a UI over a real SQLite store, a real log store and a real
// runner, with one seeded run.
type env struct {
	t      *testing.T
	store  *store.Store
	logs   *logstore.Store
	runner *runner.Runner
	ui     *Handler
	srv    *httptest.Server
	token  string
	repo   *store.Repo
	run    *store.Run // seeded: build running, test pending, deploy waiting for approval
	// objects and transfers are the artifact store the run page shows.
	objects   *fs.Store
	transfers *transfers.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{t: t}
	var err error
	e.store, err = store.Open(ctx, filepath.Join(dir, "runnel.db"), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.logs, err = logstore.New(filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.logs.Close() })
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	bus := &quietBus{}
	e.runner, err = runner.New(runner.Config{Store: e.store, Bus: bus, Logs: e.logs, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.objects, err = fs.New(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	e.transfers, err = transfers.New(transfers.Config{DB: e.store, Store: e.objects, BaseURL: "http://127.0.0.1:1",
		Key: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	e.ui, err = New(Config{Store: e.store, Logs: e.logs, Actions: e.runner, Agents: e.runner.Agents, Logger: log,
		RefreshInterval: 300 * time.Millisecond, Artifacts: e.transfers})
	if err != nil {
		t.Fatal(err)
	}
	// The real API behind the UI, as runnel server wires it: the log
	// viewer reads and follows logs through it with its session.
	api := httpapi.New(httpapi.Config{Store: e.store, Runner: e.runner, Logs: e.logs, Logger: log, Session: e.ui.SessionToken})
	e.srv = httptest.NewServer(e.ui.Wrap(api.Handler()))
	t.Cleanup(e.srv.Close)
	e.token, _, err = e.store.CreateToken(ctx, "alice", access.Admin)
	if err != nil {
		t.Fatal(err)
	}
	e.repo, err = e.store.CreateRepo(ctx, store.Repo{Name: "acme/web", Forge: store.ForgeGit, CloneURL: "/nonexistent.git", DefaultBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	e.run = e.seedRun()
	return e
}

func (e *env) seedRun() *store.Run {
	t := e.t
	ctx := context.Background()
	plan := &pipeline.Plan{Stages: []*pipeline.Stage{
		{ID: "build", Name: "build", Steps: []*pipeline.Step{{Name: "compile", Run: "make"}, {Name: "unit tests", Run: "make test"}}},
		{ID: "test[go=1.22]", Name: "test", Needs: []string{"build"}, Steps: []*pipeline.Step{{Name: "integration", Run: "make it"}}},
		{ID: "deploy", Name: "deploy", Needs: []string{"test[go=1.22]"}, Approval: true, Environment: "prod",
			Steps: []*pipeline.Step{{Name: "ship", Run: "ship"}}},
	}}
	run, err := e.store.CreateRun(ctx, store.NewRun{RepoID: e.repo.ID, Trigger: store.TriggerWebhook, Plan: plan,
		Event: pipeline.Event{Kind: pipeline.EventPush, Branch: evilBranch, Ref: "refs/heads/" + evilBranch,
			Commit: "0123456789abcdef0123456789abcdef01234567", Message: evilMessage, Author: "mallory"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpdateRun(ctx, run.ID, store.StatusRunning, ""); err != nil {
		t.Fatal(err)
	}
	build := run.Stages[0]
	attempt, err := e.store.QueueStage(ctx, build.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpdateStage(ctx, build.ID, attempt, store.StageUpdate{Status: store.StatusRunning, Agent: "agent-1"}); err != nil {
		t.Fatal(err)
	}
	zero := 0
	for _, u := range []struct {
		pos int
		u   store.StepUpdate
	}{
		{0, store.StepUpdate{Status: store.StatusRunning, Attempts: 1}},
		{0, store.StepUpdate{Status: store.StatusSuccess, ExitCode: &zero}},
		{1, store.StepUpdate{Status: store.StatusRunning, Attempts: 1}},
	} {
		if err := e.store.UpdateStep(ctx, build.ID, attempt, u.pos, u.u); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.SetStagePendingReason(ctx, run.Stages[1].ID, "waiting for build"); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Append(runner.LogKey(run.ID, "build", attempt, 0), 0, []byte("compiling\n"+evilLog)); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Finish(runner.LogKey(run.ID, "build", attempt, 0)); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Append(runner.LogKey(run.ID, "build", attempt, 1), 0, []byte("=== RUN TestOne\n")); err != nil {
		t.Fatal(err)
	}
	run, err = e.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects.
func (e *env) client() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login posts the token to the login form and returns the response.
func (e *env) login(c *http.Client, token string) *http.Response {
	e.t.Helper()
	resp, err := c.PostForm(e.srv.URL+"/login", url.Values{"token": {token}, "next": {"/"}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (e *env) get(c *http.Client, path string) (int, string, http.Header) {
	e.t.Helper()
	resp, err := c.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page.
func (e *env) csrf(c *http.Client, path string) string {
	e.t.Helper()
	_, body, _ := e.get(c, path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no csrf field in %s", path)
	}
	return m[1]
}

func (e *env) post(c *http.Client, path string, form url.Values) (int, string) {
	e.t.Helper()
	resp, err := c.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusSeeOther {
		return resp.StatusCode, resp.Header.Get("Location")
	}
	return resp.StatusCode, string(b)
}

func runPath(id int64) string { return "/runs/" + strconv.FormatInt(id, 10) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func eventOf(branch, commit, message string) pipeline.Event {
	return pipeline.Event{Kind: pipeline.EventPush, Branch: branch, Ref: "refs/heads/" + branch, Commit: commit, Message: message}
}

// showcaseRun seeds a tidy run for the documentation's screenshot: build
// and test passed, deploy waits for approval.
func (e *env) showcaseRun() *store.Run {
	t := e.t
	ctx := context.Background()
	plan := &pipeline.Plan{Stages: []*pipeline.Stage{
		{ID: "build", Name: "build", Steps: []*pipeline.Step{{Name: "go build", Run: "go build ./..."}, {Name: "go vet", Run: "go vet ./..."}}},
		{ID: "test[go=1.22]", Name: "test", Needs: []string{"build"}, Steps: []*pipeline.Step{{Name: "go test", Run: "go test ./..."}}},
		{ID: "test[go=1.23]", Name: "test", Needs: []string{"build"}, Steps: []*pipeline.Step{{Name: "go test", Run: "go test ./..."}}},
		{ID: "deploy", Name: "deploy", Needs: []string{"test[go=1.22]", "test[go=1.23]"}, Approval: true, Environment: "production",
			Steps: []*pipeline.Step{{Name: "release", Run: "./release.sh"}}},
	}}
	run, err := e.store.CreateRun(ctx, store.NewRun{RepoID: e.repo.ID, Trigger: store.TriggerWebhook, Plan: plan,
		Event: pipeline.Event{Kind: pipeline.EventPush, Branch: "main", Ref: "refs/heads/main",
			Commit: "9f2c4e1a7b3d5f608192a3b4c5d6e7f809a1b2c3", Message: "Retry artifact uploads on 503\n\nDetails.", Author: "Ada"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpdateRun(ctx, run.ID, store.StatusRunning, ""); err != nil {
		t.Fatal(err)
	}
	zero := 0
	for _, st := range run.Stages[:3] {
		attempt, err := e.store.QueueStage(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.UpdateStage(ctx, st.ID, attempt, store.StageUpdate{Status: store.StatusRunning, Agent: "agent-1"}); err != nil {
			t.Fatal(err)
		}
		for _, step := range st.Steps {
			for _, u := range []store.StepUpdate{{Status: store.StatusRunning, Attempts: 1}, {Status: store.StatusSuccess, ExitCode: &zero}} {
				if err := e.store.UpdateStep(ctx, st.ID, attempt, step.Position, u); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := e.store.UpdateStage(ctx, st.ID, attempt, store.StageUpdate{Status: store.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.SetStagePendingReason(ctx, run.Stages[3].ID, "waiting for approval"); err != nil {
		t.Fatal(err)
	}
	run, err = e.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return run
}
