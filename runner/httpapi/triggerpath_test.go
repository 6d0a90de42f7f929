package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/internal/gittest"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/deliveryq"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// statusRecorder keeps the commit statuses the runner reports.
type statusRecorder struct {
	mu  sync.Mutex
	all []scm.Status
}

func (r *statusRecorder) Enqueue(s scm.Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, s)
	return nil
}

func (r *statusRecorder) of(commit string) []scm.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []scm.Status
	for _, s := range r.all {
		if s.Commit == commit {
			out = append(out, s)
		}
	}
	return out
}

// forgePush is a signed GitHub push of sha to repository name whose
// payload names cloneURL, posted to /hooks/github/{name}; it returns the
// stored delivery's row once the queue has handled it.
func (e *env) forgePush(name, secret, delivery, ref, sha, cloneURL string) *store.Delivery {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"ref": ref, "before": strings.Repeat("0", 40), "after": sha,
		"repository": map[string]any{"full_name": name, "clone_url": cloneURL}, "head_commit": map[string]any{"id": sha, "message": "c"}})
	code, out := e.do("POST", "/hooks/github/"+name, body, githubHeaders(delivery, secret, body))
	if code != http.StatusAccepted {
		e.t.Fatalf("hook %s: got %d %s, want 202", delivery, code, out)
	}
	repo, err := e.st.Repo(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	// Inserting it again answers the stored row's id and changes nothing.
	id, dup, err := e.st.InsertDelivery(context.Background(), store.NewDelivery{RepoID: repo.ID, Source: "github", DeliveryID: delivery})
	if err != nil || !dup {
		e.t.Fatalf("find delivery %s: %v (duplicate %v)", delivery, err, dup)
	}
	return e.waitDelivery(id)
}

// TestWhenFilteredPush (issue 11, item 1): a push that the pipeline's
// when filters out makes no run and reports no commit status; the
// delivery is recorded ignored, saying why.
func TestWhenFilteredPush(t *testing.T) {
	e := newEnv(t)
	if _, err := e.st.CreateRepo(context.Background(), store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	sha := e.push("version: 1\nwhen:\n  branch: [release]\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n")
	d := e.forgePush("acme/app", "s", "d1", "refs/heads/main", sha, "")
	if d.State != store.DeliveryIgnored || d.RunID != 0 || !strings.Contains(d.Error, "when filters") {
		t.Errorf("delivery: got %s run %d (%q), want ignored without a run, saying the when filters skipped it", d.State, d.RunID, d.Error)
	}
	if code, b := e.do("GET", "/api/v1/runs?repo=acme/app", nil, e.auth()); code != 200 || strings.Contains(b, `"id"`) {
		t.Errorf("runs of acme/app: %d %s, want none", code, b)
	}
	if st := e.stats.of(sha); len(st) != 0 {
		t.Errorf("commit statuses of a skipped push: %+v, want none", st)
	}
}

// TestForgeRepoWithoutCloneURL (issue 11, items 2 and 11): a forge
// repository registered without a clone URL takes its code from the
// clone URL its event names, only on its forge's host; the source is
// resolved once, stored with the run, used to dispatch the stages (the
// step sees the checkout) and by a rerun. A clone URL elsewhere (a
// loopback listener) is never fetched: the run ends error/source_refused.
func TestForgeRepoWithoutCloneURL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	forge := gittest.ServeHTTP(t, filepath.Dir(e.bare))
	var fetched atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		http.NotFound(w, r)
	}))
	defer other.Close()
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: "github", ForgeURL: forge.URL, WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	sha := e.pushFile("marker.txt", "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: test -f marker.txt\n")
	clone := forge.URL + "/" + filepath.Base(e.bare)

	d := e.forgePush("acme/app", "s", "d1", "refs/heads/main", sha, clone)
	if d.State != store.DeliveryProcessed || d.RunID == 0 {
		t.Fatalf("delivery: got %s run %d (%s), want processed", d.State, d.RunID, d.Error)
	}
	run := e.waitRun(d.RunID)
	if run.Status != store.StatusSuccess || run.SourceURL != clone {
		t.Fatalf("run: got %s/%s from %q, want success from %q (the step checks the checkout)", run.Status, run.Reason, run.SourceURL, clone)
	}
	code, b := e.do("POST", fmt.Sprintf("/api/v1/runs/%d/rerun", run.ID), nil, e.auth())
	var rerun RunView
	json.Unmarshal([]byte(b), &rerun)
	if code != http.StatusCreated {
		t.Fatalf("rerun: %d %s", code, b)
	}
	if rerun = e.waitRun(rerun.ID); rerun.Status != store.StatusSuccess || rerun.SourceURL != clone {
		t.Errorf("rerun: got %s/%s from %q, want success from %q", rerun.Status, rerun.Reason, rerun.SourceURL, clone)
	}

	d = e.forgePush("acme/app", "s", "d2", "refs/heads/main", sha, other.URL+"/acme/app.git")
	if d.State != store.DeliveryProcessed || d.RunID == 0 {
		t.Fatalf("delivery naming another host: got %s run %d (%s), want processed with a run", d.State, d.RunID, d.Error)
	}
	if run := e.waitRun(d.RunID); run.Status != store.StatusError || run.Reason != rules.ReasonSourceRefused ||
		len(run.Diagnostics) != 1 || !strings.Contains(run.Diagnostics[0].Message, "not on the scheme and host") {
		t.Errorf("run of a clone URL off the forge: got %s/%s %+v, want error/source_refused saying why", run.Status, run.Reason, run.Diagnostics)
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the server made %d requests to a clone URL off the forge, want none", n)
	}
}

// TestAcceptedDeliveryNeverVanishes (issue 11, item 6): a delivery that
// was answered 202 but cannot become a normal run becomes a visible run
// ended error with its reason, at once when the cause is permanent (a
// pipeline file over 1 MiB, a ref git refuses) and after its retries
// when it may pass (the forge refusing connections).
func TestAcceptedDeliveryNeverVanishes(t *testing.T) {
	e := newEnvWith(t, nil, func(c *deliveryq.Config) { c.Backoff = []time.Duration{time.Millisecond, time.Millisecond} })
	ctx := context.Background()
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	// A port nobody listens on: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/acme/down.git"
	ln.Close()
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/down", Forge: "github", CloneURL: refused, WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	big := "version: 1\n# " + strings.Repeat("x", 10<<20) + "\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n"
	bigSHA := e.push(big)
	sha := e.push(onePipeline)
	tests := []struct {
		name, repo, ref, sha string
		reason, code, says   string
		attempts             int
	}{
		{"10 MB pipeline file", "acme/app", "refs/heads/main", bigSHA, "pipeline_invalid", "file-too-large", "limit", 0},
		{"ref with ..", "acme/app", "refs/heads/a..b", sha, rules.ReasonSourceRefused, "", "ref", 0},
		{"forge refusing connections", "acme/down", "refs/heads/main", sha, rules.ReasonFetchFailed, "", "connect", 2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.forgePush(tc.repo, "s", fmt.Sprint("v", i), tc.ref, tc.sha, "")
			if d.State != store.DeliveryProcessed || d.RunID == 0 || d.Attempts != tc.attempts {
				t.Fatalf("delivery: got %s run %d after %d failed attempts (%s), want processed with a run after %d",
					d.State, d.RunID, d.Attempts, d.Error, tc.attempts)
			}
			run := e.waitRun(d.RunID)
			if run.Status != store.StatusError || run.Reason != tc.reason || len(run.Diagnostics) != 1 ||
				run.Diagnostics[0].Code != tc.code || !strings.Contains(run.Diagnostics[0].Message, tc.says) {
				t.Errorf("run: got %s/%s %+v, want error/%s with a diagnostic %q saying %q", run.Status, run.Reason,
					run.Diagnostics, tc.reason, tc.code, tc.says)
			}
		})
	}
}

// hangingForge accepts connections and never answers, until the test
// ends; it returns its base URL and the count of connections made.
func hangingForge(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String(), &n
}

// TestHangingForgeDelaysNoOne (issue 11, item 5): four pushes to a
// repository whose clone URL hangs do not delay another repository's
// run: from its hook's 202 to its run, the other repository waits no
// more than 1 s longer than it does with nothing hanging.
func TestHangingForgeDelaysNoOne(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	forge, fetches := hangingForge(t)
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/slow", Forge: "github", CloneURL: forge + "/acme/slow.git", WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/fast", Forge: "github", CloneURL: e.bare, WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	sha := e.push(onePipeline)
	hookToRun := func(delivery string) time.Duration {
		t.Helper()
		start := time.Now()
		d := e.forgePush("acme/fast", "s", delivery, "refs/heads/main", sha, "")
		if d.State != store.DeliveryProcessed || d.RunID == 0 {
			t.Fatalf("fast delivery %s: %s run %d (%s), want a run", delivery, d.State, d.RunID, d.Error)
		}
		return time.Since(start)
	}
	alone := hookToRun("alone")
	for i := range 4 {
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": sha, "repository": map[string]any{"full_name": "acme/slow"}})
		if code, b := e.do("POST", "/hooks/github/acme/slow", body, githubHeaders(fmt.Sprint("slow", i), "s", body)); code != http.StatusAccepted {
			t.Fatalf("slow hook %d: %d %s", i, code, b)
		}
	}
	// The slow repository's first delivery is being triggered: its
	// fetch has connected and hangs.
	waitUntil(t, "the slow repository's fetch to hang", func() bool { return fetches.Load() > 0 })
	during := hookToRun("during")
	t.Logf("fast repository, hook to run: %v alone, %v while acme/slow hangs", alone.Round(time.Millisecond), during.Round(time.Millisecond))
	if during > alone+time.Second {
		t.Errorf("a hanging clone URL delayed another repository's run by %v, want < 1s", during-alone)
	}
	if s := e.deliveryStates("acme/slow"); s != "received received received received" {
		t.Errorf("slow repository's deliveries: %s, want all still received (hanging, or waiting behind the hanging one)", s)
	}
}

// deliveryStates lists the states of repo name's deliveries slow0..slow3.
func (e *env) deliveryStates(name string) string {
	e.t.Helper()
	repo, err := e.st.Repo(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	var states []string
	for i := range 4 {
		id, dup, err := e.st.InsertDelivery(context.Background(), store.NewDelivery{RepoID: repo.ID, Source: "github", DeliveryID: fmt.Sprint("slow", i)})
		if err != nil || !dup {
			e.t.Fatalf("find delivery slow%d: %v (stored before: %v)", i, err, dup)
		}
		d, err := e.st.Delivery(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		states = append(states, d.State)
	}
	return strings.Join(states, " ")
}
