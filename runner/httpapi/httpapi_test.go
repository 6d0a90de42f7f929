package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/internal/assembly"
	"github.com/runnel-ci/runnel/internal/gittest"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/deliveryq"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/runnertest"
	"github.com/runnel-ci/runnel/runner/secretbox"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/github"
)

type env struct {
	t     *testing.T
	st    *store.Store
	rn    *runner.Runner
	srv   *httptest.Server
	api   *Server
	q     *deliveryq.Queue
	stats *statusRecorder // the commit statuses the runner reported
	token string
	bare  string
	work  string
}

// git runs git in dir (internal/gittest).
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.Run(t, dir, args...)
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil, nil) }

// newEnvWith is newEnv with cfg changing the server's Config and qcfg
// the delivery queue's.
func newEnvWith(t *testing.T, cfg func(*Config), qcfg func(*deliveryq.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	box, err := secretbox.Load(filepath.Join(dir, "data"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "db.sqlite"), store.WithSealer(box))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs, err := logstore.New(filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	bus := runnertest.Start(t, runnertest.Options{Logger: log})
	stats := &statusRecorder{}
	// The runner and the delivery queue as `runnel server` starts them.
	var dc deliveryq.Config
	if qcfg != nil {
		qcfg(&dc)
	}
	rn, q, err := assembly.StartCore(ctx, assembly.CoreConfig{
		Runner: runner.Config{Store: st, Bus: bus.Dispatcher, Logs: logs, Logger: log, CacheDir: filepath.Join(dir, "cache"),
			Statuses: stats},
		Deliveries: dc,
		Serve:      func(h runner.BusHandler) error { bus.Serve(h); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, rn: rn, stats: stats, q: q}
	c := Config{Store: st, Runner: rn, Logs: logs, Logger: log, Hooks: map[string]scm.Hook{"github": github.Hook{}},
		Agents: rn.Agents, Deliveries: e.q}
	if cfg != nil {
		cfg(&c)
	}
	e.api = New(c)
	e.srv = httptest.NewServer(e.api.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		e.q.Drain(context.Background())
		rn.Close()
	})
	if e.token, _, err = st.CreateToken(ctx, "alice", access.Admin); err != nil {
		t.Fatal(err)
	}
	e.bare = filepath.Join(dir, "r.git")
	git(t, dir, "init", "-q", "--bare", e.bare)
	e.work = filepath.Join(dir, "w")
	git(t, dir, "clone", "-q", e.bare, e.work)
	return e
}

// newQueue starts another delivery queue on the env's store and runner,
// standing for the queue of a restarted process.
func (e *env) newQueue() *deliveryq.Queue {
	e.t.Helper()
	q, err := deliveryq.New(deliveryq.Config{Store: e.st, Trigger: e.rn.TriggerDelivery})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { q.Drain(context.Background()) })
	return q
}

func (e *env) push(pipeline string) string {
	e.t.Helper()
	os.WriteFile(filepath.Join(e.work, ".pipeline.yml"), []byte(pipeline), 0o644)
	git(e.t, e.work, "add", ".")
	git(e.t, e.work, "commit", "-qm", "c")
	git(e.t, e.work, "push", "-q", "origin", "HEAD:refs/heads/main")
	return git(e.t, e.work, "rev-parse", "HEAD")
}

// pushFile commits file (with the pipeline) on main and returns the commit.
func (e *env) pushFile(name, pipeline string) string {
	e.t.Helper()
	os.WriteFile(filepath.Join(e.work, name), []byte(name), 0o644)
	return e.push(pipeline)
}

func (e *env) do(method, path string, body []byte, hdr map[string]string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) auth() map[string]string {
	return map[string]string{"Authorization": "Bearer " + e.token}
}

func (e *env) waitRun(id int64) RunView {
	e.t.Helper()
	var v RunView
	waitFor(e.t, 20*time.Second, fmt.Sprintf("run %d finished", id), func() bool {
		_, b := e.do("GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, e.auth())
		v = RunView{}
		json.Unmarshal([]byte(b), &v)
		return v.Status.Terminal()
	})
	return v
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", nil, 401},
		{"wrong token", map[string]string{"Authorization": "Bearer rnl_nope"}, 401},
		{"basic auth", map[string]string{"Authorization": "Basic " + e.token}, 401},
		{"valid", e.auth(), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := e.do("GET", "/api/v1/runs", nil, tt.hdr); code != tt.want {
				t.Errorf("got %d %s, want %d", code, body, tt.want)
			}
		})
	}
	if code, _ := e.do("GET", "/healthz", nil, nil); code != 200 {
		t.Errorf("healthz = %d, want 200", code)
	}
}

func sign(secret string, b []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(b)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestGitHubHook(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/nosecret", Forge: "github", CloneURL: e.bare}); err != nil {
		t.Fatal(err)
	}
	sha := e.push("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n")
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": sha,
		"repository": map[string]any{"full_name": "acme/app", "clone_url": e.bare}, "head_commit": map[string]any{"id": sha, "message": "c"}})
	noSecret := bytes.Replace(body, []byte("acme/app"), []byte("acme/nosecret"), 1)
	hdr := func(event, delivery, sig string) map[string]string {
		h := map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
		if sig != "" {
			h["X-Hub-Signature-256"] = sig
		}
		return h
	}
	tests := []struct {
		name     string
		path     string
		body     []byte
		hdr      map[string]string
		want     int
		wantBody string
	}{
		{"missing signature", "/hooks/github", body, hdr("push", "d0", ""), 401, ""},
		{"wrong secret", "/hooks/github", body, hdr("push", "d0", sign("nope", body)), 401, ""},
		{"repo without secret", "/hooks/github", noSecret, hdr("push", "d0", sign("", noSecret)), 401, ""},
		{"path repo differs", "/hooks/github/acme/other", body, hdr("push", "d0", sign("s3cret", body)), 401, ""},
		{"unknown forge", "/hooks/bitbucket", body, hdr("push", "d0", ""), 404, ""},
		{"ping", "/hooks/github", body, hdr("ping", "d1", sign("s3cret", body)), 202, "ignored"},
		{"accepted", "/hooks/github/acme/app", body, hdr("push", "d2", sign("s3cret", body)), 202, "accepted"},
		{"duplicate", "/hooks/github", body, hdr("push", "d2", sign("s3cret", body)), 200, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := e.do("POST", tt.path, tt.body, tt.hdr)
			if code != tt.want || !strings.Contains(b, tt.wantBody) {
				t.Errorf("got %d %s, want %d with %q", code, b, tt.want, tt.wantBody)
			}
		})
	}
	e.q.Drain(ctx)
	runs, err := e.st.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Commit != sha || runs[0].Trigger != store.TriggerWebhook {
		t.Fatalf("runs = %+v, want one webhook run of %s", runs, sha)
	}
	if v := e.waitRun(runs[0].ID); v.Status != store.StatusSuccess {
		t.Errorf("run = %s, want success", v.Status)
	}
}

func TestGenericHookAndManualTrigger(t *testing.T) {
	e := newEnv(t)
	code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"app","forge":"git","clone_url":%q,"private":true}`, e.bare)), e.auth())
	if code != 201 {
		t.Fatalf("create repo: %d %s", code, b)
	}
	var rv RepoView
	json.Unmarshal([]byte(b), &rv)
	if rv.HookToken == "" || rv.BadgeToken == "" {
		t.Fatalf("repo view %s: want hook and badge tokens", b)
	}
	sha := e.push("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo \"version=$RUNNEL_INPUT_VERSION\"\n")
	payload := []byte(fmt.Sprintf(`{"repo":"app","ref":"refs/heads/main","commit":%q}`, sha))
	if code, b := e.do("POST", "/hooks/generic", payload, map[string]string{"Authorization": "Bearer wrong"}); code != 401 {
		t.Errorf("generic hook with wrong token = %d %s, want 401", code, b)
	}
	if code, b := e.do("POST", "/hooks/generic", payload, map[string]string{"Authorization": "Bearer " + rv.HookToken}); code != 202 {
		t.Errorf("generic hook = %d %s, want 202", code, b)
	}

	code, b = e.do("POST", "/api/v1/repos/app/trigger", []byte(`{"branch":"main","inputs":{"version":"1.2.3"}}`), e.auth())
	if code != 201 {
		t.Fatalf("trigger: %d %s", code, b)
	}
	var v RunView
	json.Unmarshal([]byte(b), &v)
	v = e.waitRun(v.ID)
	if v.Status != store.StatusSuccess || v.Commit != sha || v.Event != "manual" {
		t.Fatalf("manual run = %+v", v)
	}
	code, b = e.do("GET", v.Stages[0].Steps[0].Log, nil, e.auth())
	if code != 200 || !strings.Contains(b, "version=1.2.3") {
		t.Errorf("log = %d %q, want version=1.2.3", code, b)
	}

	for _, tt := range []struct {
		query string
		want  int
	}{{"", 404}, {"?token=wrong", 404}, {"?token=" + rv.BadgeToken, 200}} {
		code, b := e.do("GET", "/badges/app/status.svg"+tt.query, nil, nil)
		if code != tt.want {
			t.Errorf("badge%s = %d, want %d", tt.query, code, tt.want)
		}
		if code == 200 && !strings.Contains(b, "<svg") {
			t.Errorf("badge body %.80q is not SVG", b)
		}
	}
}

func TestInvalidPipelineDiagnostics(t *testing.T) {
	e := newEnv(t)
	code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"app","forge":"git","clone_url":%q}`, e.bare)), e.auth())
	if code != 201 {
		t.Fatalf("create repo: %d %s", code, b)
	}
	e.push("version: 1\nstages:\n  a:\n    stepz: []\n")
	code, b = e.do("POST", "/api/v1/repos/app/trigger", []byte(`{}`), e.auth())
	if code != 201 {
		t.Fatalf("trigger: %d %s", code, b)
	}
	var v RunView
	json.Unmarshal([]byte(b), &v)
	found := false
	for _, d := range v.Diagnostics {
		if d.Line == 4 && strings.Contains(d.Message, "stepz") {
			found = true
		}
	}
	if v.Status != store.StatusError || v.Reason != rules.ReasonPipelineInvalid || !found {
		t.Errorf("run = %s/%s diagnostics %+v; want error/pipeline_invalid with the stepz diagnostic on line 4", v.Status, v.Reason, v.Diagnostics)
	}
}

func TestResumeDelivery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	repo, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "x"})
	if err != nil {
		t.Fatal(err)
	}
	sha := e.push("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n")
	// A delivery accepted by a process that died before triggering it.
	ev, _ := json.Marshal(scm.Event{Forge: "github", Delivery: "d9", Kind: "push", Repo: repo.Name, Ref: "refs/heads/main", Branch: "main", Commit: sha})
	id, _, err := e.st.InsertDelivery(ctx, store.NewDelivery{RepoID: repo.ID, Source: "github", DeliveryID: "d9", Event: "push", Payload: ev})
	if err != nil {
		t.Fatal(err)
	}
	e.q.Resume()
	d := e.waitDelivery(id)
	if d.State != store.DeliveryProcessed || d.RunID == 0 {
		t.Fatalf("delivery = %s run %d, want processed with a run", d.State, d.RunID)
	}
	if v := e.waitRun(d.RunID); v.Status != store.StatusSuccess || v.Commit != sha {
		t.Errorf("resumed run = %s of %s, want success of %s", v.Status, v.Commit, sha)
	}
}

func TestRerunAndCancelFinished(t *testing.T) {
	e := newEnv(t)
	code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"app","forge":"git","clone_url":%q}`, e.bare)), e.auth())
	if code != 201 {
		t.Fatalf("create repo: %d %s", code, b)
	}
	e.push("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n")
	code, b = e.do("POST", "/api/v1/repos/app/trigger", []byte(`{"inputs":{"x":"1"}}`), e.auth())
	if code != 201 {
		t.Fatalf("trigger: %d %s", code, b)
	}
	var first RunView
	json.Unmarshal([]byte(b), &first)
	first = e.waitRun(first.ID)
	if code, b := e.do("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", first.ID), nil, e.auth()); code != http.StatusConflict {
		t.Errorf("cancel finished run = %d %s, want 409", code, b)
	}
	code, b = e.do("POST", fmt.Sprintf("/api/v1/runs/%d/rerun", first.ID), nil, e.auth())
	if code != http.StatusCreated {
		t.Fatalf("rerun = %d %s", code, b)
	}
	var second RunView
	json.Unmarshal([]byte(b), &second)
	if second.ParentID != first.ID || second.Commit != first.Commit || second.Trigger != store.TriggerRerun || second.Inputs["x"] != "1" {
		t.Errorf("rerun = %+v, want a rerun of %d with the same commit and inputs", second, first.ID)
	}
	if code, _ := e.do("GET", "/api/v1/runs/999", nil, e.auth()); code != 404 {
		t.Errorf("unknown run = %d, want 404", code)
	}
	code, b = e.do("GET", "/api/v1/runs?status=bogus", nil, e.auth())
	if code != 400 {
		t.Errorf("bad status filter = %d %s, want 400", code, b)
	}
	code, b = e.do("GET", "/api/v1/runs?repo=app&event=manual&limit=1", nil, e.auth())
	var list struct{ Runs []RunView }
	json.Unmarshal([]byte(b), &list)
	if code != 200 || len(list.Runs) != 1 || list.Runs[0].ID != second.ID {
		t.Errorf("filtered list = %d %s, want only run %d", code, b, second.ID)
	}
}

// TestAgentsList: the built-in agent, seen by the dispatcher through its
// NATS presence, is listed with the documented fields.
func TestAgentsList(t *testing.T) {
	e := newEnv(t)
	code, body := e.do("GET", "/api/v1/agents", nil, e.auth())
	if code != 200 {
		t.Fatalf("got %d %s, want 200", code, body)
	}
	var out struct {
		Agents []map[string]any `json:"agents"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Agents) != 1 {
		t.Fatalf("got %d agents (%s), want 1", len(out.Agents), body)
	}
	a := out.Agents[0]
	if a["name"] != "local" || a["capacity"] != float64(2) || a["running"] != float64(0) {
		t.Errorf("got agent %v, want name local, capacity 2, running 0", a)
	}
	for _, k := range []string{"name", "labels", "capacity", "running", "last_seen"} {
		if _, ok := a[k]; !ok {
			t.Errorf("agent %v lacks %q", a, k)
		}
	}
	if len(a) != 5 {
		t.Errorf("got fields %v, want exactly name, labels, capacity, running, last_seen", a)
	}
}
