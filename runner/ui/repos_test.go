package ui

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/store"
)

// session logs a new token of role in with a fresh client.
func (e *env) session(name string, role access.Role) (*http.Client, *store.Token) {
	e.t.Helper()
	plain, tok, err := e.store.CreateToken(context.Background(), name, role)
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.client()
	if resp := e.login(c, plain); resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login as %s: %d", role, resp.StatusCode)
	}
	return c, tok
}

// TestRolesInTheUI: every page and action checks the session token's
// role, like the API: read-only may look, an operator may also run and
// cancel, only an admin may manage tokens and settings. Buttons a role
// may not use are not shown.
func TestRolesInTheUI(t *testing.T) {
	e := newEnv(t)
	run := runPath(e.run.ID)
	type req struct{ method, path string }
	reqs := []req{
		{"GET", "/repos/acme/web"}, {"GET", "/trigger?repo=acme/web"}, {"GET", "/tokens"},
		{"POST", run + "/cancel"}, {"POST", run + "/stages/deploy/approve"}, {"POST", "/trigger"},
		{"POST", "/tokens"}, {"POST", "/tokens/1/revoke"}, {"POST", "/repos/acme/web"},
	}
	// The status each role gets; 0 means "not 403" (the action itself
	// may answer anything).
	want := map[access.Role][]int{
		access.Read:     {0, 403, 403, 403, 403, 403, 403, 403, 403},
		access.Operator: {0, 0, 403, 0, 0, 0, 403, 403, 403},
	}
	for _, role := range []access.Role{access.Read, access.Operator} {
		c, _ := e.session("t-"+string(role), role)
		tok := e.csrf(c, "/")
		for i, r := range reqs {
			var code int
			if r.method == "GET" {
				code, _, _ = e.get(c, r.path)
			} else {
				code, _ = e.post(c, r.path, url.Values{"csrf": {tok}, "repo": {"acme/web"}, "name": {"x"}, "role": {"admin"},
					"default_branch": {"main"}})
			}
			if w := want[role][i]; (w == 403) != (code == http.StatusForbidden) {
				t.Errorf("%s: %s %s: got %d, want 403: %v", role, r.method, r.path, code, w == 403)
			}
		}
		// Cancel (or Rerun, once the operator canceled) is shown only to
		// those who may use it.
		_, body, _ := e.get(c, run)
		if got := regexp.MustCompile(`id="(cancel|rerun)"`).MatchString(body); got != (role == access.Operator) {
			t.Errorf("%s: run page shows cancel or rerun: %v", role, got)
		}
		if strings.Contains(body, `href="/tokens"`) {
			t.Errorf("%s: run page links to the tokens page", role)
		}
	}
	// The run was canceled by the operator above; the admin sees Tokens.
	c := e.client()
	e.login(c, e.token)
	if _, body, _ := e.get(c, "/"); !strings.Contains(body, `href="/tokens"`) {
		t.Error("admin: no link to the tokens page")
	}
}

// TestTokensPage: an admin creates a token (its plaintext is shown once,
// on the answer to the POST), the token works at once, and revoking it
// ends its sessions and API use.
func TestTokensPage(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	tok := e.csrf(c, "/tokens")
	code, body := e.post(c, "/tokens", url.Values{"csrf": {tok}, "name": {"ci bot"}, "role": {"operator"}})
	if code != http.StatusCreated {
		t.Fatalf("create: got %d, want 201:\n%s", code, body)
	}
	m := regexp.MustCompile(`id="new-token-value">([^<]+)<`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no token shown:\n%s", body)
	}
	plain := m[1]
	got, err := e.store.CheckToken(context.Background(), plain)
	if err != nil || got.Name != "ci bot" || got.Role != access.Operator {
		t.Fatalf("created token: %+v, %v", got, err)
	}
	if _, body, _ := e.get(c, "/tokens"); strings.Contains(body, plain) {
		t.Error("the tokens page shows a token's plaintext again")
	}
	for _, bad := range []url.Values{{"name": {""}, "role": {"read"}}, {"name": {"x"}, "role": {"root"}}, {"name": {"a\x01"}, "role": {"read"}}} {
		bad.Set("csrf", tok)
		if code, body := e.post(c, "/tokens", bad); code != http.StatusBadRequest || !strings.Contains(body, `id="token-error"`) {
			t.Errorf("create %v: got %d, want 400 with a message", bad, code)
		}
	}
	// The new token logs in; revoking it ends that session at once.
	bot := e.client()
	e.login(bot, plain)
	if code, _, _ := e.get(bot, "/repos"); code != http.StatusOK {
		t.Fatalf("bot session: %d", code)
	}
	code, loc := e.post(c, "/tokens/"+itoa(got.ID)+"/revoke", url.Values{"csrf": {tok}})
	if code != http.StatusSeeOther || loc != "/tokens?done=revoked" {
		t.Fatalf("revoke: got %d to %q", code, loc)
	}
	if code, _, _ := e.get(bot, "/repos"); code != http.StatusSeeOther {
		t.Errorf("revoked token's session: got %d, want 303 to the login form", code)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer "+plain)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with the revoked token: got %d, want 401", resp.StatusCode)
	}
}

// TestRepoPage shows branches with their latest run, recent runs, the
// badge snippet and schedules, and saves settings.
func TestRepoPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, ev := range []struct{ branch, msg string }{{"main", "first on main"}, {"dev", "on dev"}, {"main", "second on main"}} {
		if _, err := e.store.CreateRun(ctx, store.NewRun{RepoID: e.repo.ID, Trigger: store.TriggerWebhook, Plan: matrixDiamond(),
			Event: eventOf(ev.branch, "1111111111111111111111111111111111111111", ev.msg)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.CreateSchedule(ctx, store.Schedule{RepoID: e.repo.ID, Name: "nightly", Kind: store.ScheduleCron,
		Spec: "0 3 * * *", Timezone: "Europe/Berlin", Branch: "main", Missed: "skip", NextAt: time.Now().Add(time.Hour), By: "alice"}); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	e.login(c, e.token)
	code, body, _ := e.get(c, "/repos/acme/web")
	if code != http.StatusOK {
		t.Fatalf("repo page: %d", code)
	}
	branches := regexp.MustCompile(`data-branch="([^"]+)"`).FindAllStringSubmatch(body, -1)
	var names []string
	for _, b := range branches {
		names = append(names, b[1])
	}
	// Newest first: main's latest run is newer than dev's; the seeded
	// run's hostile branch name comes last, escaped.
	if got := strings.Join(names, ","); got != "main,dev,feat/&lt;img src=x onerror=alert(1)&gt;" {
		t.Errorf("branches: got %s", got)
	}
	for _, want := range []string{"second on main", `data-schedule="nightly"`, "0 3 * * *", "Europe/Berlin",
		`[![build status](` + e.srv.URL + `/badges/acme/web/status.svg)](` + e.srv.URL + `/repos/acme/web)`, `id="run-pipeline"`, `id="save-settings"`} {
		if !strings.Contains(body, want) {
			t.Errorf("repo page lacks %q", want)
		}
	}
	if code, body, _ := e.get(c, "/repos"); code != http.StatusOK || !strings.Contains(body, `href="/repos/acme/web"`) {
		t.Errorf("repos page: %d", code)
	}
	tok := e.csrf(c, "/repos/acme/web")
	if code, body := e.post(c, "/repos/acme/web", url.Values{"csrf": {tok}, "default_branch": {"bad..name"}}); code != http.StatusBadRequest {
		t.Errorf("bad branch: got %d, want 400: %s", code, body)
	}
	code, loc := e.post(c, "/repos/acme/web", url.Values{"csrf": {tok}, "default_branch": {"trunk"}, "cancel_previous": {"on"}})
	if code != http.StatusSeeOther || loc != "/repos/acme/web?done=saved" {
		t.Fatalf("save: got %d to %q", code, loc)
	}
	repo, err := e.store.Repo(ctx, "acme/web")
	if err != nil {
		t.Fatal(err)
	}
	if repo.DefaultBranch != "trunk" || !repo.CancelPrevious || repo.Private || repo.CloneURL != e.repo.CloneURL {
		t.Errorf("saved repo: %+v", repo)
	}
	if code, _, _ := e.get(c, "/repos/acme/nope"); code != http.StatusNotFound {
		t.Errorf("unknown repo: got %d, want 404", code)
	}
}

func TestCheckBranch(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"main", true}, {"feature/x-1", true}, {"release-1.2", true},
		{"", false}, {"a b", false}, {"a..b", false}, {"-x", false}, {"x/", false}, {"x.lock", false}, {"a~1", false},
		{"a\x00", false}, {"a@{1}", false}, {strings.Repeat("b", 256), false},
	} {
		if got := checkBranch(tt.name) == ""; got != tt.ok {
			t.Errorf("checkBranch(%q): ok %v, want %v (%s)", tt.name, got, tt.ok, checkBranch(tt.name))
		}
	}
}

// pipelineRepo makes a bare git repository whose main branch holds
// pipeline, and adds it to the store as name.
func (e *env) pipelineRepo(name, pipeline string) *store.Repo {
	t := e.t
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git not installed (CI is set)")
		}
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	bare := filepath.Join(dir, "repo.git")
	gitRun(t, dir, "init", "-q", "--bare", bare)
	work := filepath.Join(dir, "work")
	gitRun(t, dir, "clone", "-q", bare, work)
	if err := os.WriteFile(filepath.Join(work, ".pipeline.yml"), []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, work, "add", ".")
	gitRun(t, work, "commit", "-qm", "pipeline with inputs")
	gitRun(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	repo, err := e.store.CreateRepo(context.Background(), store.Repo{Name: name, Forge: store.ForgeGit, CloneURL: bare, DefaultBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

const inputsPipeline = `version: 1
inputs:
  version:
    description: version to release
  target:
    type: choice
    options: [staging, production]
    default: staging
  dry_run:
    type: boolean
    default: true
stages:
  release:
    image: runnel-test/busybox:latest
    steps:
      - name: show
        run: echo "$RUNNEL_INPUT_VERSION"
`

// TestTriggerForm: the form offers a field per declared input (text,
// choice, boolean), refuses a bad value with the field's message and
// starts nothing, and starts a run with the inputs given.
func TestTriggerForm(t *testing.T) {
	e := newEnv(t)
	repo := e.pipelineRepo("acme/release", inputsPipeline)
	c := e.client()
	e.login(c, e.token)
	code, body, _ := e.get(c, "/trigger?repo=acme/release")
	if code != http.StatusOK {
		t.Fatalf("form: %d\n%s", code, body)
	}
	for _, want := range []string{`name="input.version"`, `required`, `<option value="production" >production</option>`,
		`<option value="staging" selected>staging</option>`, `type="checkbox" name="input.dry_run" value="true" id="input-dry_run" checked`} {
		if !strings.Contains(body, want) {
			t.Errorf("form lacks %q", want)
		}
	}
	tok := e.csrf(c, "/trigger?repo=acme/release")
	before, _ := e.store.ListRuns(context.Background(), store.RunFilter{RepoID: repo.ID})
	code, body = e.post(c, "/trigger", url.Values{"csrf": {tok}, "repo": {"acme/release"}, "branch": {"main"},
		"input.version": {"1.2"}, "input.target": {"moon"}, "boolean": {"dry_run"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `class="error field-error"`) || !strings.Contains(body, "moon") {
		t.Fatalf("bad choice: got %d:\n%s", code, body)
	}
	if after, _ := e.store.ListRuns(context.Background(), store.RunFilter{RepoID: repo.ID}); len(after) != len(before) {
		t.Fatal("a refused form started a run")
	}
	code, loc := e.post(c, "/trigger", url.Values{"csrf": {tok}, "repo": {"acme/release"}, "branch": {"main"},
		"input.version": {"1.2"}, "input.target": {"production"}, "boolean": {"dry_run"}})
	if code != http.StatusSeeOther || !strings.HasSuffix(loc, "?done=triggered") {
		t.Fatalf("trigger: got %d to %q", code, loc)
	}
	runs, err := e.store.ListRuns(context.Background(), store.RunFilter{RepoID: repo.ID})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v, %v", runs, err)
	}
	run := runs[0]
	if run.Event != "manual" || run.Inputs["version"] != "1.2" || run.Inputs["target"] != "production" || run.Inputs["dry_run"] != "false" || run.Author != "alice" {
		t.Errorf("run: event %s, inputs %v, author %q", run.Event, run.Inputs, run.Author)
	}
}
