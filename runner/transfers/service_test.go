package transfers_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

// TestArtifactsAcrossAgents: build on one agent uploads through its
// grant, test on another receives; the API lists and serves the archive.
func TestArtifactsAcrossAgents(t *testing.T) {
	r := newRig(t)
	build := stageOf("build", "mkdir -p out && echo hi > out/bin.txt && echo odd > foo..bar")
	build.Artifacts = &pipeline.Artifacts{Paths: []string{"out", "foo..bar"}, When: pipeline.RunOnSuccess}
	test := stageOf("test", "cat out/bin.txt foo..bar")
	test.Receive = []string{"build"}
	run := r.newRun(pipeline.EventPush, build, test)

	res, log := r.agent().run(run, "build")
	if res.Status != rules.Success {
		t.Fatalf("build: %s\n%s", res.Reason, log)
	}
	res, log = r.agent().run(run, "test")
	if res.Status != rules.Success {
		t.Fatalf("test: %s\n%s", res.Reason, log)
	}
	mustContain(t, log, "runnel: artifacts of build: received", "hi\nodd\n")

	list, err := r.svc.List(context.Background(), run.ID)
	if err != nil || len(list) != 1 || list[0].Stage != "build" || list[0].Size == 0 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// The authenticated API (httpapi routes these patterns here) lists
	// the artifacts and streams the archive.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/runs/{id}/artifacts", r.svc.RunArtifacts)
	mux.HandleFunc("GET /api/v1/runs/{id}/artifacts/{stage}", r.svc.RunArtifacts)
	api := httptest.NewServer(mux)
	defer api.Close()
	resp, err := http.Get(api.URL + list[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(body)
	if resp.StatusCode != 200 || hex.EncodeToString(sum[:]) != list[0].SHA256 || resp.Header.Get("X-Runnel-Sha256") != list[0].SHA256 {
		t.Fatalf("download: %d, %d bytes, sha %x; want the listed %s", resp.StatusCode, len(body), sum, list[0].SHA256)
	}
	names := tarNames(t, body)
	if strings.Join(names, ",") != "foo..bar,out/,out/bin.txt" {
		t.Errorf("archive holds %v", names)
	}
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

// TestForkPullRequestReadsButNeverWritesCaches: a push saves the cache;
// a pull request from a fork restores it, and neither its agent nor a
// hand-made call with its token can write one; a pull request from the
// repository itself saves its own.
func TestForkPullRequestReadsButNeverWritesCaches(t *testing.T) {
	r := newRig(t)
	st := stageOf("test", "cat .cache/n 2>/dev/null || echo none; mkdir -p .cache && echo $RANDOM$$ > .cache/n")
	st.Cache = []pipeline.Cache{{Key: "go", Files: []string{"go.sum"}, Fallback: []string{"go-"}, Paths: []string{".cache"}}}
	a := r.agent()
	writeFile(t, a.src+"/go.sum", "v1\n")

	res, log := a.run(r.newRun(pipeline.EventPush, st), "test")
	if res.Status != rules.Success {
		t.Fatalf("push: %s\n%s", res.Reason, log)
	}
	mustContain(t, log, ": miss; nothing to restore", ": saved 1 file")

	writeFile(t, a.src+"/go.sum", "v2 from a fork\n")
	pr := r.newRun(pipeline.EventPullRequest, st)
	res, log = a.run(pr, "test")
	if res.Status != rules.Success {
		t.Fatalf("pull request: %s\n%s", res.Reason, log)
	}
	mustContain(t, log, ": miss; fallback restored go-", "not saved: this run may not write caches")
	if strings.Contains(log, "none\n") {
		t.Errorf("the pull request did not get the default branch's cache:\n%s", log)
	}

	// Its token cannot write, whatever the agent does.
	full, _ := r.db.Run(context.Background(), pr.ID)
	ctx := context.Background()
	stg := full.Stages[0]
	attempt, _ := r.db.QueueStage(ctx, stg.ID)
	grant := r.svc.Grant(full, full.Plan.Stages[0], attempt)
	if grant.CacheWrite {
		t.Fatal("a pull request's grant says it may write caches")
	}
	code, msg := call(t, grant.URL+"/upload", wire.UploadRequest{Kind: wire.ObjectCache, Name: "go-poison", Size: 10, SHA256: strings.Repeat("0", 64)})
	if code != http.StatusForbidden {
		t.Fatalf("cache upload with a pull request's token: %d %s, want 403", code, msg)
	}
	if got := counterValue(t, r, "runnel_cache_lookups_total", "fallback"); got != 1 {
		t.Errorf("fallback lookups = %v, want 1", got)
	}

	writeFile(t, a.src+"/go.sum", "v3 from a branch\n")
	same := r.createRun(store.NewRun{Event: pipeline.Event{Kind: pipeline.EventPullRequest}, SameRepo: true}, st)
	res, log = a.run(same, "test")
	if res.Status != rules.Success {
		t.Fatalf("pull request from the repository: %s\n%s", res.Reason, log)
	}
	mustContain(t, log, ": miss; fallback restored go-", ": saved 1 file")
}

// call POSTs v as JSON and returns the status and body.
func call(t *testing.T, u string, v any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestFetchIsSharedThroughTheStore: the first agent downloads, the second
// gets the store's copy; the HTTP server sees one request. A wrong digest
// fails the stage naming the URL and both digests.
func TestFetchIsSharedThroughTheStore(t *testing.T) {
	r := newRig(t)
	body := []byte("tool\n")
	sum := sha256.Sum256(body)
	var requests atomic.Int64
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		requests.Add(1)
		w.Write(body)
	}))
	defer web.Close()
	st := stageOf("use", "cat bin/tool")
	st.Fetch = []pipeline.Fetch{{URL: web.URL + "/tool", SHA256: hex.EncodeToString(sum[:]), Dest: "bin/tool"}}
	for i, want := range []string{"downloaded from " + web.URL, "from the store"} {
		res, log := r.agent().run(r.newRun(pipeline.EventPush, st), "use")
		if res.Status != rules.Success {
			t.Fatalf("agent %d: %s\n%s", i, res.Reason, log)
		}
		mustContain(t, log, "runnel: fetch bin/tool: "+want, "tool\n")
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the web server got %d requests, want 1", n)
	}
	bad := strings.Repeat("0", 64)
	st.Fetch[0].SHA256 = bad
	res, log := r.agent().run(r.newRun(pipeline.EventPush, st), "use")
	if res.Status != rules.Failure {
		t.Fatalf("wrong digest: %s, want failure\n%s", res.Status, log)
	}
	mustContain(t, res.Reason, web.URL+"/tool", "expected "+bad, hex.EncodeToString(sum[:]))
}

// TestTokenReach: a token reaches only its job's objects, only while its
// stage runs, and not once tampered with or expired.
func TestTokenReach(t *testing.T) {
	r := newRig(t)
	build := stageOf("build", "mkdir out && echo x > out/x")
	build.Artifacts = &pipeline.Artifacts{Paths: []string{"out"}, When: pipeline.RunOnSuccess}
	other := stageOf("other", "true")
	other.Artifacts = &pipeline.Artifacts{Paths: []string{"out"}, When: pipeline.RunOnSuccess}
	test := stageOf("test", "true")
	test.Receive = []string{"build"}
	run := r.newRun(pipeline.EventPush, build, other, test)
	if res, log := r.agent().run(run, "build"); res.Status != rules.Success {
		t.Fatalf("build: %s\n%s", res.Reason, log)
	}
	ctx := context.Background()
	full, _ := r.db.Run(ctx, run.ID)
	tst := full.Stages[2]
	attempt, _ := r.db.QueueStage(ctx, tst.ID)
	grant := r.svc.Grant(full, full.Plan.Stages[2], attempt)

	up := wire.UploadRequest{Kind: wire.ObjectArtifact, Name: "other", Size: 1, SHA256: strings.Repeat("a", 64)}
	for _, tc := range []struct {
		name string
		url  string
		body any
		want int
	}{
		{"receive", grant.URL + "/lookup", wire.LookupRequest{Kind: wire.ObjectArtifact, Name: "build"}, 200},
		{"a stage it does not receive", grant.URL + "/lookup", wire.LookupRequest{Kind: wire.ObjectArtifact, Name: "other"}, 403},
		{"another stage's upload", grant.URL + "/upload", up, 403},
		{"tampered token", strings.Replace(grant.URL, "/transfer/e", "/transfer/f", 1) + "/lookup", wire.LookupRequest{Kind: wire.ObjectArtifact, Name: "build"}, 401},
		{"unknown kind", grant.URL + "/lookup", wire.LookupRequest{Kind: "secrets", Name: "x"}, 400},
		{"bad cache key", grant.URL + "/lookup", wire.LookupRequest{Kind: wire.ObjectCache, Name: "../x"}, 400},
	} {
		if code, msg := call(t, tc.url, tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, msg, tc.want)
		}
	}
	// Once the stage ends the token is dead.
	if err := r.db.UpdateStage(ctx, tst.ID, attempt, storeFailure()); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, grant.URL+"/lookup", wire.LookupRequest{Kind: wire.ObjectArtifact, Name: "build"}); code != 403 {
		t.Errorf("after the stage ended: %d, want 403", code)
	}
	// And it expires.
	r.clock.add(48 * time.Hour)
	if code, _ := call(t, grant.URL+"/lookup", wire.LookupRequest{Kind: wire.ObjectArtifact, Name: "build"}); code != 401 {
		t.Errorf("after expiry: %d, want 401", code)
	}
}

func storeFailure() store.StageUpdate { return store.StageUpdate{Status: store.StatusFailure} }

// counterValue returns the value of a registered counter vector's child.
func counterValue(t *testing.T, r *rig, name, label string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// TestBlobURLs: a signed blob URL allows one method, one key, one size
// and one digest; content with another digest is not kept.
func TestBlobURLs(t *testing.T) {
	r := newRig(t)
	st := stageOf("build", "mkdir out && echo hello > out/f")
	st.Artifacts = &pipeline.Artifacts{Paths: []string{"out"}, When: pipeline.RunOnSuccess}
	test := stageOf("test", "true")
	test.Receive = []string{"build"}
	run := r.newRun(pipeline.EventPush, st, test)
	if res, log := r.agent().run(run, "build"); res.Status != rules.Success {
		t.Fatalf("build: %s\n%s", res.Reason, log)
	}
	ctx := context.Background()
	full, _ := r.db.Run(ctx, run.ID)
	attempt, _ := r.db.QueueStage(ctx, full.Stages[1].ID)
	grant := r.svc.Grant(full, full.Plan.Stages[1], attempt)
	var o wire.Object
	code, msg := call(t, grant.URL+"/lookup", wire.LookupRequest{Kind: wire.ObjectArtifact, Name: "build"})
	if code != 200 || json.Unmarshal([]byte(msg), &o) != nil {
		t.Fatalf("lookup: %d %s", code, msg)
	}
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(o.URL); c != 200 {
		t.Fatalf("GET the signed URL: %d", c)
	}
	u, _ := url.Parse(o.URL)
	for name, edit := range map[string]func(url.Values){
		"other size":   func(q url.Values) { q.Set("n", "1") },
		"other digest": func(q url.Values) { q.Set("h", strings.Repeat("b", 64)) },
		"later expiry": func(q url.Values) { q.Set("e", "99999999999") },
	} {
		q := u.Query()
		edit(q)
		v := *u
		v.RawQuery = q.Encode()
		if c := get(v.String()); c != http.StatusForbidden {
			t.Errorf("GET with %s: %d, want 403", name, c)
		}
	}
	other := strings.Replace(o.URL, "/build/", "/other/", 1)
	if c := get(other); c != http.StatusForbidden {
		t.Errorf("GET of another key: %d, want 403", c)
	}
	// Encoded traversals appended to the signed key reach nothing.
	signed, query, _ := strings.Cut(o.URL, "?")
	for _, p := range []string{"/%2e%2e/%2e%2e/%2e%2e/transfer.key", "/..%2f..%2f..%2f..%2fetc%2fpasswd", "%2f..%2f..%2fother",
		`/..%5c..%5cother`, "%00/../../x", "/%252e%252e/x"} {
		if c := get(signed + p + "?" + query); c == http.StatusOK {
			t.Errorf("GET %s: 200", p)
		}
	}
	// A PUT URL is not a GET URL, and a PUT of other content is refused.
	req, _ := http.NewRequest(http.MethodPut, o.URL, strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT to a GET URL: %v %v, want 403", resp.StatusCode, err)
	}
}

// TestSweep: superseded, unused and never committed objects go, row and
// object; used ones stay.
func TestSweep(t *testing.T) {
	r := newRig(t)
	st := stageOf("test", "mkdir -p .c out && echo x > .c/x && echo y > out/y")
	st.Cache = []pipeline.Cache{{Key: "k", Paths: []string{".c"}}}
	st.Artifacts = &pipeline.Artifacts{Paths: []string{"out"}, When: pipeline.RunOnSuccess, ExpireIn: pipeline.Duration(time.Hour)}
	run := r.newRun(pipeline.EventPush, st)
	if res, log := r.agent().run(run, "test"); res.Status != rules.Success {
		t.Fatalf("%s\n%s", res.Reason, log)
	}
	ctx := context.Background()
	keys := func() []string {
		infos, err := r.store.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, i := range infos {
			out = append(out, i.Key)
		}
		return out
	}
	if got := keys(); len(got) != 2 {
		t.Fatalf("store holds %v, want an artifact and a cache", got)
	}
	if n, err := r.svc.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("early sweep deleted %d (%v)", n, err)
	}
	r.clock.add(2 * time.Hour) // the artifact's expire_in passed; the cache is 7 days
	if n, err := r.svc.Sweep(ctx); n != 1 || err != nil {
		t.Fatalf("sweep deleted %d (%v), want the artifact", n, err)
	}
	if got := keys(); len(got) != 1 || !strings.HasPrefix(got[0], "cache/") {
		t.Fatalf("after the sweep the store holds %v, want the cache only", got)
	}
	r.clock.add(8 * 24 * time.Hour)
	if n, _ := r.svc.Sweep(ctx); n != 1 || len(keys()) != 0 {
		t.Fatalf("unused cache not swept: %d, %v", n, keys())
	}
	if got := counterValue(t, r, "runnel_artifact_store_deleted_total", "cache"); got != 1 {
		t.Errorf("deleted caches = %v, want 1", got)
	}
}
