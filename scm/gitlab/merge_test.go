package gitlab

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/scmtest"
)

func mrEdit(t testing.TB, f func(attrs map[string]any)) []byte {
	return scmtest.Edit(t, fixture(t, "merge_request.json"), func(m map[string]any) { f(scmtest.Obj(m, "object_attributes")) })
}

func TestParseMergeRequest(t *testing.T) {
	base := scm.Event{
		Forge: scm.ForgeGitLab, Delivery: "13792a34-cac6-4fda-95a8-c58e00a3954e", Kind: scm.KindPullRequest,
		Repo: "gitlabhq/gitlab-test", CloneURL: "http://example.com/gitlabhq/gitlab-test.git",
		Ref: "refs/merge-requests/1/head", Branch: "master", Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
		Message: "MS-Viewport", Author: "root", Timestamp: time.Date(2012, 1, 3, 21, 36, 29, 0, time.UTC),
		PullRequest: &scm.PullRequest{Number: 1, Title: "MS-Viewport", HeadRef: "ms-viewport",
			HeadSHA: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", BaseRef: "master",
			HeadCloneURL: "http://example.com/gitlabhq/gitlab-test.git", HeadRepo: "gitlabhq/gitlab-test", SameRepo: true},
	}
	with := func(f func(e *scm.Event, pr *scm.PullRequest)) scm.Event {
		e := base
		pr := *base.PullRequest
		e.PullRequest = &pr
		f(&e, &pr)
		return e
	}
	const oldrev = "95790bf891e76fee5e1747ab589903a6a1f80f22"
	tests := []struct {
		name string
		body []byte
		want scm.Event
	}{
		{"open", fixture(t, "merge_request.json"), base},
		{"reopen", mrEdit(t, func(a map[string]any) { a["action"] = "reopen" }), base},
		{"update with new commits", mrEdit(t, func(a map[string]any) { a["action"], a["oldrev"] = "update", oldrev }),
			with(func(e *scm.Event, _ *scm.PullRequest) { e.Before = oldrev })},
		{"from a fork", mrEdit(t, func(a map[string]any) {
			a["source_project_id"] = 42
			src := scmtest.Obj(a, "source")
			src["path_with_namespace"], src["git_http_url"] = "mallory/gitlab-test", "http://example.com/mallory/gitlab-test.git"
		}), with(func(_ *scm.Event, pr *scm.PullRequest) {
			pr.HeadRepo, pr.HeadCloneURL, pr.SameRepo = "mallory/gitlab-test", "http://example.com/mallory/gitlab-test.git", false
		})},
		{"source project gone", mrEdit(t, func(a map[string]any) { a["source_project_id"], a["source"] = nil, nil }),
			with(func(_ *scm.Event, pr *scm.PullRequest) { pr.HeadRepo, pr.HeadCloneURL, pr.SameRepo = "", "", false })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(request("Merge Request Hook", tt.body, nil), secret)
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

func TestParseMergeRequestIgnoresAndRejects(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"update without new commits", mrEdit(t, func(a map[string]any) { a["action"] = "update" }), scm.ErrIgnored},
		{"close", mrEdit(t, func(a map[string]any) { a["action"] = "close" }), scm.ErrIgnored},
		{"merge", mrEdit(t, func(a map[string]any) { a["action"] = "merge" }), scm.ErrIgnored},
		{"approved", mrEdit(t, func(a map[string]any) { a["action"] = "approved" }), scm.ErrIgnored},
		{"no last commit", mrEdit(t, func(a map[string]any) { delete(a, "last_commit") }), scm.ErrBadRequest},
		{"no target branch", mrEdit(t, func(a map[string]any) { a["target_branch"] = "" }), scm.ErrBadRequest},
		{"no iid", mrEdit(t, func(a map[string]any) { delete(a, "iid") }), scm.ErrBadRequest},
		{"iid is a string", mrEdit(t, func(a map[string]any) { a["iid"] = "1" }), scm.ErrBadRequest},
		{"push payload", fixture(t, "push.json"), scm.ErrBadRequest},
		{"no attributes", []byte(`{"object_kind":"merge_request"}`), scm.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(request("Merge Request Hook", tt.body, nil), secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, %v; want error %v", got, err, tt.want)
			}
		})
	}
}
