package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"
)

// git runs the git CLI in dir with a fixed identity and no user config.
func runGitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Ann Author", "GIT_AUTHOR_EMAIL=ann@example.com",
		"GIT_COMMITTER_NAME=Ann Author", "GIT_COMMITTER_EMAIL=ann@example.com",
		"GIT_AUTHOR_DATE=2024-05-01T10:00:00Z", "GIT_COMMITTER_DATE=2024-05-01T10:00:00Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// fixture is a bare repository with a working clone to commit from.
type fixture struct {
	bare, work string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{bare: filepath.Join(dir, "origin.git"), work: filepath.Join(dir, "work")}
	runGitT(t, dir, "init", "-q", "--bare", "-b", "main", f.bare)
	runGitT(t, dir, "clone", "-q", f.bare, f.work)
	runGitT(t, f.work, "checkout", "-q", "-b", "main")
	return f
}

// commit writes files (content "" deletes), commits and pushes; it
// returns the new SHA.
func (f *fixture) commit(t testing.TB, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(f.work, name)
		if content == "" {
			runGitT(t, f.work, "rm", "-q", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		runGitT(t, f.work, "add", name)
	}
	runGitT(t, f.work, "commit", "-q", "-m", msg)
	runGitT(t, f.work, "push", "-q", "origin", "main")
	return runGitT(t, f.work, "rev-parse", "HEAD")
}

func TestReadFile(t *testing.T) {
	f := newFixture(t)
	sha1 := f.commit(t, "one", map[string]string{".pipeline.yml": "v: 1\n", "dir/a.txt": "a"})
	sha2 := f.commit(t, "two", map[string]string{".pipeline.yml": "v: 2\n", "dir/a.txt": ""})
	big := f.commit(t, "big", map[string]string{"big.bin": strings.Repeat("x", MaxFileSize+1)})
	ctx := context.Background()
	tests := []struct {
		sha, path, want string
		err             error
	}{
		{sha1, ".pipeline.yml", "v: 1\n", nil},
		{sha2, ".pipeline.yml", "v: 2\n", nil},
		{sha1, "dir/a.txt", "a", nil},
		{sha2, "dir/a.txt", "", ErrNotFound},
		{sha1, "dir", "", ErrNotFound},
		{sha1, "missing.yml", "", ErrNotFound},
		{strings.Repeat("1", 40), ".pipeline.yml", "", ErrNotFound},
		{"HEAD", ".pipeline.yml", "", ErrNotFound},
		{big, "big.bin", "", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.7s/%s", tt.sha, tt.path), func(t *testing.T) {
			got, err := ReadFile(ctx, f.bare, tt.sha, tt.path)
			if !errors.Is(err, tt.err) || string(got) != tt.want {
				t.Errorf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestCommitInfoAndChangedPaths(t *testing.T) {
	f := newFixture(t)
	sha1 := f.commit(t, "one\n\nbody", map[string]string{"a.txt": "a", "b/c.txt": "c"})
	sha2 := f.commit(t, "two", map[string]string{"a.txt": "A", "b/c.txt": "", "d.txt": "d"})
	c, err := CommitInfo(f.bare, sha2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Message != "two\n" || c.Author != "Ann Author" || c.AuthorEmail != "ann@example.com" || c.Time.Unix() != 1714557600 || c.SHA != sha2 {
		t.Errorf("got %+v, want message two, Ann Author, 2024-05-01T10:00:00Z", c)
	}
	tests := []struct {
		before, after string
		want          []string
	}{
		{sha1, sha2, []string{"a.txt", "b/c.txt", "d.txt"}},
		{sha2, sha2, []string{}},
		{strings.Repeat("0", 40), sha2, nil},
		{"", sha2, nil},
	}
	for _, tt := range tests {
		got, err := ChangedPaths(f.bare, tt.before, tt.after)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ChangedPaths(%.7s, %.7s) = %#v, %v; want %#v", tt.before, tt.after, got, err, tt.want)
		}
	}
}

func objectCount(t testing.TB, repo string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(runGitT(t, repo, "count-objects", "-v"), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		if k == "count" || k == "in-pack" {
			i, _ := strconv.Atoi(v)
			n += i
		}
	}
	return n
}

type checkoutFunc func(ctx context.Context, cacheDir, cloneURL, sha, ref, dst string, opts *CheckoutOptions) error

func TestCheckout(t *testing.T) {
	for name, checkout := range map[string]checkoutFunc{"cli": checkoutCLI, "go-git": checkoutGoGit, "Checkout": Checkout} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			cache := t.TempDir()
			sha1 := f.commit(t, "one", map[string]string{"a.txt": "one", "sub/b.txt": "b"})
			dst1 := filepath.Join(t.TempDir(), "ws")
			if err := checkout(ctx, cache, f.bare, sha1, "refs/heads/main", dst1, nil); err != nil {
				t.Fatal(err)
			}
			cacheRepo := cachePath(cache, f.bare)
			before := objectCount(t, cacheRepo)
			sha2 := f.commit(t, "two", map[string]string{"a.txt": "two"})
			// A third commit on the branch: fetching the ref brings it too.
			dst2 := filepath.Join(t.TempDir(), "ws")
			if err := checkout(ctx, cache, f.bare, sha2, "refs/heads/main", dst2, nil); err != nil {
				t.Fatal(err)
			}
			// commit, root tree, blob: only what is new was fetched.
			if got, want := objectCount(t, cacheRepo)-before, 3; got != want {
				t.Errorf("second fetch added %d objects to the cache, want %d", got, want)
			}
			for _, ws := range []struct{ dir, sha, a string }{{dst1, sha1, "one"}, {dst2, sha2, "two"}} {
				if got := runGitT(t, ws.dir, "rev-parse", "HEAD"); got != ws.sha {
					t.Errorf("%s: HEAD = %s, want %s", ws.dir, got, ws.sha)
				}
				if got := runGitT(t, ws.dir, "status", "--porcelain"); got != "" {
					t.Errorf("%s: status %q, want clean", ws.dir, got)
				}
				if got, _ := os.ReadFile(filepath.Join(ws.dir, "a.txt")); string(got) != ws.a {
					t.Errorf("%s: a.txt = %q, want %q", ws.dir, got, ws.a)
				}
			}
			// Checking out an already cached SHA fetches nothing.
			n := objectCount(t, cacheRepo)
			if err := checkout(ctx, cache, f.bare, sha1, "", filepath.Join(t.TempDir(), "ws"), nil); err != nil {
				t.Fatal(err)
			}
			if got := objectCount(t, cacheRepo); got != n {
				t.Errorf("cached checkout changed the cache from %d to %d objects", n, got)
			}
		})
	}
}

func TestCheckoutRefusesUnsafe(t *testing.T) {
	sha := strings.Repeat("a", 40)
	tests := []struct{ url, sha, ref string }{
		{"--upload-pack=touch /tmp/x", sha, ""},
		{"ext::sh -c touch% /tmp/x", sha, ""},
		{"fd::3", sha, ""},
		{"https://example.com/r.git", "--help", ""},
		{"https://example.com/r.git", "abc", ""},
		{"https://example.com/r.git", sha, "refs/heads/a:refs/heads/b"},
		{"https://example.com/r.git", sha, "--upload-pack=x"},
		{"https://example.com/r.git", sha, "refs/heads/*"},
		{"https://example.com/r.git", sha, "main"},
	}
	for _, tt := range tests {
		err := Checkout(context.Background(), t.TempDir(), tt.url, tt.sha, tt.ref, filepath.Join(t.TempDir(), "ws"), nil)
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("Checkout(%q, %q, %q) = %v, want ErrUnsafe", tt.url, tt.sha, tt.ref, err)
		}
	}
}

func TestGitEnvCarriesCredentials(t *testing.T) {
	env := gitEnv(&CheckoutOptions{Username: "x-access-token", Password: "s3cret"})
	joined := strings.Join(env, "\n")
	if !strings.Contains(joined, "=http.extraHeader") || !strings.Contains(joined, "=Authorization: Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0") {
		t.Errorf("env has no basic auth extraHeader:\n%s", joined)
	}
}

func TestCheckoutConcurrent(t *testing.T) {
	f := newFixture(t)
	sha := f.commit(t, "one", map[string]string{"a.txt": "one"})
	cache := t.TempDir()
	var g errgroup.Group
	dsts := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b"), filepath.Join(t.TempDir(), "c")}
	for _, dst := range dsts {
		g.Go(func() error { return Checkout(context.Background(), cache, f.bare, sha, "refs/heads/main", dst, nil) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, dst := range dsts {
		if got := runGitT(t, dst, "rev-parse", "HEAD"); got != sha {
			t.Errorf("%s: HEAD = %s, want %s", dst, got, sha)
		}
	}
}
