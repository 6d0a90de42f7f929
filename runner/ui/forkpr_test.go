package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

// TestApproveHead: the page of a fork's pull request run offers to
// approve its head commit, the form approves exactly that commit, and
// the page then says who approved.
func TestApproveHead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	head := strings.Repeat("ab", 20)
	plan := &pipeline.Plan{Stages: []*pipeline.Stage{{ID: "publish", Name: "publish", Secrets: []pipeline.SecretRef{{Name: "TOKEN", Env: "TOKEN"}},
		Steps: []*pipeline.Step{{Name: "push", Run: "push"}}}}}
	run, err := e.store.CreateRun(ctx, store.NewRun{RepoID: e.repo.ID, Trigger: store.TriggerWebhook, Plan: plan,
		Event: pipeline.Event{Kind: pipeline.EventPullRequest, Branch: "main", Ref: "refs/pull/4/head", Commit: head}})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	e.login(c, e.token)
	tok := e.csrf(c, runPath(run.ID))
	_, body, _ := e.get(c, runPath(run.ID))
	if !strings.Contains(body, `id="approve-head"`) || !strings.Contains(body, `name="commit" value="`+head+`"`) {
		t.Fatalf("fork run page lacks the head approval form:\n%s", body)
	}
	if _, body, _ := e.get(c, runPath(e.run.ID)); strings.Contains(body, "head-approval") {
		t.Error("a push run's page offers a head approval")
	}
	if code, _ := e.post(c, runPath(run.ID)+"/approve", url.Values{"csrf": {tok}, "commit": {strings.Repeat("cd", 20)}}); code != http.StatusConflict {
		t.Errorf("approve another commit: got %d, want 409", code)
	}
	code, loc := e.post(c, runPath(run.ID)+"/approve", url.Values{"csrf": {tok}, "commit": {head}})
	if code != http.StatusSeeOther || !strings.HasSuffix(loc, "done=head") {
		t.Fatalf("approve head: got %d to %q", code, loc)
	}
	if a, err := e.store.PRApproval(ctx, e.repo.ID, head); err != nil || a.By != "alice" {
		t.Fatalf("stored approval: %+v, %v; want by alice", a, err)
	}
	_, body, _ = e.get(c, runPath(run.ID))
	if strings.Contains(body, `id="approve-head"`) || !strings.Contains(body, "approved by alice") {
		t.Errorf("after approval: want no form and who approved:\n%s", body)
	}
}
