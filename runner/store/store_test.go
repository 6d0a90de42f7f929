package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/access"
)

func mustRepo(t *testing.T, s *Store, name string) *Repo {
	t.Helper()
	r, err := s.CreateRepo(ctxT(t), Repo{Name: name, Forge: ForgeGitHub, CloneURL: "https://example.com/" + name + ".git"})
	if err != nil {
		t.Fatalf("CreateRepo(%s): %v", name, err)
	}
	return r
}

func testPlan() *pipeline.Plan {
	return &pipeline.Plan{Stages: []*pipeline.Stage{
		{ID: "build", Name: "build", Steps: []*pipeline.Step{{Name: "compile"}, {Name: "vet", AllowFailure: true}}},
		{ID: "test[go=1.22]", Name: "test", Needs: []string{"build"}, Steps: []*pipeline.Step{{Name: "unit"}}},
		{ID: "deploy", Name: "deploy", Needs: []string{"test[go=1.22]"}, Approval: true, Environment: "prod",
			Concurrency: "prod", Steps: []*pipeline.Step{{Name: "ship"}}},
	}}
}

func mustRun(t *testing.T, s *Store, repoID int64, branch string, plan *pipeline.Plan) *Run {
	t.Helper()
	r, err := s.CreateRun(ctxT(t), NewRun{
		RepoID:  repoID,
		Event:   pipeline.Event{Kind: pipeline.EventPush, Branch: branch, Ref: "refs/heads/" + branch, Commit: "abc123", Message: "fix; rm -rf /", Author: "ann"},
		Trigger: TriggerWebhook,
		Plan:    plan,
	})
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	return r
}

func TestMigrationsIdempotent(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		s1 := openTest(t, dsn)
		mustRepo(t, s1, "acme/web")
		s2 := openTest(t, dsn) // migrations already applied: must be a no-op
		var n int
		if err := s2.r.QueryRowContext(ctxT(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		ms, err := migrations(s2.Dialect())
		if err != nil {
			t.Fatal(err)
		}
		if n != len(ms) {
			t.Errorf("schema_migrations rows: got %d, want %d", n, len(ms))
		}
		if _, err := s2.Repo(ctxT(t), "acme/web"); err != nil {
			t.Errorf("repo after second Open: %v", err)
		}
	})
}

func TestRepos(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		r := mustRepo(t, s, "acme/web")
		if r.DefaultBranch != "main" || r.CreatedAt.IsZero() || r.HasHookToken {
			t.Errorf("new repo: got %+v", r)
		}
		if _, err := s.CreateRepo(ctx, Repo{Name: "acme/web", Forge: ForgeGit}); !errors.Is(err, ErrDuplicate) {
			t.Errorf("duplicate name: got %v, want ErrDuplicate", err)
		}
		if r.GenericHook || r.ForgeURL != "" {
			t.Errorf("new repo: generic hook %v, forge URL %q, want off and empty", r.GenericHook, r.ForgeURL)
		}
		r.CancelPrevious, r.Private, r.StatusAPIURL = true, true, "https://api.github.com"
		r.GenericHook, r.ForgeURL = true, "https://github.com"
		if err := s.UpdateRepo(ctx, *r); err != nil {
			t.Fatal(err)
		}
		got, err := s.Repo(ctx, "acme/web")
		if err != nil {
			t.Fatal(err)
		}
		if !got.CancelPrevious || !got.Private || got.StatusAPIURL != "https://api.github.com" ||
			!got.GenericHook || got.ForgeURL != "https://github.com" {
			t.Errorf("after update: got %+v", got)
		}
		if _, err := s.Repo(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing repo: got %v, want ErrNotFound", err)
		}
		mustRepo(t, s, "acme/api")
		list, err := s.Repos(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "acme/api" {
			t.Errorf("Repos: got %v %v, want [acme/api acme/web]", list, err)
		}

		// Repo tokens: only the hash is stored; the old token stops working on rotation.
		for _, kind := range []RepoToken{HookToken, BadgeToken} {
			if ok, err := s.CheckRepoToken(ctx, r.ID, kind, ""); ok || err != nil {
				t.Errorf("%s: empty token before rotation: got %v %v, want false", kind, ok, err)
			}
			tok1, err := s.RotateRepoToken(ctx, r.ID, kind)
			if err != nil {
				t.Fatal(err)
			}
			tok2, err := s.RotateRepoToken(ctx, r.ID, kind)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				tok  string
				want bool
			}{{tok2, true}, {tok1, false}, {"", false}, {tok2 + "x", false}} {
				if ok, err := s.CheckRepoToken(ctx, r.ID, kind, c.tok); ok != c.want || err != nil {
					t.Errorf("%s: CheckRepoToken(%q): got %v %v, want %v", kind, c.tok, ok, err, c.want)
				}
			}
			var stored string
			col, _ := kind.column()
			if err := s.r.QueryRowContext(ctx, s.rebind(`SELECT `+col+` FROM repos WHERE id = ?`), r.ID).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if stored == tok2 || stored != hashToken(tok2) {
				t.Errorf("%s: stored %q, want the SHA-256 hash of the token", kind, stored)
			}
		}
		got, _ = s.RepoByID(ctx, r.ID)
		if !got.HasHookToken || !got.HasBadgeToken {
			t.Errorf("Has*Token after rotation: got %+v", got)
		}

		// The generic hook finds its repo by the hook token alone.
		hook, err := s.RotateRepoToken(ctx, r.ID, HookToken)
		if err != nil {
			t.Fatal(err)
		}
		if byTok, err := s.RepoByHookToken(ctx, hook); err != nil || byTok.ID != r.ID {
			t.Errorf("RepoByHookToken: got %+v %v, want repo %d", byTok, err, r.ID)
		}
		for _, bad := range []string{"", hook + "x", hashToken(hook)} {
			if _, err := s.RepoByHookToken(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Errorf("RepoByHookToken(%q): got %v, want ErrNotFound", bad, err)
			}
		}
	})
}

func TestTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		plain, tok, err := s.CreateToken(ctx, "ci", access.Admin)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.CheckToken(ctx, plain)
		if err != nil {
			t.Fatalf("CheckToken(valid): %v", err)
		}
		if got.ID != tok.ID || got.Name != "ci" || got.Role != access.Admin {
			t.Errorf("CheckToken: got %+v, want %+v", got, tok)
		}
		for _, bad := range []string{"", "rnl_x", plain[:len(plain)-1]} {
			if _, err := s.CheckToken(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Errorf("CheckToken(%q): got %v, want ErrNotFound", bad, err)
			}
		}
		if err := s.DeleteToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CheckToken(ctx, plain); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoked token: got %v, want ErrNotFound", err)
		}
		for _, role := range access.Roles {
			plain, _, err := s.CreateToken(ctx, "t-"+string(role), role)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.CheckToken(ctx, plain); err != nil || got.Role != role {
				t.Errorf("token with role %s: got %+v, %v", role, got, err)
			}
		}
		if _, _, err := s.CreateToken(ctx, "bad", "root"); err == nil {
			t.Error("CreateToken with role root: no error")
		}
	})
}

func TestDeliveryDedup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		other := mustRepo(t, s, "acme/other")
		nd := func(repoID int64, source, id, payload string) NewDelivery {
			return NewDelivery{RepoID: repoID, Source: source, DeliveryID: id, Event: "push", Payload: []byte(payload)}
		}
		id1, dup, err := s.InsertDelivery(ctx, nd(repo.ID, "github", "d-1", `{"a":1}`))
		if err != nil || dup {
			t.Fatalf("first insert: got dup=%v err=%v, want new", dup, err)
		}
		id2, dup, err := s.InsertDelivery(ctx, nd(repo.ID, "github", "d-1", `{"a":2}`))
		if err != nil || !dup || id2 != id1 {
			t.Fatalf("second insert: got id=%d dup=%v err=%v, want id=%d dup=true", id2, dup, err, id1)
		}
		// Same delivery id from another source is a different delivery.
		if _, dup, err := s.InsertDelivery(ctx, nd(repo.ID, "gitea", "d-1", "")); err != nil || dup {
			t.Errorf("other source: got dup=%v err=%v, want new", dup, err)
		}
		// Deduplication is per repository: another repository's hook may
		// choose the same delivery id (the generic hook's are the sender's).
		if _, dup, err := s.InsertDelivery(ctx, nd(other.ID, "github", "d-1", "")); err != nil || dup {
			t.Errorf("other repository: got dup=%v err=%v, want new", dup, err)
		}
		if _, _, err := s.InsertDelivery(ctx, nd(0, "github", "d-2", "")); err == nil {
			t.Errorf("delivery without a repository: got no error")
		}
		pending, err := s.PendingDeliveries(ctx, 0)
		if err != nil || len(pending) != 3 {
			t.Fatalf("PendingDeliveries: got %d %v, want 3", len(pending), err)
		}
		if pending[0].RepoID != repo.ID || pending[2].RepoID != other.ID {
			t.Errorf("repos of deliveries: got %d, %d, want %d, %d", pending[0].RepoID, pending[2].RepoID, repo.ID, other.ID)
		}
		if string(pending[0].Payload) != `{"a":1}` {
			t.Errorf("payload: got %s, want the first one", pending[0].Payload)
		}
		run := mustRun(t, s, repo.ID, "main", nil)
		if err := s.FinishDelivery(ctx, id1, DeliveryProcessed, run.ID, ""); err != nil {
			t.Fatal(err)
		}
		d, err := s.Delivery(ctx, id1)
		if err != nil || d.State != DeliveryProcessed || d.RunID != run.ID || d.ProcessedAt.IsZero() {
			t.Errorf("after FinishDelivery: got %+v %v", d, err)
		}
		if pending, _ := s.PendingDeliveries(ctx, 0); len(pending) != 2 {
			t.Errorf("pending after finish: got %d, want 2", len(pending))
		}

		// Concurrent redeliveries: exactly one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		fresh := 0
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, dup, err := s.InsertDelivery(ctx, nd(repo.ID, "github", "d-race", ""))
				if err != nil {
					t.Errorf("concurrent insert: %v", err)
					return
				}
				if !dup {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if fresh != 1 {
			t.Errorf("concurrent inserts of one delivery: got %d new, want 1", fresh)
		}
	})
}

func TestCreateRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		r := mustRun(t, s, repo.ID, "main", testPlan())
		if r.Number != 1 || r.Repo != "acme/web" || r.Status != StatusPending || r.Message != "fix; rm -rf /" {
			t.Errorf("run: got %+v", r)
		}
		if r.Plan == nil || len(r.Plan.Stages) != 3 {
			t.Fatalf("plan: got %+v, want 3 stages", r.Plan)
		}
		if len(r.Stages) != 3 {
			t.Fatalf("stages: got %d, want 3", len(r.Stages))
		}
		want := []struct {
			key      string
			steps    int
			approval Approval
		}{{"build", 2, ApprovalNone}, {"test[go=1.22]", 1, ApprovalNone}, {"deploy", 1, ApprovalWaiting}}
		for i, w := range want {
			g := r.Stages[i]
			if g.Key != w.key || len(g.Steps) != w.steps || g.Approval != w.approval || g.Position != i || g.Status != StatusPending {
				t.Errorf("stage %d: got %+v, want key %s, %d steps, approval %s", i, g, w.key, w.steps, w.approval)
			}
		}
		if got := r.Stages[1].Needs; len(got) != 1 || got[0] != "build" {
			t.Errorf("needs: got %v, want [build]", got)
		}
		if !r.Stages[0].Steps[1].AllowFailure || r.Stages[0].Steps[1].Name != "vet" {
			t.Errorf("step: got %+v, want vet with allow_failure", r.Stages[0].Steps[1])
		}
		if r.Stages[2].Environment != "prod" || r.Stages[2].Concurrency != "prod" {
			t.Errorf("deploy stage: got %+v", r.Stages[2])
		}

		// An invalid pipeline: the run is finished at once.
		// An invalid pipeline: the run is finished at once, with its
		// diagnostics.
		diags := []pipeline.Diagnostic{{File: ".pipeline.yml", Line: 3, Col: 5, Code: "missing-field", Message: "m"}}
		bad, err := s.CreateRun(ctx, NewRun{RepoID: repo.ID, Event: pipeline.Event{Kind: pipeline.EventPush, Branch: "main"},
			Trigger: TriggerWebhook, Status: StatusError, Reason: rules.ReasonPipelineInvalid, Diagnostics: diags})
		if err != nil || bad.Status != StatusError || bad.FinishedAt.IsZero() || bad.Reason != rules.ReasonPipelineInvalid ||
			len(bad.Diagnostics) != 1 || bad.Diagnostics[0] != diags[0] {
			t.Errorf("invalid-pipeline run: got %+v %v", bad, err)
		}
		// A pull request from the repository itself is recorded as such.
		pr, err := s.CreateRun(ctx, NewRun{RepoID: repo.ID, Event: pipeline.Event{Kind: pipeline.EventPullRequest, Branch: "main"}, SameRepo: true})
		if err != nil || !pr.SameRepo || r.SameRepo {
			t.Errorf("same-repo pull request: got SameRepo %v (push: %v), %v", pr != nil && pr.SameRepo, r.SameRepo, err)
		}
		if _, err := s.CreateRun(ctx, NewRun{RepoID: 999, Event: pipeline.Event{Kind: pipeline.EventPush}}); !errors.Is(err, ErrNotFound) {
			t.Errorf("run of missing repo: got %v, want ErrNotFound", err)
		}
	})
}

func TestRunNumbersConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		repoA := mustRepo(t, s, "acme/a")
		repoB := mustRepo(t, s, "acme/b")
		const n = 20
		var wg sync.WaitGroup
		numbers := make(chan int64, 2*n)
		for i := 0; i < n; i++ {
			for _, repo := range []*Repo{repoA, repoB} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := s.CreateRun(ctxT(t), NewRun{RepoID: repo.ID, Event: pipeline.Event{Kind: pipeline.EventPush, Branch: "main"},
						Trigger: TriggerWebhook, Plan: testPlan()})
					if err != nil {
						t.Errorf("concurrent CreateRun: %v", err)
						return
					}
					if repo == repoA {
						numbers <- r.Number
					}
				}()
			}
		}
		wg.Wait()
		close(numbers)
		seen := map[int64]bool{}
		for num := range numbers {
			if seen[num] {
				t.Errorf("run number %d given twice", num)
			}
			seen[num] = true
		}
		for i := int64(1); i <= n; i++ {
			if !seen[i] {
				t.Errorf("run number %d missing; got %v", i, seen)
			}
		}
	})
}

func TestRunTransitions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		r := mustRun(t, s, repo.ID, "main", testPlan())
		steps := []struct {
			to   Status
			want error
		}{
			{StatusQueued, nil},
			{StatusPending, ErrConflict}, // never back to pending
			{StatusRunning, nil},
			{StatusQueued, ErrConflict},
			{StatusSuccess, nil},
			{StatusFailure, ErrConflict}, // terminal never changes
			{StatusRunning, ErrConflict},
			{StatusCanceled, ErrConflict},
		}
		for _, st := range steps {
			err := s.UpdateRun(ctx, r.ID, st.to, "")
			if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
				t.Errorf("UpdateRun -> %s: got %v, want %v", st.to, err, st.want)
			}
		}
		got, _ := s.Run(ctx, r.ID)
		if got.Status != StatusSuccess || got.QueuedAt.IsZero() || got.StartedAt.IsZero() || got.FinishedAt.IsZero() {
			t.Errorf("final run: got status %s, times %v %v %v", got.Status, got.QueuedAt, got.StartedAt, got.FinishedAt)
		}
		if err := s.UpdateRun(ctx, 12345, StatusRunning, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing run: got %v, want ErrNotFound", err)
		}

		r2 := mustRun(t, s, repo.ID, "main", nil)
		if err := s.SetRunPendingReason(ctx, r2.ID, "waiting for an agent"); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateRun(ctx, r2.ID, StatusCanceled, rules.ReasonCanceledByUser); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Run(ctx, r2.ID)
		if got.Reason != rules.ReasonCanceledByUser || got.PendingReason != "" {
			t.Errorf("canceled run: got reason %q pending %q", got.Reason, got.PendingReason)
		}
		if err := s.SetRunPendingReason(ctx, r2.ID, "x"); !errors.Is(err, ErrConflict) {
			t.Errorf("pending reason on finished run: got %v, want ErrConflict", err)
		}
	})
}

func TestCanTransition(t *testing.T) {
	all := []Status{StatusPending, StatusWaiting, StatusQueued, StatusRunning, StatusSuccess, StatusFailure, StatusCanceled, StatusError, StatusSkipped}
	for _, from := range all {
		for _, to := range all {
			got := CanTransition(from, to)
			if from.Terminal() && got {
				t.Errorf("CanTransition(%s, %s) = true: terminal must never change", from, to)
			}
			if to == StatusPending && from != StatusWaiting && got {
				t.Errorf("CanTransition(%s, pending) = true, want false", from)
			}
		}
	}
	for _, c := range []struct {
		from, to Status
		want     bool
	}{
		{StatusPending, StatusQueued, true},
		{StatusQueued, StatusRunning, true},
		{StatusRunning, StatusSuccess, true},
		{StatusRunning, StatusSkipped, false},
		{StatusRunning, StatusQueued, false},
		{StatusWaiting, StatusPending, true},
	} {
		if got := CanTransition(c.from, c.to); got != c.want {
			t.Errorf("CanTransition(%s, %s): got %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func TestStageFencing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		r := mustRun(t, s, repo.ID, "main", testPlan())
		build := r.Stages[0]

		if err := s.UpdateStage(ctx, build.ID, 0, StageUpdate{Status: StatusRunning, Agent: "a1"}); !errors.Is(err, ErrConflict) {
			t.Errorf("pending -> running skipping the queue with attempt 0: got %v, want ErrConflict", err)
		}
		a1, err := s.QueueStage(ctx, build.ID)
		if err != nil || a1 != 1 {
			t.Fatalf("QueueStage: got %d %v, want 1", a1, err)
		}
		if err := s.UpdateStage(ctx, build.ID, a1, StageUpdate{Status: StatusRunning, Agent: "a1"}); err != nil {
			t.Fatal(err)
		}
		exit0 := 0
		if err := s.UpdateStep(ctx, build.ID, a1, 0, StepUpdate{Status: StatusRunning, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
		// Agent a1 is lost; the stage is redelivered with a new attempt.
		a2, err := s.QueueStage(ctx, build.ID)
		if err != nil || a2 != 2 {
			t.Fatalf("requeue: got %d %v, want 2", a2, err)
		}
		g, _ := s.Stage(ctx, build.ID)
		if g.Steps[0].Status != StatusPending || g.Agent != "" {
			t.Errorf("after requeue: stage agent %q, step 0 %s; want steps reset", g.Agent, g.Steps[0].Status)
		}
		if err := s.UpdateStage(ctx, build.ID, a1, StageUpdate{Status: StatusFailure}); !errors.Is(err, ErrStale) {
			t.Errorf("stale stage update: got %v, want ErrStale", err)
		}
		if err := s.UpdateStep(ctx, build.ID, a1, 0, StepUpdate{Status: StatusFailure}); !errors.Is(err, ErrStale) {
			t.Errorf("stale step update: got %v, want ErrStale", err)
		}
		if err := s.UpdateStage(ctx, build.ID, a2, StageUpdate{Status: StatusRunning, Agent: "a2"}); err != nil {
			t.Fatal(err)
		}
		for _, u := range []StepUpdate{
			{Status: StatusRunning, Attempts: 1},
			{Status: StatusSuccess, ExitCode: &exit0, LogKey: "logs/1/build/0", LogSize: 42},
		} {
			if err := s.UpdateStep(ctx, build.ID, a2, 0, u); err != nil {
				t.Fatalf("UpdateStep %s: %v", u.Status, err)
			}
		}
		if err := s.UpdateStep(ctx, build.ID, a2, 0, StepUpdate{Status: StatusRunning}); !errors.Is(err, ErrConflict) {
			t.Errorf("finished step back to running: got %v, want ErrConflict", err)
		}
		if err := s.UpdateStep(ctx, build.ID, a2, 7, StepUpdate{Status: StatusRunning}); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing step: got %v, want ErrNotFound", err)
		}
		if err := s.UpdateStage(ctx, build.ID, a2, StageUpdate{Status: StatusSuccess}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateStage(ctx, build.ID, a2, StageUpdate{Status: StatusFailure}); !errors.Is(err, ErrConflict) {
			t.Errorf("terminal stage change: got %v, want ErrConflict", err)
		}
		if _, err := s.QueueStage(ctx, build.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("requeue finished stage: got %v, want ErrConflict", err)
		}
		g, _ = s.Stage(ctx, build.ID)
		st := g.Steps[0]
		if g.Status != StatusSuccess || g.Agent != "a2" || g.Attempt != 2 || g.StartedAt.IsZero() || g.FinishedAt.IsZero() {
			t.Errorf("final stage: got %+v", g)
		}
		if st.ExitCode == nil || *st.ExitCode != 0 || st.LogKey != "logs/1/build/0" || st.LogSize != 42 || st.Attempts != 1 {
			t.Errorf("final step: got %+v", st)
		}

		// Server-side cancel ignores the attempt.
		test := r.Stages[1]
		if err := s.SetStagePendingReason(ctx, test.ID, "needs build"); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateStage(ctx, test.ID, AnyAttempt, StageUpdate{Status: StatusCanceled, Reason: rules.ReasonSuperseded}); err != nil {
			t.Fatal(err)
		}
		g, _ = s.Stage(ctx, test.ID)
		if g.Status != StatusCanceled || g.Reason != rules.ReasonSuperseded || g.PendingReason != "" {
			t.Errorf("canceled stage: got %+v", g)
		}
	})
}

func TestApproval(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		r := mustRun(t, s, repo.ID, "main", testPlan())
		deploy, build := r.Stages[2], r.Stages[0]
		if _, err := s.QueueStage(ctx, deploy.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("queue unapproved stage: got %v, want ErrConflict", err)
		}
		if err := s.UpdateStage(ctx, deploy.ID, AnyAttempt, StageUpdate{Status: StatusWaiting}); err != nil {
			t.Fatal(err)
		}
		if err := s.DecideApproval(ctx, build.ID, true, "ann"); !errors.Is(err, ErrConflict) {
			t.Errorf("approve stage without approval: got %v, want ErrConflict", err)
		}
		if err := s.DecideApproval(ctx, deploy.ID, true, "ann"); err != nil {
			t.Fatal(err)
		}
		if err := s.DecideApproval(ctx, deploy.ID, false, "bob"); !errors.Is(err, ErrConflict) {
			t.Errorf("second decision: got %v, want ErrConflict", err)
		}
		g, _ := s.Stage(ctx, deploy.ID)
		if g.Status != StatusPending || g.Approval != ApprovalApproved || g.ApprovedBy != "ann" {
			t.Errorf("approved stage: got %+v", g)
		}
		if a, err := s.QueueStage(ctx, deploy.ID); err != nil || a != 1 {
			t.Errorf("queue approved stage: got %d %v", a, err)
		}

		r2 := mustRun(t, s, repo.ID, "main", testPlan())
		if err := s.DecideApproval(ctx, r2.Stages[2].ID, false, "bob"); err != nil {
			t.Fatal(err)
		}
		g, _ = s.Stage(ctx, r2.Stages[2].ID)
		if g.Status != StatusCanceled || g.Reason != rules.ReasonApprovalRejected || g.Approval != ApprovalRejected || g.ApprovedBy != "bob" {
			t.Errorf("rejected stage: got %+v", g)
		}
	})
}

func TestQueries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		web := mustRepo(t, s, "acme/web")
		api := mustRepo(t, s, "acme/api")
		finish := func(r *Run, st Status) {
			t.Helper()
			for _, to := range []Status{StatusRunning, st} {
				if err := s.UpdateRun(ctx, r.ID, to, ""); err != nil {
					t.Fatalf("UpdateRun %s: %v", to, err)
				}
			}
		}
		m1 := mustRun(t, s, web.ID, "main", testPlan())
		finish(m1, StatusSuccess)
		m2 := mustRun(t, s, web.ID, "main", testPlan())
		finish(m2, StatusFailure)
		m3 := mustRun(t, s, web.ID, "main", testPlan()) // running
		if err := s.UpdateRun(ctx, m3.ID, StatusRunning, ""); err != nil {
			t.Fatal(err)
		}
		m4 := mustRun(t, s, web.ID, "main", testPlan()) // pending
		f1 := mustRun(t, s, web.ID, "feature", testPlan())
		finish(f1, StatusSuccess)
		tag, err := s.CreateRun(ctx, NewRun{RepoID: web.ID, Event: pipeline.Event{Kind: pipeline.EventTag, Tag: "v1"}, Trigger: TriggerManual})
		if err != nil {
			t.Fatal(err)
		}
		a1 := mustRun(t, s, api.ID, "main", nil)

		ids := func(rs []*Run) []int64 {
			out := []int64{}
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		for _, c := range []struct {
			name string
			f    RunFilter
			want []int64
		}{
			{"all", RunFilter{}, []int64{a1.ID, tag.ID, f1.ID, m4.ID, m3.ID, m2.ID, m1.ID}},
			{"repo", RunFilter{RepoID: api.ID}, []int64{a1.ID}},
			{"branch", RunFilter{RepoID: web.ID, Branch: "main"}, []int64{m4.ID, m3.ID, m2.ID, m1.ID}},
			{"status", RunFilter{Status: []Status{StatusSuccess, StatusFailure}}, []int64{f1.ID, m2.ID, m1.ID}},
			{"event", RunFilter{Event: pipeline.EventTag}, []int64{tag.ID}},
			{"page1", RunFilter{RepoID: web.ID, Limit: 2}, []int64{tag.ID, f1.ID}},
			{"page2", RunFilter{RepoID: web.ID, Limit: 2, Before: f1.ID}, []int64{m4.ID, m3.ID}},
		} {
			got, err := s.ListRuns(ctx, c.f)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if fmt.Sprint(ids(got)) != fmt.Sprint(c.want) {
				t.Errorf("ListRuns %s: got %v, want %v", c.name, ids(got), c.want)
			}
		}

		// Recovery: every unfinished run, with stages and steps.
		un, err := s.UnfinishedRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(un)) != fmt.Sprint([]int64{m3.ID, m4.ID, tag.ID, a1.ID}) {
			t.Errorf("UnfinishedRuns: got %v, want %v", ids(un), []int64{m3.ID, m4.ID, tag.ID, a1.ID})
		}
		if len(un[0].Stages) != 3 || len(un[0].Stages[0].Steps) != 2 {
			t.Errorf("UnfinishedRuns: stages not loaded: %+v", un[0].Stages)
		}

		// Cancel-previous candidates.
		active, err := s.ActiveRuns(ctx, web.ID, "main")
		if err != nil || fmt.Sprint(ids(active)) != fmt.Sprint([]int64{m3.ID, m4.ID}) {
			t.Errorf("ActiveRuns: got %v %v, want %v", ids(active), err, []int64{m3.ID, m4.ID})
		}

		// Badges.
		last, err := s.LatestFinishedRun(ctx, web.ID, "main")
		if err != nil || last.ID != m2.ID || last.Status != StatusFailure {
			t.Errorf("LatestFinishedRun(main): got %+v %v, want run %d failure", last, err, m2.ID)
		}
		if _, err := s.LatestFinishedRun(ctx, api.ID, "main"); !errors.Is(err, ErrNotFound) {
			t.Errorf("LatestFinishedRun without finished runs: got %v, want ErrNotFound", err)
		}
		for _, r := range []*Run{m1, m2} {
			g := r.Stages[1]
			a, err := s.QueueStage(ctx, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.UpdateStage(ctx, g.ID, a, StageUpdate{Status: StatusRunning, Agent: "a"}); err != nil {
				t.Fatal(err)
			}
			want := StatusSuccess
			if r == m1 {
				want = StatusFailure
			}
			if err := s.UpdateStage(ctx, g.ID, a, StageUpdate{Status: want}); err != nil {
				t.Fatal(err)
			}
		}
		g, err := s.LatestFinishedStage(ctx, web.ID, "main", "test")
		if err != nil || g.RunID != m2.ID || g.Status != StatusSuccess {
			t.Errorf("LatestFinishedStage: got %+v %v, want run %d success", g, err, m2.ID)
		}
		if _, err := s.LatestFinishedStage(ctx, web.ID, "main", "build"); !errors.Is(err, ErrNotFound) {
			t.Errorf("LatestFinishedStage(build): got %v, want ErrNotFound", err)
		}

		counts, err := s.CountRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantCounts := "[{acme/api pending 1} {acme/web failure 1} {acme/web pending 2} {acme/web running 1} {acme/web success 2}]"
		if fmt.Sprint(counts) != wantCounts {
			t.Errorf("CountRuns: got %v, want %s", counts, wantCounts)
		}
		sc, err := s.CountStages(ctx)
		if err != nil || len(sc) == 0 {
			t.Errorf("CountStages: got %v %v", sc, err)
		}

		var finished []int64
		if err := s.EachFinishedRun(ctx, func(r *Run) error {
			if len(r.Stages) != 3 {
				return fmt.Errorf("run %d: %d stages", r.ID, len(r.Stages))
			}
			finished = append(finished, r.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(finished) != fmt.Sprint([]int64{m1.ID, m2.ID, f1.ID}) {
			t.Errorf("EachFinishedRun: got %v, want %v", finished, []int64{m1.ID, m2.ID, f1.ID})
		}
	})
}

func TestDeployments(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		run := mustRun(t, s, repo.ID, "main", testPlan())
		commitTime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		mk := func(env, result string, rollsBack int64) int64 {
			t.Helper()
			id, err := s.CreateDeployment(ctx, Deployment{RepoID: repo.ID, Environment: env, RunID: run.ID, StageID: run.Stages[2].ID,
				Commit: "abc", CommitTime: commitTime, RollsBack: rollsBack})
			if err != nil {
				t.Fatal(err)
			}
			if result != "" {
				if err := s.FinishDeployment(ctx, id, result); err != nil {
					t.Fatal(err)
				}
			}
			return id
		}
		p1 := mk("prod", DeploySuccess, 0)
		p2 := mk("prod", DeployFailure, 0)
		p3 := mk("prod", DeploySuccess, p2)
		st1 := mk("staging", DeploySuccess, 0)
		p4 := mk("prod", "", 0) // in progress

		if err := s.FinishDeployment(ctx, p1, DeployFailure); !errors.Is(err, ErrConflict) {
			t.Errorf("finish twice: got %v, want ErrConflict", err)
		}
		last, err := s.LastDeployments(ctx, repo.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(last) != 2 || last["prod"].ID != p3 || last["staging"].ID != st1 {
			t.Errorf("LastDeployments: got %v, want prod=%d staging=%d", last, p3, st1)
		}
		if d := last["prod"]; d.RollsBack != p2 || !d.CommitTime.Equal(commitTime) || d.Repo != "acme/web" || d.FinishedAt.IsZero() {
			t.Errorf("prod deployment: got %+v", d)
		}
		list, err := s.ListDeployments(ctx, DeploymentFilter{RepoID: repo.ID, Environment: "prod"})
		if err != nil || len(list) != 4 || list[0].ID != p4 || list[0].Result != "" {
			t.Errorf("ListDeployments(prod): got %d %v, want 4 newest first", len(list), err)
		}
		var order []int64
		if err := s.EachFinishedDeployment(ctx, func(d *Deployment) error { order = append(order, d.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(order) != fmt.Sprint([]int64{p1, p2, p3, st1}) {
			t.Errorf("EachFinishedDeployment: got %v, want %v", order, []int64{p1, p2, p3, st1})
		}
		counts, err := s.CountDeployments(ctx)
		want := "[{acme/web prod failure 1} {acme/web prod success 2} {acme/web staging success 1}]"
		if err != nil || fmt.Sprint(counts) != want {
			t.Errorf("CountDeployments: got %v %v, want %s", counts, err, want)
		}
	})
}

// TestDeployProgress: a deploy stage's reports make one in-progress
// deployment per run and environment (a re-delivered stage's reports
// find it), carry the release's phase and traffic, and stop at its end.
func TestDeployProgress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		run := mustRun(t, s, repo.ID, "main", testPlan())
		rep := func(phase string, traffic int, outcome string) (int64, error) {
			return s.DeployProgress(ctx, Deployment{RepoID: repo.ID, Environment: "prod", RunID: run.ID, StageID: run.Stages[2].ID, Commit: "abc",
				Release: Release{Provider: "docker", Version: "v2", From: map[bool]string{true: "v1"}[phase == "start"], Phase: phase, Traffic: traffic, Outcome: outcome}})
		}
		id, err := rep("start", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if again, err := rep("shift", 10, ""); err != nil || again != id {
			t.Fatalf("second report: id %d, %v; want the same deployment %d", again, err, id)
		}
		d, err := s.DeploymentOfRun(ctx, run.ID, "prod")
		if err != nil || d.ID != id || d.Result != "" || d.Release != (Release{Provider: "docker", Version: "v2", From: "v1", Phase: "shift", Traffic: 10}) {
			t.Fatalf("in progress: got %+v, %v", d, err)
		}
		if _, err := rep("done", 0, "rolled_back"); err != nil {
			t.Fatal(err)
		}
		finished := time.Now().Truncate(time.Microsecond)
		if err := s.EndDeployment(ctx, id, DeployRolledBack, finished, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.EndDeployment(ctx, id, DeployFailure, finished, 0); !errors.Is(err, ErrConflict) {
			t.Errorf("end twice: got %v, want ErrConflict", err)
		}
		if _, err := rep("shift", 50, ""); !errors.Is(err, ErrConflict) {
			t.Errorf("report after the end: got %v, want ErrConflict", err)
		}
		d, err = s.DeploymentOfRun(ctx, run.ID, "prod")
		if err != nil || d.Result != DeployRolledBack || !d.FinishedAt.Equal(finished) || d.Release.Outcome != "rolled_back" || d.Release.Phase != "done" {
			t.Errorf("ended: got %+v, %v", d, err)
		}
		if _, err := s.DeploymentOfRun(ctx, run.ID, "staging"); !errors.Is(err, ErrNotFound) {
			t.Errorf("no deployment to staging: got %v, want ErrNotFound", err)
		}
	})
}

func TestAgents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		if err := s.UpsertAgent(ctx, Agent{Name: "a1", Labels: map[string]string{"os": "linux"}, Capacity: 2, Version: "1", State: "ready"}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertAgent(ctx, Agent{Name: "a1", Capacity: 4, Version: "2", State: "draining"}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertAgent(ctx, Agent{Name: "a0"}); err != nil {
			t.Fatal(err)
		}
		list, err := s.Agents(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("Agents: got %v %v", list, err)
		}
		a := list[1]
		if a.Name != "a1" || a.Capacity != 4 || a.Version != "2" || a.State != "draining" || len(a.Labels) != 0 || a.LastSeen.IsZero() {
			t.Errorf("upserted agent: got %+v", a)
		}
		if err := s.DeleteAgent(ctx, "a0"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAgent(ctx, "a0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: got %v, want ErrNotFound", err)
		}
	})
}

func TestConcurrentOpen(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		var wg sync.WaitGroup
		stores := make([]*Store, 4)
		for i := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(ctxT(t), dsn, WithLogger(discardLogger()))
				if err != nil {
					t.Errorf("concurrent Open: %v", err)
					return
				}
				stores[i] = s
			}()
		}
		wg.Wait()
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
		s := openTest(t, dsn)
		var n int
		if err := s.r.QueryRowContext(ctxT(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if ms, _ := migrations(s.Dialect()); n != len(ms) {
			t.Errorf("schema_migrations rows after concurrent Opens: got %d, want %d", n, len(ms))
		}
	})
}
