package gitmirror

import (
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-ci/runnel/internal/gittest"
)

// run runs git in dir (internal/gittest).
func run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.Run(t, dir, args...)
}

// fixture is a bare repository with a working clone to commit from.
type fixture struct{ bare, work string }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{bare: filepath.Join(root, "r.git"), work: filepath.Join(root, "w")}
	run(t, root, "init", "-q", "--bare", "-b", "main", f.bare)
	run(t, root, "clone", "-q", f.bare, f.work)
	run(t, f.work, "checkout", "-q", "-b", "main")
	return f
}

// commit writes files, commits, pushes to main and returns the SHA.
func (f *fixture) commit(t *testing.T, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(f.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, f.work, "add", ".")
	run(t, f.work, "commit", "-qm", "change")
	run(t, f.work, "push", "-q", "origin", "HEAD:refs/heads/main")
	return run(t, f.work, "rev-parse", "HEAD")
}

// objectCount is the number of objects in the git directory dir.
func objectCount(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(run(t, dir, "count-objects", "-v"), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		if k == "count" || k == "in-pack" {
			i, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			n += i
		}
	}
	return n
}

func TestCheckout(t *testing.T) {
	f := newFixture(t)
	first := f.commit(t, map[string]string{"a.txt": "one", "sub/b.txt": "b"})
	second := f.commit(t, map[string]string{"a.txt": "two"})
	c, err := NewCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url, sha, ref, want string
	}{
		{"path, tip", f.bare, second, "refs/heads/main", "two"},
		{"path, older commit", f.bare, first, "refs/heads/main", "one"},
		{"file URL", "file://" + f.bare, first, "", "one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "ws")
			if err := c.Checkout(context.Background(), Source{URL: tt.url, Commit: tt.sha, Ref: tt.ref}, dest); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]string{"a.txt": tt.want, "sub/b.txt": "b"} {
				if b, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(b) != want {
					t.Errorf("%s = %q, %v; want %q", name, b, err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(dest, ".git")); err == nil {
				t.Errorf("workspace has a .git entry linking to the cache")
			}
		})
	}
	if err := c.Checkout(context.Background(), Source{URL: f.bare, Commit: first}, f.work); err == nil {
		t.Errorf("Checkout into a non-empty directory: got nil error, want one")
	}
}

// TestFetchIncremental checks that a warm cache fetches only new objects
// and nothing at all for a cached commit.
func TestFetchIncremental(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sha1 := f.commit(t, map[string]string{"a.txt": "one", "sub/b.txt": "b"})
	mirror, err := c.Fetch(ctx, Source{URL: f.bare, Commit: sha1, Ref: "refs/heads/main"})
	if err != nil {
		t.Fatal(err)
	}
	before := objectCount(t, mirror)
	sha2 := f.commit(t, map[string]string{"a.txt": "two"})
	if _, err := c.Fetch(ctx, Source{URL: f.bare, Commit: sha2, Ref: "refs/heads/main"}); err != nil {
		t.Fatal(err)
	}
	// commit, root tree, blob: only what is new was fetched.
	if got, want := objectCount(t, mirror)-before, 3; got != want {
		t.Errorf("second fetch added %d objects to the cache, want %d", got, want)
	}
	n := objectCount(t, mirror)
	if _, err := c.Fetch(ctx, Source{URL: f.bare, Commit: sha1}); err != nil {
		t.Fatal(err)
	}
	if got := objectCount(t, mirror); got != n {
		t.Errorf("fetching a cached commit changed the cache from %d to %d objects", n, got)
	}
	if got := run(t, mirror, "cat-file", "blob", sha2+":a.txt"); got != "two" {
		t.Errorf("mirror has a.txt = %q at the second commit, want %q", got, "two")
	}
}

func TestCheckoutConcurrent(t *testing.T) {
	f := newFixture(t)
	sha := f.commit(t, map[string]string{"a.txt": "one"})
	dir := t.TempDir()
	var g errgroup.Group
	dsts := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b"), filepath.Join(t.TempDir(), "c")}
	for _, dst := range dsts {
		// One Cache per goroutine: the file lock must serialise them, as
		// it does for processes sharing the directory.
		c, err := NewCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		g.Go(func() error {
			return c.Checkout(context.Background(), Source{URL: f.bare, Commit: sha, Ref: "refs/heads/main"}, dst)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, dst := range dsts {
		if b, err := os.ReadFile(filepath.Join(dst, "a.txt")); err != nil || string(b) != "one" {
			t.Errorf("%s/a.txt = %q, %v; want %q", dst, b, err, "one")
		}
	}
}

func TestValidateRefusesUnsafe(t *testing.T) {
	sha := strings.Repeat("a", 40)
	tests := []struct {
		name string
		src  Source
	}{
		{"option URL", Source{URL: "--upload-pack=touch /tmp/x", Commit: sha}},
		{"ext transport", Source{URL: "ext::sh -c touch% /tmp/x", Commit: sha}},
		{"fd transport", Source{URL: "fd::3", Commit: sha}},
		{"control characters", Source{URL: "https://example.com/r.git\n", Commit: sha}},
		{"short sha", Source{URL: "/r.git", Commit: "abc"}},
		{"option sha", Source{URL: "/r.git", Commit: "--all"}},
		{"option ref", Source{URL: "/r.git", Commit: sha, Ref: "--foo"}},
		{"refspec ref", Source{URL: "/r.git", Commit: sha, Ref: "refs/heads/a:refs/heads/b"}},
		{"wildcard ref", Source{URL: "/r.git", Commit: sha, Ref: "refs/heads/*"}},
		{"short ref", Source{URL: "/r.git", Commit: sha, Ref: "main"}},
		{"option ref part", Source{URL: "/r.git", Commit: sha, Ref: "refs/heads/-x"}},
		{"empty", Source{Commit: sha}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.src.Validate(); !errors.Is(err, ErrUnsafe) {
				t.Errorf("Validate(%+v) = %v, want ErrUnsafe", tt.src, err)
			}
			if err := (&Cache{dir: t.TempDir()}).Checkout(context.Background(), tt.src, t.TempDir()); !errors.Is(err, ErrUnsafe) {
				t.Errorf("Checkout(%+v) = %v, want ErrUnsafe", tt.src, err)
			}
		})
	}
	for _, u := range []string{"https://example.com/a/b.git", "git@example.com:a/b.git", "ssh://git@example.com/a/b.git", "/srv/git/r.git"} {
		if err := (Source{URL: u, Commit: sha, Ref: "refs/heads/main"}).Validate(); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", u, err)
		}
	}
}

// TestCheckoutHTTPCredentials serves the fixture with git http-backend
// and checks that the token reaches the server as basic auth and nowhere
// on disk, and that a SHA is fetched by itself when no ref is given.
func TestCheckoutHTTPCredentials(t *testing.T) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	sha := f.commit(t, map[string]string{"a.txt": "a"})
	var mu sync.Mutex
	var auths []string
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(f.bare), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != "x-access-token" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(f.bare)
	dst := filepath.Join(t.TempDir(), "ws")
	cacheDir := t.TempDir()
	c, err := NewCache(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	src := Source{URL: url, Commit: sha, Username: "x-access-token", Password: "s3cret"}
	if err := c.Checkout(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "a.txt")); err != nil || string(b) != "a" {
		t.Errorf("a.txt = %q, %v; want %q", b, err, "a")
	}
	err = filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "czNjcmV0") || strings.Contains(string(b), "s3cret") {
			t.Errorf("%s holds the credentials", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	seen := append([]string(nil), auths...)
	mu.Unlock()
	// Without credentials the fetch fails instead of prompting.
	c2, _ := NewCache(t.TempDir())
	if err := c2.Checkout(context.Background(), Source{URL: url, Commit: sha}, filepath.Join(t.TempDir(), "ws")); err == nil {
		t.Error("got nil error without credentials, want one")
	}
	if len(seen) == 0 {
		t.Fatal("server saw no request")
	}
	for _, a := range seen {
		if a != "Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0" {
			t.Errorf("got Authorization %q, want basic auth of x-access-token:s3cret", a)
		}
	}
}

func TestResolveRef(t *testing.T) {
	f := newFixture(t)
	sha := f.commit(t, map[string]string{"a.txt": "a"})
	got, err := ResolveRef(context.Background(), f.bare, "refs/heads/main")
	if err != nil || got != sha {
		t.Errorf("ResolveRef(main) = %q, %v; want %s", got, err, sha)
	}
	if _, err := ResolveRef(context.Background(), f.bare, "refs/heads/nope"); !errors.Is(err, ErrNoRef) {
		t.Errorf("ResolveRef(missing) error = %v, want ErrNoRef", err)
	}
}

// TestFetchRefusesUnknownTransport: a "<scheme>://" URL must not run a
// git-remote-<scheme> helper found on PATH.
func TestFetchRefusesUnknownTransport(t *testing.T) {
	bin := t.TempDir()
	marker := filepath.Join(bin, "ran")
	helper := "#!/bin/sh\ntouch '" + marker + "'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "git-remote-evil"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Fetch(context.Background(), Source{URL: "evil://example.com/r.git", Commit: strings.Repeat("a", 40)})
	if err == nil {
		t.Error("fetch from evil:// succeeded, want an error")
	}
	if _, serr := os.Stat(marker); serr == nil {
		t.Errorf("git ran git-remote-evil (fetch err: %v)", err)
	}
}
