package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/internal/gittest"
)

// runGitT runs git in dir with fixed commit dates (internal/gittest).
func runGitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.RunEnv(t, dir, gittest.FixedTime, args...)
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
		{sha2, "dir/a.txt", "", ErrNoFile},
		{sha1, "dir", "", ErrNoFile},
		{sha1, "missing.yml", "", ErrNoFile},
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
			if tt.err == ErrNotFound && errors.Is(err, ErrNoFile) {
				t.Errorf("got %v for a missing commit, want an error that is not ErrNoFile", err)
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

// TestReadFileShallowMirror reads from a bare repository filled the way
// internal/gitmirror's cache fills its mirrors (a shallow fetch of one SHA
// into a named ref), which is what the server reads forge repositories'
// pipeline files from.
func TestReadFileShallowMirror(t *testing.T) {
	f := newFixture(t)
	f.commit(t, "one", map[string]string{".pipeline.yml": "v: 1\n"})
	sha := f.commit(t, "two", map[string]string{".pipeline.yml": "v: 2\n"})
	mirror := filepath.Join(t.TempDir(), "m.git")
	runGitT(t, t.TempDir(), "init", "-q", "--bare", mirror)
	runGitT(t, mirror, "fetch", "-q", "--no-tags", "--depth=1", "--", "file://"+f.bare, "+"+sha+":refs/runnel/"+sha)
	got, err := ReadFile(context.Background(), mirror, sha, ".pipeline.yml")
	if err != nil || string(got) != "v: 2\n" {
		t.Errorf("got %q, %v; want %q, nil", got, err, "v: 2\n")
	}
}
