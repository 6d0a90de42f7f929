package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/scm/gitlab/gitlabtest"
)

const prPipeline = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: show
        run: echo "event=$RUNNEL_EVENT branch=$RUNNEL_BRANCH"
  test:
    image: runnel-test/busybox:latest
    needs: [build]
    steps:
      - name: unit
        run: test -f .pipeline.yml && echo tests passed
`

// forgePayload loads a forge's real payload shape kept beside its hook's
// tests and lets edit rewrite it for the test's repository.
func forgePayload(t *testing.T, forge, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "scm", forge, "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		m = m[k].(map[string]any)
	}
	return m
}

// pullRequestRepo makes a bare repository whose main has one commit and
// whose branch feature has the pull request's commit, also pushed to the
// forge's ref for the pull request (prRef), as the forge keeps it.
func pullRequestRepo(t *testing.T, dir, prRef string) (bare, base, head string) {
	t.Helper()
	bare = filepath.Join(dir, "app.git")
	git(t, dir, "init", "-q", "--bare", "--initial-branch=main", bare)
	work := filepath.Join(dir, "work")
	git(t, dir, "clone", "-q", bare, work)
	git(t, work, "checkout", "-q", "-b", "main")
	base = commit(t, work, "version: 1\nstages: {}\n")
	git(t, work, "push", "-q", "origin", "main")
	git(t, work, "checkout", "-q", "-b", "feature")
	head = commit(t, work, prPipeline)
	git(t, work, "push", "-q", "origin", "feature", "feature:"+prRef)
	return bare, base, head
}

type prRun struct {
	Event  string `json:"event"`
	Ref    string `json:"ref"`
	Branch string `json:"branch"`
}

// checkPullRequestRun waits for the run of head to succeed and checks
// that it ran as a pull request into main.
func checkPullRequestRun(t *testing.T, srv *server, head, ref string) run {
	t.Helper()
	r := srv.waitRun(head, 3*time.Minute, terminal)
	if r.Status != "success" {
		t.Fatalf("run of %s = %s (%s), want success; server log:\n%s", head[:8], r.Status, r.Reason, srv.log())
	}
	_, b := srv.api("GET", fmt.Sprintf("/api/v1/runs/%d", r.ID))
	var got prRun
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if want := (prRun{Event: "pull_request", Ref: ref, Branch: "main"}); got != want {
		t.Errorf("run %d: got %+v, want %+v", r.ID, got, want)
	}
	for _, st := range r.Stages {
		if st.Status != "success" {
			t.Errorf("stage %s = %s, want success", st.ID, st.Status)
		}
	}
	return r
}

// TestGiteaPullRequest: a Gitea pull request webhook, signed as Gitea
// signs it, starts a pull request run of the head commit.
func TestGiteaPullRequest(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	const name, secret = "gitea/webhooks", "gitea-e2e-secret"
	bare, base, head := pullRequestRepo(t, dir, "refs/pull/4/head")
	srv := startServer(t, dir, "")
	srv.createRepo(map[string]any{"name": name, "forge": "gitea", "clone_url": bare, "secret": secret})

	post := func(action string) (int, []byte) {
		body := forgePayload(t, "gitea", "pull_request.opened.json", func(m map[string]any) {
			m["action"] = action
			pr := obj(m, "pull_request")
			obj(pr, "head")["ref"], obj(pr, "head")["sha"] = "feature", head
			obj(pr, "base")["ref"], obj(pr, "base")["sha"] = "main", base
		})
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		return srv.do("POST", "/hooks/gitea/"+name, bytes.NewReader(body), map[string]string{
			"Content-Type": "application/json", "X-Gitea-Event": "pull_request", "X-Gitea-Delivery": "e2e-" + action,
			"X-Gitea-Signature": hex.EncodeToString(mac.Sum(nil))})
	}
	if code, b := post("closed"); code != http.StatusAccepted || !strings.Contains(string(b), "ignored") {
		t.Fatalf("closed pull request: %d %s, want 202 ignored", code, b)
	}
	if code, b := post("opened"); code != http.StatusAccepted || !strings.Contains(string(b), "accepted") {
		t.Fatalf("opened pull request: %d %s, want 202 accepted", code, b)
	}
	r := checkPullRequestRun(t, srv, head, "refs/pull/4/head")
	if n := len(srv.runs("limit=50")); n != 1 {
		t.Errorf("got %d runs, want 1 (the closed pull request starts none)", n)
	}
	t.Logf("run %d of Gitea pull request #4 (%s) succeeded", r.ID, head[:8])
}

// TestGitLabMergeRequest: a GitLab merge request webhook starts a pull
// request run, and the run's commit statuses reach GitLab's API (a fake
// that keeps GitLab's per-name state machine, talked to by GitLab's own
// client library in the server).
func TestGitLabMergeRequest(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	const name, secret, token = "gitlabhq/gitlab-test", "gitlab-e2e-secret", "glpat-e2e-status-token"
	bare, _, head := pullRequestRepo(t, dir, "refs/merge-requests/1/head")
	gl := gitlabtest.New(t, token, name)
	srv := startServer(t, dir, "")
	srv.createRepo(map[string]any{"name": name, "forge": "gitlab", "clone_url": bare, "secret": secret,
		"status_token": token, "status_api_url": gl.URL})

	body := forgePayload(t, "gitlab", "merge_request.json", func(m map[string]any) {
		a := obj(m, "object_attributes")
		a["source_branch"], a["target_branch"] = "feature", "main"
		obj(a, "last_commit")["id"] = head
	})
	code, b := srv.do("POST", "/hooks/gitlab/"+name, bytes.NewReader(body), map[string]string{
		"Content-Type": "application/json", "X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": secret,
		"X-Gitlab-Event-UUID": "e2e-mr-open"})
	if code != http.StatusAccepted || !strings.Contains(string(b), "accepted") {
		t.Fatalf("merge request hook: %d %s, want 202 accepted", code, b)
	}
	r := checkPullRequestRun(t, srv, head, "refs/merge-requests/1/head")

	// Statuses are sent asynchronously: wait until every context has
	// reached its final state at GitLab.
	contexts := []string{"runnel", "runnel/build", "runnel/test"}
	final := func() bool {
		for _, c := range contexts {
			sts := gl.Statuses(name, head, c)
			if len(sts) == 0 || sts[len(sts)-1].Status != "success" {
				return false
			}
		}
		return true
	}
	if !gl.WaitFor(time.Minute, final) {
		for _, c := range contexts {
			t.Errorf("%s: statuses %+v", c, gl.Statuses(name, head, c))
		}
		t.Fatalf("GitLab did not get a success status for every context; server log:\n%s", srv.log())
	}
	wantURL := fmt.Sprintf("%s/runs/%d", srv.url, r.ID)
	for _, c := range contexts {
		sts := gl.Statuses(name, head, c)
		// One status per context, moved pending → running → success: a
		// repeated state is no second status.
		if len(sts) != 1 {
			t.Errorf("%s: got %d statuses %+v, want 1", c, len(sts), sts)
			continue
		}
		st := sts[0]
		// The queue may replace a state still waiting by a newer one, so
		// any of the lifecycle's states may be missing but the last.
		if h := strings.Join(st.History, ","); !slices.Contains([]string{"pending,running,success", "running,success", "pending,success", "success"}, h) {
			t.Errorf("%s: history %s, want pending,running,success", c, h)
		}
		if st.TargetURL != wantURL {
			t.Errorf("%s: target_url %q, want %q", c, st.TargetURL, wantURL)
		}
	}
	t.Logf("run %d of GitLab merge request !1 (%s): statuses %v delivered", r.ID, head[:8], contexts)
}
