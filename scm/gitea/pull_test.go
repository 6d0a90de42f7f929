package gitea

import (
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/scmtest"
)

func prFixture(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/pull_request.opened.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func prEdit(t testing.TB, f func(m map[string]any)) []byte {
	return scmtest.Edit(t, prFixture(t), f)
}

// fork makes the pull request come from mallory's fork.
func fork(m map[string]any) {
	head := scmtest.Obj(m, "pull_request", "head")
	head["repo_id"] = 9
	repo := scmtest.Obj(head, "repo")
	repo["id"], repo["full_name"], repo["clone_url"], repo["fork"] = 9, "mallory/webhooks", "http://localhost:3000/mallory/webhooks.git", true
}

func TestParsePullRequest(t *testing.T) {
	pr := map[string]string{"X-Gitea-Event": "pull_request"}
	base := scm.Event{
		Forge: scm.ForgeGitea, Delivery: "f6266f16-1bf3-46a5-9ea4-602e06ead473", Kind: scm.KindPullRequest,
		Repo: "gitea/webhooks", CloneURL: "http://localhost:3000/gitea/webhooks.git",
		Ref: "refs/pull/4/head", Branch: "main", Commit: "bffeb74224043ba2feb48d137756c8a9331c449a",
		Message: "Add a build badge to the README", Author: "alice",
		Timestamp: time.Date(2023, 5, 4, 7, 12, 40, 0, time.UTC),
		PullRequest: &scm.PullRequest{Number: 4, Title: "Add a build badge to the README",
			HeadRef: "badge", HeadSHA: "bffeb74224043ba2feb48d137756c8a9331c449a",
			BaseRef: "main", BaseSHA: "28e1879d029cb852e4844d9c718537df08844e03",
			HeadCloneURL: "http://localhost:3000/gitea/webhooks.git", HeadRepo: "gitea/webhooks", SameRepo: true},
	}
	with := func(f func(e *scm.Event)) scm.Event {
		e := base
		p := *base.PullRequest
		e.PullRequest = &p
		f(&e)
		return e
	}
	tests := []struct {
		name    string
		body    []byte
		headers map[string]string
		want    scm.Event
	}{
		{"opened", prFixture(t), pr, base},
		{"synchronized", prEdit(t, func(m map[string]any) { m["action"] = "synchronized" }), pr, base},
		{"reopened on forgejo", prEdit(t, func(m map[string]any) { m["action"] = "reopened" }),
			map[string]string{"X-Gitea-Event": "", "X-Gitea-Delivery": "", "X-Forgejo-Event": "pull_request",
				"X-Forgejo-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473"}, base},
		{"from a fork", prEdit(t, fork), pr, with(func(e *scm.Event) {
			e.PullRequest.HeadRepo, e.PullRequest.HeadCloneURL, e.PullRequest.SameRepo = "mallory/webhooks", "http://localhost:3000/mallory/webhooks.git", false
		})},
		{"head repository deleted", prEdit(t, func(m map[string]any) {
			head := scmtest.Obj(m, "pull_request", "head")
			head["repo_id"], head["repo"] = 0, nil
		}), pr, with(func(e *scm.Event) {
			e.PullRequest.HeadRepo, e.PullRequest.HeadCloneURL, e.PullRequest.SameRepo = "", "", false
		})},
		{"only repo_id", prEdit(t, func(m map[string]any) {
			delete(scmtest.Obj(m, "pull_request", "head"), "repo")
			delete(scmtest.Obj(m, "pull_request", "base"), "repo")
		}), pr, with(func(e *scm.Event) { e.PullRequest.HeadRepo, e.PullRequest.HeadCloneURL = "", "" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			headers := map[string]string{"X-Gitea-Signature": "", "X-Forgejo-Signature": sign(body, secret)}
			for k, v := range tt.headers {
				headers[k] = v
			}
			got, err := Parse(request(body, headers), secret)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Timestamp.Equal(tt.want.Timestamp) {
				t.Errorf("got timestamp %v, want %v", got.Timestamp, tt.want.Timestamp)
			}
			got.Timestamp = tt.want.Timestamp
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v %+v\nwant %+v %+v", *got, got.PullRequest, tt.want, tt.want.PullRequest)
			}
		})
	}
}

func TestParsePullRequestIgnoresAndRejects(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"closed", prEdit(t, func(m map[string]any) { m["action"] = "closed" }), scm.ErrIgnored},
		{"edited", prEdit(t, func(m map[string]any) { m["action"] = "edited" }), scm.ErrIgnored},
		{"label_updated", prEdit(t, func(m map[string]any) { m["action"] = "label_updated" }), scm.ErrIgnored},
		{"no pull_request object", prEdit(t, func(m map[string]any) { delete(m, "pull_request") }), scm.ErrBadRequest},
		{"short head sha", prEdit(t, func(m map[string]any) { scmtest.Obj(m, "pull_request", "head")["sha"] = "bffeb74" }), scm.ErrBadRequest},
		{"no base ref", prEdit(t, func(m map[string]any) { scmtest.Obj(m, "pull_request", "base")["ref"] = "" }), scm.ErrBadRequest},
		{"no number", prEdit(t, func(m map[string]any) { m["number"] = 0; scmtest.Obj(m, "pull_request")["number"] = 0 }), scm.ErrBadRequest},
		{"number is a string", prEdit(t, func(m map[string]any) { m["number"] = "4" }), scm.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(request(tt.body, map[string]string{"X-Gitea-Event": "pull_request"}), secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, %v; want error %v", got, err, tt.want)
			}
		})
	}
}
