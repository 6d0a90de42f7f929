package ui

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/internal/gittest"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

func TestLoginRequired(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	tests := []struct {
		method, path string
		code         int
		location     string
	}{
		{"GET", "/", http.StatusSeeOther, "/login?next=%2F"},
		{"GET", "/ui/", http.StatusSeeOther, "/login?next=%2Fui%2F"},
		{"GET", runPath(e.run.ID), http.StatusSeeOther, "/login?next=%2Fruns%2F1"},
		{"GET", "/agents", http.StatusSeeOther, "/login?next=%2Fagents"},
		{"GET", "/deployments", http.StatusSeeOther, "/login?next=%2Fdeployments"},
		{"GET", "/repos", http.StatusSeeOther, "/login?next=%2Frepos"},
		{"GET", "/repos/acme/web", http.StatusSeeOther, "/login?next=%2Frepos%2Facme%2Fweb"},
		{"GET", "/trigger?repo=acme/web", http.StatusSeeOther, ""},
		{"GET", "/tokens", http.StatusSeeOther, "/login?next=%2Ftokens"},
		{"POST", "/tokens", http.StatusForbidden, ""},
		{"POST", "/tokens/1/revoke", http.StatusForbidden, ""},
		{"POST", "/trigger", http.StatusForbidden, ""},
		{"POST", "/repos/acme/web", http.StatusForbidden, ""},
		{"GET", runPath(e.run.ID) + "/stages/build/steps/0/log", http.StatusSeeOther, ""},
		{"GET", runPath(e.run.ID) + "/stages/build/steps/0/log.txt", http.StatusSeeOther, ""},
		{"GET", "/api/v1" + runPath(e.run.ID) + "/stages/build/steps/1/log", http.StatusUnauthorized, ""},
		{"POST", runPath(e.run.ID) + "/cancel", http.StatusForbidden, ""},
		{"POST", runPath(e.run.ID) + "/rerun", http.StatusForbidden, ""},
		{"POST", runPath(e.run.ID) + "/stages/deploy/approve", http.StatusForbidden, ""},
		{"POST", runPath(e.run.ID) + "/approve", http.StatusForbidden, ""},
		{"GET", "/login", http.StatusOK, ""},
		{"GET", "/static/ui.css", http.StatusOK, ""},
		{"GET", "/healthz", http.StatusOK, ""}, // passed to the wrapped handler
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, strings.NewReader("csrf=x"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.location != "" && resp.Header.Get("Location") != tt.location {
				t.Errorf("Location: got %q, want %q", resp.Header.Get("Location"), tt.location)
			}
		})
	}
	run, err := e.store.Run(context.Background(), e.run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != store.StatusRunning {
		t.Errorf("run status after unauthenticated cancel: got %s, want running", run.Status)
	}
}

func TestLoginLogout(t *testing.T) {
	e := newEnv(t)
	c := e.client()

	resp := e.login(c, "rnl_wrong")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: got %d, want 401", resp.StatusCode)
	}
	if len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token set cookies %v", resp.Cookies())
	}

	resp = e.login(c, e.token)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: got %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			sc = ck
		}
	}
	if sc == nil {
		t.Fatal("no session cookie")
	}
	if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" {
		t.Errorf("cookie: got HttpOnly=%v SameSite=%v Path=%q, want true, Strict, /", sc.HttpOnly, sc.SameSite, sc.Path)
	}
	if strings.Contains(sc.Value, e.token) || strings.Contains(e.token, sc.Value) || len(sc.Value) < 40 {
		t.Errorf("cookie value %q must be a random id, not the token", sc.Value)
	}

	code, body, _ := e.get(c, "/")
	if code != http.StatusOK || !strings.Contains(body, "acme/web #1") || !strings.Contains(body, "alice") {
		t.Fatalf("runs page after login: got %d, body lacks run or user:\n%s", code, body)
	}

	// Logout needs the CSRF token too.
	if code, _ := e.post(c, "/logout", nil); code != http.StatusForbidden {
		t.Fatalf("logout without csrf: got %d, want 403", code)
	}
	tok := e.csrf(c, "/")
	if code, loc := e.post(c, "/logout", url.Values{"csrf": {tok}}); code != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("logout: got %d to %q, want 303 to /login", code, loc)
	}
	if code, _, _ := e.get(c, "/"); code != http.StatusSeeOther {
		t.Fatalf("after logout: got %d, want 303 to login", code)
	}
	// The old session id is dead on the server, not just in the jar.
	c2 := e.client()
	u, _ := url.Parse(e.srv.URL)
	c2.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: sc.Value}})
	if code, _, _ := e.get(c2, "/"); code != http.StatusSeeOther {
		t.Fatalf("replayed session after logout: got %d, want 303", code)
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	if code, _, _ := e.get(c, "/"); code != http.StatusOK {
		t.Fatalf("before revoke: got %d, want 200", code)
	}
	toks, err := e.store.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteToken(context.Background(), toks[0].ID); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.get(c, "/"); code != http.StatusSeeOther {
		t.Fatalf("after revoke: got %d, want 303", code)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	tok := e.csrf(c, runPath(e.run.ID))
	other := e.client()
	e.login(other, e.token)
	otherTok := e.csrf(other, "/")
	if otherTok == tok {
		t.Fatal("two sessions share a CSRF token")
	}
	cancel := runPath(e.run.ID) + "/cancel"
	tests := []struct {
		name   string
		form   url.Values
		origin string
	}{
		{"missing", nil, ""},
		{"wrong", url.Values{"csrf": {"x" + tok}}, ""},
		{"another session's", url.Values{"csrf": {otherTok}}, ""},
		{"cross origin", url.Values{"csrf": {tok}}, "https://evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+cancel, strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %d, want 403", resp.StatusCode)
			}
		})
	}
	run, _ := e.store.Run(context.Background(), e.run.ID)
	if run.Status != store.StatusRunning {
		t.Fatalf("after refused cancels: got %s, want running", run.Status)
	}
	code, loc := e.post(c, cancel, url.Values{"csrf": {tok}})
	if code != http.StatusSeeOther || loc != runPath(e.run.ID)+"?done=canceled" {
		t.Fatalf("cancel: got %d to %q", code, loc)
	}
	run, _ = e.store.Run(context.Background(), e.run.ID)
	if run.Status != store.StatusCanceled || run.Reason != rules.ReasonCanceledByUser {
		t.Fatalf("after cancel: got %s/%s, want canceled/%s", run.Status, run.Reason, rules.ReasonCanceledByUser)
	}
	// A second cancel conflicts with the finished run.
	if code, _ := e.post(c, cancel, url.Values{"csrf": {tok}}); code != http.StatusConflict {
		t.Fatalf("second cancel: got %d, want 409", code)
	}
}

func TestApproveAndReject(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	tok := e.csrf(c, runPath(e.run.ID))
	_, body, _ := e.get(c, runPath(e.run.ID))
	if !strings.Contains(body, `action="/runs/1/stages/deploy/approve"`) {
		t.Fatalf("run page lacks the approve form:\n%s", body)
	}
	code, loc := e.post(c, runPath(e.run.ID)+"/stages/deploy/approve", url.Values{"csrf": {tok}})
	if code != http.StatusSeeOther || !strings.HasSuffix(loc, "done=approved") {
		t.Fatalf("approve: got %d to %q", code, loc)
	}
	run, _ := e.store.Run(context.Background(), e.run.ID)
	deploy := run.Stages[2]
	if deploy.Approval != store.ApprovalApproved || deploy.ApprovedBy != "alice" {
		t.Fatalf("deploy approval: got %s by %q, want approved by alice", deploy.Approval, deploy.ApprovedBy)
	}
	if code, _ := e.post(c, runPath(e.run.ID)+"/stages/deploy/reject", url.Values{"csrf": {tok}}); code != http.StatusConflict {
		t.Fatalf("reject after approve: got %d, want 409", code)
	}
	if code, _ := e.post(c, runPath(e.run.ID)+"/stages/nope/approve", url.Values{"csrf": {tok}}); code != http.StatusNotFound {
		t.Fatalf("approve unknown stage: got %d, want 404", code)
	}
	_, body, _ = e.get(c, runPath(e.run.ID))
	if strings.Contains(body, "/stages/deploy/approve") {
		t.Error("approve form still shown after approval")
	}
}

func TestHostileTextIsEscaped(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	pages := []string{"/", runPath(e.run.ID), runPath(e.run.ID) + "/stages/build/steps/0/log"}
	for _, p := range pages {
		t.Run(p, func(t *testing.T) {
			code, body, hdr := e.get(c, p)
			if code != http.StatusOK {
				t.Fatalf("got %d, want 200", code)
			}
			for _, bad := range []string{"<script>alert", "<img src=x", "\x1b"} {
				if strings.Contains(body, bad) {
					t.Errorf("page contains %q unescaped", bad)
				}
			}
			if got := hdr.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type: got %q", got)
			}
		})
	}
	_, body, _ := e.get(c, runPath(e.run.ID))
	for _, want := range []string{`&lt;script&gt;alert(&#34;msg&#34;)&lt;/script&gt;`, `feat/&lt;img src=x onerror=alert(1)&gt;`} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks escaped %q", want)
		}
	}
	if strings.Contains(body, "second line") {
		t.Error("run page shows more than the message's first line")
	}
	_, body, _ = e.get(c, runPath(e.run.ID)+"/stages/build/steps/0/log")
	if want := `<span class="fg1">&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;</span> done`; !strings.Contains(body, want) {
		t.Errorf("log page lacks %q:\n%s", want, body)
	}
	// The plain-text log is sandboxed and not sniffable.
	code, raw, hdr := e.get(c, runPath(e.run.ID)+"/stages/build/steps/0/log.txt")
	if code != http.StatusOK || raw != "compiling\n"+evilLog {
		t.Fatalf("log.txt: got %d %q", code, raw)
	}
	if !strings.HasPrefix(hdr.Get("Content-Security-Policy"), "sandbox") || hdr.Get("X-Content-Type-Options") != "nosniff" ||
		hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("log.txt headers: %v", hdr)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	for _, p := range []string{"/login", "/", runPath(e.run.ID), "/agents", "/static/ui.js"} {
		t.Run(p, func(t *testing.T) {
			_, _, hdr := e.get(c, p)
			csp := hdr.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP allows inline or eval: %q", csp)
			}
			if got := hdr.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options: got %q, want nosniff", got)
			}
		})
	}
	// No template may carry inline script or style: the CSP would block it.
	_, body, _ := e.get(c, runPath(e.run.ID))
	for _, bad := range []string{"<script>", "style=", "onclick=", "onsubmit="} {
		if strings.Contains(body, bad) {
			t.Errorf("run page contains inline %q", bad)
		}
	}
}

func TestRunPage(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	code, body, _ := e.get(c, runPath(e.run.ID))
	if code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	// Stages in DAG order, each with its status.
	var order []string
	for _, want := range []struct{ key, status string }{
		{"build", "running"}, {"test[go=1.22]", "pending"}, {"deploy", "pending"},
	} {
		marker := `data-stage="` + want.key + `" data-status="` + want.status + `"`
		i := strings.Index(body, marker)
		if i < 0 {
			t.Errorf("run page lacks %s", marker)
			continue
		}
		order = append(order, want.key)
		if len(order) > 1 && i < strings.Index(body, `data-stage="`+order[len(order)-2]+`"`) {
			t.Errorf("stage %s shown before %s", want.key, order[len(order)-2])
		}
	}
	for _, want := range []string{"attempt 1", "agent agent-1", "waiting for build", "environment prod",
		`href="/runs/1/stages/test%5Bgo=1.22%5D/steps/0/log"`, "Waiting for approval.", `id="cancel"`, "<td>0</td>",
		`needs <a href="#stage-build">build</a>`, "unit tests", "0123456"} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	if strings.Contains(body, `id="rerun"`) {
		t.Error("rerun offered for a running run")
	}
	if code, _, _ := e.get(c, "/runs/999"); code != http.StatusNotFound {
		t.Errorf("unknown run: got %d, want 404", code)
	}
	if code, _, _ := e.get(c, "/runs/abc"); code != http.StatusNotFound {
		t.Errorf("bad run id: got %d, want 404", code)
	}
	if code, _, _ := e.get(c, runPath(e.run.ID)+"/stages/build/steps/7/log"); code != http.StatusNotFound {
		t.Errorf("unknown step: got %d, want 404", code)
	}
}

func TestRunsFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other, err := e.store.CreateRepo(ctx, store.Repo{Name: "acme/api", Forge: store.ForgeGit, CloneURL: "/x.git"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.store.CreateRun(ctx, store.NewRun{RepoID: other.ID, Trigger: store.TriggerManual, Status: store.StatusSuccess,
		Event: eventOf("main", "feedfacefeedface", "release 2")})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	e.login(c, e.token)
	tests := []struct {
		query    string
		want     []int64
		notWant  []int64
		wantCode int
	}{
		{"", []int64{e.run.ID, r2.ID}, nil, 200},
		{"?repo=acme/api", []int64{r2.ID}, []int64{e.run.ID}, 200},
		{"?status=running", []int64{e.run.ID}, []int64{r2.ID}, 200},
		{"?branch=main", []int64{r2.ID}, []int64{e.run.ID}, 200},
		{"?branch=" + url.QueryEscape(evilBranch), []int64{e.run.ID}, []int64{r2.ID}, 200},
		{"?status=failure", nil, []int64{e.run.ID, r2.ID}, 200},
		{"?status=bogus", nil, nil, 400},
		{"?repo=nope/nope", nil, nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			code, body, _ := e.get(c, "/"+tt.query)
			if code != tt.wantCode {
				t.Fatalf("got %d, want %d", code, tt.wantCode)
			}
			for _, id := range tt.want {
				if !strings.Contains(body, `data-run="`+itoa(id)+`"`) {
					t.Errorf("run %d missing", id)
				}
			}
			for _, id := range tt.notWant {
				if strings.Contains(body, `data-run="`+itoa(id)+`"`) {
					t.Errorf("run %d shown, want filtered out", id)
				}
			}
		})
	}
	_, body, _ := e.get(c, "/")
	for _, want := range []string{"release 2", "feedface", "manual", "push", `<span class="status st-success">success</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("runs page lacks %q", want)
		}
	}
}

func TestAgentsAndDeployments(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.store.UpsertAgent(ctx, store.Agent{Name: "old-agent", Labels: map[string]string{"gpu": "yes"}, Capacity: 1, Version: "v0.1", State: "draining"}); err != nil {
		t.Fatal(err)
	}
	id, err := e.store.CreateDeployment(ctx, store.Deployment{RepoID: e.repo.ID, Environment: "prod", RunID: e.run.ID, Commit: "abcdef0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.FinishDeployment(ctx, id, store.DeployRolledBack); err != nil {
		t.Fatal(err)
	}
	// A release in progress: 10 % of the traffic on the new version.
	staging, err := e.store.DeployProgress(ctx, store.Deployment{RepoID: e.repo.ID, Environment: "staging", RunID: e.run.ID, Commit: "1111111122222222",
		Release: store.Release{Provider: "docker", Version: "1111111122222222", From: "0000000099999999", Phase: "shift", Traffic: 10}})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	e.login(c, e.token)
	_, body, _ := e.get(c, "/agents")
	for _, want := range []string{"agent-1", "connected", "arch=amd64", "os=linux", "1 / 4", "old-agent", "offline", "gpu=yes", "v0.1", "draining"} {
		if !strings.Contains(body, want) {
			t.Errorf("agents page lacks %q", want)
		}
	}
	if strings.Index(body, "agent-1") > strings.Index(body, "old-agent") {
		t.Error("connected agents should be listed first")
	}
	_, body, _ = e.get(c, "/deployments")
	for _, want := range []string{"prod", "staging", "abcdef01", "rolled_back", "in progress", `href="/runs/1"`, "acme/web",
		`<code title="0000000099999999">00000000</code> 90% / <code title="1111111122222222">11111111</code> 10%`, "shift",
		`id="live" data-refresh="300"`} {
		if !strings.Contains(body, want) {
			t.Errorf("deployments page lacks %q", want)
		}
	}
	// Nothing in progress: the page no longer refreshes itself.
	if err := e.store.FinishDeployment(ctx, staging, store.DeploySuccess); err != nil {
		t.Fatal(err)
	}
	if _, body, _ = e.get(c, "/deployments"); !strings.Contains(body, `id="live"`) || strings.Contains(body, "data-refresh") {
		t.Errorf("deployments page without a release in progress still refreshes:\n%s", body)
	}
}

// TestLogFollowThroughAPI: the log page of a running step points its
// viewer at the API's log endpoint, which the page's session may read:
// followed from where the page ends, lines arrive in batches of styled
// segments, each event's id the offset after it, and the end of the
// step ends the stream.
func TestLogFollowThroughAPI(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	build := e.run.Stages[0]
	key := runner.LogKey(e.run.ID, "build", build.Attempt, 1)

	_, page, _ := e.get(c, runPath(e.run.ID)+"/stages/build/steps/1/log")
	for _, want := range []string{`data-src="/api/v1/runs/1/stages/build/steps/1/log?attempt=1&amp;styled=1"`,
		`data-to="16"`, `data-follow="true"`, `data-final="false"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("log page of a running step lacks %s:\n%s", want, page)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	follow := func(lastID string) *bufio.Scanner {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/runs/1/stages/build/steps/1/log?attempt=1&styled=1&from=16", nil)
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("follow with the session: got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return bufio.NewScanner(resp.Body)
	}
	sc := follow("")
	next := func() string {
		var ev []string
		for sc.Scan() {
			if sc.Text() == "" {
				return strings.Join(ev, "|")
			}
			ev = append(ev, sc.Text())
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return ""
	}
	if err := e.logs.Append(key, 1, []byte("--- PASS: TestOne\n\x1b[1;32mok\x1b[0m  <b>pkg</b>\n")); err != nil {
		t.Fatal(err)
	}
	want := `id: 60|data: {"from":16,"to":60,"lines":[[{"t":"--- PASS: TestOne"}],[{"t":"ok","c":"fg2 b"},{"t":"  \u003cb\u003epkg\u003c/b\u003e"}]]}`
	if got := next(); got != want {
		t.Errorf("event: got %q, want %q", got, want)
	}
	zero := 0
	if err := e.store.UpdateStep(ctx, build.ID, build.Attempt, 1, store.StepUpdate{Status: store.StatusSuccess, ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Finish(key); err != nil {
		t.Fatal(err)
	}
	if got, want := next(), `event: end|id: 60|data: {"to":60}`; got != want {
		t.Errorf("last event: got %q, want %q", got, want)
	}
	// Reconnecting with Last-Event-ID resumes after what was seen.
	sc = follow("34")
	if got := next(); !strings.HasPrefix(got, `id: 60|data: {"from":34,`) {
		t.Errorf("resumed event: got %q, want the line after offset 34", got)
	}
}

// TestLogPageWindow: a finished log larger than a page opens at its
// last page, cut at a line boundary, with links to page back; ?from=
// and ?before= show other pages by byte range.
func TestLogPageWindow(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.login(c, e.token)
	build := e.run.Stages[0]
	key := runner.LogKey(e.run.ID, "build", build.Attempt, 1)
	var log strings.Builder
	log.WriteString("=== RUN TestOne\n")
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&log, "line %05d\n", i)
	}
	// The step ends with the log: 16 + 3000*11 bytes.
	if err := e.logs.Append(key, 1, []byte(log.String()[16:])); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Finish(key); err != nil {
		t.Fatal(err)
	}
	zero := 0
	if err := e.store.UpdateStep(context.Background(), build.ID, build.Attempt, 1, store.StepUpdate{Status: store.StatusSuccess, ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	path := runPath(e.run.ID) + "/stages/build/steps/1/log"
	lineRE := regexp.MustCompile(`<span class="line">([^<]*)</span>`)
	lines := func(page string) []string {
		var out []string
		for _, m := range lineRE.FindAllStringSubmatch(page, -1) {
			out = append(out, m[1])
		}
		return out
	}
	_, page, _ := e.get(c, path)
	got := lines(page)
	if len(got) != 1000 || got[0] != "line 02001" || got[999] != "line 03000" {
		t.Fatalf("tail page: %d lines from %q", len(got), got[:min(2, len(got))])
	}
	from := 16 + 2000*11
	for _, want := range []string{fmt.Sprintf(`data-from="%d"`, from), `data-final="true"`, `data-follow="false"`,
		fmt.Sprintf(`href="%s?attempt=1&amp;before=%d" id="log-earlier"`, path, from), `id="log-start"`} {
		if !strings.Contains(page, want) {
			t.Errorf("tail page lacks %s", want)
		}
	}
	_, page, _ = e.get(c, path+"?before="+strconv.Itoa(16+100*11))
	if got := lines(page); len(got) != 101 || got[0] != "=== RUN TestOne" || got[100] != "line 00100" {
		t.Errorf("page before line 101: %d lines, %q ... %q", len(got), got[0], got[len(got)-1])
	}
	_, page, _ = e.get(c, path+"?from=0")
	if got := lines(page); len(got) != 1000 || got[0] != "=== RUN TestOne" || got[999] != "line 00999" || !strings.Contains(page, `id="log-later"`) {
		t.Errorf("first page: %d lines, %q ... %q", len(got), got[0], got[len(got)-1])
	}
	if code, _, _ := e.get(c, path+"?from=x"); code != http.StatusBadRequest {
		t.Errorf("from=x: got %d, want 400", code)
	}
}

// TestDiagnosticsAndRerun triggers a real run from a git repository whose
// pipeline does not compile: the run page lists the diagnostics, and
// rerun starts a new run.
func TestDiagnosticsAndRerun(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git not installed (CI is set)")
		}
		t.Skip("git not installed")
	}
	e := newEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	bare := filepath.Join(dir, "repo.git")
	gitRun(t, dir, "init", "-q", "--bare", bare)
	work := filepath.Join(dir, "work")
	gitRun(t, dir, "clone", "-q", bare, work)
	if err := os.WriteFile(filepath.Join(work, ".pipeline.yml"), []byte("version: 1\nstages:\n  build:\n    stepz: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, work, "add", ".")
	gitRun(t, work, "commit", "-qm", "bad pipeline")
	sha := gitRun(t, work, "rev-parse", "HEAD")
	gitRun(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	repo, err := e.store.CreateRepo(ctx, store.Repo{Name: "acme/bad", Forge: store.ForgeGit, CloneURL: bare, DefaultBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := e.runner.Trigger(ctx, runner.TriggerRequest{Repo: repo, Event: &scm.Event{Forge: scm.ForgeGeneric, Kind: scm.KindPush,
		Repo: repo.Name, Ref: "refs/heads/main", Branch: "main", Commit: sha}, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	if run.Reason != rules.ReasonPipelineInvalid {
		t.Fatalf("run reason: got %q, want %s", run.Reason, rules.ReasonPipelineInvalid)
	}
	c := e.client()
	e.login(c, e.token)
	_, body, _ := e.get(c, runPath(run.ID))
	for _, want := range []string{`id="diagnostics"`, ".pipeline.yml:", "stepz", `id="rerun"`} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %q:\n%s", want, body)
		}
	}
	tok := e.csrf(c, runPath(run.ID))
	code, loc := e.post(c, runPath(run.ID)+"/rerun", url.Values{"csrf": {tok}})
	if code != http.StatusSeeOther || loc == runPath(run.ID)+"?done=rerun" || !strings.HasSuffix(loc, "?done=rerun") {
		t.Fatalf("rerun: got %d to %q, want 303 to a new run", code, loc)
	}
	_, body, _ = e.get(c, loc)
	if !strings.Contains(body, "rerun of") || !strings.Contains(body, "This run was started as a rerun.") {
		t.Errorf("new run page does not say it is a rerun:\n%s", body)
	}
}

// gitRun runs git in dir (internal/gittest).
func gitRun(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.Run(t, dir, args...)
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/runs/3", "/runs/3"},
		{"/?repo=a%2Fb", "/?repo=a%2Fb"},
		{"", "/"},
		{"https://evil.example/", "/"},
		{"//evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"/login?next=/x", "/"},
		{"/x\r\nSet-Cookie: a=b", "/"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.in); got != tt.want {
			t.Errorf("safeNext(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
