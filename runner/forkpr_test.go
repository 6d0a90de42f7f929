package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// TestForkPullRequestApproval: a fork's pull request runs its stages
// without secrets at once and holds the one asking for a secret until its
// head commit is approved; the approval is recorded and bound to that
// commit, so the next push waits again.
func TestForkPullRequestApproval(t *testing.T) {
	f := newFixture(t, true, 0)
	ctx := context.Background()
	if _, err := f.store.PutSecret(ctx, store.Secret{RepoID: f.repo.ID, Name: "TOKEN"}, "fork-secret-value"); err != nil {
		t.Fatal(err)
	}
	pipe := "version: 1\nstages:\n  test:\n    steps:\n      - name: t\n        run: echo test\n" +
		"  publish:\n    secrets: [TOKEN]\n    steps:\n      - name: p\n        run: test \"$TOKEN\" = fork-secret-value\n"
	fork := func(files map[string]string) *store.Run {
		t.Helper()
		ev := f.push(files)
		ev.Kind, ev.Ref = scm.KindPullRequest, "refs/pull/1/head"
		ev.PullRequest = &scm.PullRequest{Number: 1, HeadSHA: ev.Commit, BaseRef: "main", HeadRepo: "mallory/app"}
		run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerWebhook})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	run := fork(map[string]string{".pipeline.yml": pipe})
	want := "waiting for a maintainer to approve this pull request's head " + run.Commit[:7]
	f.waitStage(run.ID, "test", func(st *store.Stage) bool { return st.Status == store.StatusSuccess })
	cur := f.waitStage(run.ID, "publish", func(st *store.Stage) bool { return st.PendingReason == want })
	if st := stageByKey(cur, "publish"); st.Status != store.StatusPending || st.Attempt != 0 {
		t.Fatalf("publish before approval: %s attempt %d, want pending and never queued", st.Status, st.Attempt)
	}
	if _, err := f.runner.ApprovePR(ctx, run.ID, "0000000000000000000000000000000000000000", "maintainer"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approve another head: got %v, want ErrConflict", err)
	}
	a, err := f.runner.ApprovePR(ctx, run.ID, run.Commit, "maintainer")
	if err != nil || a.By != "maintainer" || a.HeadSHA != run.Commit {
		t.Fatalf("ApprovePR: got %+v, %v", a, err)
	}
	if done := f.wait(run.ID, time.Minute); done.Status != store.StatusSuccess {
		t.Fatalf("approved run: %s (publish %+v), want success: the stage got its secret", done.Status, stageByKey(done, "publish"))
	}

	next := fork(map[string]string{"more.txt": "a new push"})
	f.waitStage(next.ID, "publish", func(st *store.Stage) bool {
		return st.PendingReason == "waiting for a maintainer to approve this pull request's head "+next.Commit[:7]
	})
	if _, needed, err := f.runner.PRApproval(ctx, next); !needed || err != nil {
		t.Errorf("PRApproval of the new head: needed %v, %v; want needed", needed, err)
	}
	push := f.push(map[string]string{"push.txt": "x"})
	pushRun, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: push, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.runner.ApprovePR(ctx, pushRun.ID, "", "maintainer"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("approve a push run: got %v, want ErrConflict", err)
	}
}

// TestForkPipelineFromBase: a repository set to take the pipeline of a
// fork's pull request from the base branch runs the base branch's file,
// whatever the head's says; a pull request from the repository itself,
// and every pull request when the setting is off, runs its own.
func TestForkPipelineFromBase(t *testing.T) {
	f := newFixture(t, false, 0)
	ctx := context.Background()
	stage := func(name string) string {
		return "version: 1\nstages:\n  " + name + ":\n    steps:\n      - name: s\n        run: echo\n"
	}
	base := f.push(map[string]string{".pipeline.yml": stage("base-stage")})
	head := f.push(map[string]string{".pipeline.yml": stage("head-stage")})
	// The head is the pull request's, not the branch's: move main back.
	git(t, f.work, "push", "-q", "-f", "origin", base.Commit+":refs/heads/main", head.Commit+":refs/pull/1/head")
	pr := func(same bool, baseSHA string) string {
		t.Helper()
		ev := *head
		ev.Kind, ev.Ref = scm.KindPullRequest, "refs/pull/1/head"
		ev.PullRequest = &scm.PullRequest{Number: 1, HeadSHA: head.Commit, BaseRef: "main", BaseSHA: baseSHA, SameRepo: same}
		run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: &ev, Trigger: store.TriggerWebhook})
		if err != nil {
			t.Fatal(err)
		}
		if run.Commit != head.Commit || len(run.Stages) != 1 {
			t.Fatalf("run: commit %s, %d stages (%s %s); want the head's commit and one stage", run.Commit, len(run.Stages), run.Status, run.Reason)
		}
		return run.Stages[0].Key
	}
	if got := pr(false, base.Commit); got != "head-stage" {
		t.Errorf("setting off, fork: ran %s, want head-stage", got)
	}
	f.repo.ForkPipelineFromBase = true
	if err := f.store.UpdateRepo(ctx, *f.repo); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		same    bool
		baseSHA string
		want    string
	}{
		{"fork, base commit from the payload", false, base.Commit, "base-stage"},
		{"fork, base branch head (no base commit in the event)", false, "", "base-stage"},
		{"same repository", true, base.Commit, "head-stage"},
	} {
		if got := pr(tc.same, tc.baseSHA); got != tc.want {
			t.Errorf("%s: ran %s, want %s", tc.name, got, tc.want)
		}
	}
}
