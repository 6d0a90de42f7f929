package transfer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/runnel-ci/runnel/agents/transfer"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

func TestArtifactsReachTheStagesThatNeedThem(t *testing.T) {
	r := newRig(t)
	build := stageOf("build", `mkdir -p out/sub && echo hi > out/bin.txt && echo deep > out/sub/d.txt && ln -s bin.txt out/link
echo odd > foo..bar && echo hidden > .hidden && mkdir -p "ünï cödé" && echo u > "ünï cödé/x" && echo no > notme.txt`)
	build.Artifacts = &pipeline.Artifacts{Paths: []string{"out", "foo..bar", ".hidden", "ünï cödé/*", "missing/**"}, When: pipeline.RunOnSuccess}
	res, log := r.run(build)
	if res.Status != rules.Success {
		t.Fatalf("build: %s (%s)\n%s", res.Status, res.Reason, log)
	}
	mustContain(t, log, "runnel: artifacts: missing/** matches nothing", "runnel: artifacts: uploaded 6 files")

	test := stageOf("test", `cat out/bin.txt out/sub/d.txt out/link foo..bar .hidden "ünï cödé/x"; test ! -e notme.txt`)
	test.Receive = []string{"build"}
	res, log = r.run(test)
	if res.Status != rules.Success {
		t.Fatalf("test: %s (%s)\n%s", res.Status, res.Reason, log)
	}
	mustContain(t, log, "runnel: artifacts of build: received", "hi\ndeep\nhi\nodd\nhidden\nu\n")
}

func TestArtifactsWhen(t *testing.T) {
	for _, tt := range []struct {
		when     pipeline.RunOn
		fail     bool
		uploaded bool
	}{
		{pipeline.RunOnSuccess, false, true},
		{pipeline.RunOnSuccess, true, false},
		{pipeline.RunOnFailure, false, false},
		{pipeline.RunOnFailure, true, true},
		{pipeline.RunOnAlways, true, true},
	} {
		t.Run(string(tt.when), func(t *testing.T) {
			r := newRig(t)
			script := "mkdir out && echo x > out/x"
			if tt.fail {
				script += " && exit 1"
			}
			build := stageOf("build", script)
			build.Artifacts = &pipeline.Artifacts{Paths: []string{"out"}, When: tt.when}
			_, log := r.run(build)
			_, found, err := r.remote.Artifact(context.Background(), "build")
			if err != nil || found != tt.uploaded {
				t.Fatalf("uploaded = %v (%v), want %v\n%s", found, err, tt.uploaded, log)
			}
			test := stageOf("test", "ls")
			test.Receive = []string{"build"}
			_, log = r.run(test)
			if !tt.uploaded {
				mustContain(t, log, "runnel: artifacts of build: none (the stage uploaded no artifacts)")
			}
		})
	}
}

// TestUploadRefusesPathsOutOfTheWorkspace: links that lead out and paths
// read through a link fail the stage, and nothing is uploaded.
func TestUploadRefusesPathsOutOfTheWorkspace(t *testing.T) {
	for _, tt := range []struct {
		name, script, path, want string
	}{
		{"absolute link", "mkdir out && ln -s /etc/passwd out/pw", "out", "leads out of the workspace"},
		{"link up", "mkdir -p out/a && ln -s ../../../x out/a/up", "out", "leads out of the workspace"},
		{"link as a parent", "ln -s /etc out", "out/passwd", "symbolic link"},
		{"hard link", "mkdir out && echo x > out/a && ln out/a out/b", "out", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			st := stageOf("build", tt.script)
			st.Artifacts = &pipeline.Artifacts{Paths: []string{tt.path}, When: pipeline.RunOnSuccess}
			res, log := r.run(st)
			if tt.want == "" {
				// The local engine reads a hard link as the file it is;
				// only the Docker engine reports hard links (and they are
				// refused there, see archive.go).
				if res.Status != rules.Success {
					t.Fatalf("status %s (%s), want success\n%s", res.Status, res.Reason, log)
				}
				return
			}
			if res.Status == rules.Success || !strings.Contains(res.Reason, tt.want) {
				t.Fatalf("status %s (%s), want a failure naming %q\n%s", res.Status, res.Reason, tt.want, log)
			}
			if _, found, _ := r.remote.Artifact(context.Background(), "build"); found {
				t.Error("artifacts were uploaded anyway")
			}
		})
	}
}

// TestExtractRefusesTraversal stores hostile archives as a stage's
// artifacts and checks that the receiving stage fails with a content
// error and nothing lands outside its workspace.
func TestExtractRefusesTraversal(t *testing.T) {
	type ent struct {
		name, link string
		typ        byte
	}
	attacks := []struct {
		name    string
		entries []ent
		raw     []byte // the archive itself, instead of entries
	}{
		{name: "dot-dot", entries: []ent{{name: "../evil", typ: tar.TypeReg}}},
		{name: "deep dot-dot", entries: []ent{{name: "a/../../../evil", typ: tar.TypeReg}}},
		{name: "absolute", entries: []ent{{name: "/tmp/runnel-evil-abs", typ: tar.TypeReg}}},
		{name: "backslash", entries: []ent{{name: `..\..\evil`, typ: tar.TypeReg}}},
		{name: "absolute link", entries: []ent{{name: "l", link: "/", typ: tar.TypeSymlink}, {name: "l/tmp/runnel-evil-link", typ: tar.TypeReg}}},
		{name: "relative link out", entries: []ent{{name: "l", link: "../..", typ: tar.TypeSymlink}, {name: "l/evil", typ: tar.TypeReg}}},
		{name: "link then file through it", entries: []ent{{name: "d/l", link: "..", typ: tar.TypeSymlink}, {name: "d/l/../evil", typ: tar.TypeReg}}},
		{name: "write below a link", entries: []ent{{name: "l", link: ".", typ: tar.TypeSymlink}, {name: "l/evil", typ: tar.TypeReg}}},
		{name: "hard link", entries: []ent{{name: "h", link: "/etc/passwd", typ: tar.TypeLink}}},
		{name: "device", entries: []ent{{name: "dev", typ: tar.TypeChar}}},
		{name: "control character", entries: []ent{{name: "a\x1b[2J", typ: tar.TypeReg}}},
		{name: "empty segment", entries: []ent{{name: "a//../evil", typ: tar.TypeReg}}},
		{name: "long name with dot-dot", entries: []ent{{name: strings.Repeat("d/", 60) + strings.Repeat("../", 62) + "evil", typ: tar.TypeReg}}},
		{name: "pax path with dot-dot", raw: paxPath(t, "../evil")},
		{name: "pax path with NUL", raw: paxPath(t, "x\x00/evil")},
	}
	for _, tt := range attacks {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			buf := bytes.NewBuffer(tt.raw)
			tw := tar.NewWriter(buf)
			for _, e := range tt.entries {
				h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644}
				body := []byte("evil\n")
				if e.typ == tar.TypeReg {
					h.Size = int64(len(body))
				}
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
				if h.Size > 0 {
					tw.Write(body)
				}
			}
			if tt.raw == nil {
				tw.Close()
			}
			if _, err := r.store.Put(context.Background(), transfer.ArtifactKey("run1", "evil"), buf, int64(buf.Len())); err != nil {
				t.Fatal(err)
			}
			parent := filepath.Dir(r.src)
			before := listTree(t, parent)
			st := stageOf("victim", "echo must not run")
			st.Receive = []string{"evil"}
			res, log := r.run(st)
			if res.Status != rules.Failure || !strings.Contains(res.Reason, "artifacts of evil") {
				t.Errorf("status %s (%s), want failure naming the archive\n%s", res.Status, res.Reason, log)
			}
			if strings.Contains(log, "must not run") {
				t.Error("the step ran")
			}
			if after := listTree(t, parent); !slices.Equal(before, after) {
				t.Errorf("files outside the workspace changed:\nbefore %v\nafter  %v", before, after)
			}
			for _, p := range []string{"/tmp/runnel-evil-abs", "/tmp/runnel-evil-link"} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("%s was written", p)
				}
			}
		})
	}
}

// paxPath returns an archive of one file whose ustar header names it
// "innocent" and whose pax record names it path: tar readers go by the
// record.
func paxPath(t *testing.T, path string) []byte {
	filler := strings.Repeat("a", len(path)-3) // "comment=" is 3 bytes longer than "path="
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	h := &tar.Header{Name: "innocent", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, Format: tar.FormatPAX, PAXRecords: map[string]string{"comment": filler}}
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("evil\n"))
	tw.Close()
	b := bytes.Replace(buf.Bytes(), []byte("comment="+filler), []byte("path="+path), 1)
	if bytes.Equal(b, buf.Bytes()) {
		t.Fatal("no pax record to replace")
	}
	return b
}

// listTree lists the paths below dir except the engine's workspaces and
// the fetch cache.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), "runnel-ws-") {
			return filepath.SkipDir
		}
		out = append(out, p)
		return nil
	})
	return out
}

func TestCorruptArtifactFailsNamingTheKey(t *testing.T) {
	r := newRig(t)
	build := stageOf("build", "mkdir out && seq 1 10000 > out/numbers")
	build.Artifacts = &pipeline.Artifacts{Paths: []string{"out"}, When: pipeline.RunOnSuccess}
	if res, log := r.run(build); res.Status != rules.Success {
		t.Fatalf("build: %s\n%s", res.Reason, log)
	}
	key := transfer.ArtifactKey("run1", "build")
	p, err := r.store.ObjectPath(key)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, p, 2000)
	test := stageOf("test", "true")
	test.Receive = []string{"build"}
	res, log := r.run(test)
	if res.Status != rules.Failure || !strings.Contains(res.Reason, key) || !strings.Contains(res.Reason, "checksum") {
		t.Fatalf("status %s (%s), want a checksum failure naming %s\n%s", res.Status, res.Reason, key, log)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x01
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFetch(t *testing.T) {
	body := []byte("#!/bin/sh\necho tool\n")
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		requests.Add(1)
		w.Write(body)
	}))
	defer srv.Close()

	r := newRig(t)
	r.tr.Remote = sharedFetches{r.remote}
	st := stageOf("test", "cat tools/tool.sh")
	st.Fetch = []pipeline.Fetch{{URL: srv.URL + "/tool.sh", SHA256: good, Dest: "tools/tool.sh"}}
	res, log := r.run(st)
	if res.Status != rules.Success || requests.Load() != 1 {
		t.Fatalf("first run: %s (%s), %d requests\n%s", res.Status, res.Reason, requests.Load(), log)
	}
	mustContain(t, log, "runnel: fetch tools/tool.sh: downloaded from "+srv.URL, "echo tool\n")

	// Another agent: its own fetch cache is empty, the store has the file.
	other := newRig(t)
	other.remote.Store = r.store
	other.tr.Remote = sharedFetches{other.remote}
	res, log = other.run(st)
	if res.Status != rules.Success || requests.Load() != 1 {
		t.Fatalf("second agent: %s (%s), %d requests, want still 1\n%s", res.Status, res.Reason, requests.Load(), log)
	}
	mustContain(t, log, "runnel: fetch tools/tool.sh: from the store", "echo tool\n")
	// The same agent again: its cache.
	res, log = other.run(st)
	if res.Status != rules.Success || requests.Load() != 1 {
		t.Fatalf("third run: %s, %d requests\n%s", res.Status, requests.Load(), log)
	}
	mustContain(t, log, "runnel: fetch tools/tool.sh: cached on this agent")

	bad := strings.Repeat("ab", 32)
	st.Fetch[0].SHA256 = bad
	res, log = newRig(t).run(st)
	if res.Status != rules.Failure {
		t.Fatalf("wrong digest: %s (%s), want failure\n%s", res.Status, res.Reason, log)
	}
	for _, want := range []string{srv.URL + "/tool.sh", "expected " + bad, "sha256 " + good} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason %q lacks %q", res.Reason, want)
		}
	}
}

func TestCache(t *testing.T) {
	r := newRig(t)
	if err := os.WriteFile(filepath.Join(r.src, "go.sum"), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := pipeline.Cache{Key: "go", Files: []string{"go.sum"}, Fallback: []string{"go-"}, Paths: []string{".cache"}}
	key1, _, _ := transfer.CacheKey(r.src, c)
	st := stageOf("test", `cat .cache/n 2>/dev/null || echo none; mkdir -p .cache && date +%s%N > .cache/n`)
	st.Cache = []pipeline.Cache{c}

	res, log := r.run(st)
	if res.Status != rules.Success {
		t.Fatalf("%s\n%s", res.Reason, log)
	}
	mustContain(t, log, "runnel: cache "+key1+": miss; nothing to restore", "none\n", "runnel: cache "+key1+": saved 1 file")

	res, log = r.run(st)
	mustContain(t, log, "runnel: cache "+key1+": hit; restored", "runnel: cache "+key1+": hit; not saved again")
	if strings.Contains(log, "none\n") {
		t.Errorf("hit restored nothing:\n%s", log)
	}

	if err := os.WriteFile(filepath.Join(r.src, "go.sum"), []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key2, _, _ := transfer.CacheKey(r.src, c)
	if key2 == key1 {
		t.Fatalf("key did not change with go.sum: %s", key2)
	}
	res, log = r.run(st)
	mustContain(t, log, "runnel: cache "+key2+": miss; fallback restored "+key1, "runnel: cache "+key2+": saved")

	// A run that may not write caches reads them and saves nothing.
	if err := os.WriteFile(filepath.Join(r.src, "go.sum"), []byte("v3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key3, _, _ := transfer.CacheKey(r.src, c)
	r.tr.Remote = readOnly{r.remote}
	res, log = r.run(st)
	mustContain(t, log, "runnel: cache "+key3+": miss; fallback restored", "runnel: cache "+key3+": not saved: this run may not write caches")
	if _, found, exact, _ := r.remote.Cache(context.Background(), key3, nil); found && exact {
		t.Error("a read-only run saved its cache")
	}

	// A failed stage saves nothing.
	r.tr.Remote = r.remote
	failing := stageOf("test", "mkdir -p .cache && echo x > .cache/n && exit 1")
	failing.Cache = []pipeline.Cache{{Key: "failing", Paths: []string{".cache"}}}
	r.run(failing)
	if _, found, _, _ := r.remote.Cache(context.Background(), "failing", nil); found {
		t.Error("a failed stage saved its cache")
	}
	// Downloads and archives are temporary.
	if left, _ := os.ReadDir(r.tr.TempDir); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

type readOnly struct{ *transfer.Local }

// sharedFetches keeps fetched files in the Local's store, as the server's
// store does for every agent (Local itself leaves them to the Fetcher).
type sharedFetches struct{ *transfer.Local }

func (s sharedFetches) Fetched(ctx context.Context, sum string) (transfer.Object, bool, error) {
	info, err := s.Store.Stat(ctx, "fetch/"+sum)
	if err != nil {
		return transfer.Object{}, false, nil
	}
	return transfer.Object{Kind: transfer.KindFetch, Name: sum, Key: info.Key, Size: info.Size, SHA256: info.SHA256}, true, nil
}

func (s sharedFetches) Put(ctx context.Context, kind transfer.Kind, name string, f *os.File, size int64, sum string) error {
	if kind != transfer.KindFetch {
		return s.Local.Put(ctx, kind, name, f, size, sum)
	}
	_, err := s.Store.Put(ctx, "fetch/"+name, f, size)
	return err
}

func (readOnly) CacheWritable() bool { return false }

func TestCorruptCacheIsAMiss(t *testing.T) {
	r := newRig(t)
	st := stageOf("test", `cat .cache/n 2>/dev/null || echo none; mkdir -p .cache && seq 1 5000 > .cache/n`)
	st.Cache = []pipeline.Cache{{Key: "k", Paths: []string{".cache"}}}
	r.run(st)
	p, err := r.store.ObjectPath("cache/repo/k")
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, p, 1500)
	res, log := r.run(st)
	if res.Status != rules.Success {
		t.Fatalf("a corrupt cache failed the stage: %s\n%s", res.Reason, log)
	}
	mustContain(t, log, "runnel: cache k: miss: k is unusable", "checksum", "none\n")
}

func TestCacheKey(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.sum", "a")
	write("sub/go.sum", "b")
	write(".git/go.sum", "ignored")
	c := pipeline.Cache{Key: "go", Files: []string{"**/go.sum"}}
	k1, n, err := transfer.CacheKey(dir, c)
	if err != nil || n != 2 || !strings.HasPrefix(k1, "go-") || len(k1) != len("go-")+16 {
		t.Fatalf("CacheKey = %q, %d, %v; want go-<16 hex> over 2 files", k1, n, err)
	}
	if k, _, _ := transfer.CacheKey(dir, pipeline.Cache{Key: "lit"}); k != "lit" {
		t.Errorf("literal key = %q, want lit", k)
	}
	write(".git/go.sum", "changed")
	if k, _, _ := transfer.CacheKey(dir, c); k != k1 {
		t.Errorf("a file under .git changed the key")
	}
	write("sub/go.sum", "c")
	if k, _, _ := transfer.CacheKey(dir, c); k == k1 {
		t.Errorf("an edited file kept the key")
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link.sum")); err != nil {
		t.Fatal(err)
	}
	if _, n, err := transfer.CacheKey(dir, pipeline.Cache{Key: "l", Files: []string{"link.sum", "*.sum"}}); err != nil || n != 2 {
		t.Errorf("a link is hashed by its target text: n=%d, %v; want 2 (go.sum, link.sum), nil", n, err)
	}
	if k, n, err := transfer.CacheKey("", c); err != nil || n != 0 || !strings.HasPrefix(k, "go-") {
		t.Errorf("empty workspace: %q, %d, %v", k, n, err)
	}
}

// TestFetchRedirects: a fetch follows at most 5 redirects, and only to
// http or https URLs.
func TestFetchRedirects(t *testing.T) {
	body := []byte("tool\n")
	sum := sha256.Sum256(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hops, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/hop/"))
		switch {
		case req.URL.Path == "/ftp":
			http.Redirect(w, req, "ftp://127.0.0.1/tool", http.StatusFound)
		case err != nil:
			http.NotFound(w, req)
		case hops > 0:
			http.Redirect(w, req, fmt.Sprintf("/hop/%d", hops-1), http.StatusFound)
		default:
			w.Write(body)
		}
	}))
	defer srv.Close()
	for _, tt := range []struct {
		path, want string // want: "" for success, else in the reason
	}{
		{"/hop/5", ""},
		{"/hop/6", "more than 5 redirects"},
		{"/ftp", "redirect to a ftp URL"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			st := stageOf("test", "cat tools/tool")
			st.Fetch = []pipeline.Fetch{{URL: srv.URL + tt.path, SHA256: hex.EncodeToString(sum[:]), Dest: "tools/tool"}}
			res, log := newRig(t).run(st)
			if tt.want == "" {
				if res.Status != rules.Success {
					t.Fatalf("%s (%s)\n%s", res.Status, res.Reason, log)
				}
				return
			}
			if res.Status == rules.Success || !strings.Contains(res.Reason, tt.want) {
				t.Fatalf("%s (%s), want a failure saying %q\n%s", res.Status, res.Reason, tt.want, log)
			}
		})
	}
}
