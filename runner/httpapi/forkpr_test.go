package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// TestApprovePullRequestHead: a run of a fork's pull request shows that
// its head waits for approval; an operator approves that commit (not
// another) through the API, which records who, and the held stage runs.
func TestApprovePullRequestHead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	repo, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: store.ForgeGit, CloneURL: e.bare})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PutSecret(ctx, store.Secret{RepoID: repo.ID, Name: "TOKEN"}, "head-secret"); err != nil {
		t.Fatal(err)
	}
	sha := e.push("version: 1\nstages:\n  p:\n    secrets: [TOKEN]\n    steps:\n      - name: s\n        run: test \"$TOKEN\" = head-secret\n")
	ev := &scm.Event{Forge: scm.ForgeGeneric, Kind: scm.KindPullRequest, Repo: "acme/app", Ref: "refs/pull/3/head", Branch: "main", Commit: sha,
		PullRequest: &scm.PullRequest{Number: 3, HeadSHA: sha, BaseRef: "main", HeadRepo: "mallory/app"}}
	run, err := e.rn.Trigger(ctx, runner.TriggerRequest{Repo: repo, Event: ev, Trigger: store.TriggerWebhook})
	if err != nil {
		t.Fatal(err)
	}
	get := func() RunView {
		t.Helper()
		code, b := e.do("GET", fmt.Sprintf("/api/v1/runs/%d", run.ID), nil, e.auth())
		var v RunView
		if err := json.Unmarshal([]byte(b), &v); code != 200 || err != nil {
			t.Fatalf("get run: %d %s", code, b)
		}
		return v
	}
	if v := get(); v.HeadApproval == nil || v.HeadApproval.Approved || v.Status.Terminal() {
		t.Fatalf("before approval: %s, head approval %+v; want waiting, not approved", v.Status, v.HeadApproval)
	}
	var held bool
	for _, st := range e.stats.of(sha) {
		held = held || st.Context == "runnel/p" && st.State == "pending" && st.Description == "Waiting for a maintainer to approve head "+sha[:7]
	}
	if !held {
		t.Errorf("commit statuses %+v: want runnel/p pending, waiting for a maintainer", e.stats.of(sha))
	}
	path := fmt.Sprintf("/api/v1/runs/%d/approve", run.ID)
	if code, b := e.do("POST", path, []byte(`{"commit":"`+sha[:39]+`0"}`), e.auth()); code != 409 {
		t.Errorf("approve another commit: %d %s, want 409", code, b)
	}
	code, b := e.do("POST", path, []byte(`{"commit":"`+sha+`"}`), e.auth())
	var v RunView
	if err := json.Unmarshal([]byte(b), &v); code != 200 || err != nil || v.HeadApproval == nil || v.HeadApproval.ApprovedBy != "alice" {
		t.Fatalf("approve: %d %s, want 200 approved by alice", code, b)
	}
	if v := e.waitRun(run.ID); v.Status != store.StatusSuccess {
		t.Errorf("approved run: %s, want success (the stage got its secret)", v.Status)
	}
	push, err := e.rn.Trigger(ctx, runner.TriggerRequest{Repo: repo, Event: &scm.Event{Forge: scm.ForgeGeneric, Kind: scm.KindPush,
		Repo: "acme/app", Ref: "refs/heads/main", Branch: "main", Commit: sha}, Trigger: store.TriggerWebhook})
	if err != nil {
		t.Fatal(err)
	}
	if code, b := e.do("POST", fmt.Sprintf("/api/v1/runs/%d/approve", push.ID), nil, e.auth()); code != 409 {
		t.Errorf("approve a push run: %d %s, want 409", code, b)
	}
}

func TestPatchForkPipeline(t *testing.T) {
	e := newEnv(t)
	e.do("POST", "/api/v1/repos", []byte(`{"name":"app","forge":"git","clone_url":"`+e.bare+`"}`), e.auth())
	code, b := e.do("PATCH", "/api/v1/repos/app", []byte(`{"fork_pipeline_from_base":true}`), e.auth())
	var v RepoView
	if err := json.Unmarshal([]byte(b), &v); code != 200 || err != nil || !v.ForkPipelineFromBase {
		t.Fatalf("patch: %d %s, want fork_pipeline_from_base true", code, b)
	}
}
