package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/artifact/fs"
	"github.com/runnel-ci/runnel/internal/s3test"
)

// artifactsPipeline is the pipeline of issue 9 with labels that put build
// and test on different agents, and the same fetch in both stages.
const artifactsPipeline = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    labels: {role: build}
    fetch:
      - {url: URL, sha256: SUM, dest: tools/tool.txt}
    steps: [{name: make, run: "mkdir -p out && echo hi > out/bin.txt && cat tools/tool.txt"}]
    artifacts:
      paths: [out/]
  test:
    image: runnel-test/busybox:latest
    labels: {role: test}
    needs: [build]
    fetch:
      - {url: URL, sha256: SUM, dest: tools/tool.txt}
    cache:
      - key: {prefix: go, files: [go.sum]}
        fallback: [go-]
        paths: [.cache/go-build, .cache/go-mod]
    steps:
      - name: check
        run: |
          cat out/bin.txt tools/tool.txt
          cat .cache/go-build/stamp 2>/dev/null || echo "no cache yet"
          mkdir -p .cache/go-build && echo "cached by run 1" > .cache/go-build/stamp
`

// artifactRig is a cluster with a build agent and a test agent, a
// counting HTTP server for fetches and a repository.
type artifactRig struct {
	c        *cluster
	work     string
	requests atomic.Int64
	web      *httptest.Server
	tool     []byte
}

func newArtifactRig(t *testing.T, extra ...string) *artifactRig {
	r := &artifactRig{tool: []byte("tool bytes\n")}
	r.web = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		w.Write(r.tool)
	}))
	t.Cleanup(r.web.Close)
	r.c = newCluster(t, []string{"ag-build", "ag-test"}, extra...)
	r.c.startAgent("ag-build", "role=build", 2)
	r.c.startAgent("ag-test", "role=test", 2)
	r.c.waitAgents("ag-build", "ag-test")
	bare, work := repoSetup(t, r.c.dir)
	r.work = work
	r.c.addRepo("app", bare)
	if err := os.WriteFile(filepath.Join(work, "go.sum"), []byte("example.com/m v1.0.0 h1:x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *artifactRig) pipeline() string {
	sum := sha256.Sum256(r.tool)
	return strings.NewReplacer("URL", r.web.URL+"/tool.txt", "SUM", hex.EncodeToString(sum[:])).Replace(artifactsPipeline)
}

// trigger starts a run of sha and waits for its end.
func (r *artifactRig) trigger(sha string) runDetail {
	t := r.c.t
	t.Helper()
	code, b := r.c.srv.do("POST", "/api/v1/repos/app/trigger", strings.NewReader(`{"branch":"main","commit":"`+sha+`"}`),
		map[string]string{"Authorization": "Bearer " + r.c.srv.token})
	if code != http.StatusCreated {
		t.Fatalf("trigger: %d %s", code, b)
	}
	var created struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	return r.wait(created.ID)
}

func (r *artifactRig) wait(id int64) runDetail {
	t := r.c.t
	t.Helper()
	var d runDetail
	waitFor(t, 3*time.Minute, fmt.Sprintf("run %d to end", id), func() bool {
		d = r.c.runDetail(id)
		return terminal(run{Status: d.Status})
	})
	return d
}

// stepLog returns the log of the first step of stage id.
func (r *artifactRig) stepLog(d runDetail, id string) string {
	r.c.t.Helper()
	st := d.stage(id)
	if len(st.Steps) == 0 {
		r.c.t.Fatalf("stage %s has no steps: %+v", id, d)
	}
	code, b := r.c.srv.api("GET", st.Steps[0].Log)
	if code != 200 {
		r.c.t.Fatalf("log of %s: %d %s", id, code, b)
	}
	return string(b)
}

func wantLog(t *testing.T, what, log string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(log, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, log)
		}
	}
}

// testArtifactsAcrossAgents is the acceptance on a server: test
// sees build's out/bin.txt although they ran on different agents; the
// fetched file is downloaded once for both agents and both runs; the
// cache misses, is saved, then hits. The run's artifacts are listed and
// downloaded through the API with their SHA-256.
func testArtifactsAcrossAgents(t *testing.T, r *artifactRig) int64 {
	sha := commit(t, r.work, r.pipeline())
	git(t, r.work, "push", "-q", "origin", "main")

	d := r.trigger(sha)
	if d.Status != "success" {
		t.Fatalf("run 1 = %s %s: %+v\nserver log:\n%s", d.Status, d.Reason, d, r.c.srv.log())
	}
	if a, b := d.stage("build").Agent, d.stage("test").Agent; a != "ag-build" || b != "ag-test" {
		t.Fatalf("build ran on %s, test on %s; want ag-build and ag-test", a, b)
	}
	wantLog(t, "run 1 build", r.stepLog(d, "build"), "runnel: fetch tools/tool.txt: downloaded from "+r.web.URL, "runnel: artifacts: uploaded 1 file,")
	wantLog(t, "run 1 test", r.stepLog(d, "test"), "runnel: artifacts of build: received", "hi\ntool bytes\nno cache yet\n",
		"runnel: fetch tools/tool.txt: from the store", ": miss; nothing to restore", ": saved 1 file")

	d2 := r.trigger(sha)
	if d2.Status != "success" {
		t.Fatalf("run 2 = %s %s", d2.Status, d2.Reason)
	}
	wantLog(t, "run 2 test", r.stepLog(d2, "test"), "hi\ntool bytes\ncached by run 1\n", ": hit; restored",
		"runnel: fetch tools/tool.txt: cached on this agent", ": hit; not saved again")
	if n := r.requests.Load(); n != 1 {
		t.Errorf("the fetch server got %d requests over two runs on two agents, want 1", n)
	}

	code, b := r.c.srv.api("GET", fmt.Sprintf("/api/v1/runs/%d/artifacts", d.ID))
	var list []struct {
		Stage, SHA256, URL string
		Size               int64
	}
	if code != 200 || json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0].Stage != "build" {
		t.Fatalf("artifacts of run %d: %d %s", d.ID, code, b)
	}
	code, body := r.c.srv.api("GET", list[0].URL)
	sum := sha256.Sum256(body)
	if code != 200 || hex.EncodeToString(sum[:]) != list[0].SHA256 || int64(len(body)) != list[0].Size {
		t.Fatalf("download: %d, %d bytes sha256 %x; want %d bytes %s", code, len(body), sum, list[0].Size, list[0].SHA256)
	}
	if names := tarNames(t, body); strings.Join(names, " ") != "out/ out/bin.txt" {
		t.Errorf("archive holds %v, want out/ out/bin.txt", names)
	}
	return d.ID
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
			t.Fatalf("read archive: %v", err)
		}
		out = append(out, h.Name)
	}
}

func TestArtifactsAcrossAgentsFilesystem(t *testing.T) {
	r := newArtifactRig(t)
	testArtifactsAcrossAgents(t, r)
	st, err := fs.New(filepath.Join(r.c.dir, "data", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	testBigArtifactAndCorruption(t, r, func(key string) string {
		p, err := st.ObjectPath(key)
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
	// Through the filesystem store the bytes pass the server's blob API.
	wantStreamed(t, "the server", r.c.srv.cmd.Process.Pid)
	// The filesystem store is under the data directory, private.
	fi, err := os.Stat(filepath.Join(r.c.dir, "data", "transfer.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("transfer.key: %v, %v; want mode 0600", fi, err)
	}
}

func TestArtifactsAcrossAgentsS3(t *testing.T) {
	g := s3test.Need(t)
	if err := g.CreateBucket(t.Context(), "runnel-e2e"); err != nil {
		t.Fatal(err)
	}
	for _, kv := range g.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	r := newArtifactRig(t, "--artifact-store", "s3://runnel-e2e/ci", "--s3-endpoint", g.Endpoint, "--s3-path-style")
	testArtifactsAcrossAgents(t, r)
	testBigArtifactAndCorruption(t, r, func(key string) string {
		return filepath.Join(g.Dir, "runnel-e2e", "ci", filepath.FromSlash(key))
	})
}

const bigPipeline = `version: 1
stages:
  big:
    image: runnel-test/busybox:latest
    labels: {role: build}
    timeout: 10m
    steps:
      - name: make
        run: mkdir -p out && head -c 209715200 /dev/urandom > out/big && sha256sum out/big > out/big.sha256
    artifacts: [out/]
  verify:
    image: runnel-test/busybox:latest
    labels: {role: test}
    needs: [big]
    timeout: 10m
    steps: [{name: check, run: sha256sum -c out/big.sha256}]
  later:
    image: runnel-test/busybox:latest
    labels: {role: test}
    needs: [verify]
    artifacts_from: [big]
    approval: true
    steps: [{name: check, run: sha256sum -c out/big.sha256}]
`

// testBigArtifactAndCorruption: a 200 MiB artifact crosses agents with
// its SHA-256 intact, and neither agent holds it in memory; then one byte
// of the stored object (objectPath: the file behind a key) is flipped, and
// the next download (a stage approved afterwards) fails with a checksum
// error naming the key.
func testBigArtifactAndCorruption(t *testing.T, r *artifactRig, objectPath func(key string) string) {
	sha := commit(t, r.work, bigPipeline)
	git(t, r.work, "push", "-q", "origin", "main")
	code, b := r.c.srv.do("POST", "/api/v1/repos/app/trigger", strings.NewReader(`{"branch":"main","commit":"`+sha+`"}`),
		map[string]string{"Authorization": "Bearer " + r.c.srv.token})
	if code != http.StatusCreated {
		t.Fatalf("trigger: %d %s", code, b)
	}
	var created struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal(b, &created)
	var d runDetail
	waitFor(t, 5*time.Minute, "verify to end", func() bool {
		d = r.c.runDetail(created.ID)
		return terminal(run{Status: d.stage("verify").Status}) || terminal(run{Status: d.Status})
	})
	if d.stage("verify").Status != "success" {
		t.Fatalf("verify = %s %s\nlog:\n%s", d.stage("verify").Status, d.stage("verify").Reason, r.stepLog(d, "verify"))
	}
	wantLog(t, "verify", r.stepLog(d, "verify"), "out/big: OK")
	wantStreamed(t, "agent ag-build", r.c.agents["ag-build"].cmd.Process.Pid)
	wantStreamed(t, "agent ag-test", r.c.agents["ag-test"].cmd.Process.Pid)

	key := fmt.Sprintf("runs/%d/big/1.tar", created.ID)
	f, err := os.OpenFile(objectPath(key), os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open the stored object: %v", err)
	}
	one := make([]byte, 1)
	f.ReadAt(one, 100<<20)
	one[0] ^= 0xff
	if _, err := f.WriteAt(one, 100<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, b := r.c.srv.api("POST", fmt.Sprintf("/api/v1/runs/%d/stages/later/approve", created.ID)); code/100 != 2 {
		t.Fatalf("approve: %d %s", code, b)
	}
	d = r.wait(created.ID)
	later := d.stage("later")
	if later.Status != "failure" || !strings.Contains(later.Reason, key) || !strings.Contains(later.Reason, "checksum") {
		t.Fatalf("later = %s %q; want a checksum failure naming %s", later.Status, later.Reason, key)
	}
}

// maxStreamingRSS bounds the peak resident memory of a process that moved
// the 200 MiB artifact: well below its size, so it was streamed.
const maxStreamingRSS = 100 << 20

// wantStreamed checks the peak resident memory (VmHWM) of process pid.
func wantStreamed(t *testing.T, what string, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
		}
	}
	if kb == 0 {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	t.Logf("%s: peak resident memory %d MiB", what, kb>>10)
	if kb<<10 > maxStreamingRSS {
		t.Errorf("%s peaked at %d MiB of resident memory moving a 200 MiB artifact, want at most %d MiB", what, kb>>10, maxStreamingRSS>>20)
	}
}
