package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/runner/deliveryq"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// waitDelivery waits until delivery id is no longer received.
func (e *env) waitDelivery(id int64) *store.Delivery {
	e.t.Helper()
	var d *store.Delivery
	waitFor(e.t, 60*time.Second, fmt.Sprintf("delivery %d handled", id), func() bool {
		var err error
		if d, err = e.st.Delivery(context.Background(), id); err != nil {
			e.t.Fatal(err)
		}
		return d.State != store.DeliveryReceived
	})
	return d
}

// waitFor polls cond on a ticker until it holds.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// runsPerCommit counts the runs of repoID by commit.
func (e *env) runsPerCommit(repoID int64) map[string]int {
	e.t.Helper()
	got := map[string]int{}
	var before int64
	for {
		runs, err := e.st.ListRuns(context.Background(), store.RunFilter{RepoID: repoID, Before: before, Limit: 1000})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(runs) == 0 {
			return got
		}
		for _, r := range runs {
			got[r.Commit]++
			before = r.ID
		}
	}
}

const onePipeline = "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n"

// TestResumeAfterCrash: deliveries a previous process stored (202) but
// never triggered, more of them than the queue holds, each become exactly
// one run after Resume; a delivery already linked to a run is not
// triggered again, however often the sweeper runs.
func TestResumeAfterCrash(t *testing.T) {
	e := newEnvWith(t, nil, func(c *deliveryq.Config) { c.Held = 4; c.SweepInterval = time.Hour })
	ctx := context.Background()
	repo, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "x"})
	if err != nil {
		t.Fatal(err)
	}
	// Distinct commits, so that runs can be told apart.
	const n = 25 // several sweeps' worth
	var ids []int64
	commits := map[string]bool{}
	for i := range n {
		sha := e.pushFile(fmt.Sprintf("f%d", i), onePipeline)
		commits[sha] = true
		ev, _ := json.Marshal(scm.Event{Forge: "github", Delivery: fmt.Sprintf("c%d", i), Kind: "push", Repo: repo.Name,
			Ref: "refs/heads/main", Branch: "main", Commit: sha})
		id, _, err := e.st.InsertDelivery(ctx, store.NewDelivery{RepoID: repo.ID, Source: "github",
			DeliveryID: fmt.Sprintf("c%d", i), Event: "push", Payload: ev})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// One of them was triggered by the previous process: its run was
	// created and linked (atomically) before the crash.
	done, err := e.st.CreateRun(ctx, store.NewRun{RepoID: repo.ID, DeliveryID: ids[0],
		Event: (&scm.Event{Kind: "push", Commit: "already"}).PipelineEvent(), Trigger: store.TriggerWebhook})
	if err != nil {
		t.Fatal(err)
	}
	e.q.Resume()
	e.q.Resume() // a second kick while the first sweep runs
	for i, id := range ids {
		d := e.waitDelivery(id)
		if d.State != store.DeliveryProcessed || d.RunID == 0 {
			t.Fatalf("delivery %d: got %s run %d (%s), want processed with a run", i, d.State, d.RunID, d.Error)
		}
		if i == 0 && d.RunID != done.ID {
			t.Errorf("delivery linked before the crash: got run %d, want %d", d.RunID, done.ID)
		}
	}
	e.q.Resume() // sweeps after everything was handled trigger nothing
	// no event: these sweeps find nothing due, and deliveryq marks neither
	// the end of a sweep nor its workers' being idle; a wrongly re-triggered
	// delivery would show as a second run within this time.
	time.Sleep(300 * time.Millisecond)
	got := e.runsPerCommit(repo.ID)
	if got["already"] != 1 {
		t.Errorf("runs of the delivery triggered before the crash: got %d, want 1", got["already"])
	}
	for sha := range commits {
		want := 1
		if sha == commitOf(t, e, ids[0]) {
			want = 0 // its run is "already"
		}
		if got[sha] != want {
			t.Errorf("runs of commit %s: got %d, want %d", sha, got[sha], want)
		}
	}
}

func commitOf(t *testing.T, e *env, id int64) string {
	d, err := e.st.Delivery(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var ev scm.Event
	if err := json.Unmarshal(d.Payload, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Commit
}

// TestHookQueueOverflow: with one worker and a queue of one, a burst of
// hooks overflows the queue; the overflow waits in the store and the
// sweeper triggers it: every accepted delivery becomes exactly one run.
func TestHookQueueOverflow(t *testing.T) {
	e := newEnvWith(t, nil, func(c *deliveryq.Config) { c.Workers = 1; c.Held = 1; c.SweepInterval = time.Hour })
	ctx := context.Background()
	repo, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var shas []string
	for i := range n {
		shas = append(shas, e.pushFile(fmt.Sprintf("f%d", i), onePipeline))
	}
	for i, sha := range shas {
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": sha,
			"repository": map[string]any{"full_name": "acme/app", "clone_url": e.bare}, "head_commit": map[string]any{"id": sha, "message": "c"}})
		code, b := e.do("POST", "/hooks/github/acme/app", body, map[string]string{"X-GitHub-Event": "push",
			"X-GitHub-Delivery": fmt.Sprintf("o%d", i), "Content-Type": "application/json", "X-Hub-Signature-256": sign("s3cret", body)})
		if code != 202 {
			t.Fatalf("hook %d: got %d %s, want 202", i, code, b)
		}
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("runs of %d deliveries", n), func() bool {
		got := e.runsPerCommit(repo.ID)
		total := 0
		for _, sha := range shas {
			if got[sha] > 1 {
				t.Fatalf("commit %s: got %d runs, want 1", sha, got[sha])
			}
			total += got[sha]
		}
		return total == n
	})
}

// TestRepoCacheInvalidation: a webhook secret changed in the store is
// used at once after InvalidateRepos (which the API's repo changes call);
// without it the cached repo would be used until the TTL ends.
func TestRepoCacheInvalidation(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.RepoCacheTTL = time.Hour }, nil)
	ctx := context.Background()
	repo, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "old"})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"zen":"x","repository":{"full_name":"acme/app"}}`)
	ping := func(secret string) int {
		code, _ := e.do("POST", "/hooks/github", body, map[string]string{"X-GitHub-Event": "ping",
			"X-GitHub-Delivery": "p", "Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)})
		return code
	}
	if got := ping("old"); got != 202 {
		t.Fatalf("old secret: got %d, want 202", got)
	}
	repo.WebhookSecret = "new"
	if err := e.st.UpdateRepo(ctx, *repo); err != nil {
		t.Fatal(err)
	}
	if got := ping("old"); got != 202 {
		t.Errorf("old secret before invalidation: got %d, want 202 (cached)", got)
	}
	e.api.InvalidateRepos()
	tests := []struct {
		secret string
		want   int
	}{{"old", 401}, {"new", 202}}
	for _, tt := range tests {
		if got := ping(tt.secret); got != tt.want {
			t.Errorf("secret %q after invalidation: got %d, want %d", tt.secret, got, tt.want)
		}
	}
}

func BenchmarkRepoFromPayload(b *testing.B) {
	body, err := os.ReadFile("../../scm/github/testdata/push.with-new-branch.json")
	if err != nil {
		b.Fatal(err)
	}
	if got := repoFromPayload(body); got != "Codertocat/Hello-World" {
		b.Fatalf("got %q", got)
	}
	for b.Loop() {
		repoFromPayload(body)
	}
}

func TestRepoFromPayload(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`{"ref":"x","commits":[{"a":[1,{"b":2}]}],"repository":{"id":1,"owner":{"login":"o"},"full_name":"o/r"},"after":"y"}`, "o/r"},
		{`{"repository":{"full_name":"o/r"},"x":[`, "o/r"},
		{`{"project":{"path_with_namespace":"g/p"},"repository":{"name":"p"}}`, "g/p"},
		{`{"repository":{"name":"p"},"project":{"path_with_namespace":"g/p"}}`, "g/p"},
		{`{"x":1}`, ""},
		{`[1,2]`, ""},
		{`not json`, ""},
		{`{"repository":"o/r"}`, ""},
		{` { "a" : "x\"}" , "n": -1.5e3, "t": true, "repository" : { "full_name" : "o/\u0072" } }`, "o/r"},
		{`{"a":"}","repository":{"x":{"full_name":"no"},"full_name":"o/r"}}`, "o/r"},
		{`{"a":"unterminated`, ""},
		{`{"repository":{"full_name":"o/r"`, ""},
	}
	for _, tt := range tests {
		if got := repoFromPayload([]byte(tt.body)); got != tt.want {
			t.Errorf("repoFromPayload(%s): got %q, want %q", tt.body, got, tt.want)
		}
	}
}
