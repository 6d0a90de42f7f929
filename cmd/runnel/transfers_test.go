package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// issuePipeline is the pipeline of issue 9, with the fetch URL and digest
// filled in.
const issuePipeline = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps: [{name: make, run: "mkdir -p out && echo hi > out/bin.txt"}]
    artifacts:
      paths: [out/]
  test:
    image: runnel-test/busybox:latest
    needs: [build]
    fetch:
      - url: URL
        sha256: SUM
        dest: tools/tool.tgz
    cache:
      - key: {prefix: go, files: [go.sum]}
        fallback: [go-]
        paths: [.cache/go-build, .cache/go-mod]
    steps:
      - name: check
        run: |
          cat out/bin.txt
          cat tools/tool.tgz
          cat .cache/go-build/stamp 2>/dev/null || echo "no cache yet"
          mkdir -p .cache/go-build .cache/go-mod && echo "cached by an earlier run" > .cache/go-build/stamp
`

// runTransfers runs the issue's pipeline twice with backend: test sees
// build's out/bin.txt and the fetched file; the first run misses the
// cache and downloads; the second hits the cache and does not download.
func runTransfers(t *testing.T, backend string) {
	tool := []byte("tool bytes\n")
	sum := sha256.Sum256(tool)
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write(tool)
	}))
	defer srv.Close()
	dir := t.TempDir()
	p := strings.NewReplacer("URL", srv.URL+"/tool.tgz", "SUM", hex.EncodeToString(sum[:])).Replace(issuePipeline)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, ".pipeline.yml"), []byte(p), 0o644))
	must(os.WriteFile(filepath.Join(dir, "go.sum"), []byte("example.com/m v1.0.0 h1:x\n"), 0o644))
	cache := t.TempDir()

	r := runnel(t, dir, "run", "--backend", backend, "--pull", "never", "--cache-dir", cache)
	if r.code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"test/check | runnel: artifacts of build: received",
		"test/check | hi\n",
		"test/check | tool bytes\n",
		"test/check | no cache yet\n",
		"test/check | runnel: fetch tools/tool.tgz: downloaded from " + srv.URL,
		"test/check | runnel: cache go-",
		": miss; nothing to restore",
		": saved 1 file",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("first run: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runnel(t, dir, "run", "--backend", backend, "--pull", "never", "--cache-dir", cache)
	if r.code != 0 {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"test/check | hi\n",
		"test/check | cached by an earlier run\n",
		"test/check | runnel: fetch tools/tool.tgz: cached on this agent",
		": hit; restored",
		": hit; not saved again",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("second run: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the fetch server got %d requests, want 1", n)
	}
	// Run artifacts do not pile up on the laptop.
	if left, _ := filepath.Glob(filepath.Join(cache, "store", "objects", "runs.d", "*")); len(left) != 0 {
		t.Errorf("run artifacts left behind: %v", left)
	}
}

func TestRunTransfersLocal(t *testing.T) { runTransfers(t, "local") }

func TestRunTransfersDocker(t *testing.T) {
	needDocker(t)
	runTransfers(t, "docker")
}
